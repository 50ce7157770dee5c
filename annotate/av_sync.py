"""Audio-video offset per clip, and the filter that shifts or rejects clips out of sync.

    stage = AvSyncStage(cfg.sync)
    row = stage.check(mp4_bytes, audio, face_bbox)   # offset, confidence, verdict, realigned audio

Two measures, one convention (syncnet_python's AV offset): `offset_frames > 0` means the video lags
the audio (the sound comes first); realigning delays the audio by that many frames.

- **mouth** (weight-free, runs anywhere): per frame, BlazeFace's mouth keypoint places a region of
  half the face width and a quarter of its height; its openness is how much contrast it holds
  against the whole face box (the region's standard deviation over the face's): an open mouth shows
  the dark oral cavity and often bright teeth, a closed one mostly skin. Contrast, not darkness: on
  a dark face the teeth are brighter than the skin and offset the cavity, so "darker than the face"
  misread a darker-skinned puppet's speech (offset +4 at confidence 0.25 where contrast finds 0 at
  0.62; the light one: 0 at 0.92 and 0.98). The audio's loudness envelope is the log RMS over each frame's
  640 samples. Both are high-passed (minus a 9-frame moving mean, so slow lighting and level
  changes do not count) and Pearson-correlated at every lag in [-max_lag, max_lag]; the best lag is
  the offset, and `confidence` = best minus median correlation (the analogue of Sync-C =
  median minus least distance). Written by hand: no package offers a weight-free AV offset.
- **syncnet** (with weights): `evaluation.sync.sync_scores` (syncnet_python's algorithm, checked
  there against the reference) on square crops around the clip's face box; confidence = Sync-C.

The mouth measure needs a face in view and speech; without either, the result is inconclusive
(low confidence) and the filter leaves the clip alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from annotate.config import AvSyncConfig
from dataset.audio_intensity import SAMPLES_PER_FRAME, frame_rms
from dataset.schema import AUDIO_SAMPLE_RATE
HIGHPASS_FRAMES = 9
MOUTH_KEYPOINT = 3  # BlazeFace keypoints: right eye, left eye, nose tip, mouth centre, right ear, left ear
MIN_OVERLAP_FRAMES = 12  # lags whose overlap is shorter are not scored


@dataclass(frozen=True, slots=True)
class AvOffset:
    """One clip's measure: offset in frames (> 0: video lags audio), confidence, the per-lag scores."""

    offset_frames: int
    confidence: float
    method: str
    scores: tuple[float, ...]


