"""Phase-level action accuracy and temporal precision from per-frame action labels (pure functions).

Inputs per clip: one predicted label per frame (from a VLM judge, or on synthetic data the exact
`detect_actions` reader) and the ground-truth phases [{start_s, end_s, label}]. Frame t (time t/fps)
belongs to a phase when start_s <= t/fps < end_s.

Rules (documented choices, `ActionScoreConfig.min_fraction` = θ, default 0.5):
- a phase is **performed** when at least θ of its frames carry its label (majority by default);
- a phase **leaks** when, in some other phase with a different label, at least θ of that phase's
  frames carry this phase's label (the action happens where it was not asked for);
- **phase accuracy** = performed phases / phases; **exclusive accuracy** = phases performed and not
  leaking / phases;
- **temporal precision** (frame level) = frames showing one of the clip's phase labels inside a
  phase with that label / all frames showing one of the clip's phase labels. Frames with other
  labels (e.g. "none", idle) are ignored, so an action done in its span and nowhere else scores 1.
Dataset figures pool phases and frames over clips (micro averages) and report the counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dataset.errors import UserError

DetectActions = Callable[[np.ndarray, float], Sequence[str]]  # (uint8 (T, H, W, 3) frames, fps) -> label per frame


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionScoreConfig:
    """Args:
        min_fraction: θ, fraction of a phase's frames that must show a label (0 < θ <= 1).
    """

    min_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.min_fraction <= 1.0:
            raise UserError(f"actions.min_fraction must be in (0, 1], got {self.min_fraction}")


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseScore:
    label: str
    start_s: float
    end_s: float
    num_frames: int
    fraction: float  # share of the phase's frames showing its label
    performed: bool
    leaked: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class ClipActionScore:
    phases: tuple[PhaseScore, ...]
    precise_frames: int  # frames with a phase label, inside a phase of that label
    labelled_frames: int  # frames with any of the clip's phase labels

    @property
    def phase_accuracy(self) -> float:
        return sum(p.performed for p in self.phases) / len(self.phases) if self.phases else math.nan

    @property
    def temporal_precision(self) -> float:
        return self.precise_frames / self.labelled_frames if self.labelled_frames else math.nan


def phase_frames(start_s: float, end_s: float, num_frames: int, fps: float) -> range:
    """Frame indices t with start_s <= t/fps < end_s (a 1e-6 s tolerance absorbs float rounding)."""
    first = max(0, math.ceil(start_s * fps - 1e-6))
    stop = min(num_frames, math.ceil(end_s * fps - 1e-6))
    return range(first, max(first, stop))


def _phase_fields(phase: Mapping[str, object]) -> tuple[float, float, str]:
    try:
        return float(phase["start_s"]), float(phase["end_s"]), str(phase["label"])  # type: ignore[arg-type]
    except KeyError as err:
        raise ValueError(f"phase {dict(phase)!r} lacks key {err.args[0]!r} (needs start_s, end_s, label)") from None


def score_clip(
    predicted: Sequence[str], phases: Sequence[Mapping[str, object]], fps: float,
    cfg: ActionScoreConfig = ActionScoreConfig(),
) -> ClipActionScore:
    """Score one clip's per-frame predicted labels against its ground-truth phases."""
    pred = np.asarray([str(p) for p in predicted], dtype=object)
    n = len(pred)
    spans = [_phase_fields(p) for p in phases]
    frames = [phase_frames(s, e, n, fps) for s, e, _ in spans]
    owner = np.full(n, None, dtype=object)  # the label of the phase covering each frame
    for (_, _, label), idx in zip(spans, frames):
        owner[list(idx)] = label

    scores = []
    for i, ((start, end, label), idx) in enumerate(zip(spans, frames)):
        frac = float(np.mean(pred[list(idx)] == label)) if len(idx) else 0.0
        leaked = any(
            len(other) and float(np.mean(pred[list(other)] == label)) >= cfg.min_fraction
            for j, ((_, _, other_label), other) in enumerate(zip(spans, frames))
            if j != i and other_label != label
        )
        scores.append(PhaseScore(label=label, start_s=start, end_s=end, num_frames=len(idx), fraction=frac,
                                 performed=len(idx) > 0 and frac >= cfg.min_fraction, leaked=bool(leaked)))

    labels = {label for _, _, label in spans}
    labelled = np.array([p in labels for p in pred], dtype=bool)
    precise = labelled & (pred == owner)
    return ClipActionScore(phases=tuple(scores), precise_frames=int(precise.sum()), labelled_frames=int(labelled.sum()))


def aggregate_actions(clips: Sequence[ClipActionScore]) -> dict[str, float | int]:
    """Pooled (micro) phase accuracy, exclusive accuracy and temporal precision over clips."""
    phases = [p for c in clips for p in c.phases]
    labelled = sum(c.labelled_frames for c in clips)
    return {
        "phase_accuracy": sum(p.performed for p in phases) / len(phases) if phases else math.nan,
        "exclusive_accuracy": sum(p.performed and not p.leaked for p in phases) / len(phases) if phases else math.nan,
        "temporal_precision": sum(c.precise_frames for c in clips) / labelled if labelled else math.nan,
        "num_phases": len(phases),
        "num_clips": len(clips),
    }


def score_actions(
    samples: Iterable[tuple[np.ndarray, Sequence[Mapping[str, object]], float]], detect_actions: DetectActions,
    cfg: ActionScoreConfig = ActionScoreConfig(),
) -> tuple[dict[str, float | int], list[ClipActionScore]]:
    """Run `detect_actions(frames, fps)` on each (frames, phases, fps) sample and score it."""
    clips = []
    for frames, phases, fps in samples:
        labels = list(detect_actions(frames, fps))
        if len(labels) != len(frames):
            raise ValueError(f"detect_actions returned {len(labels)} labels for {len(frames)} frames")
        clips.append(score_clip(labels, phases, fps, cfg))
    return aggregate_actions(clips), clips
