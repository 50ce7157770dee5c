"""Phase-level action accuracy as a `Metric`: a VLM judge or, on synthetic data, an exact per-frame
reader (evaluation/action_accuracy.py and evaluation/action_judge.py have the protocol)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evaluation.action_accuracy import ActionScoreConfig, ClipActionScore, DetectActions, aggregate_actions, score_clip
from evaluation.config import EvalConfig
from evaluation.metrics.base import Clip, Metric, data_problem
from evaluation.video_folder import read_phases

ACTIONS_MISSING = ("no action scorer: needs the VLM judge (`--actions vlm judge.vlm.model=...`) or, on synthetic data, "
                   "the exact detect_actions reader (`--actions synthetic`)")
# (frames, fps, phases) -> (clip score, per-frame labels for the timeline plot)
ScoreActions = Callable[[np.ndarray, float, list], tuple[ClipActionScore, list[str]]]


def exact_scorer(detect: DetectActions, cfg: ActionScoreConfig) -> ScoreActions:
    """Per-frame labels from an exact reader, scored frame by frame (`score_clip`)."""
    def score(frames: np.ndarray, fps: float, phases: list) -> tuple[ClipActionScore, list[str]]:
        predicted = [str(x) for x in detect(frames, fps)]
        return score_clip(predicted, phases, fps, cfg), predicted
    return score


class ActionsMetric(Metric):
    name = "actions"

    def __init__(self, cfg: EvalConfig, score: ScoreActions) -> None:
        self.cfg = cfg
        self.score = score
        self.clips: list[ClipActionScore] = []
        self.timelines: list[dict[str, Any]] = []  # the first `cfg.timelines` clips of every run
        self.run = ""
        self.reference_dir = None

    def protocol(self) -> dict[str, Any]:
        return {"min_fraction": self.cfg.actions.min_fraction, "aggregate": "pooled over phases / frames"}

    def begin_run(self, run: str) -> None:
        self.run, self.clips = run, []

    def add_clip(self, clip: Clip) -> None:
        self.reference_dir = clip.reference_dir
        phases = read_phases(clip.reference_dir, clip.key)
        if phases is None:
            clip.record["actions"] = "no annotation JSON"
            return
        scored = data_problem(clip.record, self.name, lambda: self.score(clip.frames, clip.fps, phases))
        if scored is None:  # clip.record["actions"] says why
            return
        result, predicted = scored
        self.clips.append(result)
        clip.record.update(phase_accuracy=result.phase_accuracy, temporal_precision=result.temporal_precision)
        if len(self.clips) <= self.cfg.timelines:
            self.timelines.append({"run": self.run, "key": clip.key, "phases": phases, "predicted": predicted, "fps": clip.fps})

    def finish_run(self, metrics: dict[str, Any], details: dict[str, Any], skipped: dict[str, str]) -> None:
        if not self.clips:
            skipped["actions"] = f"no reference annotation JSON (<key>.json with caption.phases) in {self.reference_dir}"
            return
        agg = aggregate_actions(self.clips)
        metrics.update({k: agg[k] for k in ("phase_accuracy", "exclusive_accuracy", "temporal_precision")})
        details["actions"] = {"num_phases": agg["num_phases"], "num_clips": agg["num_clips"]}
