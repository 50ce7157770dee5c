"""Sync-C / Sync-D / AV offset, following syncnet_python's `SyncNetInstance.evaluate` exactly.

Per clip (25 fps face crops + 16 kHz mono audio):
  1. MFCC at 100 Hz, (13, 4·T'); `min_length = min(num_frames, floor(num_samples / 640))`.
  2. For v in [0, min_length - 5): lip window = frames [v, v+5) -> forward_lip; audio window =
     MFCC columns [4v, 4v+20) -> forward_aud. (syncnet_python stops at min_length - 5, not - 4.)
  3. `calc_pdist`: audio embeddings zero-padded by vshift on both ends; for every window i the L2
     `pairwise_distance` to audio windows i-vshift … i+vshift (31 offsets for vshift = 15).
  4. mdist = mean over windows per offset; Sync-D = min(mdist); Sync-C = median(mdist) - min(mdist);
     AV offset = vshift - argmin (> 0: the lips lag the audio by that many frames).
Dataset figures are plain means over clips. Faces: `sync_scores` takes the frames it is given as face
crops (or a `crop_faces` hook); `evaluation.suite.evaluate_folders` first resamples to 25 fps and
builds syncnet_python's face track and crops (evaluation/face_crops.py), as `run_pipeline.py` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import UserError
from evaluation.mfcc import mfcc

# SyncNet's own protocol (not our data contract, though equal to it): its windows assume 4 MFCC steps
# (10 ms) per video frame (40 ms) of 16 kHz audio.
SYNCNET_FPS = 25
SYNCNET_AUDIO_RATE = 16000
SAMPLES_PER_FRAME = SYNCNET_AUDIO_RATE // SYNCNET_FPS  # 640
CROP_SIZE = 224

CropFaces = Callable[[np.ndarray], np.ndarray]  # uint8 (T, H, W, 3) RGB -> uint8 (T, h, w, 3) face crops


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncConfig:
    """Args:
        vshift: largest offset searched, in frames (syncnet_python's scripts use 15 -> 31 offsets).
        batch_size: windows per network call (syncnet_python: 20).
    """

    vshift: int = 15
    batch_size: int = 20

    def __post_init__(self) -> None:
        if self.vshift < 1:
            raise UserError(f"sync.vshift must be >= 1, got {self.vshift}")
        if self.batch_size < 1:
            raise UserError(f"sync.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncResult:
    """One clip: `offset` in frames, `min_dist` = Sync-D, `confidence` = Sync-C; `mdist` per offset."""

    offset: int
    min_dist: float
    confidence: float
    num_windows: int
    mdist: tuple[float, ...]


def calc_pdist(lip: torch.Tensor, aud: torch.Tensor, vshift: int) -> torch.Tensor:
    """(N, D) lip and audio embeddings -> (N, 2·vshift+1) L2 distances, syncnet_python's calc_pdist.

    Row i, column j compares lip window i with audio window i + j - vshift (zeros outside the clip).
    """
    win = 2 * vshift + 1
    padded = F.pad(aud, (0, 0, vshift, vshift))  # (N + 2·vshift, D)
    windows = padded.unfold(0, win, 1)[: len(lip)]  # (N, D, win)
    # pairwise_distance (with its eps = 1e-6 inside the norm) keeps the exact syncnet_python values.
    return F.pairwise_distance(lip[:, :, None].expand_as(windows).transpose(1, 2), windows.transpose(1, 2))  # (N, win)


def offset_scores(lip: torch.Tensor, aud: torch.Tensor, vshift: int = 15) -> SyncResult:
    """Offset search on embeddings (steps 3-4 above)."""
    if lip.shape != aud.shape or lip.ndim != 2 or len(lip) == 0:
        raise ValueError(f"lip and audio embeddings must be equal non-empty (N, D), got {tuple(lip.shape)} and {tuple(aud.shape)}")
    dists = calc_pdist(lip.float(), aud.float(), vshift)  # (N, win)
    mdist = dists.mean(dim=0)  # (win,)
    minval, minidx = torch.min(mdist, 0)
    return SyncResult(offset=int(vshift - minidx), min_dist=float(minval), confidence=float(torch.median(mdist) - minval),
                      num_windows=len(lip), mdist=tuple(float(v) for v in mdist))


def prepare_crops(frames: np.ndarray, crop_faces: CropFaces | None = None) -> torch.Tensor:
    """uint8 (T, H, W, 3) RGB -> float (3, T, 224, 224) BGR in [0, 255], as cv2 would give SyncNet."""
    crops = np.asarray(crop_faces(frames) if crop_faces is not None else frames)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"face crops must be (T, H, W, 3), got {crops.shape}")
    x = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2).float()  # (T, 3, H, W) BGR
    if tuple(x.shape[-2:]) != (CROP_SIZE, CROP_SIZE):
        # syncnet_python's crop step uses cv2.resize (bilinear, no antialias).
        x = F.interpolate(x, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False).clamp(0, 255)
    return x.permute(1, 0, 2, 3)  # (3, T, 224, 224)


@torch.no_grad()
def score_features(net: nn.Module, video: torch.Tensor, cc: torch.Tensor, num_frames: int, cfg: SyncConfig = SyncConfig()) -> SyncResult:
    """Steps 2-4 on prepared inputs.

    Args:
        net: has `forward_lip` and `forward_aud` (SyncNet, or a stand-in in tests).
        video: (3, T, H, W) lip-branch input.
        cc: (13, M) MFCC, one column per 10 ms.
        num_frames: min_length of step 1.
    """
    last = num_frames - 5
    if last < 1:
        raise ValueError(f"sync needs at least 6 frames of video and audio, got min_length {num_frames}")
    device = next(iter(net.parameters()), torch.empty(0)).device
    lip, aud = [], []
    for start in range(0, last, cfg.batch_size):
        idx = range(start, min(last, start + cfg.batch_size))
        lip.append(net.forward_lip(torch.stack([video[:, v : v + 5] for v in idx]).to(device)).float().cpu())  # (B, D)
        aud.append(net.forward_aud(torch.stack([cc[None, :, 4 * v : 4 * v + 20] for v in idx]).to(device)).float().cpu())
    return offset_scores(torch.cat(lip), torch.cat(aud), cfg.vshift)


def sync_scores(
    net: nn.Module, frames: np.ndarray, audio: np.ndarray, sample_rate: int = SYNCNET_AUDIO_RATE, *,
    crop_faces: CropFaces | None = None, cfg: SyncConfig = SyncConfig(),
) -> SyncResult:
    """One clip: uint8 (T, H, W, 3) RGB frames at 25 fps and mono float audio at 16 kHz."""
    if sample_rate != SYNCNET_AUDIO_RATE:
        raise ValueError(f"sync needs 16 kHz audio (syncnet_python's protocol), got {sample_rate} Hz")
    cc = torch.from_numpy(mfcc(audio, sample_rate).T.copy()).float()  # (13, M)
    video = prepare_crops(frames, crop_faces)
    num_frames = min(video.shape[1], len(audio) // SAMPLES_PER_FRAME)
    return score_features(net, video, cc, num_frames, cfg)


def aggregate_sync(results: Sequence[SyncResult]) -> dict[str, float | int]:
    """Dataset figures: means over clips (as papers report Sync-C / Sync-D)."""
    if not results:
        raise ValueError("no clips to aggregate")
    return {
        "sync_c": float(np.mean([r.confidence for r in results])),
        "sync_d": float(np.mean([r.min_dist for r in results])),
        "abs_offset_mean": float(np.mean([abs(r.offset) for r in results])),
        "num_clips": len(results),
    }
