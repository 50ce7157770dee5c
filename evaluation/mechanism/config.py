"""`MechanismConfig`: everything `actavatar bench mechanism` does, with one preset per scale.

    cfg = scale_config("cpu", out="runs/mech", seed=0, overrides=["train.stage2_steps=3000"])

The presets differ in size only (corpus, VAE and DiT steps, model width, arms); the recipe is the
same, so a smoke run exercises every code path of a full one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from dataset.errors import UserError

ARMS = ("paca", "global", "base", "paca_constant", "paca_motion", "paca_pose", "paca_refocus", "paca_face", "paca_lip",
        "paca_av")
ARM_TITLES = {
    "paca": "(a) PACA, progressive alignment",
    "global": "(b) global caption (plain cross-attention)",
    "base": "(c) base caption only",
    "paca_constant": "(d) PACA, constant alignment",
    "paca_motion": "(e) PACA + motion-intensity modulation",
    "paca_pose": "(f) PACA + pose branch (pose-free samples)",
    "paca_refocus": "(g) PACA + pose branch + audio–pose refocusing (pose-free samples)",
    "paca_face": "(h) PACA + face-focused identity attention",
    "paca_lip": "(i) PACA + lip-tracing mask loss",
    "paca_av": "(j) PACA + frame-wise audio–video interaction",
}
SCALES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True, kw_only=True, slots=True)
class CorpusConfig:
    """The synthetic corpus (`actavatar synth --profile mechanism`) and its split by source.

    Args:
        train_videos / test_videos: raw videos per split (the test schedules are never trained on).
        min_duration / max_duration: seconds per raw video.
        resolution: raw video size (the pipeline cuts 64 px clips of the full height).
        clip_size: pixel size of the clips (square).
        crop_scale: the pipeline's `clip.crop_scale` (clip height in face heights); null = the
            annotate config's (whole body, what the action arms need); about 1.8 = face close-ups,
            where the mouth is big enough for the lip-sync arms (i) and (j) to be measured.
    """

    train_videos: int = 24
    test_videos: int = 4
    min_duration: float = 28.0
    max_duration: float = 34.0
    resolution: str = "320x180"
    clip_size: int = 64
    crop_scale: float | None = None

    def __post_init__(self) -> None:
        if self.crop_scale is not None and self.crop_scale < 1:
            raise UserError(f"corpus.crop_scale must be >= 1 (face heights per clip height) or null, got {self.crop_scale}")
        if self.train_videos < 1 or self.test_videos < 1:
            raise UserError(f"corpus.train_videos and corpus.test_videos must be >= 1, got {self.train_videos}, {self.test_videos}")
        if self.clip_size % 16:
            raise UserError(f"corpus.clip_size must be a multiple of 16, got {self.clip_size}")


@dataclass(frozen=True, kw_only=True, slots=True)
class VaeStepConfig:
    """Args:
    path: an existing VAE folder to use instead of training one ("" = train it on the train split).
    steps / window_steps / batch_size / lr / mouth_weight / z_dim / base_dim / patch_size: `actavatar models
        train-vae` settings (its last `window_steps` steps on whole windows of `window_frames`, `batch_size` per
        step; `mouth_weight` on the pixels of each frame's lip box; `patch_size` 1 = spatial stride 4 instead of 8);
        null = train-vae's own default (`train.vae_train.VaeTrainConfig` / `VaeArchConfig`).
    """

    path: str = ""
    steps: int | None = None
    window_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    mouth_weight: float | None = None
    z_dim: int | None = None
    base_dim: int | None = None
    patch_size: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSize:
    """The DiT of every arm (text/audio widths come from the tiny encoders).

    patch: the DiT's spatial patch in latent cells; null = one token per 16x16 pixels whatever the VAE
        (2 on a stride-8 VAE, 4 on a stride-4 one), so VAEs compare at the same token count.
    """

    dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 512
    patch: int | None = None

    def __post_init__(self) -> None:
        if self.patch is not None and self.patch < 1:
            raise UserError(f"model.patch must be >= 1 or null, got {self.patch}")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainStepConfig:
    """Args:
    stage1_steps / stage2_steps: optimiser steps of each stage (identical for every arm).
    batch_size / lr / warmup_steps: AdamW settings of both stages.
    ema_decay: EMA of the weights that are sampled.
    shift: timestep shift of training and sampling.
    motion_weight: extra loss weight on latent cells that move (`flow.motion_weight`): the arms cover
        a few cells of the 8x8 latent grid, so under a plain MSE copying the reference frame is cheap.
    phase_prob: stage 2: chance a window uses its phases (else the base caption, as in stage 1).
    text_drop / audio_drop / both_drop: condition dropout for guidance.
    pose_drop: arms (f) and (g): share of stage-2 samples trained pose-free (one checkpoint, both modes).
    lip_weight: arm (i): loss weight inside the lip box that follows the mouth keypoint (`flow.lip_weight`).
    window_stride: frames between the starts of consecutive training windows of a clip.
    snapshot_every: stage-2 snapshots for the learning curves (0 = only the final one).
    parallel: train the stage-2 arms in parallel processes (each with cpu_threads / arms threads).
    """

    stage1_steps: int = 1000
    stage2_steps: int = 2000
    batch_size: int = 8
    lr: float = 3e-4
    warmup_steps: int = 50
    ema_decay: float = 0.995
    shift: float = 3.0
    motion_weight: float = 4.0
    phase_prob: float = 0.7
    text_drop: float = 0.1
    audio_drop: float = 0.1
    both_drop: float = 0.1
    pose_drop: float = 0.5
    lip_weight: float = 3.0
    window_stride: int = 8
    snapshot_every: int = 500
    parallel: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalStepConfig:
    """Args:
    max_windows: test windows sampled per arm and variant (0 = all).
    curve_windows: test windows sampled per learning-curve snapshot.
    steps / solver: sampler settings.
    text_scale / audio_scale: the guided variant's scales (the unguided one uses 1, 1).
    min_frames: a phase is scored when at least this many of its frames lie in the window.
    swap_windows: test windows of the swapped-text check.
    motion_windows: test windows sampled at each requested motion intensity (arm (e)).
    pose_windows: test windows sampled with their real keypoints (arm (f), or (g) without (f)).
    identity_videos: long videos (runs of a test clip's consecutive windows) sampled for the
        identity step (arm (h)); 0 = every run.
    """

    max_windows: int = 0
    curve_windows: int = 16
    steps: int = 20
    solver: str = "euler"
    text_scale: float = 3.0
    audio_scale: float = 1.0
    min_frames: int = 10
    swap_windows: int = 16
    motion_windows: int = 16
    pose_windows: int = 16
    identity_videos: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class MechanismConfig:
    """Root config of `actavatar bench mechanism`.

    Args:
        out: the run folder (everything the benchmark writes; a rerun resumes in it).
        scale: "smoke" | "cpu" | "gpu" (the preset it started from; recorded in the report).
        seed: corpus, init, data order and sampling seed.
        arms: which of ARMS to train ((a) and (b) at least).
        window_frames: video frames per training and test window (1 + 4k).
        device: "cpu" or "cuda".
        cpu_threads: torch threads in total (0 = torch's default).
    """

    out: str
    scale: str = "cpu"
    seed: int = 0
    arms: tuple[str, ...] = ("paca", "global")
    window_frames: int = 65
    device: str = "cpu"
    cpu_threads: int = 0
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    vae: VaeStepConfig = field(default_factory=VaeStepConfig)
    model: ModelSize = field(default_factory=ModelSize)
    train: TrainStepConfig = field(default_factory=TrainStepConfig)
    eval: EvalStepConfig = field(default_factory=EvalStepConfig)

    def __post_init__(self) -> None:
        if not self.out:
            raise UserError("out must be a folder path, got ''")
        if self.scale not in SCALES:
            raise UserError(f"scale must be one of {SCALES}, got {self.scale!r}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise UserError(f"arms must be distinct names from {ARMS}, got {list(self.arms)}")
        if self.window_frames < 9 or (self.window_frames - 1) % 4:
            raise UserError(f"window_frames must be 1 + 4k and >= 9, got {self.window_frames}")
        if self.device not in ("cpu", "cuda"):
            raise UserError(f"device must be 'cpu' or 'cuda', got {self.device!r}")


def _preset(scale: str) -> dict:
    if scale == "smoke":  # every code path in a few minutes: tiny corpus, a few steps per stage
        return {"arms": list(ARMS), "window_frames": 17,
                "corpus": {"train_videos": 1, "test_videos": 1, "min_duration": 8.0, "max_duration": 9.0},
                "vae": {"steps": 2, "window_steps": 1, "batch_size": 2},
                "model": {"dim": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 64},
                "train": {"stage1_steps": 2, "stage2_steps": 4, "batch_size": 2, "warmup_steps": 0, "window_stride": 16,
                          "snapshot_every": 2},
                "eval": {"max_windows": 2, "curve_windows": 1, "steps": 2, "swap_windows": 1, "motion_windows": 1,
                         "pose_windows": 1, "identity_videos": 1}}
    if scale == "gpu":  # all arms, a wider model, more data and steps
        return {"arms": list(ARMS), "device": "cuda",
                "corpus": {"train_videos": 96, "test_videos": 8},
                "vae": {"steps": 3000, "window_steps": 600, "batch_size": 4},
                "model": {"dim": 384, "num_layers": 8, "num_heads": 6, "ffn_dim": 1536},
                "train": {"stage1_steps": 8000, "stage2_steps": 20000, "batch_size": 32, "lr": 2e-4, "window_stride": 4,
                          "snapshot_every": 2000, "parallel": False},
                "eval": {"steps": 30}}
    return {}


def scale_config(scale: str, *, out: str, seed: int = 0, config: str | None = None, overrides: Sequence[str] = ()) -> MechanismConfig:
    """The preset of `scale`, then an optional YAML file, then `key=value` overrides (validated)."""
    from dataset.config_loader import load_config

    if scale not in SCALES:
        raise UserError(f"--scale must be one of {SCALES}, got {scale!r}")
    preset = {"out": out, "scale": scale, "seed": seed, **_preset(scale)}
    return load_config(MechanismConfig, config, list(overrides), preset=preset)


def describe(cfg: MechanismConfig) -> dict:
    return dataclasses.asdict(cfg)
