"""Pure post-processing of whisperx output into the annotation's transcript block (DESIGN.md §3).

whisperx's `align` returns segments whose words may lack times (no alignable characters), and a
segment it could not align at all comes back with no words. Here every word of the transcript is
kept: aligned words carry their own times and score; the others keep their segment's times and
are marked `aligned: false`. Times become clip-relative milliseconds, clamped inside the clip,
monotonic, and aligned words never overlap each other. Punctuation-only tokens are merged into a
neighbouring word. No I/O, no models: unit-tested on hand-made inputs.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

# Languages written without spaces between words (whisperx aligns them per character).
NO_SPACE_LANGUAGES = ("ja", "zh", "yue")
_DECIMALS = 3


def _is_punctuation(text: str) -> bool:
    return bool(text) and all(unicodedata.category(c)[0] in "PS" for c in text)


def _number(value: Any) -> float | None:
    """A finite float, or None (whisperx leaves NaN or omits keys for unalignable words)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def segment_words(segment: dict[str, Any], language: str = "en") -> list[dict[str, Any]]:
    """One aligned segment's words as raw `{"word", "start", "end", "score", "aligned"}` dicts.

    A segment without words (the aligner gave up) is split from its text; every word without both
    times takes the segment's times and `aligned: False`.
    """
    seg_start, seg_end = _number(segment.get("start")), _number(segment.get("end"))
    words = segment.get("words") or []
    if not words:
        text = (segment.get("text") or "").strip()
        tokens = list(text.replace(" ", "")) if language in NO_SPACE_LANGUAGES else text.split()
        words = [{"word": token} for token in tokens]
    out = []
    for word in words:
        text = str(word.get("word", "")).strip()
        if not text:
            continue
        start, end = _number(word.get("start")), _number(word.get("end"))
        aligned = start is not None and end is not None
        if not aligned:
            start, end = seg_start, seg_end
        if start is None or end is None:
            continue  # neither the word nor its segment has a time: nothing to anchor it to
        score = _number(word.get("score")) if aligned else None
        out.append({"word": text, "start": start, "end": end, "score": score, "aligned": aligned})
    return out


def merge_punctuation(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attach punctuation-only tokens ("-", "...", "♪") to the previous word (or the next one)."""
    out: list[dict[str, Any]] = []
    pending = ""  # punctuation seen before the first real word
    for word in words:
        if _is_punctuation(word["word"]):
            if out:
                prev = out[-1]
                out[-1] = {**prev, "word": prev["word"] + word["word"],
                           "end": max(prev["end"], word["end"]) if prev["aligned"] and word["aligned"] else prev["end"]}
            else:
                pending += word["word"]
            continue
        out.append({**word, "word": pending + word["word"]} if pending else word)
        pending = ""
    return out


def clip_words(words: Iterable[dict[str, Any]], duration: float, offset: float = 0.0) -> list[dict[str, Any]]:
    """Clip-relative, clamped, monotonic word dicts in the annotation's format.

    Args:
        words: raw words in transcript order (`segment_words` output), times in seconds.
        duration: the clip's length; words starting at or after it are dropped, words crossing
            it end at it.
        offset: subtracted from every time (audio that starts before the clip).
    """
    out: list[dict[str, Any]] = []
    last_start = 0.0  # every word starts at or after the previous word's start
    last_aligned_end = 0.0  # aligned words never overlap each other
    limit = round(duration, _DECIMALS)
    for word in words:
        start, end = word["start"] - offset, word["end"] - offset
        if end < start:
            start, end = end, start
        start = min(max(round(start, _DECIMALS), 0.0, last_start), limit)
        if word["aligned"]:
            start = min(max(start, last_aligned_end), limit)
        if start >= limit and limit > 0:
            continue
        end = min(max(round(end, _DECIMALS), start), limit)
        score = word.get("score")
        item = {"word": word["word"], "start_s": start, "end_s": end,
                "score": None if score is None else round(min(max(score, 0.0), 1.0), _DECIMALS),
                "aligned": bool(word["aligned"])}
        out.append(item)
        last_start = start
        if word["aligned"]:
            last_aligned_end = end
    return out


def transcript_block(segments: Sequence[dict[str, Any]], language: str, duration: float, offset: float = 0.0) -> dict[str, Any]:
    """The annotation's `transcript` from whisperx's aligned (or plain) segments.

    The text is rebuilt from the kept words, so it never mentions a word the clip lost at its end.
    """
    raw = [w for segment in segments for w in segment_words(segment, language)]
    words = clip_words(merge_punctuation(raw), duration, offset)
    joiner = "" if language in NO_SPACE_LANGUAGES else " "
    return {"language": language, "text": joiner.join(w["word"] for w in words), "words": words}


def speech_ratio(regions: Iterable[tuple[float, float]], duration: float) -> float:
    """Share of [0, duration] covered by the union of the voiced regions (clamped, overlaps once)."""
    if duration <= 0:
        return 0.0
    spans = sorted((max(a, 0.0), min(b, duration)) for a, b in regions)
    covered, reach = 0.0, 0.0
    for start, end in spans:
        start = max(start, reach)
        if end > start:
            covered += end - start
            reach = end
    return round(min(covered / duration, 1.0), 4)
