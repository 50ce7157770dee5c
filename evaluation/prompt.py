"""Structured prompts for `actavatar sample`: a base caption plus timed phases (pure parsing).

Two spellings of the same thing:
  JSON     {"base": "A woman talks in an office.", "phases": [{"start_s": 0, "end_s": 2.5, "text": "raises her right hand"}]}
           (the annotation's `caption` object, DESIGN §3; a full annotation with "caption" works too)
  compact  "A woman talks in an office. | 0-2.5: raises her right hand | 2.5-5: nods"
           base first, then `START-END: text` per phase, seconds, separated by `|`.
Phases must be sorted, non-overlapping, with 0 <= start < end (gaps are allowed: those frames see
the base caption only). A phase may run past the video's end; it then covers fewer frames.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dataset.errors import UserError

_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*-\s*(\d+(?:\.\d*)?|\.\d+)\s*:\s*(.+?)\s*$", re.S)


def _check(base: Any, phases: list[dict[str, Any]], where: str) -> dict[str, Any]:
    if not isinstance(base, str) or not base.strip():
        raise UserError(f"{where}: the base caption must be a non-empty string, got {base!r}")
    prev_end = 0.0
    for i, p in enumerate(phases):
        if not p["text"]:
            raise UserError(f"{where}: phase {i} has an empty text")
        if not 0.0 <= p["start_s"] < p["end_s"]:
            raise UserError(f"{where}: phase {i} needs 0 <= start_s < end_s, got {p['start_s']}..{p['end_s']}")
        if p["start_s"] < prev_end - 1e-9:
            raise UserError(f"{where}: phase {i} starts at {p['start_s']} s, before the previous phase ends ({prev_end} s); "
                             "phases must be sorted and must not overlap")
        prev_end = p["end_s"]
    return {"base": base.strip(), "phases": phases}


def caption_from_mapping(doc: Mapping[str, Any], where: str = "prompt") -> dict[str, Any]:
    """{"base", "phases"} (or an annotation with "caption") -> validated {"base", "phases": [{start_s, end_s, text}]}."""
    if "caption" in doc and isinstance(doc["caption"], Mapping):
        doc = doc["caption"]
    if "base" not in doc:
        raise UserError(f"{where}: needs a 'base' caption (keys found: {sorted(doc)})")
    phases = []
    for i, p in enumerate(doc.get("phases") or []):
        try:
            phase = {"start_s": float(p["start_s"]), "end_s": float(p["end_s"]), "text": str(p["text"]).strip()}
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{where}: phase {i} must have numeric start_s, end_s and a text ({type(err).__name__}: {err})") from None
        if "label" in p:  # kept for scoring (synthetic benchmarks); the model only sees the text
            phase["label"] = str(p["label"])
        phases.append(phase)
    return _check(doc["base"], phases, where)


def parse_compact(text: str, where: str = "prompt") -> dict[str, Any]:
    """"base | 0-2.5: raises right hand | 2.5-5: nods" -> validated caption dict."""
    base, *parts = text.split("|")
    phases = []
    for part in parts:
        m = _SPAN.match(part)
        if not m:
            raise UserError(f"{where}: phase {part.strip()!r} is not of the form 'START-END: text' (seconds)")
        phases.append({"start_s": float(m.group(1)), "end_s": float(m.group(2)), "text": m.group(3)})
    return _check(base, phases, where)


def parse_prompt(prompt: str | Mapping[str, Any], where: str = "prompt") -> dict[str, Any]:
    """A JSON string / mapping or the compact form -> {"base", "phases"}."""
    if isinstance(prompt, Mapping):
        return caption_from_mapping(prompt, where)
    stripped = prompt.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: invalid JSON ({err})") from None
        return caption_from_mapping(doc, where)
    return parse_compact(stripped, where)


def annotation_for(caption: Mapping[str, Any], *, fps: float, num_frames: int) -> dict[str, Any]:
    """The annotation subset `model.phase_layout.layout_from_annotation` reads."""
    return {"caption": dict(caption), "video": {"fps": fps, "num_frames": num_frames}}
