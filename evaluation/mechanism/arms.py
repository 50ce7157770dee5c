"""The benchmark's arms as ordinary `actavatar train` configs, and running them.

Every arm trains the same DiT on the same latent windows with the same seeds and step budgets;
they differ only where the arm says:

    (a) paca           stage 1 (base caption, audio), then stage 2 with phase captions routed per
                       latent frame (PACA), progressive alignment (text 1 -> 0.5, audio 0.25 -> 1)
    (b) global         stage 2 sees the same phase blocks, but every latent frame attends to all of
                       them (plain cross-attention over the concatenated captions; padding hidden too)
    (c) base           stage 2 with no phase text at all (the floor)
    (d) paca_constant  (a) with constant alignment (text 1, audio 1 in every block), both stages
    (e) paca_motion    (a) whose stage 2 adds FantasyTalking's motion-intensity modulation
                       (`model.motion`, zero-initialised on the shared stage-1 export), conditioned on
                       each training window's intensity from the pose stage's keypoints
    (f) paca_pose      (a) whose stage 2 adds the pose branch (`model.pose`, ApoAvatar / TALK-Act),
                       trained on each window's keypoints, half the samples pose-free
    (g) paca_refocus   (f) plus ApoAvatar's audio–pose prior refocusing (`model.refocus`): the
                       window audio's per-frame intensity scales the pose tokens, and gives the
                       pose-free samples a prior
    (h) paca_face      (a) whose stage 2 adds FantasyTalking's face-focused cross-attention for
                       identity (`model.face_identity`): every block reads the reference latent's
                       face region (the window's first frame over the clip's face box)
    (i) paca_lip       (a) whose stage-2 loss weighs the lip box that follows the mouth keypoint
                       frame by frame `train.lip_weight` times (FantasyTalking's lip-tracing mask)
    (j) paca_av        (a) whose stage 2 adds ApoAvatar's frame-wise audio–video interaction
                       (`model.av_interaction`): each block's audio windows first read their frame

Stage 1 does not see phases, so every arm but (d) shares one stage-1 run; (d) has its own (its
architecture differs). Each run writes its YAML beside its outputs: `actavatar train --config
DIR/train/<run>/config.yaml` reproduces it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from dataset.errors import UserError
from evaluation.mechanism.config import MechanismConfig

log = logging.getLogger(__name__)

TEXT_TOKENS = {"max_base_tokens": 16, "max_phase_tokens": 16}  # the phase texts are at most 20 tiny-BPE tokens
MAX_PHASES = 4  # a 65-frame window holds 2-4 phases
WALL_FILE = "wall_seconds.txt"  # a run's training wall time (in parallel: each child's own)
PROGRESSIVE = {"schedule": "linear", "text_start": 1.0, "text_end": 0.5, "audio_start": 0.25, "audio_end": 1.0}
CONSTANT = {"schedule": "constant", "text_start": 1.0, "text_end": 1.0, "audio_start": 1.0, "audio_end": 1.0}


class VaeLatent(NamedTuple):
    """What the DiT must know of the benchmark's VAE: latent channels and spatial stride."""

    z_dim: int
    spatial_stride: int = 8

    @classmethod
    def read(cls, vae: Path) -> VaeLatent:
        config = json.loads((Path(vae) / "config.json").read_text())
        return cls(int(config["z_dim"]), int(config.get("scale_factor_spatial") or 8))


def stage1_run(arm: str) -> str:
    """The stage-1 run an arm starts from."""
    return "stage1_constant" if arm == "paca_constant" else "stage1"


def dit_patch(cfg: MechanismConfig, latent: VaeLatent) -> int:
    """`model.patch`, or the patch that makes one token of 16x16 pixels; checked against the clip size."""
    from train.vae_train import token_patch  # imports torch: not at the CLI's start-up

    stride, size = latent.spatial_stride, cfg.corpus.clip_size
    patch = cfg.model.patch or token_patch(stride)
    if size % (stride * patch):
        raise UserError(f"corpus.clip_size {size} is not a multiple of the VAE's spatial stride {stride} x model.patch {patch}")
    return patch


def model_section(cfg: MechanismConfig, latent: VaeLatent, alignment: dict[str, float]) -> dict[str, Any]:
    m, z, patch = cfg.model, latent.z_dim, dit_patch(cfg, latent)
    return {"flavor": "debug", "dim": m.dim, "num_layers": m.num_layers, "num_heads": m.num_heads, "ffn_dim": m.ffn_dim,
            "in_channels": z, "out_channels": z, "patch_size": [1, patch, patch],
            "vae_stride": [4, latent.spatial_stride, latent.spatial_stride], "text_dim": 32, "freq_dim": 64,
            "text_len": TEXT_TOKENS["max_base_tokens"] + MAX_PHASES * TEXT_TOKENS["max_phase_tokens"],
            "audio": {"audio_dim": 32}, "alignment": dict(alignment)}


