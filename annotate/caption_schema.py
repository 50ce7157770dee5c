"""The JSON schema a VLM's caption must follow, and the token budget that always fits it.

The schema bounds everything that could grow: string lengths (a `pattern` with a repetition
bound rather than `maxLength`, which xgrammar 0.2.8 lets raw control characters through,
mlc-ai/xgrammar#800), the number of phases, and times (`minimum`/`maximum`: the grammar then
allows a bounded number of digits). So a constrained decoder always closes the JSON within
`token_budget()` tokens, even for a model that rambles: every token emits at least one byte and
every character is at most 4 UTF-8 bytes. The same schema goes to OpenAI-compatible servers as
`response_format` (vLLM and SGLang compile it with xgrammar too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dataset.errors import UserError

# Any character but control characters, quote and backslash: what the repair step would keep.
_CHARS = '[^\\x00-\\x1f"\\\\]'
_LABEL_CHARS = "[a-z_]"
_MAX_TIME_CHARS = 4 + 1 + 6  # up to 4 integer digits (< 10,000 s), ".", xgrammar's 6 fraction digits
_PHASE_STRUCTURE_CHARS = 64  # {"start_s": , "end_s": , "text": "", "action": ""}, with ", " and ": "
_ROOT_STRUCTURE_CHARS = 32  # {"base": "", "phases": []}


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptionLimits:
    """Bounds of the caption the VLM writes.

    Args:
        max_phases: most phases per clip.
        max_base_chars / max_text_chars: longest base caption / phase text, in characters.
        max_label_chars: longest optional action label (lowercase letters and "_").
        actions: when non-empty, the action label must be one of these (an enum in the schema).
    """

    max_phases: int = 8
    max_base_chars: int = 300
    max_text_chars: int = 120
    max_label_chars: int = 32
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_phases", "max_base_chars", "max_text_chars", "max_label_chars"):
            if getattr(self, name) < 1:
                raise UserError(f"caption.{name} must be >= 1, got {getattr(self, name)}")
        bad = [a for a in self.actions if not a or len(a) > self.max_label_chars or not a.replace("_", "").isalpha()
               or a != a.lower()]
        if bad:
            raise UserError(f"caption.actions must be lowercase snake_case names of at most "
                             f"{self.max_label_chars} characters, got {bad}")


_MAX_REPEAT = 128  # xgrammar 0.2.8 fails to compile a repeat bound above 128 (mlc-ai/xgrammar#863)


def _string(max_chars: int, chars: str = _CHARS) -> dict[str, Any]:
    """1..max_chars characters, as repeats of at most 128 (`C{1,128}C{0,128}C{0,44}` for 300)."""
    parts = [f"{chars}{{1,{min(max_chars, _MAX_REPEAT)}}}"]
    left = max_chars - _MAX_REPEAT
    while left > 0:
        parts.append(f"{chars}{{0,{min(left, _MAX_REPEAT)}}}")
        left -= _MAX_REPEAT
    return {"type": "string", "pattern": "^" + "".join(parts) + "$"}


def caption_schema(duration_s: float, limits: CaptionLimits) -> dict[str, Any]:
    """The output schema for one clip: times bounded by the clip's length rounded up."""
    if not 0 < duration_s < 10_000:
        raise ValueError(f"clip duration must be in (0, 10000) s, got {duration_s}")
    time = {"type": "number", "minimum": 0, "maximum": math.ceil(duration_s)}
    label = {"type": "string", "enum": list(limits.actions)} if limits.actions else _string(limits.max_label_chars, _LABEL_CHARS)
    phase = {
        "type": "object",
        "additionalProperties": False,
        "required": ["start_s", "end_s", "text"],
        "properties": {"start_s": time, "end_s": time, "text": _string(limits.max_text_chars), "action": label},
    }
    return {
        "title": "PhaseCaption",
        "type": "object",
        "additionalProperties": False,
        "required": ["base", "phases"],
        "properties": {
            "base": _string(limits.max_base_chars),
            "phases": {"type": "array", "minItems": 1, "maxItems": limits.max_phases, "items": phase},
        },
    }


def token_budget(limits: CaptionLimits) -> int:
    """Tokens that always suffice for a schema-constrained caption (worst case: one byte per token)."""
    label = max((len(a) for a in limits.actions), default=limits.max_label_chars)
    phase = _PHASE_STRUCTURE_CHARS + 2 * _MAX_TIME_CHARS + 4 * limits.max_text_chars + label
    return _ROOT_STRUCTURE_CHARS + 4 * limits.max_base_chars + limits.max_phases * phase + 1  # + end of sequence
