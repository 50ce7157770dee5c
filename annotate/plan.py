"""Pure planning: shots from cuts, clips from shots, and the face filter's verdict per clip.

Everything here works on plain numbers (frame indices on the 25 fps timeline, face boxes
normalised to the source frame), so it is unit-tested without media.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from annotate.config import FaceConfig, ShotConfig
from dataset.schema import VIDEO_FPS

# Per sampled frame: what the face filter saw.
NONE, SMALL, MULTIPLE, DOMINANT = "none", "small", "multiple", "dominant"
REJECT_REASON = {NONE: "no_face", SMALL: "face_too_small", MULTIPLE: "multiple_faces"}


def shots_from_cuts(num_frames: int, cuts: list[int]) -> list[tuple[int, int]]:
    """[start, stop) frame ranges between cuts (a cut frame starts a new shot)."""
    edges = [0, *[c for c in sorted(set(cuts)) if 0 < c < num_frames], num_frames]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def clips_from_shots(shots: list[tuple[int, int]], cfg: ShotConfig) -> list[dict[str, Any]]:
    """Trim every shot, split long ones evenly, mark short ones rejected. In time order."""
    trim = int(round(cfg.trim_s * VIDEO_FPS))
    min_frames = math.ceil(cfg.min_clip_s * VIDEO_FPS)
    max_frames = math.floor(cfg.max_clip_s * VIDEO_FPS)
    clips = []
    for a, b in shots:
        start, stop = a + trim, b - trim
        length = stop - start
        if length < min_frames:
            clips.append({"start": a, "stop": b, "status": "rejected", "reason": "shot_too_short",
                          "detail": f"shot of {(b - a) / VIDEO_FPS:.2f}s leaves {max(length, 0) / VIDEO_FPS:.2f}s "
                                    f"after trimming, below shots.min_clip_s={cfg.min_clip_s}"})
            continue
        parts = math.ceil(length / max_frames)  # each part >= min because max >= 2 * min
        bounds = [start + round(i * length / parts) for i in range(parts + 1)]
        clips += [{"start": s, "stop": e, "status": "ok", "reason": None, "detail": None}
                  for s, e in zip(bounds[:-1], bounds[1:])]
    return clips


def classify_sample(faces: list[list[float]], cfg: FaceConfig) -> str:
    """One sampled frame: no face, only small faces, several comparable faces, or one dominant."""
    if not faces:
        return NONE
    areas = sorted(((f[2] - f[0]) * (f[3] - f[1]) for f in faces), reverse=True)
    largest = max(faces, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]))
    if largest[3] - largest[1] < cfg.min_face_height:
        return SMALL
    if len(areas) > 1 and areas[0] < cfg.dominance * areas[1]:
        return MULTIPLE
    return DOMINANT


def face_verdict(samples: list[list[Any]], start: int, stop: int, cfg: FaceConfig) -> dict[str, Any]:
    """Figures and decision for the clip [start, stop) from the analysis pass's face samples.

    Returns `detected_ratio` (samples with any face), `max_faces`, `dominant_ratio`, `bbox`
    (median box of the dominant face, source-normalised, or None), `status` and `reason`.
    """
    inside = [faces for n, faces in samples if start <= n < stop]
    kinds = [classify_sample(faces, cfg) for faces in inside]
    count = max(len(kinds), 1)
    dominant_boxes = [max(faces, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]))[:4]
                      for faces, kind in zip(inside, kinds) if kind == DOMINANT]
    figures: dict[str, Any] = {
        "samples": len(kinds),
        "detected_ratio": round(sum(k != NONE for k in kinds) / count, 4),
        "max_faces": max((len(f) for f in inside), default=0),
        "dominant_ratio": round(len(dominant_boxes) / count, 4),
        "bbox": [round(float(v), 4) for v in np.median(np.asarray(dominant_boxes), axis=0)] if dominant_boxes else None,
    }
    if kinds and figures["dominant_ratio"] >= cfg.min_dominant_ratio:
        return {**figures, "status": "ok", "reason": None, "detail": None}
    worst = Counter(k for k in kinds if k != DOMINANT).most_common(1)
    reason = REJECT_REASON[worst[0][0]] if worst else "no_face"
    detail = (f"one dominant face in {figures['dominant_ratio']:.0%} of {len(kinds)} sampled frames "
              f"(face.min_dominant_ratio={cfg.min_dominant_ratio}); max faces {figures['max_faces']}")
    return {**figures, "status": "rejected", "reason": reason, "detail": detail}


def plan_source(analysis: dict[str, Any], shots: ShotConfig, face: FaceConfig) -> list[dict[str, Any]]:
    """Clip candidates of one source, numbered in time order, each with its verdict."""
    clips = clips_from_shots(shots_from_cuts(analysis["num_frames"], analysis["cuts"]), shots)
    planned = []
    for index, clip in enumerate(clips):
        entry = {"index": index, **clip, "face": None}
        if clip["status"] == "ok":
            verdict = face_verdict(analysis["faces"], clip["start"], clip["stop"], face)
            entry["face"] = {k: verdict[k] for k in ("samples", "detected_ratio", "max_faces", "dominant_ratio", "bbox")}
            entry.update(status=verdict["status"], reason=verdict["reason"], detail=verdict["detail"])
        planned.append(entry)
    return planned
