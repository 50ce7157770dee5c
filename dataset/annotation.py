"""Annotation JSON v1 (DESIGN.md §3): the JSON Schema and a validator that reports every problem.

Structure (types, required fields, ranges) is checked with `jsonschema`; the rules a JSON Schema
cannot express (phases sorted, non-overlapping, inside the clip and long enough; words monotonic
and inside the clip; durations consistent) are checked here by hand. Every problem carries the
JSON path of the offending value, e.g. `$.caption.phases[1].start_s`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator

from dataset.errors import UserError
from dataset.schema import SAMPLE_KEY_RE, SCHEMA_VERSION

_NUM = {"type": "number"}
_NONNEG = {"type": "number", "minimum": 0}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_TEXT = {"type": "string", "minLength": 1}

_WORD = {
    "type": "object",
    "required": ["word", "start_s", "end_s"],
    "additionalProperties": False,
    "properties": {
        "word": _TEXT,
        "start_s": _NONNEG,
        "end_s": _NONNEG,
        "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        # False when the aligner could not place the word and it kept its segment's timing.
        "aligned": {"type": "boolean"},
    },
}
_PHASE = {
    "type": "object",
    "required": ["start_s", "end_s", "text"],
    "additionalProperties": False,
    "properties": {
        "start_s": _NONNEG,
        "end_s": _NONNEG,
        "text": _TEXT,
        "label": {"type": "string"},  # optional action label when the captioner gives one
    },
}

ANNOTATION_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ActAvatar clip annotation",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "key", "source", "video", "audio", "face", "transcript", "caption", "provenance"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "key": {"type": "string", "pattern": SAMPLE_KEY_RE.pattern},
        "source": {
            "type": "object",
            "additionalProperties": False,
            "required": ["uri", "sha256", "start_s", "end_s"],
            "properties": {
                "uri": _TEXT,
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "start_s": _NONNEG,
                "end_s": _NONNEG,
            },
        },
        "video": {
            "type": "object",
            "additionalProperties": False,
            "required": ["fps", "num_frames", "width", "height", "duration_s"],
            "properties": {
                "fps": {"type": "number", "exclusiveMinimum": 0},
                "num_frames": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
                "duration_s": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "audio": {
            "type": "object",
            "additionalProperties": False,
            "required": ["sample_rate", "num_samples", "speech_ratio"],
            "properties": {
                "sample_rate": {"type": "integer", "minimum": 1},
                "num_samples": {"type": "integer", "minimum": 1},
                # null until the ASR stage has measured it
                "speech_ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                # optional (corpora built before the AV-sync filter lack it): the clip's measured
                # audio-video offset in frames (> 0: the video lags the audio, syncnet_python's sign),
                # the measure's confidence, its method and how far the audio was shifted to fix it
                "av_sync": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "required": ["offset_frames", "confidence", "method", "shifted_frames"],
                    "properties": {
                        "offset_frames": {"type": ["integer", "null"]},
                        "confidence": {"type": ["number", "null"]},
                        "method": {"type": "string", "enum": ["mouth", "syncnet"]},
                        "shifted_frames": {"type": "integer"},
                    },
                },
            },
        },
        # null: the face stage did not run for this corpus
        "face": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["detected_ratio", "max_faces", "bbox"],
            "properties": {
                "detected_ratio": _UNIT,
                "max_faces": {"type": "integer", "minimum": 0},
                "bbox": {
                    "type": ["array", "null"],
                    "items": _UNIT,
                    "minItems": 4,
                    "maxItems": 4,
                },
            },
        },
        # null: explicitly absent (the stage that produces it did not run); never fake text
        "transcript": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["language", "text", "words"],
            "properties": {
                "language": {"type": "string", "pattern": "^[a-z]{2,3}$"},
                "text": {"type": "string"},
                "words": {"type": "array", "items": _WORD},
            },
        },
        "caption": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["base", "phases"],
            "properties": {
                "base": _TEXT,
                "phases": {"type": "array", "items": _PHASE},
            },
        },
        # optional (corpora built before the pose stage lack it): motion intensity measured from the
        # `pose.npy` keypoints (`dataset.pose`): mean keypoint speeds in clip heights per second and
        # the same on an absolute 0..1 scale; null where the backend measured no such keypoint
        "motion": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["face_speed", "face_intensity", "body_speed", "body_intensity", "method"],
            "properties": {
                "face_speed": {"type": ["number", "null"], "minimum": 0},
                "face_intensity": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "body_speed": {"type": ["number", "null"], "minimum": 0},
                "body_intensity": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "method": _TEXT,
            },
        },
        "provenance": {
            "type": "object",
            "required": ["pipeline_version", "config_hash", "models"],
            "properties": {
                "pipeline_version": _TEXT,
                "config_hash": {"type": "string"},
                "models": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
}

_VALIDATOR = Draft202012Validator(ANNOTATION_JSON_SCHEMA)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AnnotationRules:
    """Semantic limits the JSON Schema cannot express.

    Args:
        min_phase_s: shortest allowed phase, seconds.
        min_phases / max_phases: how many phases a caption may have.
        tolerance_s: slack for float comparisons of times (rounding in JSON).
    """

    min_phase_s: float = 0.5
    min_phases: int = 1
    max_phases: int = 8
    tolerance_s: float = 1e-3

    def __post_init__(self) -> None:
        if self.min_phase_s < 0:
            raise UserError(f"min_phase_s must be >= 0, got {self.min_phase_s}")
        if not 1 <= self.min_phases <= self.max_phases:
            raise UserError(
                f"need 1 <= min_phases <= max_phases, got min_phases={self.min_phases}, max_phases={self.max_phases}"
            )
        if self.tolerance_s < 0:
            raise UserError(f"tolerance_s must be >= 0, got {self.tolerance_s}")


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an annotation: where (JSON path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def json_path(parts: Iterable[str | int]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _schema_problems(doc: Any) -> list[Problem]:
    problems = []
    for err in sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "required":
            # jsonschema reports the parent; name the missing field itself.
            missing = err.message.split("'")[1] if "'" in err.message else "?"
            problems.append(Problem(json_path([*path, missing]), "required field is missing"))
        elif err.validator == "additionalProperties":
            problems.append(Problem(json_path(path), f"unknown field(s): {err.message.split('(')[-1].rstrip(')')}"))
        else:
            problems.append(Problem(json_path(path), err.message))
    return problems


def _interval_problems(items: list[dict], what: str, base: list[str | int], duration: float, tol: float) -> list[Problem]:
    """Each [start_s, end_s] ordered and inside [0, duration]."""
    problems = []
    for i, item in enumerate(items):
        start, end = item["start_s"], item["end_s"]
        where = json_path([*base, i])
        if end < start - tol:
            problems.append(Problem(where, f"{what} ends ({end:g}s) before it starts ({start:g}s)"))
        if start < -tol or end > duration + tol:
            problems.append(Problem(where, f"{what} [{start:g}s, {end:g}s] is outside the clip [0, {duration:g}s]"))
    return problems


def _phase_problems(phases: list[dict], duration: float, rules: AnnotationRules) -> list[Problem]:
    base: list[str | int] = ["caption", "phases"]
    tol = rules.tolerance_s
    problems = []
    if not rules.min_phases <= len(phases) <= rules.max_phases:
        problems.append(
            Problem(json_path(base), f"has {len(phases)} phases; allowed {rules.min_phases}-{rules.max_phases}")
        )
    problems += _interval_problems(phases, "phase", base, duration, tol)
    for i, phase in enumerate(phases):
        length = phase["end_s"] - phase["start_s"]
        if length >= -tol and length < rules.min_phase_s - tol:
            problems.append(
                Problem(json_path([*base, i]), f"phase lasts {length:.3f}s, shorter than the minimum {rules.min_phase_s:g}s")
            )
        if i == 0:
            continue
        prev = phases[i - 1]
        if phase["start_s"] < prev["start_s"] - tol:
            problems.append(
                Problem(json_path([*base, i]), f"phases are not sorted: starts at {phase['start_s']:g}s, before phase {i - 1} ({prev['start_s']:g}s)")
            )
        elif phase["start_s"] < prev["end_s"] - tol:
            problems.append(
                Problem(json_path([*base, i]), f"overlaps phase {i - 1}: starts at {phase['start_s']:g}s, before it ends ({prev['end_s']:g}s)")
            )
    return problems


def _word_problems(words: list[dict], duration: float, tol: float) -> list[Problem]:
    base: list[str | int] = ["transcript", "words"]
    problems = _interval_problems(words, "word", base, duration, tol)
    last_aligned_end = None
    for i, word in enumerate(words):
        if i and word["start_s"] < words[i - 1]["start_s"] - tol:
            problems.append(Problem(json_path([*base, i]), f"word times are not monotonic: starts at {word['start_s']:g}s, before word {i - 1}"))
        if word.get("aligned", True):
            if last_aligned_end is not None and word["start_s"] < last_aligned_end - tol:
                problems.append(Problem(json_path([*base, i]), f"overlaps the previous aligned word (ends {last_aligned_end:g}s)"))
            last_aligned_end = word["end_s"]
    return problems


def _consistency_problems(doc: dict) -> list[Problem]:
    video, audio, source = doc["video"], doc["audio"], doc["source"]
    frame = 1.0 / video["fps"]
    problems = []
    if abs(video["num_frames"] / video["fps"] - video["duration_s"]) > frame:
        problems.append(
            Problem("$.video.duration_s", f"{video['duration_s']:g}s disagrees with num_frames/fps = {video['num_frames'] / video['fps']:.3f}s")
        )
    audio_s = audio["num_samples"] / audio["sample_rate"]
    if abs(audio_s - video["duration_s"]) > frame + 1e-6:
        problems.append(
            Problem("$.audio.num_samples", f"audio lasts {audio_s:.3f}s but the video {video['duration_s']:g}s (more than one frame apart)")
        )
    if source["end_s"] <= source["start_s"]:
        problems.append(Problem("$.source.end_s", f"source span [{source['start_s']:g}s, {source['end_s']:g}s] is empty"))
    face = doc["face"]
    if face is not None and face["bbox"] is not None:
        x0, y0, x1, y1 = face["bbox"]
        if not (x0 < x1 and y0 < y1):
            problems.append(Problem("$.face.bbox", f"{face['bbox']} is not [x0, y0, x1, y1] with x0 < x1 and y0 < y1"))
    return problems


def validate_annotation(doc: Any, rules: AnnotationRules = AnnotationRules()) -> list[Problem]:
    """Every problem in `doc` (an annotation dict); an empty list means valid.

    Semantic rules run only on the parts whose structure is valid, so one broken field never
    hides problems elsewhere and never crashes the validator.
    """
    problems = _schema_problems(doc)
    if not isinstance(doc, dict):
        return problems
    broken = {p.path.split("[")[0].split(".")[1] for p in problems if p.path.count(".") >= 1}
    if not broken & {"video", "audio", "source", "face"}:
        problems += _consistency_problems(doc)
    duration = doc["video"]["duration_s"] if "video" not in broken else None
    if duration is None:
        return problems
    if "caption" not in broken and doc.get("caption") is not None:
        problems += _phase_problems(doc["caption"]["phases"], duration, rules)
    if "transcript" not in broken and doc.get("transcript") is not None:
        problems += _word_problems(doc["transcript"]["words"], duration, rules.tolerance_s)
    return problems


def parse_annotation(data: bytes | str) -> dict:
    """Decode an annotation member; raises ValueError with the JSON error position."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"annotation must be a JSON object, got {type(doc).__name__}")
    return doc


def dump_annotation(doc: dict) -> bytes:
    """Canonical bytes: sorted keys and compact separators, so equal dicts give equal members."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
