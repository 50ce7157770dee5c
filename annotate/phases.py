"""Turn a vision-language model's raw reply into a valid `caption` block, repairing what it can.

The captioner is asked for JSON like
`{"base": "...", "phases": [{"start_s": 0.0, "end_s": 2.2, "text": "...", "action": "raise_hand"}]}`
but models wrap it in prose or code fences, overlap or mis-order phases, run past the clip, give
times as strings, or emit control characters. This module is pure (stdlib only, no model, no I/O):

* `parse_caption_json` finds the first JSON object in the reply;
* `repair_caption` makes it satisfy the annotation rules (`dataset.annotation._phase_problems`):
  phases sorted, non-overlapping, inside `[0, duration_s]`, at least `min_phase_s` long,
  `1..max_phases` of them; boundaries snapped to frame times and, where a transcript is known,
  moved out of the inside of spoken words into the gaps between them;
* `caption_from_raw` does both.

Every change is reported as a short note, so a bad captioner shows up in the logs instead of being
silently papered over; what cannot be repaired raises `CaptionError` with a stable `reason` code.
Repair is deterministic and idempotent: repairing a repaired caption changes nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import numbers
import re
import unicodedata
from typing import Any, NoReturn

__all__ = [
    "CAPTION_ERROR_REASONS",
    "CaptionError",
    "RepairRules",
    "caption_from_raw",
    "normalise_text",
    "parse_caption_json",
    "repair_caption",
]

CAPTION_ERROR_REASONS = frozenset({"malformed_json", "not_an_object", "no_base", "no_phases"})

_DECIMALS = 3  # annotation times are milliseconds
_EPS = 1e-6  # seconds; float slack far below a frame and below the validator's 1 ms tolerance
_EXCERPT_CHARS = 80
# Joiners are format characters (Cf) but part of emoji sequences and of Persian/Indic spelling.
_KEEP_FORMAT = frozenset({"\u200c", "\u200d"})
_SPACES = re.compile(r" +")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
# strict=False: models put raw newlines/tabs inside strings; normalise_text cleans them later.
_DECODER = json.JSONDecoder(strict=False)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


# Defined before RepairRules: its default instance is built at import time.
def _is_real(value: Any) -> bool:
    """A finite real number (numpy scalars included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RepairRules:
    """How a caption is repaired.

    Args:
        min_phase_s / max_phases: the annotation rules the output must satisfy.
        fps: boundaries snap to frame times k/fps (at most 1000, so frames stay distinct in ms).
        word_snap_s: a boundary inside a spoken word moves to the word's nearer edge when that
            edge is at most this far away.
        max_base_chars / max_text_chars: longest base caption / phase text, in characters.
    """

    min_phase_s: float = 0.5
    max_phases: int = 8
    fps: float = 25.0
    word_snap_s: float = 0.2
    max_base_chars: int = 300
    max_text_chars: int = 120

    def __post_init__(self) -> None:
        _require(_is_real(self.min_phase_s) and self.min_phase_s >= 0, f"min_phase_s must be a finite number >= 0, got {self.min_phase_s!r}")
        _require(_is_int(self.max_phases) and self.max_phases >= 1, f"max_phases must be an integer >= 1, got {self.max_phases!r}")
        _require(_is_real(self.fps) and 0 < self.fps <= 1000, f"fps must be a number in (0, 1000], got {self.fps!r}")
        _require(_is_real(self.word_snap_s) and self.word_snap_s >= 0, f"word_snap_s must be a finite number >= 0, got {self.word_snap_s!r}")
        for name in ("max_base_chars", "max_text_chars"):
            value = getattr(self, name)
            _require(_is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        for name in ("min_phase_s", "fps", "word_snap_s"):  # numpy scalars would leak into the output
            object.__setattr__(self, name, float(getattr(self, name)))


class CaptionError(ValueError):
    """Raw output that cannot become a valid caption.

    `reason` is a short snake_case code (one of `CAPTION_ERROR_REASONS`) to count failures by;
    `detail` is a sentence for a human.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # picklable across worker processes despite the two-argument constructor
        return (type(self), (self.reason, self.detail))


# --------------------------------------------------------------------------------------- parsing


def parse_caption_json(raw: str) -> dict:
    """The first complete JSON object in a model's reply (code fences and prose around it ignored).

    Raises:
        CaptionError("malformed_json"): no object, or the first one is broken (with an excerpt).
        CaptionError("not_an_object"): the reply is JSON, but a list / string / number.
    """
    if not isinstance(raw, str):
        raise CaptionError("malformed_json", f"expected the model's text, got {type(raw).__name__}")
    payload = _unfence(raw).strip()
    if not payload:
        raise CaptionError("malformed_json", "the output is empty")
    if payload[0] == "[":  # a bare list would otherwise yield its first element
        value = _decode_at(payload, 0)
        if value is not None:
            raise CaptionError("not_an_object", f"expected a JSON object, got a list: {_excerpt(payload)}")
    start = payload.find("{")
    if start < 0:
        _not_an_object(payload)
    try:
        obj, _ = _DECODER.raw_decode(payload, start)
    except json.JSONDecodeError as err:
        near = payload[max(start, err.pos - _EXCERPT_CHARS // 2):]
        raise CaptionError("malformed_json", f"invalid JSON: {err.msg} (char {err.pos - start} of the object) near {_excerpt(near)}") from None
    except RecursionError:
        raise CaptionError("malformed_json", f"JSON nested too deeply: {_excerpt(payload[start:])}") from None
    return obj


def _unfence(raw: str) -> str:
    """The inside of the first ``` fence that holds an object, else of the first fence; the whole
    text when there is no complete fence (a truncated reply loses its closing one)."""
    blocks = [match.group(1) for match in _FENCE.finditer(raw)]
    return next((block for block in blocks if "{" in block), blocks[0] if blocks else raw)


def _decode_at(text: str, pos: int) -> Any:
    try:
        return _DECODER.raw_decode(text, pos)[0]
    except (json.JSONDecodeError, RecursionError):
        return None


def _not_an_object(payload: str) -> NoReturn:
    """No '{' at all: say whether it was other JSON or no JSON."""
    try:
        value = _DECODER.decode(payload)
    except (json.JSONDecodeError, RecursionError):
        raise CaptionError("malformed_json", f"no JSON object in the output: {_excerpt(payload)}") from None
    raise CaptionError("not_an_object", f"expected a JSON object, got {type(value).__name__}: {_excerpt(payload)}")


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…")


# ---------------------------------------------------------------------------------------- repair


@dataclasses.dataclass(slots=True)
class _Phase:
    idx: int  # position in the model's list, so notes can name the phase it wrote
    start: float
    end: float
    text: str
    label: str | None

    @property
    def length(self) -> float:
        return self.end - self.start

    def span(self) -> str:
        return f"[{self.start:g}s, {self.end:g}s]"


def repair_caption(
    obj: dict, duration_s: float, words: list[dict] | None, rules: RepairRules = RepairRules()
) -> tuple[dict, list[str]]:
    """`({"base", "phases"}, notes)`: a caption valid for a clip of `duration_s` and what was changed.

    `words` are the transcript's words (`{"word", "start_s", "end_s", ...}`, clip-relative; may be
    None or empty); words marked `aligned: false` carry only their segment's times and are ignored.

    Raises:
        CaptionError("not_an_object" / "no_base" / "no_phases").
        ValueError: `duration_s` is not a positive finite number (a caller bug, not model output).
    """
    if not (_is_real(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive finite number, got {duration_s!r}")
    if not isinstance(obj, dict):
        raise CaptionError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    notes: list[str] = []
    base = _read_base(obj, rules, notes)
    phases = _read_phases(obj, rules, notes)
    given = len(phases)
    phases = _order_and_clamp(phases, float(duration_s), notes)
    phases = _resolve_overlaps(phases, notes)
    _snap(phases, float(duration_s), _Words(words, float(duration_s)), rules, notes)
    phases = _select(phases, rules, notes)
    if not phases:
        raise CaptionError("no_phases", _no_phases_detail(given, notes))
    out = [{"start_s": p.start, "end_s": p.end, "text": p.text} | ({"label": p.label} if p.label else {}) for p in phases]
    return {"base": base, "phases": out}, notes


def _no_phases_detail(given: int, notes: list[str]) -> str:
    shown = "; ".join(notes[:3]) + (f"; (+{len(notes) - 3} more)" if len(notes) > 3 else "")
    return f"no usable phase is left ({given} had times and text): {shown or 'the list is empty'}"


def caption_from_raw(
    raw: str, duration_s: float, words: list[dict] | None = None, rules: RepairRules = RepairRules()
) -> tuple[dict, list[str]]:
    """`parse_caption_json` then `repair_caption`."""
    return repair_caption(parse_caption_json(raw), duration_s, words, rules)


# Step 1: the base caption.
def _read_base(obj: dict, rules: RepairRules, notes: list[str]) -> str:
    raw = obj.get("base")
    if not isinstance(raw, str):
        what = "missing" if raw is None else f"a {type(raw).__name__}, not a string"
        raise CaptionError("no_base", f"the base caption is {what}")
    base = normalise_text(raw)
    if not base:
        raise CaptionError("no_base", "the base caption is empty")
    if base != raw.strip():
        notes.append("base: removed control characters / extra whitespace")
    short = _truncate(base, rules.max_base_chars)
    if short != base:
        notes.append(f"base: truncated from {len(base)} to {len(short)} characters")
    return short


# Steps 2 and 8: read each phase's times, text and label; drop what is unusable.
def _read_phases(obj: dict, rules: RepairRules, notes: list[str]) -> list[_Phase]:
    items = obj.get("phases")
    if not isinstance(items, list):
        notes.append("phases: missing" if items is None else f"phases: a {type(items).__name__}, not a list")
        return []
    phases = []
    for idx, item in enumerate(items):
        phase = _read_phase(idx, item, rules, notes)
        if phase is not None:
            phases.append(phase)
    return phases


def _read_phase(idx: int, item: Any, rules: RepairRules, notes: list[str]) -> _Phase | None:
    if not isinstance(item, dict):
        notes.append(f"phase #{idx}: dropped (a {type(item).__name__}, not an object)")
        return None
    times = []
    for key in ("start_s", "end_s"):
        value = item[key] if key in item else item.get(key[:-2])  # models often write start/end
        time = _time(value)
        if time is None:
            notes.append(f"phase #{idx}: dropped (no usable {key}: {value!r})")
            return None
        if isinstance(value, str):
            notes.append(f"phase #{idx}: {key} {value!r} read as {time:g}")
        times.append(time)
    text = _read_text(idx, item.get("text"), rules, notes)
    if text is None:
        return None
    return _Phase(idx, times[0], times[1], text, _label(item, rules))


def _read_text(idx: int, raw: Any, rules: RepairRules, notes: list[str]) -> str | None:
    if not isinstance(raw, str) or not normalise_text(raw):
        notes.append(f"phase #{idx}: dropped (no text)")
        return None
    text = normalise_text(raw)
    if text != raw.strip():
        notes.append(f"phase #{idx}: removed control characters / extra whitespace from the text")
    short = _truncate(text, rules.max_text_chars)
    if short != text:
        notes.append(f"phase #{idx}: text truncated from {len(text)} to {len(short)} characters")
    return short


def _label(item: dict, rules: RepairRules) -> str | None:
    """`action` (or an existing `label`, so repair is idempotent) as a snake_case label."""
    for key in ("action", "label"):
        value = item.get(key)
        if isinstance(value, str) and normalise_text(value):
            return _truncate(normalise_text(value).lower(), rules.max_text_chars).replace(" ", "_")
    return None


def _time(value: Any) -> float | None:
    """A finite time in seconds from a number or a string like "1.5" / "1.5s"; else None."""
    if isinstance(value, bool):  # bool is an int subclass; True is not "1 second"
        return None
    if isinstance(value, str):
        text = value.strip()
        text = text[:-1].rstrip() if text.endswith("s") else text
        if not _NUMBER.fullmatch(text):
            return None
        value = text
    elif not isinstance(value, numbers.Real):
        return None
    try:
        time = float(value)
    except (OverflowError, ValueError):
        return None
    return time if math.isfinite(time) else None


# Steps 3-5: fix reversed phases, clamp into the clip, sort.
def _order_and_clamp(phases: list[_Phase], duration: float, notes: list[str]) -> list[_Phase]:
    for p in phases:
        if p.start > p.end:
            notes.append(f"phase #{p.idx}: start and end swapped ({p.start:g}s > {p.end:g}s)")
            p.start, p.end = p.end, p.start
    for p in phases:
        start, end = min(max(p.start, 0.0), duration), min(max(p.end, 0.0), duration)
        if (start, end) != (p.start, p.end):
            notes.append(f"phase #{p.idx}: clamped {p.span()} to the clip [0s, {duration:g}s]")
            p.start, p.end = start, end
    return sorted(phases, key=_order)


def _order(p: _Phase) -> tuple[float, float]:
    return (p.start, p.end)


# Step 6: overlapping neighbours meet in the middle of their overlap.
def _resolve_overlaps(phases: list[_Phase], notes: list[str]) -> list[_Phase]:
    """Fix the first overlapping neighbours until none overlap.

    Phases only ever shrink, so two phases made to touch never overlap again: this ends after at
    most one fix per pair. Moving the later phase's start can reorder it, hence the re-insertion.
    """
    i = 0
    while i + 1 < len(phases):
        prev, cur = phases[i], phases[i + 1]
        if cur.start >= prev.end:
            i += 1
            continue
        mid = (cur.start + min(prev.end, cur.end)) / 2
        notes.append(f"phases #{prev.idx} {prev.span()} and #{cur.idx} {cur.span()} overlapped; both now meet at {mid:g}s")
        prev.end = cur.start = mid
        # cur's start moved later: re-insert it (always after prev); pairs before i are unaffected.
        del phases[i + 1]
        bisect.insort(phases, cur, key=_order)
    return phases


# Step 7: snap boundaries out of words, onto frames, to milliseconds.
def _snap(phases: list[_Phase], duration: float, words: _Words, rules: RepairRules, notes: list[str]) -> None:
    """Move every boundary through one non-decreasing map, so order is kept, touching phases still
    share their boundary, and nothing new overlaps."""
    grid = _Grid(rules.fps, duration)
    moved = {b: _snap_boundary(b, grid, words, rules) for p in phases for b in (p.start, p.end)}
    for p in phases:
        start, end = moved[p.start], moved[p.end]
        if (start, end) != (p.start, p.end):
            notes.append(f"phase #{p.idx}: snapped {p.span()} to [{start:g}s, {end:g}s]")
            p.start, p.end = start, end


def _snap_boundary(b: float, grid: _Grid, words: _Words, rules: RepairRules) -> float:
    """The grid time for boundary `b`, moved into the gap beside a word it falls inside.

    Decisions are taken on the grid time, and the word-edge target is the grid time just outside
    the word, kept only when it lies inside no word: so every output maps to itself (repair is
    idempotent) and the map stays non-decreasing. When the target is unusable (a gap narrower
    than a frame) the boundary stays where frame snapping put it.
    """
    x = grid.nearest(b)
    word = words.around(x)
    if word is None:
        return x
    start, end = word
    if x - start <= end - x:
        distance, target = x - start, grid.at_or_before(start + _EPS)
    else:
        distance, target = end - x, grid.at_or_after(end - _EPS)
    if target is None or distance > rules.word_snap_s + _EPS or words.around(target) is not None:
        return x
    return target


class _Grid:
    """The times a boundary may take: frame times k/fps rounded to milliseconds, up to the clip's
    end, plus the clip's last millisecond when the frame nearest the end lies past it (the
    duration need not be a frame multiple). Snapping picks among these values themselves, so a
    snapped time snaps to itself."""

    __slots__ = ("fps", "duration", "ends")

    def __init__(self, fps: float, duration: float):
        self.fps, self.duration = fps, duration
        last = min(math.floor(duration * 1000 + _EPS) / 1000, duration)
        self.ends = {last} if math.floor(duration * fps + 0.5) / fps > duration else set()

    def near(self, t: float) -> list[float]:
        """Every grid time within two frames of `t` (clamped into the clip)."""
        k = math.floor(t * self.fps)
        frames = (round(j / self.fps, _DECIMALS) for j in range(max(k - 2, 0), k + 3))
        return sorted({c for c in frames if c <= self.duration} | self.ends)

    def nearest(self, t: float) -> float:
        # Distances rounded to the nanosecond so float noise cannot break a tie; ties go up.
        return min(self.near(t), key=lambda c: (round(abs(t - c), 9), -c))

    def at_or_before(self, t: float) -> float | None:
        return max((c for c in self.near(t) if c <= t), default=None)

    def at_or_after(self, t: float) -> float | None:
        return min((c for c in self.near(t) if c >= t), default=None)


class _Words:
    """Sorted, disjoint (start, end) spans of the aligned words, clipped to the clip."""

    __slots__ = ("spans", "starts")

    def __init__(self, words: list[dict] | None, duration: float):
        spans = []
        for word in words or ():
            if not isinstance(word, dict) or word.get("aligned") is False:
                continue  # unaligned words only carry their segment's times
            start, end = _time(word.get("start_s")), _time(word.get("end_s"))
            if start is not None and end is not None and min(end, duration) > max(start, 0.0):
                spans.append((max(start, 0.0), min(end, duration)))
        self.spans: list[tuple[float, float]] = []
        for span in sorted(spans):
            if not self.spans or span[0] >= self.spans[-1][1]:  # overlapping words would break monotony
                self.spans.append(span)
        self.starts = [start for start, _ in self.spans]

    def around(self, t: float) -> tuple[float, float] | None:
        """The word strictly containing time `t` (more than _EPS from both edges), or None."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and self.spans[i][0] + _EPS < t < self.spans[i][1] - _EPS:
            return self.spans[i]
        return None


# Step 9: drop short phases, keep at most max_phases.
def _select(phases: list[_Phase], rules: RepairRules, notes: list[str]) -> list[_Phase]:
    kept = []
    for p in phases:
        # Empty phases go even when min_phase_s is 0; the slack absorbs float subtraction (0.7-0.2).
        if p.length <= 0 or p.length < rules.min_phase_s - _EPS:
            notes.append(f"phase #{p.idx} {p.span()}: dropped ({p.length:.3f}s, shorter than {rules.min_phase_s:g}s)")
        else:
            kept.append(p)
    if len(kept) <= rules.max_phases:
        return kept
    # Lengths compared in whole milliseconds: 8.16 - 7.2 and 21.36 - 20.4 are a tie, not floats apart.
    longest = sorted(range(len(kept)), key=lambda i: (-round(kept[i].length, _DECIMALS), i))[: rules.max_phases]
    notes.append(f"kept the {rules.max_phases} longest of {len(kept)} phases")
    return [kept[i] for i in sorted(longest)]


# ------------------------------------------------------------------------------------------ text


def normalise_text(text: str) -> str:
    """Whitespace runs (newlines and tabs included) become one space, other control and format
    characters and lone surrogates are removed (they break UTF-8 encoding), the rest -- any
    script, emoji -- is kept as is."""
    chars = []
    for c in text:
        if c.isspace():
            chars.append(" ")
        elif unicodedata.category(c) not in ("Cc", "Cf", "Cs") or c in _KEEP_FORMAT:
            chars.append(c)
    return _SPACES.sub(" ", "".join(chars)).strip()


def _truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a space unless that would lose over half the text
    (scripts without spaces are cut mid-run)."""
    if len(text) <= limit:
        return text
    if text[limit] == " ":
        return text[:limit].rstrip()
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space].rstrip() if space >= limit // 2 else cut.rstrip()
