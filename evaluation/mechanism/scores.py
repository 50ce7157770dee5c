"""Phase-timing scores of the mechanism benchmark, from per-frame action labels (pure functions).

Per test window: the exact reader's label for every generated frame, and the window's truth
phases [{start_s, end_s, label}] (seconds from the window start; frame t belongs to a phase when
start_s <= t / fps < end_s). Frame 0 is the reference frame the model is given, so what it shows
is not the model's doing. A phase is *scored* when at least `min_frames` of its frames lie in
the window; it is *new* when it starts after frame 0; it is *performed* when its majority label
(the most frequent reader label over its frames) is its own label.

    new_action_accuracy   new action (non-idle) phases performed / new action phases   <- headline
    new_action_balanced   the same, averaged per action (each action weighs the same)
    new_idle_accuracy     new idle phases performed ("stay still when told")
    phase_accuracy        every scored phase, including the one in progress at frame 0
    exclusive_accuracy    performed, and no other phase with another label shows this label as
                          its majority (the action happens where asked and nowhere else)
    frame_accuracy        frames inside truth phases whose reader label is the truth label
    temporal_iou          per new action phase: IoU of its frames with the reader's runs of its
                          label that overlap it (0 when none), averaged
    per_action            new-phase accuracy of each action
Pooled over windows (micro averages, with counts), so a window with more phases weighs more.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

IDLE = "idle"


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoredPhase:
    label: str
    first: int  # first frame in the window
    stop: int  # one past the last frame in the window
    majority: str
    new: bool
    leaked: bool  # another label's phase shows this label as its majority
    iou: float

    @property
    def performed(self) -> bool:
        return self.majority == self.label


def phase_frames(start_s: float, end_s: float, num_frames: int, fps: float) -> range:
    """Frames t with start_s <= t / fps < end_s (1e-6 s tolerance for float round-off)."""
    first = max(0, math.ceil(start_s * fps - 1e-6))
    return range(first, max(first, min(num_frames, math.ceil(end_s * fps - 1e-6))))


def majority(labels: Sequence[str]) -> str:
    """Most frequent label (the first to reach the top count on ties, so it is deterministic)."""
    counts = Counter(labels)
    top = max(counts.values())
    return next(label for label in labels if counts[label] == top)


def _runs_iou(predicted: Sequence[str], frames: range, label: str) -> float:
    """IoU of `frames` with the union of the predicted runs of `label` that overlap them."""
    n, hit = len(predicted), set()
    t = 0
    while t < n:
        if predicted[t] != label:
            t += 1
            continue
        end = t
        while end + 1 < n and predicted[end + 1] == label:
            end += 1
        if end >= frames.start and t < frames.stop:
            hit.update(range(t, end + 1))
        t = end + 1
    truth = set(frames)
    return len(truth & hit) / len(truth | hit) if truth | hit else 0.0


def score_window(predicted: Sequence[str], phases: Sequence[Mapping], fps: float, *, min_frames: int = 10) -> tuple[list[ScoredPhase], int, int]:
    """(scored phases, frames inside truth phases, of which the reader agrees) of one window."""
    n = len(predicted)
    spans = [(str(p["label"]), phase_frames(float(p["start_s"]), float(p["end_s"]), n, fps)) for p in phases]
    majorities = [majority([predicted[t] for t in frames]) if len(frames) else None for _, frames in spans]
    scored, covered, agree = [], 0, 0
    for i, (label, frames) in enumerate(spans):
        covered += len(frames)
        agree += sum(predicted[t] == label for t in frames)
        if len(frames) < min_frames:
            continue
        leaked = any(j != i and other != label and majorities[j] == label for j, (other, _) in enumerate(spans))
        scored.append(ScoredPhase(label=label, first=frames.start, stop=frames.stop, majority=majorities[i],
                                  new=frames.start > 0, leaked=leaked, iou=_runs_iou(predicted, frames, label)))
    return scored, covered, agree


def _rate(flags: Iterable[bool]) -> tuple[float, int]:
    flags = list(flags)
    return (sum(flags) / len(flags) if flags else math.nan), len(flags)


def aggregate(windows: Iterable[tuple[list[ScoredPhase], int, int]]) -> dict[str, object]:
    """The benchmark's figures over all windows (see the module docstring), with counts."""
    phases, covered, agree = [], 0, 0
    for scored, c, a in windows:
        phases += scored
        covered, agree = covered + c, agree + a
    new_actions = [p for p in phases if p.new and p.label != IDLE]
    per_action = {}
    for label in sorted({p.label for p in new_actions}):
        per_action[label] = _rate(p.performed for p in new_actions if p.label == label)[0]
    out: dict[str, object] = {}
    out["new_action_accuracy"], out["num_new_action_phases"] = _rate(p.performed for p in new_actions)
    out["new_action_balanced"] = sum(per_action.values()) / len(per_action) if per_action else math.nan
    out["new_idle_accuracy"], out["num_new_idle_phases"] = _rate(p.performed for p in phases if p.new and p.label == IDLE)
    out["phase_accuracy"], out["num_phases"] = _rate(p.performed for p in phases)
    out["exclusive_accuracy"] = _rate(p.performed and not p.leaked for p in phases)[0]
    out["frame_accuracy"] = agree / covered if covered else math.nan
    out["temporal_iou"] = sum(p.iou for p in new_actions) / len(new_actions) if new_actions else math.nan
    out["per_action"] = per_action
    return out


def chance_levels(vocabulary: Sequence[str]) -> dict[str, float]:
    """Expected scores of a guesser that picks a label uniformly at random per phase / frame."""
    p = 1.0 / len(vocabulary)
    return {key: p for key in ("new_action_accuracy", "new_action_balanced", "new_idle_accuracy", "phase_accuracy",
                               "exclusive_accuracy", "frame_accuracy")}