def common_sections(cfg: MechanismConfig, paths: dict[str, Path], steps: int, out: Path) -> dict[str, Any]:
    t, size = cfg.train, cfg.corpus.clip_size
    return {
        "output_dir": str(out), "steps": steps, "seed": cfg.seed, "use_gpu": cfg.device == "cuda",
        "encoders": {"text": str(paths["models"] / "umt5"), "vae": str(paths["vae"]), "audio": str(paths["models"] / "wav2vec2"),
                     **TEXT_TOKENS},
        "data": {"shards": str(paths["latents"]), "kind": "latents", "buckets": [f"{cfg.window_frames}x{size}x{size}"],
                 "batch_size": t.batch_size, "num_workers": 0, "shuffle_buffer": 256, "seed": cfg.seed, "max_phases": MAX_PHASES},
        "flow": {"shift": t.shift, "motion_weight": t.motion_weight},
        "optim": {"lr": t.lr, "warmup_steps": t.warmup_steps, "schedule": "constant", "weight_decay": 0.01},
        "ema": {"decay": t.ema_decay},
        "guidance": {"text_drop": t.text_drop, "audio_drop": t.audio_drop, "both_drop": t.both_drop},
        "checkpoint": {"every": max(50, steps // 10), "keep": 1, "snapshot_every": 0},
        "log": {"every": 10, "tensorboard": False, "progress": True},
    }


def stage1_config(cfg: MechanismConfig, paths: dict[str, Path], run: str, latent: VaeLatent) -> dict[str, Any]:
    out = Path(cfg.out) / "train" / run
    doc = common_sections(cfg, paths, cfg.train.stage1_steps, out)
    doc["stage"] = {"name": "stage1", "trainable": "full", "reference": "first_frame"}
    doc["model"] = model_section(cfg, latent, CONSTANT if run == "stage1_constant" else PROGRESSIVE)
    doc["data"]["phase_prob"] = 0.0
    return doc


def stage2_config(cfg: MechanismConfig, paths: dict[str, Path], arm: str) -> dict[str, Any]:
    out = Path(cfg.out) / "train" / arm
    doc = common_sections(cfg, paths, cfg.train.stage2_steps, out)
    doc["stage"] = {"name": "stage2", "reference": "first_frame"}
    doc["model"] = {"init_from": str(Path(cfg.out) / "train" / stage1_run(arm) / "ema")}
    if arm == "paca_motion":
        doc["model"]["motion"] = True
    if arm in ("paca_pose", "paca_refocus"):
        doc["model"]["pose"] = True
        doc["guidance"]["pose_drop"] = cfg.train.pose_drop
    if arm == "paca_refocus":
        doc["model"]["refocus"] = True
    if arm == "paca_face":
        doc["model"]["face_identity"] = True
    if arm == "paca_lip":
        doc["flow"]["lip_weight"] = cfg.train.lip_weight  # flow.lip_tracing is on by default
    if arm == "paca_av":
        doc["model"]["av_interaction"] = True
    doc["data"].update(phase_prob=0.0 if arm == "base" else cfg.train.phase_prob, require_phases=True,
                       phase_routing="global" if arm == "global" else "per_frame")
    doc["checkpoint"]["snapshot_every"] = cfg.train.snapshot_every
    return doc


def write_config(doc: dict[str, Any], path: Path) -> Path:
    """YAML (JSON is valid YAML) of a TrainConfig, validated before anything runs."""
    from dataset.config_loader import load_config
    from train.config import TrainConfig

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    load_config(TrainConfig, path)  # fail now, naming the key, rather than in a child process
    return path


def finished(doc: dict[str, Any]) -> bool:
    return (Path(doc["output_dir"]) / "ema" / "config.json").is_file()


def launch(config_path: Path, threads: int) -> subprocess.Popen:
    """`python -m train.cli --config PATH` in a child with `threads` torch threads (it resumes)."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log_file = open(config_path.parent / "train.log", "a")  # noqa: SIM115 - closed by the caller via wait_all
    return subprocess.Popen([sys.executable, "-m", "train.cli", "--config", str(config_path)], env=env,
                            stdout=log_file, stderr=subprocess.STDOUT)


def run_all(configs: list[tuple[str, dict[str, Any]]], *, parallel: bool, threads: int) -> None:
    """Train every (name, config) not finished yet; in parallel children or one after another."""
    todo = [(name, doc) for name, doc in configs if not finished(doc)]
    if not todo:
        return
    paths = [write_config(doc, Path(doc["output_dir"]) / "config.yaml") for _, doc in todo]
    groups = [list(zip(todo, paths))] if parallel else [[item] for item in zip(todo, paths)]
    for group in groups:
        per = max(1, threads // len(group)) if threads else 0
        procs = []
        started = time.perf_counter()
        for (name, _), path in group:
            log.info("training %s (%s; log %s)", name, path, path.parent / "train.log")
            procs.append((name, path, launch(path, per)))
        failed = []
        for name, path, proc in procs:
            if proc.wait() != 0:
                failed.append((name, path))
                continue
            wall = path.parent / WALL_FILE  # accumulates over resumed runs
            before = float(wall.read_text()) if wall.is_file() else 0.0
            wall.write_text(f"{before + time.perf_counter() - started:.1f}\n")
        if failed:
            name, path = failed[0]
            raise RuntimeError(f"training {name} failed; see {path.parent / 'train.log'}")
