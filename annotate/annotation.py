"""Assemble a kept clip's annotation (schema v1) from what the stages measured.

The cut stage writes it with `transcript` and `speech_ratio` null; `with_asr` fills both from
the ASR stage's ledger record when the clip is packed, and `with_caption` adds the caption stage's
result (or exact synthetic-truth captions). Without a captioner the caption stays `null`
(explicitly absent, never placeholder text).
"""

from __future__ import annotations

from typing import Any

from annotate.config import AnnotateConfig
from annotate.cut import SAMPLES_PER_FRAME
from dataset.schema import AUDIO_SAMPLE_RATE, SCHEMA_VERSION, VIDEO_FPS

FACE_MODEL = "mediapipe/blazeface-short-range"


def clip_annotation(
    key: str,
    uri: str,
    sha256: str,
    clip: dict[str, Any],
    face_box: list[float] | None,
    cfg: AnnotateConfig,
    config_hash: str,
) -> dict[str, Any]:
    num_frames = clip["stop"] - clip["start"]
    face = clip["face"]
    return {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "source": {"uri": uri, "sha256": sha256, "start_s": round(clip["start"] / VIDEO_FPS, 4),
                   "end_s": round(clip["stop"] / VIDEO_FPS, 4)},
        "video": {"fps": VIDEO_FPS, "num_frames": num_frames, "width": cfg.clip.width, "height": cfg.clip.height,
                  "duration_s": round(num_frames / VIDEO_FPS, 4)},
        "audio": {"sample_rate": AUDIO_SAMPLE_RATE, "num_samples": int(round(num_frames * SAMPLES_PER_FRAME)),
                  "speech_ratio": None},
        "face": {"detected_ratio": face["detected_ratio"], "max_faces": face["max_faces"],
                 "bbox": [round(v, 4) for v in face_box] if face_box else None} if face else None,
        "transcript": None,
        "caption": None,
        "provenance": {"pipeline_version": cfg.pipeline_version, "config_hash": config_hash,
                       "models": {"face": FACE_MODEL}},
    }


def with_asr(doc: dict[str, Any], result: dict[str, Any], models: dict[str, str]) -> dict[str, Any]:
    """A copy of the cut stage's annotation with the ASR stage's speech ratio, transcript and models."""
    return {
        **doc,
        "audio": {**doc["audio"], "speech_ratio": result["speech_ratio"]},
        "transcript": result["transcript"],
        "provenance": {**doc["provenance"], "models": {**doc["provenance"]["models"], **models}},
    }


def with_sync(doc: dict[str, Any], verdict: dict[str, Any] | None, model: str = "") -> dict[str, Any]:
    """A copy with the AV-sync stage's figures in `audio.av_sync` and its measure in
    `provenance.models.av_sync` (unchanged without a verdict)."""
    if verdict is None:
        return doc
    block = {name: verdict[name] for name in ("offset_frames", "confidence", "method", "shifted_frames")}
    models = {**doc["provenance"]["models"], "av_sync": model or block["method"]}
    return {**doc, "audio": {**doc["audio"], "av_sync": block}, "provenance": {**doc["provenance"], "models": models}}


def with_pose(doc: dict[str, Any], verdict: dict[str, Any] | None) -> dict[str, Any]:
    """A copy with the pose stage's motion figures in `motion` and its method in
    `provenance.models.pose` (unchanged when the stage did not run or failed)."""
    if verdict is None or verdict["status"] != "ok":
        return doc
    models = {**doc["provenance"]["models"], "pose": verdict["method"]}
    return {**doc, "motion": {**verdict["motion"], "method": verdict["method"]},
            "provenance": {**doc["provenance"], "models": models}}


def with_caption(doc: dict[str, Any], caption: dict[str, Any] | None, models: dict[str, str],
                 details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy with the caption block (None keeps it null), the captioner in `provenance.models`
    and, for VLM captions, what produced them (backend, prompt, sampling, repairs) in `provenance.caption`."""
    if caption is None:
        return doc
    provenance = {**doc["provenance"], "models": {**doc["provenance"]["models"], **models}}
    if details is not None:
        provenance["caption"] = details
    return {**doc, "caption": caption, "provenance": provenance}
