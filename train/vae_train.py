"""Train a compact Wan-architecture VAE (diffusers `AutoencoderKLWan`) on a corpus of clips.

    actavatar models train-vae --data CORPUS --out VAE [--steps 1200] [--frames 65] [--size 64]

Why this exists: no VAE weights can be downloaded here, and a random tiny Wan VAE cannot decode
its own latents, so nothing trained on it can be looked at. A weight-free space-to-depth "pixel
VAE" decodes exactly but leaves thousands of values per DiT token. This trains the real recipe,
small: Wan's causal layout (latent frame 0 = video frame 0, latent frame f = video frames
4f-3..4f), a 2x2 pixel patch (as Wan2.2's VAE) then two downsampling stages (8x spatially), so a
64x64 clip becomes 8x8 latents of `z_dim` channels and a 1x2x2 DiT patch carries 4 * z_dim values.

Training has two phases. Most steps see short clips (`short_frames`, many per batch): appearance
is learnt fastest from many different frames. The last steps see whole windows of the length
the DiT will use (`frames`): the causal convolutions see ~70 frames back, further than a short
clip, so a VAE that only saw 9-frame clips drifts on the later frames of a 65-frame window.
Batches hold at least two clips (at batch 1 PyTorch's CPU Conv3d falls back to a slow kernel).
The loss is L1 + MSE on the latent mean (a deterministic auto-encoder: sampling the posterior
at its initial unit variance drowns the signal and slows learning), weighted up on saturated
pixels and on pixels that move within the clip (the colour-coded hands that carry the content
here are small and rare; plain MSE blurs them away first), plus a tiny KL term. With
`mouth_weight`, the pixels inside each frame's lip box (from the clip's `pose.npy`, sized as the
flow loss's lip box) count more too: in a 64-pixel face close-up the mouth opens by a few pixels
inside one 8x8 latent cell, and a VAE that drops it leaves the DiT no lip motion to learn.
The result is saved with `save_pretrained` (diffusers format, `latents_mean` /
`latents_std` measured on the training windows), so `train.pretrained.load_vae` reads it like any
Wan VAE, and `vae_report.json` says how well it reconstructs held-out clips.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.atomic import atomic_write_bytes
from dataset.errors import UserError

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"  # resumable state beside the exported model (ignored by from_pretrained)
REPORT_FILE = "vae_report.json"
TOKEN_PIXELS = 16  # pixels a DiT token covers on each side at the default patch (1x2x2 on a stride-8 VAE)


def token_patch(spatial_stride: int) -> int:
    """The DiT's spatial patch (in latent cells) that makes one token of TOKEN_PIXELS x TOKEN_PIXELS pixels."""
    return max(1, TOKEN_PIXELS // spatial_stride)


@dataclass(frozen=True, kw_only=True, slots=True)
class VaeArchConfig:
    """`AutoencoderKLWan` size. Spatial stride = patch_size * 2 ** (len(dim_mult) - 1); temporal 4.

    Args:
        base_dim: channels of the first stage.
        z_dim: latent channels.
        dim_mult: channel multipliers per stage.
        num_res_blocks: residual blocks per stage.
        patch_size: pixel patch folded into channels before the first stage (Wan2.2 VAE style).
    """

    base_dim: int = 16
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    patch_size: int = 2

    def __post_init__(self) -> None:
        for key in ("base_dim", "z_dim", "num_res_blocks", "patch_size"):
            if getattr(self, key) < 1:
                raise UserError(f"vae.{key} must be >= 1, got {getattr(self, key)}")
        if len(self.dim_mult) < 3 or min(self.dim_mult) < 1:
            raise UserError(f"vae.dim_mult needs >= 3 stages of multipliers >= 1 (two temporal downsamplings), got {self.dim_mult}")

    @property
    def spatial_stride(self) -> int:
        return self.patch_size * 2 ** (len(self.dim_mult) - 1)

    def build(self, latents_mean: list[float] | None = None, latents_std: list[float] | None = None):
        """A freshly initialised `AutoencoderKLWan` of this size."""
        from diffusers import AutoencoderKLWan

        stages = len(self.dim_mult) - 1
        return AutoencoderKLWan(
            base_dim=self.base_dim,
            z_dim=self.z_dim,
            dim_mult=list(self.dim_mult),
            num_res_blocks=self.num_res_blocks,
            attn_scales=[],
            # the last two downsamplings halve time too (4x), as Wan's; earlier ones are spatial only
            temperal_downsample=[False] * (stages - 2) + [True, True],
            latents_mean=latents_mean or [0.0] * self.z_dim,
            latents_std=latents_std or [1.0] * self.z_dim,
            patch_size=self.patch_size if self.patch_size > 1 else None,
            in_channels=3 * self.patch_size**2,
            out_channels=3 * self.patch_size**2,
            scale_factor_temporal=4,
            scale_factor_spatial=self.spatial_stride,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class VaeTrainConfig:
    """Args:
    data: corpus folder / shards (`dataset.reader.list_shards`) of clips to learn.
    out: output folder (diffusers format + vae_report.json + resumable train_state.pt).
    steps: optimiser steps in total (short clips first, whole windows for the last `window_steps`).
    window_steps: steps on whole windows of `frames` frames, `batch_size` per step.
    frames: window length in video frames (1 + 4k); use the DiT's window length.
    short_frames / short_batch_size: clip length and clips per step of the first steps.
    size: square frame size in pixels (a multiple of the spatial stride).
    batch_size: windows per step in the last phase.
    lr / min_lr_ratio: AdamW learning rate, cosine-decayed to min_lr_ratio * lr.
    saturation_weight: extra loss weight per unit of pixel saturation (0 = none).
    motion_weight: extra loss weight per unit of a pixel's distance from its clip's mean frame (0 = none).
    mouth_weight: extra loss weight on the pixels inside each frame's lip box (`train.objective.mouth_boxes`
        with the flow loss's default lip box, from the clip's pose.npy; 0 = none; clips without one get none).
    kl_weight: weight of the KL term (tiny: the latent stays close to deterministic).
    holdout_sources: sources kept out of training for the report (0 = report on training clips).
    checkpoint_every: save the resumable state every N steps (0 = only at the end).
    seed: init and data order.
    threads: torch CPU threads (0 = torch's default).
    arch: the VAE's size.
    """

    data: str
    out: str
    steps: int = 900
    window_steps: int = 200
    frames: int = 65
    short_frames: int = 9
    short_batch_size: int = 8
    size: int = 64
    batch_size: int = 2
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    saturation_weight: float = 8.0
    motion_weight: float = 8.0
    mouth_weight: float = 0.0
    kl_weight: float = 1e-6
    holdout_sources: int = 2
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 0
    arch: VaeArchConfig = field(default_factory=VaeArchConfig)

    def __post_init__(self) -> None:
        if not self.data or not self.out:
            raise UserError(f"data and out must be paths, got {self.data!r} and {self.out!r}")
        for key in ("steps", "batch_size"):
            if getattr(self, key) < 1:
                raise UserError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("frames", "short_frames"):
            value = getattr(self, key)
            if value < 5 or (value - 1) % 4:
                raise UserError(f"{key} must be 1 + 4k and >= 5, got {value}")
        if not 0 <= self.window_steps <= self.steps:
            raise UserError(f"window_steps must be in [0, steps={self.steps}], got {self.window_steps}")
        if self.short_batch_size < 1:
            raise UserError(f"short_batch_size must be >= 1, got {self.short_batch_size}")
        if self.size < self.arch.spatial_stride or self.size % self.arch.spatial_stride:
            raise UserError(f"size must be a multiple of the VAE's spatial stride {self.arch.spatial_stride}, got {self.size}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise UserError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr} and {self.min_lr_ratio}")
        for key in ("saturation_weight", "motion_weight", "mouth_weight", "kl_weight", "holdout_sources", "checkpoint_every", "threads"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(self, key)}")


@dataclass(slots=True)
class Clip:
    key: str
    source: str
    frames: np.ndarray  # uint8 (T, size, size, 3)
    labels: list[str] | None  # per-frame truth labels where the caption has labelled phases
    mouth: np.ndarray | None = None  # float32 (T, 4) lip boxes in the size x size frame, NaN without a mouth


def truth_labels(annotation: dict[str, Any], num_frames: int) -> list[str] | None:
    """Per-frame phase labels from a caption whose phases carry a `label` ("?" outside phases)."""
    phases = (annotation.get("caption") or {}).get("phases") or []
    if not phases or any("label" not in p for p in phases):
        return None
    fps = float(annotation["video"]["fps"])
    labels = ["?"] * num_frames
    for p in phases:
        a = max(0, math.ceil(float(p["start_s"]) * fps - 1e-6))
        b = min(num_frames, math.ceil(float(p["end_s"]) * fps - 1e-6))
        labels[a:b] = [str(p["label"])] * max(0, b - a)
    return labels


def load_clips(data: str, size: int, min_frames: int) -> list[Clip]:
    """Every clip of at least `min_frames` frames, resized to size x size (the one cover crop),
    with its lip boxes where the clip has a readable pose.npy. Broken samples are logged and skipped."""
    import webdataset as wds

    from dataset.reader import LogAndContinue, SampleDecoder, shard_pipeline
    from model.resize import cover_crop

    decoder = SampleDecoder(audio=False)

    def decode(raw: dict[str, Any]) -> dict[str, Any]:  # the decoder's sample plus the pose.npy it drops
        return {**decoder(raw), "pose.npy": raw.get("pose.npy")}

    clips = []
    for sample in shard_pipeline(data, decode="none", stages=[wds.map(decode, handler=LogAndContinue())]):
        frames = sample["frames"]
        if frames.shape[0] < min_frames:
            continue
        if tuple(frames.shape[1:3]) != (size, size):
            frames = ((cover_crop(frames, size, size) + 1.0) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1)
        ann = sample["annotation"]
        clips.append(Clip(key=sample["__key__"], source=str(ann["source"]["sha256"]), frames=frames.numpy(),
                          labels=truth_labels(ann, frames.shape[0]),
                          mouth=mouth_track(sample["pose.npy"], ann, size, key=sample["__key__"])))
    if not clips:
        raise UserError(f"data: no clip of {data} has >= {min_frames} frames")
    return clips


def mouth_track(pose_npy: bytes | None, annotation: dict[str, Any], size: int, *, key: str = "?") -> np.ndarray | None:
    """float32 (T, 4) lip boxes (x0, y0, x1, y1) normalised to the size x size cover crop, NaN for
    frames without a mouth; None for a clip without a pose.npy (or with a broken one: logged)."""
    from dataset.pose import PoseError, decode_pose
    from train.buckets import Bucket
    from train.clip_window import WindowPlan, face_box_in_window, pose_in_window
    from train.objective import FlowConfig, mouth_boxes

    if pose_npy is None:
        return None
    frames = int(annotation["video"]["num_frames"])
    try:
        pose = decode_pose(pose_npy, frames)
    except PoseError as err:
        log.warning("train-vae: %s: ignoring pose.npy: %s", key, err)
        return None
    whole = Bucket(frames, size, size)  # the whole clip through the trainer's own crop of a window
    keypoints = pose_in_window(pose, annotation, WindowPlan(bucket=whole, start_frame=0, use_phases=False))
    face = face_box_in_window(annotation, whole)
    return mouth_boxes(torch.from_numpy(keypoints)[None], face[None], FlowConfig().lip_box)[0].numpy().astype(np.float32)


def mouth_mask(boxes: np.ndarray, size: int) -> torch.Tensor:
    """(B, T, 4) normalised lip boxes -> (B, 1, T, size, size) float: 1 on the pixels inside (NaN: none)."""
    from train.objective import cells_inside

    return cells_inside(torch.from_numpy(boxes), (size, size)).float()[:, None]


def to_video(frames: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def to_frames(video: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    return ((video.permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def reconstruction_loss(x: torch.Tensor, y: torch.Tensor, saturation_weight: float, motion_weight: float = 0.0,
                        mouth: torch.Tensor | None = None, mouth_weight: float = 0.0) -> torch.Tensor:
    """L1 + MSE of (B, 3, T, H, W) videos in [-1, 1], each pixel weighted
    1 + s * saturation (max - min over RGB, in [0, 1]) + m * motion (largest channel distance from
    the clip's mean frame, in [0, 2]) + mouth_weight * mouth ((B, 1, T, H, W) lip-box mask)."""
    saturation = (x.amax(dim=1, keepdim=True) - x.amin(dim=1, keepdim=True)) / 2  # (B, 1, T, H, W)
    motion = (x - x.mean(dim=2, keepdim=True)).abs().amax(dim=1, keepdim=True)  # (B, 1, T, H, W)
    weight = 1.0 + saturation_weight * saturation + motion_weight * motion
    if mouth is not None and mouth_weight:
        weight = weight + mouth_weight * mouth.to(weight)
    err = y - x
    return (err.abs() * weight).mean() + (err.square() * weight).mean()


class VaeTrainer:
    """Trains `config.arch` on `config.data`; `run()` returns the report dict.

    Args:
        config: what to train on and how long.
        progress: show a progress bar.
    """

    def __init__(self, config: VaeTrainConfig, *, progress: bool = True) -> None:
        self.config, self.progress = config, progress
        self.out = Path(config.out)
        clips = load_clips(config.data, config.size, config.frames)
        sources = sorted({c.source for c in clips})
        held = set(sources[-config.holdout_sources:]) if 0 < config.holdout_sources < len(sources) else set()
        self.train_clips = [c for c in clips if c.source not in held] or clips
        self.test_clips = [c for c in clips if c.source in held] or clips[: max(1, len(clips) // 8)]
        torch.manual_seed(config.seed)
        self.vae = config.arch.build()
        self.optimizer = torch.optim.AdamW(self.vae.parameters(), lr=config.lr, weight_decay=0.0)
        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        self.losses: list[float] = []

    def lr_at(self, step: int) -> float:
        c = self.config
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(step / c.steps, 1.0))))

    def batch(self, frames: int, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`size` random clips of `frames` frames from the training clips, and their (B, 1, T, H, W)
        lip-box mask when `mouth_weight` is on and any of them has a mouth (else None)."""
        out, boxes = [], []
        for _ in range(size):
            clip = self.train_clips[int(torch.randint(len(self.train_clips), (1,), generator=self.generator))]
            start = int(torch.randint(clip.frames.shape[0] - frames + 1, (1,), generator=self.generator))
            out.append(clip.frames[start : start + frames])
            boxes.append(np.full((frames, 4), np.nan, np.float32) if clip.mouth is None else clip.mouth[start : start + frames])
        stacked = np.stack(boxes)
        wanted = self.config.mouth_weight > 0 and np.isfinite(stacked).all(-1).any()
        return to_video(np.stack(out)), mouth_mask(stacked, self.config.size) if wanted else None

    def train_step(self) -> float:
        c = self.config
        short = self.step < c.steps - c.window_steps
        x, mouth = self.batch(c.short_frames, c.short_batch_size) if short else self.batch(c.frames, c.batch_size)
        posterior = self.vae.encode(x).latent_dist
        y = self.vae.decode(posterior.mode()).sample
        loss = reconstruction_loss(x, y, c.saturation_weight, c.motion_weight, mouth, c.mouth_weight)
        loss = loss + c.kl_weight * posterior.kl().mean()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.vae.parameters(), 1.0)
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    # -- resumable state ----------------------------------------------------------------------

    def save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f".{STATE_FILE}.tmp"
        torch.save({"model": self.vae.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                    "generator": self.generator.get_state(), "losses": torch.tensor(self.losses)}, tmp)
        tmp.replace(self.out / STATE_FILE)

    def maybe_resume(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.vae.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.losses = [float(v) for v in state["losses"]]
        log.info("resumed VAE training from %s at step %d", path, self.step)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        c = self.config
        if c.threads:
            torch.set_num_threads(c.threads)
        self.maybe_resume()
        started = time.perf_counter()
        self.vae.train()
        with tqdm(total=c.steps, initial=self.step, desc="train-vae", disable=not self.progress, dynamic_ncols=True) as bar:
            while self.step < c.steps:
                self.losses.append(self.train_step())
                bar.update()
                bar.set_postfix(loss=f"{np.mean(self.losses[-20:]):.4f}", refresh=False)
                if not self.progress and self.step % 50 == 0:  # without a bar, a line now and then
                    log.info("train-vae step %d/%d loss %.4f", self.step, c.steps, np.mean(self.losses[-50:]))
                if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self.save_state()
        self.save_state()
        train_s = time.perf_counter() - started
        self.vae.eval()
        mean, std = self.latent_stats()
        report = {"steps": self.step, "train_seconds_this_run": round(train_s, 1), "config": asdict(c),
                  "latent": {"z_dim": c.arch.z_dim, "stride": [4, c.arch.spatial_stride, c.arch.spatial_stride],
                             "values_per_dit_token_1x2x2": 4 * c.arch.z_dim,
                             # what one DiT token of 16x16 pixels holds (a 1x4x4 patch on a stride-4 VAE)
                             "values_per_16px_token": c.arch.z_dim * token_patch(c.arch.spatial_stride) ** 2},
                  "train_clips": len(self.train_clips), "test_clips": len(self.test_clips),
                  "loss_curve": [round(float(np.mean(self.losses[i:i + 20])), 5) for i in range(0, len(self.losses), 20)],
                  "reconstruction": self.evaluate()}
        self.export(mean, std)
        atomic_write_bytes(self.out / REPORT_FILE, (json.dumps(report, indent=2) + "\n").encode())
        return report

    @torch.no_grad()
    def latent_stats(self, windows: int = 32) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the latents of training windows (for `latents_mean/std`)."""
        c = self.config
        lats = [self.vae.encode(self.batch(c.frames, c.batch_size)[0]).latent_dist.mode() for _ in range(max(1, windows // c.batch_size))]
        z = torch.cat(lats).transpose(0, 1).flatten(1)  # (z, N)
        return z.mean(dim=1).tolist(), z.std(dim=1).clamp(min=1e-4).tolist()

    def export(self, mean: list[float], std: list[float]) -> None:
        """Save in the diffusers format with the measured latent statistics."""
        model = self.config.arch.build(mean, std)
        model.load_state_dict(self.vae.state_dict())
        model.save_pretrained(self.out)

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """PSNR (whole frames, and inside the lip boxes where clips have them) and, where captions
        carry labels, the action reader on the reconstructions of the held-out clips' first window
        (agreement with the truth and with the reader on the originals)."""
        from dataset.synth import detect_actions

        n = self.config.frames
        psnr, mouth_psnr, agree_truth, agree_orig, labelled = [], [], 0, 0, 0
        for clip in self.test_clips:
            x = to_video(clip.frames[None, :n])
            y = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample
            sq = ((y - x) / 2).square()
            psnr.append(10 * math.log10(1.0 / max(float(sq.mean()), 1e-10)))
            if clip.mouth is not None:
                inside = mouth_mask(clip.mouth[None, :n], self.config.size).expand_as(sq)
                if inside.any():
                    mouth_psnr.append(10 * math.log10(1.0 / max(float(sq[inside.bool()].mean()), 1e-10)))
            if clip.labels is None:
                continue
            rec = detect_actions(to_frames(y[0]), 25.0)
            orig = detect_actions(clip.frames[:n], 25.0)
            for truth, r, o in zip(clip.labels[:n], rec, orig, strict=True):
                if truth != "?":
                    labelled += 1
                    agree_truth += truth == r
                    agree_orig += o == r
        out: dict[str, Any] = {"clips": len(self.test_clips), "frames_per_clip": n, "psnr_db": round(float(np.mean(psnr)), 2)}
        if mouth_psnr:  # inside the lip boxes: what `mouth_weight` trades the rest of the frame for
            out["mouth_psnr_db"] = round(float(np.mean(mouth_psnr)), 2)
        if labelled:
            out.update(reader_agreement_with_truth=round(agree_truth / labelled, 4),
                       reader_agreement_with_originals=round(agree_orig / labelled, 4), labelled_frames=labelled)
        return out


def train_vae(config: VaeTrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train (resuming from `config.out` when a state is there), export, return the report."""
    return VaeTrainer(config, progress=progress).run()
