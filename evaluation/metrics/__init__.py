"""The metrics of `actavatar eval`, one file each, behind one interface (`base.Metric`).

`build_metrics(cfg, ...)` returns the metrics whose weights (or scorer) are available and the reasons
for the others; `evaluation.suite.evaluate_folders` drives them. A new metric is a new file here
with a `Metric` subclass, plus one line in `build_metrics`.
"""

from __future__ import annotations

from typing import Any

from evaluation.config import EvalConfig
from evaluation.face_crops import FaceTracker
from evaluation.metrics.actions import ACTIONS_MISSING, ActionsMetric, ScoreActions, exact_scorer
from evaluation.metrics.base import Clip, Metric
from evaluation.metrics.fid import FIDMetric
from evaluation.metrics.fvd import FVDMetric
from evaluation.metrics.identity import IdentityMetric
from evaluation.metrics.sync import SyncMetric

__all__ = ["ACTIONS_MISSING", "Clip", "Metric", "ScoreActions", "build_metrics", "exact_scorer"]

_WEIGHTS = {"fid": ("fid_weights", "--fid-weights / fid_weights"), "fvd": ("i3d", "--i3d / i3d"),
            "sync": ("syncnet", "--syncnet / syncnet"), "identity": ("face_embedder", "--face-embedder / face_embedder")}


def build_metrics(cfg: EvalConfig, score_actions: ScoreActions | None, tracker: FaceTracker | None) -> tuple[list[Metric], dict[str, str]]:
    """The requested metrics that can run (weights loaded), and `{metric: reason}` for the others.
    Sync and identity score the faces of `tracker`, or whole frames when it is None."""
    wanted = set(cfg.metrics)
    skipped: dict[str, str] = {}
    for name, (key, flag) in _WEIGHTS.items():
        if name in wanted and not getattr(cfg, key):
            skipped[name] = f"no weights given ({flag})"
    makers: dict[str, Any] = {"fid": lambda: FIDMetric(cfg), "fvd": lambda: FVDMetric(cfg),
                              "sync": lambda: SyncMetric(cfg, tracker), "identity": lambda: IdentityMetric(cfg, tracker)}
    metrics: list[Metric] = [make() for name, make in makers.items() if name in wanted and name not in skipped]
    if "actions" in wanted:
        if score_actions is None:
            skipped["actions"] = ACTIONS_MISSING
        else:
            metrics.append(ActionsMetric(cfg, score_actions))
    return metrics, skipped
