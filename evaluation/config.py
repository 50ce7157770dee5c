"""EvalConfig: the root config of `actavatar eval` (defaults, then YAML, then key=value overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dataset.errors import UserError
from evaluation.action_accuracy import ActionScoreConfig
from evaluation.action_judge import JudgeConfig
from evaluation.benchmark import BenchmarkConfig
from evaluation.face_crops import FaceTrackConfig
from evaluation.fid import FIDConfig
from evaluation.fvd import FVDConfig
from evaluation.identity import IdentityConfig
from evaluation.sample import SampleConfig
from evaluation.sync import SyncConfig

METRICS = ("fid", "fvd", "sync", "identity", "actions")


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalConfig:
    """Args:
        metrics: which metrics to try; each runs only when its weights (or detector) are available.
        fid_weights: pt_inception-2015-12-05-6726825d.pth (pytorch-fid's FID Inception state dict).
        i3d: i3d_torchscript.pt (StyleGAN-V's I3D TorchScript).
        syncnet: syncnet_v2.model (syncnet_python's state dict).
        face_embedder: TorchScript face-recognition network for identity similarity.
        device: torch device for every network ("cpu", "cuda", "cuda:1").
        faces: how Sync and identity find faces (evaluation/face_crops.py): face tracks cropped as
            syncnet_python does (default) or whole frames (`faces.crop=whole_frame`).
        timelines: how many samples per run get a per-phase timeline plot (actions only).
        sample: how `--checkpoint` runs sample the benchmark (evaluation/sample.py; its paths come
            from each checkpoint).
        benchmark: how a synthetic corpus becomes a benchmark (evaluation/benchmark.py).
        judge: the VLM judge of phase-level action accuracy (`--actions vlm`; evaluation/action_judge.py).
    """

    metrics: tuple[str, ...] = METRICS
    fid_weights: str = ""
    i3d: str = ""
    syncnet: str = ""
    face_embedder: str = ""
    device: str = "cpu"
    timelines: int = 3
    fid: FIDConfig = field(default_factory=FIDConfig)
    fvd: FVDConfig = field(default_factory=FVDConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    faces: FaceTrackConfig = field(default_factory=FaceTrackConfig)
    actions: ActionScoreConfig = field(default_factory=ActionScoreConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise UserError(f"metrics must be a non-empty subset of {METRICS}, got {list(self.metrics)}")
        if self.timelines < 0:
            raise UserError(f"timelines must be >= 0, got {self.timelines}")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise UserError(f"device must be cpu, cuda[:N] or mps, got {self.device!r}")
