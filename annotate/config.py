"""Configuration of the annotation pipeline: one frozen dataclass per stage, nested in the root.

Values live in `configs/annotate/*.yaml`; `key=value` overrides on the command line
(e.g. `clip.width=384 shots.max_clip_s=8`). Each class validates itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from annotate.vlm_config import VlmConfig
from dataset.errors import UserError
from dataset.writer import ShardWriterConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeConfig:
    """Args:
    min_duration_s: sources shorter than this are rejected (`too_short`).
    require_audio: reject sources without an audio stream (`no_audio`).
    """

    min_duration_s: float = 1.0
    require_audio: bool = True

    def __post_init__(self) -> None:
        if self.min_duration_s < 0:
            raise UserError(f"probe.min_duration_s must be >= 0, got {self.min_duration_s}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ShotConfig:
    """Shot detection (PySceneDetect detectors fed downscaled frames) and clip planning.

    Args:
        detector: "adaptive" (AdaptiveDetector) or "content" (ContentDetector).
        adaptive_threshold / adaptive_window / min_content_val: AdaptiveDetector settings.
        content_threshold: ContentDetector threshold.
        fade_threshold: ThresholdDetector luma level for fades to/from black (0 disables).
        analysis_width: frames are scaled to this width for detection (height keeps aspect).
        min_clip_s / max_clip_s: clip length bounds; longer shots are split evenly.
        trim_s: seconds dropped at both edges of every shot (transitions, cut jitter).
    """

    detector: str = "adaptive"
    adaptive_threshold: float = 3.0
    adaptive_window: int = 2
    min_content_val: float = 15.0
    content_threshold: float = 27.0
    fade_threshold: float = 12.0
    analysis_width: int = 256
    min_clip_s: float = 2.0
    max_clip_s: float = 10.0
    trim_s: float = 0.2

    def __post_init__(self) -> None:
        if self.detector not in ("adaptive", "content"):
            raise UserError(f"shots.detector must be 'adaptive' or 'content', got {self.detector!r}")
        if not 0 < self.min_clip_s <= self.max_clip_s:
            raise UserError(
                f"need 0 < shots.min_clip_s <= shots.max_clip_s, got {self.min_clip_s} and {self.max_clip_s}"
            )
        if self.max_clip_s < 2 * self.min_clip_s:
            raise UserError(
                f"shots.max_clip_s ({self.max_clip_s}) must be >= 2 * shots.min_clip_s ({self.min_clip_s}) "
                "so that long shots split into clips that are all long enough"
            )
        if self.trim_s < 0:
            raise UserError(f"shots.trim_s must be >= 0, got {self.trim_s}")
        if self.analysis_width < 32:
            raise UserError(f"shots.analysis_width must be >= 32, got {self.analysis_width}")
        if self.adaptive_window < 1:
            raise UserError(f"shots.adaptive_window must be >= 1, got {self.adaptive_window}")


@dataclass(frozen=True, kw_only=True, slots=True)
class FaceConfig:
    """Face filter (mediapipe BlazeFace on frames sampled during the analysis pass).

    Args:
        model_path: the .tflite model; "" uses the cache (`annotate.face_detector.ensure_face_model`).
        sample_fps: detection rate, frames per second of video.
        analysis_width: frames are scaled to this width for detection.
        min_score: detector confidence threshold.
        min_face_height: smallest face accepted, as a fraction of the frame height.
        min_dominant_ratio: share of sampled frames that must show exactly one dominant face.
        dominance: a face dominates when its area is at least this times any other face's.
        confirm: "landmarks" (default): a BlazeFace detection counts only where the MediaPipe face
            mesh also finds a face (its face-presence score >= `min_presence`; rejects object
            close-ups BlazeFace alone takes for faces); "none": every detection counts.
        min_presence: the face mesh's presence threshold.
        landmark_bundle: the face landmarker .task; "" builds it in the cache
            (`annotate.face_landmarks.ensure_landmarker_bundle`).
    """

    model_path: str = ""
    sample_fps: float = 2.0
    analysis_width: int = 384
    min_score: float = 0.5
    min_face_height: float = 0.08
    min_dominant_ratio: float = 0.8
    dominance: float = 4.0
    confirm: str = "landmarks"
    min_presence: float = 0.5
    landmark_bundle: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.sample_fps <= 25:
            raise UserError(f"face.sample_fps must be in (0, 25], got {self.sample_fps}")
        if not 0 < self.min_score < 1:
            raise UserError(f"face.min_score must be in (0, 1), got {self.min_score}")
        if not 0 <= self.min_face_height < 1:
            raise UserError(f"face.min_face_height must be in [0, 1), got {self.min_face_height}")
        if self.confirm not in ("landmarks", "none"):
            raise UserError(f"face.confirm must be 'landmarks' or 'none', got {self.confirm!r}")
        if not 0 < self.min_presence < 1:
            raise UserError(f"face.min_presence must be in (0, 1), got {self.min_presence}")
        if not 0 < self.min_dominant_ratio <= 1:
            raise UserError(f"face.min_dominant_ratio must be in (0, 1], got {self.min_dominant_ratio}")
        if self.dominance < 1:
            raise UserError(f"face.dominance must be >= 1, got {self.dominance}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ClipConfig:
    """Cut and normalise: 25 fps, `width` x `height`, AAC/PCM 16 kHz mono.

    Args:
        width / height: output frame size (even numbers, H.264 yuv420p).
        mode: "crop" (a window around the face track, scaled to the size) or "pad" (the whole
            frame scaled to fit, black bars).
        crop_scale: in crop mode, the window height is the face height times this (5: head and
            upper body with raised hands, since the phases are upper-body actions).
        crf: x264 quality (lower is better, larger files).
    """

    width: int = 512
    height: int = 512
    mode: str = "crop"
    crop_scale: float = 5.0
    crf: int = 20

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if value < 16 or value % 2:
                raise UserError(f"clip.{name} must be an even number >= 16, got {value}")
        if self.mode not in ("crop", "pad"):
            raise UserError(f"clip.mode must be 'crop' or 'pad', got {self.mode!r}")
        if self.crop_scale < 1:
            raise UserError(f"clip.crop_scale must be >= 1, got {self.crop_scale}")
        if not 0 <= self.crf <= 51:
            raise UserError(f"clip.crf must be in [0, 51], got {self.crf}")


ALIGN_BACKENDS = ("wav2vec2", "whisper")
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float16", "int8_float32", "int16", "float16", "bfloat16", "float32")


@dataclass(frozen=True, kw_only=True, slots=True)
class AsrConfig:
    """ASR + word alignment (whisperx: faster-whisper/CTranslate2, pyannote VAD, wav2vec2 CTC).

    Models load only from local directories or the Hugging Face cache; the stage never downloads.

    Args:
        model: CTranslate2 Whisper: a local directory, a faster-whisper size ("large-v3") or a hub
            id ("Systran/faster-whisper-large-v3") already in the Hugging Face cache.
        align: word timing backend: "wav2vec2" (whisperx's forced alignment with a CTC model, the
            default where its weights exist) or "whisper" (faster-whisper's own word timestamps
            from the cross-attention alignment heads; needs no other model).
        align_models: language code -> wav2vec2 CTC aligner (local directory, hub id in the cache,
            or a torchaudio bundle such as WAV2VEC2_ASR_BASE_960H); languages not listed use
            whisperx's default aligner for that language.
        nltk_data: folder holding `tokenizers/punkt_tab/<language>/` (whisperx splits sentences
            with it); "" searches NLTK's usual data folders.
        language: transcribe every clip in this language ("en"); "" detects it per clip.
        languages: allow-list of languages kept; empty keeps every language.
        device: "auto" (CUDA when the worker has a GPU), "cuda" or "cpu".
        compute_type: CTranslate2 compute type ("default": float16 on GPU, float32 on CPU; "int8" ...).
        batch_size: VAD chunks transcribed per batch.
        clip_batch: clips (from any sources) handed to an ASR worker at once.
        beam_size: beam search width.
        max_new_tokens: cap on generated tokens per chunk (0: Whisper's own limit, 224).
        cpu_threads: CTranslate2 / torch threads per worker on CPU.
        num_gpus: GPUs each ASR worker asks Ray for; -1 asks for one when the cluster has GPUs.
        vad_onset / vad_offset: pyannote VAD hysteresis thresholds (whisperx defaults).
        min_speech_ratio: clips whose share of voiced time is lower are rejected (`low_speech_ratio`).
        min_words: clips with fewer transcribed words are rejected (`too_few_words`).
    """

    model: str = "large-v3"
    align: str = "wav2vec2"
    align_models: dict[str, str] = field(default_factory=dict)
    nltk_data: str = ""
    language: str = ""
    languages: list[str] = field(default_factory=list)
    device: str = "auto"
    compute_type: str = "default"
    batch_size: int = 8
    clip_batch: int = 8
    beam_size: int = 5
    max_new_tokens: int = 0
    cpu_threads: int = 1
    num_gpus: float = -1.0
    vad_onset: float = 0.5
    vad_offset: float = 0.363
    min_speech_ratio: float = 0.3
    min_words: int = 1

    def __post_init__(self) -> None:
        if not self.model:
            raise UserError("asr.model must name a model directory or id, got ''")
        for code in (self.language, *self.languages, *self.align_models):
            if code and not (2 <= len(code) <= 3 and code.isalpha() and code.islower()):
                raise UserError(f"asr language codes are 2-3 lowercase letters (ISO 639-1), got {code!r}")
        if self.language and self.languages and self.language not in self.languages:
            raise UserError(f"asr.language {self.language!r} is not in asr.languages {list(self.languages)}")
        if self.align not in ALIGN_BACKENDS:
            raise UserError(f"asr.align must be one of {', '.join(ALIGN_BACKENDS)}, got {self.align!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"asr.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise UserError(f"asr.compute_type must be one of {', '.join(COMPUTE_TYPES)}, got {self.compute_type!r}")
        for name in ("batch_size", "clip_batch", "beam_size", "cpu_threads"):
            if getattr(self, name) < 1:
                raise UserError(f"asr.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.max_new_tokens <= 224:
            raise UserError(f"asr.max_new_tokens must be in [0, 224], got {self.max_new_tokens}")
        if self.num_gpus < 0 and self.num_gpus != -1:
            raise UserError(f"asr.num_gpus must be -1 (auto) or >= 0, got {self.num_gpus}")
        if not 0 < self.vad_offset <= self.vad_onset < 1:
            raise UserError(f"need 0 < asr.vad_offset <= asr.vad_onset < 1, got {self.vad_offset} and {self.vad_onset}")
        if not 0 <= self.min_speech_ratio <= 1:
            raise UserError(f"asr.min_speech_ratio must be in [0, 1], got {self.min_speech_ratio}")
        if self.min_words < 0:
            raise UserError(f"asr.min_words must be >= 0, got {self.min_words}")


CAPTION_BACKENDS = ("none", "truth", "local", "server")


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptionConfig:
    """The caption stage: a base caption + timestamped phase captions per kept clip.

    Args:
        backend: "local" (a transformers VLM in each caption worker, `annotate.vlm_local`),
            "server" (an OpenAI-compatible endpoint: vLLM, SGLang, `actavatar data serve-vlm`),
            "truth" (exact captions for `actavatar synth` videos from `truth`) or "none" (caption null).
        truth: a synthetic corpus's truth.jsonl (backend "truth").
        vlm: the model and how to reach it (`annotate.vlm_config.VlmConfig`: `caption.vlm.model`,
            `caption.vlm.server_url`, `caption.vlm.batch_size`, ...).
        prompt: the versioned prompt template (YAML; relative paths also resolve in the toolkit's tree).
        sample_fps / max_frames / frame_size: frames shown to the model: rate, cap (spread evenly
            when the rate would give more), longest side in pixels.
        use_face_box: tell the model where the face detector found the speaker.
        attempts: tries per clip (a new seed each) before the clip becomes a `failed` row.
        temperature / top_p / seed: sampling; max_new_tokens 0 uses the schema's worst-case
            token budget, so constrained output always closes.
        min_phase_s / max_phases / max_base_chars / max_text_chars / actions: caption limits (the
            output schema and the repair rules); `actions` non-empty restricts labels to that list.
        word_snap_s: a phase boundary inside a word moves to the word's edge when that is this close.
        num_gpus: GPUs each local-backend caption worker asks Ray for; -1 asks for one when the cluster has GPUs.
        clip_batch: clips (from any sources) handed to a caption worker at once (its requests
            are then batched by `caption.vlm.batch_size`).
    """

    backend: str = "none"
    truth: str = ""
    vlm: VlmConfig = field(default_factory=VlmConfig)
    prompt: str = "configs/annotate/prompts/phase_caption_v1.yaml"
    sample_fps: float = 2.0
    max_frames: int = 16
    frame_size: int = 448
    use_face_box: bool = True
    attempts: int = 3
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    max_new_tokens: int = 0
    min_phase_s: float = 0.5
    max_phases: int = 8
    max_base_chars: int = 300
    max_text_chars: int = 120
    actions: list[str] = field(default_factory=list)
    word_snap_s: float = 0.2
    num_gpus: float = -1.0
    clip_batch: int = 8

    def __post_init__(self) -> None:
        if self.backend not in CAPTION_BACKENDS:
            raise UserError(f"caption.backend must be one of {', '.join(CAPTION_BACKENDS)}, got {self.backend!r}")
        if self.backend == "truth" and not self.truth:
            raise UserError("caption.backend=truth needs caption.truth=PATH (the truth.jsonl of actavatar synth)")
        if self.truth and self.backend != "truth":
            raise UserError(f"caption.truth is set but caption.backend is {self.backend!r}; add caption.backend=truth")
        if self.min_phase_s <= 0:
            raise UserError(f"caption.min_phase_s must be > 0, got {self.min_phase_s}")
        if not 0 < self.sample_fps <= 25:
            raise UserError(f"caption.sample_fps must be in (0, 25], got {self.sample_fps}")
        for name in ("max_frames", "attempts", "clip_batch"):
            if getattr(self, name) < 1:
                raise UserError(f"caption.{name} must be >= 1, got {getattr(self, name)}")
        if self.frame_size < 28:
            raise UserError(f"caption.frame_size must be >= 28 pixels, got {self.frame_size}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise UserError(f"need caption.temperature >= 0 and 0 < caption.top_p <= 1, got {self.temperature} and {self.top_p}")
        if self.max_new_tokens < 0 or self.word_snap_s < 0:
            raise UserError(f"caption.max_new_tokens and caption.word_snap_s must be >= 0, got {self.max_new_tokens} and {self.word_snap_s}")
        if self.num_gpus < 0 and self.num_gpus != -1:
            raise UserError(f"caption.num_gpus must be -1 (auto) or >= 0, got {self.num_gpus}")
        if not 1 <= self.max_phases <= 8:
            raise UserError(f"caption.max_phases must be in [1, 8] (the annotation schema's limit), got {self.max_phases}")
        self.limits()  # validates the caption limits

    def limits(self):
        """The caption bounds as `annotate.caption_schema.CaptionLimits`."""
        from annotate.caption_schema import CaptionLimits

        return CaptionLimits(max_phases=self.max_phases, max_base_chars=self.max_base_chars,
                             max_text_chars=self.max_text_chars, actions=tuple(self.actions))


SYNC_ACTIONS = ("shift", "reject", "measure")
SYNC_METHODS = ("auto", "mouth", "syncnet")
# Confidence below which a measured offset is inconclusive (nothing is shifted or rejected), per
# method. Mouth measure (best - median correlation over lags), 4 s windows of synthetic talking
# videos: with another window's audio 95th percentile 0.49, largest 0.61 (132 pairs); with their own
# audio, shifted or not, smallest 0.70 (36) - calibrated on puppets, recalibrate on real footage
# (README). Sync-C >= 3 is LatentSync's filter.
DEFAULT_MIN_CONFIDENCE = {"mouth": 0.65, "syncnet": 3.0}


@dataclass(frozen=True, kw_only=True, slots=True)
class AvSyncConfig:
    """Audio-video sync filter on every cut clip (`annotate.av_sync`), before ASR.

    Args:
        enabled: run the stage (off: clips carry no sync figures).
        method: "mouth" (weight-free: mouth-region openness from BlazeFace's mouth keypoint,
            cross-correlated with the audio loudness envelope), "syncnet" (syncnet_python's
            algorithm on the clip's face box; needs `syncnet`), "auto" (syncnet when `syncnet` is set).
        syncnet: SyncNet weights (syncnet_v2.model), "" for none.
        max_lag_frames: largest offset searched, in frames (syncnet_python's vshift, 15).
        max_offset_frames: a clip whose |offset| is larger is acted on (`action`).
        min_confidence: below it the measure is inconclusive and nothing is done;
            -1 uses the method's default (mouth 0.65, syncnet 3.0).
        action: "shift" (realign the audio by the offset, as LatentSync does), "reject"
            (`av_offset` rows) or "measure" (record only).
    """

    enabled: bool = True
    method: str = "auto"
    syncnet: str = ""
    max_lag_frames: int = 15
    max_offset_frames: int = 1
    min_confidence: float = -1.0
    action: str = "shift"

    def __post_init__(self) -> None:
        if self.method not in SYNC_METHODS:
            raise UserError(f"sync.method must be one of {', '.join(SYNC_METHODS)}, got {self.method!r}")
        if self.method == "syncnet" and not self.syncnet:
            raise UserError("sync.method=syncnet needs sync.syncnet=/path/to/syncnet_v2.model")
        if self.action not in SYNC_ACTIONS:
            raise UserError(f"sync.action must be one of {', '.join(SYNC_ACTIONS)}, got {self.action!r}")
        if not 1 <= self.max_lag_frames <= 50:
            raise UserError(f"sync.max_lag_frames must be in [1, 50], got {self.max_lag_frames}")
        if not 0 <= self.max_offset_frames < self.max_lag_frames:
            raise UserError(f"need 0 <= sync.max_offset_frames < sync.max_lag_frames, got {self.max_offset_frames}")
        if self.min_confidence < 0 and self.min_confidence != -1:
            raise UserError(f"sync.min_confidence must be -1 (the method's default) or >= 0, got {self.min_confidence}")

    @property
    def resolved_method(self) -> str:
        return self.method if self.method != "auto" else ("syncnet" if self.syncnet else "mouth")

    @property
    def confidence_threshold(self) -> float:
        return self.min_confidence if self.min_confidence >= 0 else DEFAULT_MIN_CONFIDENCE[self.resolved_method]


POSE_BACKENDS = ("auto", "reader", "mediapipe")


@dataclass(frozen=True, kw_only=True, slots=True)
class PoseConfig:
    """Per-frame keypoints of every cut clip (`annotate.pose`, measured by the cut stage as it writes
    the clip): the `pose.npy` shard member and the annotation's `motion` intensities. Never rejects
    a clip: one it cannot measure has no member and `motion` null.

    Args:
        enabled: run the stage (off: no `pose.npy`, `motion` null).
        backend: "reader" (the synthetic puppets' exact pixel reader, `dataset.synth.actions`),
            "mediapipe" (on every frame: BlazeFace face keypoints, the face filter's model
            `face.model_path`; BlazePose body keypoints, `pose.model_path`; the face mesh's lips,
            `face.landmark_bundle`; MediaPipe hands, `pose.hand_model_path`), or "auto" (reader for
            synthetic corpora, i.e. `caption.backend=truth`, else mediapipe).
        model_path: the BlazePose task bundle ("" = `~/.cache/actavatar/models/pose_landmarker_v1.task`,
            built once from the mediapipe 0.10.21 wheel, `annotate.body_landmarks`).
        hands: measure the 21 landmarks of each hand (mediapipe backend; off saves the palm
            detector's time, about 10 ms per frame without a tracked hand).
        hand_model_path: the hand task bundle ("" = `~/.cache/actavatar/models/hand_landmarker_v1.task`,
            built once from the same wheel, `annotate.hand_landmarks`).
    """

    enabled: bool = True
    backend: str = "auto"
    model_path: str = ""
    hands: bool = True
    hand_model_path: str = ""

    def __post_init__(self) -> None:
        if self.backend not in POSE_BACKENDS:
            raise UserError(f"pose.backend must be one of {', '.join(POSE_BACKENDS)}, got {self.backend!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnotateConfig:
    """Root config of `actavatar data run`.

    Args:
        workers: sources processed in parallel (Ray actors per stage).
        group_size: sources per shard group. Sources are ordered by id and cut into groups of
            this many; a worker packs a group into its own shards (`shard-GGGGGG-PPP.tar`) as soon
            as all its sources are done, so shards appear while the run goes on and a killed run
            keeps every finished group. Same inputs and config -> same groups -> same bytes.
        pipeline_version: written into every annotation's provenance.
    """

    probe: ProbeConfig = field(default_factory=ProbeConfig)
    shots: ShotConfig = field(default_factory=ShotConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    sync: AvSyncConfig = field(default_factory=AvSyncConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    pack: ShardWriterConfig = field(default_factory=ShardWriterConfig)
    workers: int = 2
    group_size: int = 16
    pipeline_version: str = "actavatar-annotate-1"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError(f"workers must be >= 1, got {self.workers}")
        if self.group_size < 1:
            raise UserError(f"group_size must be >= 1, got {self.group_size}")

    @property
    def pose_backend(self) -> str:
        """The pose backend `auto` resolves to: the exact reader for synthetic (truth-captioned) corpora."""
        if self.pose.backend != "auto":
            return self.pose.backend
        return "reader" if self.caption.backend == "truth" else "mediapipe"


# Knobs that only schedule work (how many actors, how clips are batched, GPUs per actor): a run
# may resume with other values, and they stay out of the provenance hash.
_SCHEDULING = {("workers",), ("asr", "clip_batch"), ("asr", "num_gpus"), ("caption", "clip_batch"), ("caption", "num_gpus")}


def config_hash(cfg: AnnotateConfig) -> str:
    """Short hash of everything that shapes the output (provenance; resume safety)."""
    values = dataclasses.asdict(cfg)
    for path in _SCHEDULING:
        *parents, name = path
        section = values
        for parent in parents:
            section = section[parent]
        section.pop(name)
    data = json.dumps(values, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]
