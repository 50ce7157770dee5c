"""AsrStage: whisperx transcription + word timing (wav2vec2 or Whisper's own) + speech ratio, per clip.

    stage = AsrStage(cfg.asr)                        # loads Whisper, the VAD, aligners once
    out = stage({"key": [...], "wav": [path, ...]})  # one result per clip (status, transcript, ...)

Per clip: the pyannote VAD (a real model bundled with whisperx) runs once; its voiced share is
the clip's speech ratio, and its scores are handed to whisperx's `transcribe` so it does not run
the VAD a second time. Clips below `min_speech_ratio` are rejected before any decoding. Then
language (fixed or detected), allow-list, word timing, and the word post-processing of
`annotate.words`. Word timing is whisperx's forced alignment with a wav2vec2 CTC model
(`asr.align=wav2vec2`), or faster-whisper's own word timestamps (`asr.align=whisper`: sequential
decoding of the VAD's speech regions with the cross-attention alignment heads; no other model). Everything runs offline (`annotate.asr_models`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from annotate.asr_models import AsrModelError, check_asr_models, check_punkt, offline_environment, resolve_aligner
from annotate.config import AsrConfig
from annotate.words import speech_ratio, transcript_block
from dataset.schema import AUDIO_SAMPLE_RATE

log = logging.getLogger(__name__)


def _precomputed_vad_class():
    """A whisperx `Vad` that returns scores computed beforehand (defined lazily: whisperx is an extra)."""
    from whisperx.vads import Pyannote, Vad

    class PrecomputedVad(Vad):
        preprocess_audio = staticmethod(Pyannote.preprocess_audio)
        merge_chunks = staticmethod(Pyannote.merge_chunks)

        def __init__(self, inner: Any, onset: float) -> None:
            super().__init__(onset)
            self.inner, self.scores = inner, None

        def __call__(self, audio: Any, **kwargs: Any) -> Any:
            scores, self.scores = self.scores, None
            return scores if scores is not None else self.inner(audio)

    return PrecomputedVad


class AsrStage:
    """Transcribe, align and filter clips; `__call__(batch) -> batch` with one row per clip.

    Args:
        cfg: models, device, decoding and filter settings (`annotate.config.AsrConfig`).

    Input columns: `key` and `wav` (path to, or bytes of, a 16 kHz mono PCM16 wav). Output
    columns: `key`, `status` (ok | rejected | failed), `reason`, `detail`, `speech_ratio`,
    `language`, `num_words`, `transcript` (the annotation block, or None), `seconds`.
    """

    def __init__(self, cfg: AsrConfig) -> None:
        self.cfg = cfg
        self.models = check_asr_models(cfg)  # fails fast, before any library touches the network
        offline_environment(self.models.nltk_data)
        import torch
        import whisperx
        from whisperx.vads.pyannote import Binarize

        # whisperx logs every model load and every segment it cannot align at INFO/WARNING; the
        # unaligned words are recorded in the transcript (`aligned: false`) instead.
        logging.getLogger("whisperx").setLevel(logging.ERROR)
        self.device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            torch.set_num_threads(cfg.cpu_threads)
        vad_options = {"vad_onset": cfg.vad_onset, "vad_offset": cfg.vad_offset}
        self.pipe = whisperx.load_model(
            self.models.whisper, self.device, compute_type=cfg.compute_type, language=cfg.language or None,
            asr_options={"beam_size": cfg.beam_size, "best_of": cfg.beam_size}, vad_method="pyannote",
            vad_options=vad_options, local_files_only=True, threads=cfg.cpu_threads,
        )
        if cfg.max_new_tokens:
            # whisperx's batched generate ignores faster-whisper's max_new_tokens; CTranslate2
            # decodes at most max_length / 2 new tokens.
            self.pipe.model.max_length = 2 * cfg.max_new_tokens
        self.vad = _precomputed_vad_class()(self.pipe.vad_model, cfg.vad_onset)
        self.pipe.vad_model = self.vad
        self.binarize = Binarize(onset=cfg.vad_onset, offset=cfg.vad_offset)
        self._aligners: dict[str, tuple[Any, dict] | None] = {}
        for language in self.models.aligners:  # the configured languages load now (fail fast)
            self._aligner(language)

    # 1. Speech regions and ratio from the VAD
    def voiced(self, audio: np.ndarray) -> tuple[Any, float, list[tuple[float, float]]]:
        """(VAD scores, speech ratio, speech regions in seconds)."""
        import torch

        scores = self.vad.inner({"waveform": torch.from_numpy(audio).unsqueeze(0), "sample_rate": AUDIO_SAMPLE_RATE})
        regions = [(seg.start, seg.end) for seg in self.binarize(scores).get_timeline()]
        return scores, speech_ratio(regions, len(audio) / AUDIO_SAMPLE_RATE), regions

    def whisper_timed(self, audio: np.ndarray, regions: list[tuple[float, float]]) -> tuple[list[dict], str]:
        """(whisperx-style segments with word times, language) from faster-whisper's own decoding.

        Only the VAD's speech regions are decoded (`clip_timestamps`), as in the batched path, so
        silence is never transcribed; word times come from the cross-attention alignment heads.
        """
        from faster_whisper import WhisperModel

        cfg = self.cfg
        clips = [t for region in regions for t in region] or "0"
        # whisperx's WhisperModel subclasses faster-whisper's; its sequential `transcribe` is intact.
        segments, info = WhisperModel.transcribe(
            self.pipe.model, audio, language=cfg.language or None, beam_size=cfg.beam_size, best_of=cfg.beam_size,
            word_timestamps=True, vad_filter=False, clip_timestamps=clips, condition_on_previous_text=False,
            max_new_tokens=cfg.max_new_tokens or None)
        out = [{"start": seg.start, "end": seg.end, "text": seg.text,
                "words": [{"word": w.word, "start": w.start, "end": w.end, "score": w.probability}
                          for w in seg.words or []]}
               for seg in segments]
        return out, info.language

    def _aligner(self, language: str) -> tuple[Any, dict] | None:
        """whisperx's (model, metadata) for `language`, or None when it cannot align offline."""
        if language not in self._aligners:
            import whisperx

            name, problem = resolve_aligner(language, self.cfg.align_models)
            problem = problem or check_punkt(language, self.models.nltk_data)
            if problem:
                if language in self.models.aligners:
                    raise AsrModelError(problem)
                log.warning("words of %r clips stay unaligned: %s", language, problem)
                self._aligners[language] = None
            else:
                self._aligners[language] = whisperx.load_align_model(language, self.device, model_name=name,
                                                                     model_cache_only=True)
        return self._aligners[language]

    # 2. Transcribe, filter by language, align
    def transcribe(self, audio: np.ndarray) -> dict[str, Any]:
        """One clip's row (without `key`): rejected early when the clip is mostly silent."""
        import whisperx

        cfg = self.cfg
        duration = len(audio) / AUDIO_SAMPLE_RATE
        scores, ratio, regions = self.voiced(audio)
        row: dict[str, Any] = {"speech_ratio": ratio, "language": None, "num_words": None, "transcript": None}
        if ratio < cfg.min_speech_ratio:
            return {**row, "status": "rejected", "reason": "low_speech_ratio",
                    "detail": f"speech ratio {ratio:.3f} < asr.min_speech_ratio {cfg.min_speech_ratio:g}"}
        if cfg.align == "whisper":
            segments, language = self.whisper_timed(audio, regions)
        else:
            self.vad.scores = scores
            result = self.pipe.transcribe(audio, batch_size=cfg.batch_size, language=cfg.language or None)
            segments, language = result["segments"], result["language"]
        row["language"] = language
        if cfg.languages and language not in cfg.languages:
            return {**row, "status": "rejected", "reason": "language_not_allowed",
                    "detail": f"detected {language!r}, asr.languages is {list(cfg.languages)}"}
        aligner = self._aligner(language) if segments and cfg.align == "wav2vec2" else None
        if aligner is not None:
            segments = whisperx.align(segments, aligner[0], aligner[1], audio, self.device)["segments"]
        transcript = transcript_block(segments, language, duration)
        row.update(transcript=transcript, num_words=len(transcript["words"]))
        if len(transcript["words"]) < cfg.min_words:
            return {**row, "status": "rejected", "reason": "too_few_words",
                    "detail": f"{len(transcript['words'])} word(s) < asr.min_words {cfg.min_words}"}
        return {**row, "status": "ok", "reason": None, "detail": None}

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from dataset.media import decode_wav

        rows = []
        for key, wav in zip(batch["key"], batch["wav"]):
            started = time.perf_counter()
            try:
                data = wav if isinstance(wav, bytes) else open(wav, "rb").read()
                samples, rate = decode_wav(data)
                if rate != AUDIO_SAMPLE_RATE:
                    raise ValueError(f"expected {AUDIO_SAMPLE_RATE} Hz audio, got {rate} Hz")
                row = self.transcribe(np.ascontiguousarray(samples, dtype=np.float32).reshape(-1))
            except AsrModelError:
                raise
            except Exception as err:  # noqa: BLE001 - one bad clip must not stop the others
                log.warning("%s: ASR failed: %r", key, err)
                row = {"status": "failed", "reason": "asr_error", "detail": f"{type(err).__name__}: {err}",
                       "speech_ratio": None, "language": None, "num_words": None, "transcript": None}
            rows.append({"key": key, **row, "seconds": round(time.perf_counter() - started, 3)})
        return {name: [row[name] for row in rows] for name in rows[0]} if rows else {"key": []}
