"""Annotation -> PACA inputs: the Wan VAE's latent-frame timeline, frame<->phase maps, block token ids.

Wan's causal VAE compresses time by `stride` (4): latent frame 0 holds video frame 0 alone and
latent frame f >= 1 holds video frames 4f-3 ... 4f. Video frame i lasts [i/fps, (i+1)/fps).
A latent frame therefore covers a time interval, and PACA lets its queries see the base caption
plus every phase whose [start_s, end_s) overlaps that interval. Uncovered frames see the base only.

Block ids per text token: 0 = base caption, k = phase k (1-based), -1 = padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

PAD_BLOCK = -1
ROUTINGS = ("per_frame", "global")  # phase -> latent frame routing (see `frame_phase_map`)
_EPS_S = 1e-6  # seconds; boundaries closer than this do not count as overlap (float round-off)


def num_latent_frames(num_video_frames: int, stride: int = 4) -> int:
    """Latent frames the Wan VAE produces for `num_video_frames` (1 + 4k frames map to 1 + k)."""
    if num_video_frames < 1:
        raise ValueError(f"num_video_frames must be >= 1, got {num_video_frames}")
    return (num_video_frames - 1) // stride + 1


def latent_frame_video_frames(f: int, stride: int = 4) -> tuple[int, int]:
    """First and last video frame (inclusive) held by latent frame f."""
    return (0, 0) if f == 0 else (stride * f - stride + 1, stride * f)


def latent_frame_times(num_latent: int, fps: float, stride: int = 4) -> torch.Tensor:
    """(F, 2) float64 [start_s, end_s) of each latent frame."""
    if fps <= 0:
        raise ValueError(f"video.fps must be > 0, got {fps}")
    f = torch.arange(num_latent, dtype=torch.float64)
    first = torch.where(f == 0, 0.0, stride * f - stride + 1)
    last = stride * f
    return torch.stack([first / fps, (last + 1) / fps], dim=-1)


def frame_phase_map(
    phases: Sequence[tuple[float, float]], num_latent: int, fps: float, stride: int = 4, routing: str = "per_frame"
) -> torch.Tensor:
    """(F, 1 + P) bool: column 0 (base) is always True, column k is True where phase k overlaps frame f.

    routing="global" makes every column True: each frame sees the base and all phases, i.e. the
    timed captions act as one global caption through plain cross-attention (the PACA ablation arm).
    """
    if routing not in ROUTINGS:
        raise ValueError(f"phase_routing must be one of {ROUTINGS}, got {routing!r}")
    times = latent_frame_times(num_latent, fps, stride)  # (F, 2)
    if not phases:
        return torch.ones(num_latent, 1, dtype=torch.bool)
    if routing == "global":
        return torch.ones(num_latent, 1 + len(phases), dtype=torch.bool)
    span = torch.tensor([[s, e] for s, e in phases], dtype=torch.float64)  # (P, 2)
    overlap = (span[None, :, 0] < times[:, None, 1] - _EPS_S) & (span[None, :, 1] > times[:, None, 0] + _EPS_S)
    return torch.cat([torch.ones(num_latent, 1, dtype=torch.bool), overlap], dim=1)


@dataclass(frozen=True, slots=True)
class PhaseLayout:
    """The texts to encode (base first, then phases in time order) and which latent frame sees which.

    Attributes:
        texts: base caption followed by the phase texts.
        frame_phases: (F, 1 + P) bool, see `frame_phase_map`.
    """

    texts: tuple[str, ...]
    frame_phases: torch.Tensor

    @property
    def num_phases(self) -> int:
        return len(self.texts) - 1


def layout_from_annotation(
    annotation: Mapping, *, stride: int = 4, num_video_frames: int | None = None, use_phases: bool = True,
    routing: str = "per_frame",
) -> PhaseLayout:
    """Build the PACA layout from an annotation dict (DESIGN.md §3: caption.base, caption.phases,
    video.fps, video.num_frames). `num_video_frames` overrides video.num_frames (e.g. a training crop
    of 4k+1 frames starting at the clip start); `use_phases=False` gives the base-only (stage 1) layout;
    `routing` see `frame_phase_map`."""
    caption, video = annotation["caption"], annotation["video"]
    fps = float(video["fps"])
    n_video = int(video["num_frames"] if num_video_frames is None else num_video_frames)
    phases = list(caption.get("phases", [])) if use_phases else []
    n_lat = num_latent_frames(n_video, stride)
    spans = [(float(p["start_s"]), float(p["end_s"])) for p in phases]
    for i, (s, e) in enumerate(spans):
        if not e > s:
            raise ValueError(f"caption.phases[{i}] must have end_s > start_s, got {s}..{e}")
    return PhaseLayout(
        texts=(str(caption["base"]), *(str(p["text"]) for p in phases)),
        frame_phases=frame_phase_map(spans, n_lat, fps, stride, routing),
    )


def block_ids_from_lengths(lengths: Sequence[int], total: int | None = None) -> torch.Tensor:
    """Token block ids for blocks of the given token counts, concatenated and padded with -1."""
    ids = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(lengths)])
    total = ids.numel() if total is None else total
    if ids.numel() > total:
        raise ValueError(f"text blocks hold {ids.numel()} tokens, more than the budget of {total}")
    return torch.cat([ids, torch.full((total - ids.numel(),), PAD_BLOCK, dtype=torch.long)])


@dataclass(frozen=True, slots=True)
class TextBatch:
    """Padded PACA text inputs for a batch.

    Attributes:
        tokens: (B, L, C) encoder features, zeros at padding.
        block_ids: (B, L) long, 0 base, k phase k, -1 pad.
        frame_phases: (B, F, 1 + P_max) bool; columns past a sample's phase count are False.
    """

    tokens: torch.Tensor
    block_ids: torch.Tensor
    frame_phases: torch.Tensor


def collate_text_blocks(
    blocks: Sequence[Sequence[torch.Tensor]], frame_phases: Sequence[torch.Tensor], total: int | None = None
) -> TextBatch:
    """Pad per-sample encoded blocks ([base (n0, C), phase 1 (n1, C), ...]) into one `TextBatch`.

    Samples may differ in phase count and token counts; all must share F (latent frames).
    `total` fixes L (e.g. 512 as Wan); by default it is the longest sample.
    """
    if len(blocks) != len(frame_phases):
        raise ValueError(f"got {len(blocks)} text samples but {len(frame_phases)} frame maps")
    lengths = [[b.shape[0] for b in sample] for sample in blocks]
    total = max(sum(n) for n in lengths) if total is None else total
    n_frames = {fp.shape[0] for fp in frame_phases}
    if len(n_frames) != 1:
        raise ValueError(f"all samples need the same number of latent frames, got {sorted(n_frames)}")
    max_cols = max(fp.shape[1] for fp in frame_phases)
    ref = blocks[0][0]
    tokens = ref.new_zeros(len(blocks), total, ref.shape[-1])
    ids = torch.full((len(blocks), total), PAD_BLOCK, dtype=torch.long)
    fmap = torch.zeros(len(blocks), n_frames.pop(), max_cols, dtype=torch.bool)
    for i, (sample, fp) in enumerate(zip(blocks, frame_phases, strict=True)):
        if fp.shape[1] != len(sample):
            raise ValueError(f"sample {i}: {len(sample)} text blocks but frame map has {fp.shape[1]} columns")
        cat = torch.cat(list(sample), dim=0)
        if cat.shape[0] > total:
            raise ValueError(f"sample {i}: {cat.shape[0]} text tokens exceed the budget of {total}")
        tokens[i, : cat.shape[0]] = cat
        ids[i] = block_ids_from_lengths(lengths[i], total)
        fmap[i, :, : fp.shape[1]] = fp
    return TextBatch(tokens=tokens, block_ids=ids.to(ref.device), frame_phases=fmap.to(ref.device))