def audio_envelope(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Log RMS of 16 kHz mono audio over each 25 fps frame's 640 samples (zeros past the end)."""
    return np.log(frame_rms(audio, num_frames) + 1e-4)


def highpass(signal: np.ndarray, width: int = HIGHPASS_FRAMES) -> np.ndarray:
    """The signal minus its centred moving mean over `width` frames (edges padded with the end values)."""
    signal = np.asarray(signal, np.float64)
    padded = np.pad(signal, width // 2, mode="edge")
    return signal - np.convolve(padded, np.ones(width) / width, mode="valid")


def mouth_openness(frames: np.ndarray, detector: Any) -> np.ndarray | None:
    """Per-frame mouth openness (see the module docstring); None when no frame shows a face.

    Frames without a detection reuse the last face position (the first ones the next); the region
    is always measured on the frame itself.
    """
    frames = np.asarray(frames)
    height, width = frames.shape[1:3]
    gray = frames.astype(np.float32).mean(axis=-1)
    placements: list[tuple[float, float, float, float, float, float] | None] = []
    for frame in frames:
        faces = [f for f in detector.detect(frame) if len(f.keypoints) > MOUTH_KEYPOINT]
        if faces:
            (x0, y0, x1, y1), (mx, my) = faces[0].box, faces[0].keypoints[MOUTH_KEYPOINT]
            placements.append((x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height, mx * width, my * height))
        else:
            placements.append(None)
    known = [i for i, p in enumerate(placements) if p is not None]
    if not known:
        return None
    signal = np.empty(len(frames))
    for t in range(len(frames)):
        nearest = min(known, key=lambda i: (abs(i - t), i > t))  # the last earlier face wins ties
        signal[t] = openness_at(gray[t], placements[nearest])  # type: ignore[arg-type]
    return signal


def openness_at(gray: np.ndarray, placement: tuple[float, float, float, float, float, float]) -> float:
    """One (H, W) grey frame's mouth openness at `placement` = (face x, y, width, height, mouth x, y)
    in pixels: the contrast of a region half the face wide and a quarter high round the mouth,
    over the face's (0 where either region is empty)."""
    x, y, w, h, mx, my = placement
    face = gray[max(int(y), 0): int(y + h) + 1, max(int(x), 0): int(x + w) + 1]
    mouth = gray[max(int(my - 0.125 * h), 0): int(my + 0.125 * h) + 1, max(int(mx - 0.25 * w), 0): int(mx + 0.25 * w) + 1]
    if face.size == 0 or mouth.size == 0:
        return 0.0
    return float(mouth.std()) / (float(face.std()) + 1e-6)


def correlate_offset(video_signal: np.ndarray, audio_signal: np.ndarray, max_lag: int) -> AvOffset:
    """Best lag of the high-passed signals' Pearson correlation, as an `AvOffset` ("mouth")."""
    v, a = highpass(video_signal), highpass(audio_signal)
    n = len(v)
    scores = []
    for lag in range(-max_lag, max_lag + 1):  # audio delayed by `lag` frames: video t pairs with audio t + lag
        lo, hi = max(0, -lag), min(n, n - lag)
        x, y = v[lo:hi], a[lo + lag: hi + lag]
        ok = hi - lo >= MIN_OVERLAP_FRAMES and x.std() > 1e-9 and y.std() > 1e-9
        scores.append(float(np.corrcoef(x, y)[0, 1]) if ok else float("nan"))
    curve = np.asarray(scores)
    if not np.isfinite(curve).any():
        return AvOffset(0, 0.0, "mouth", tuple(scores))
    best = int(np.nanargmax(curve))
    confidence = float(curve[best] - np.nanmedian(curve))
    # The audio is `best - max_lag` frames late, i.e. the video leads: syncnet_python's sign is the opposite.
    return AvOffset(max_lag - best, round(confidence, 4), "mouth", tuple(round(s, 4) for s in scores))


def realign(audio: np.ndarray, offset_frames: int) -> np.ndarray:
    """Audio moved so that a clip measured at `offset_frames` is in sync; the length is kept.

    offset > 0 (the sound comes first): the audio is delayed (silence in front); offset < 0: advanced.
    """
    audio = np.asarray(audio, np.float32).reshape(-1)
    shift = int(offset_frames) * SAMPLES_PER_FRAME
    out = np.zeros_like(audio)
    if 0 <= shift < audio.size:
        out[shift:] = audio[: audio.size - shift]
    elif 0 < -shift < audio.size:
        out[: audio.size + shift] = audio[-shift:]
    return out


def square_crops(frames: np.ndarray, bbox: tuple[float, float, float, float], scale: float = 1.4) -> np.ndarray:
    """Square crops of side `scale` x the box's longer side around its centre (normalised box), edge-padded."""
    height, width = frames.shape[1:3]
    x0, y0, x1, y1 = bbox[0] * width, bbox[1] * height, bbox[2] * width, bbox[3] * height
    side = max(int(round(scale * max(x1 - x0, y1 - y0))), 2)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = side
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return padded[:, top + pad: top + pad + side, left + pad: left + pad + side]


class AvSyncStage:
    """Measure each clip's AV offset and decide: keep, shift (realigned audio) or reject.

    Args:
        cfg: `annotate.config.AvSyncConfig` (method, weights, thresholds, action).
        face_model: BlazeFace .tflite for the mouth measure ("" = the cached model).
    """

    def __init__(self, cfg: AvSyncConfig, face_model: str = "") -> None:
        self.cfg = cfg
        self.method = cfg.resolved_method
        self.threshold = cfg.confidence_threshold
        self.detector = self.syncnet = None
        if self.method == "syncnet":
            # The metric's implementation (a lazy import: evaluation depends on annotate, not the
            # reverse, and only this optional backend needs it).
            from evaluation.syncnet import load_syncnet

            self.syncnet = load_syncnet(cfg.syncnet)
        else:
            from annotate.face_detector import FaceDetector, ensure_face_model

            self.detector = FaceDetector(ensure_face_model(face_model or None), min_score=0.5)

    def measure(self, frames: np.ndarray, audio: np.ndarray,
                bbox: tuple[float, float, float, float] | None) -> tuple[AvOffset | None, str]:
        """(the clip's offset, "") or (None, why it cannot be measured)."""
        if len(frames) < 2 * MIN_OVERLAP_FRAMES:
            return None, f"not measured: {len(frames)} frames (needs {2 * MIN_OVERLAP_FRAMES})"
        if self.syncnet is not None:
            if bbox is None:
                return None, "not measured: the clip has no face box"
            from evaluation.sync import SyncConfig, sync_scores

            result = sync_scores(self.syncnet, square_crops(frames, bbox), audio, AUDIO_SAMPLE_RATE,
                                 cfg=SyncConfig(vshift=self.cfg.max_lag_frames))
            return AvOffset(result.offset, round(result.confidence, 4), "syncnet", tuple(round(d, 4) for d in result.mdist)), ""
        signal = mouth_openness(frames, self.detector)
        if signal is None:
            return None, "not measured: no face in any frame"
        return correlate_offset(signal, audio_envelope(audio, len(frames)), self.cfg.max_lag_frames), ""

    def check(self, frames: np.ndarray, audio: np.ndarray, bbox: tuple[float, float, float, float] | None) -> dict[str, Any]:
        """The clip's verdict: `status`, `reason`, `detail`, `offset_frames`, `confidence`,
        `method`, `shifted_frames` (0 unless realigned) and `audio` (the realigned samples, or None)."""
        cfg = self.cfg
        found, why = self.measure(frames, audio, bbox)
        row: dict[str, Any] = {"status": "ok", "reason": None, "detail": None, "offset_frames": None,
                               "confidence": None, "method": self.method, "shifted_frames": 0, "audio": None}
        if found is None:
            return {**row, "detail": why}
        row.update(offset_frames=found.offset_frames, confidence=found.confidence)
        if found.confidence < self.threshold:
            return {**row, "detail": f"inconclusive: confidence {found.confidence:.3f} < {self.threshold:g}"}
        if abs(found.offset_frames) <= cfg.max_offset_frames or cfg.action == "measure":
            return row
        what = (f"audio-video offset {found.offset_frames:+d} frames (confidence {found.confidence:.3f}) exceeds "
                f"sync.max_offset_frames {cfg.max_offset_frames}")
        if cfg.action == "reject":
            return {**row, "status": "rejected", "reason": "av_offset", "detail": what}
        return {**row, "detail": f"{what}: audio realigned", "shifted_frames": found.offset_frames,
                "audio": realign(audio, found.offset_frames)}

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()

    def __enter__(self) -> AvSyncStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
