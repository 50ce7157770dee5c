"""Face-focused cross-attention for identity (FantasyTalking), `model.face_identity`.

FantasyTalking replaces the usual reference network with a cross-attention on the reference
portrait's face: the face region is cut out of the reference image and encoded, and in every DiT
block the video tokens attend to those face tokens; the result is added to the block's stream.
Every frame of every window reads the same face, which is what anchors identity in long videos,
where later windows only see the previous window's last frames.

Face tokens here are the reference image's VAE latent, resampled over the face box (enlarged by
`margin` on each side, so hair and chin are in) onto a `grid` x `grid` lattice: one token per cell,
plus a learned position per cell. We use the latent rather than the paper's image encoder because
every run has it: cached latent shards hold the window's first frame (latent frame 0, encoded alone
by the causal VAE), so the branch needs no extra encoder, weights or stored field, and sampling
encodes the reference image once. The output projections start at zero: a checkpoint without the
branch loads and predicts exactly as before, and a sample without a face box gets no update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.attention import Attention, Backend, guarded_attention


@dataclass(frozen=True, kw_only=True, slots=True)
class FaceIdentityConfig:
    """Args:
    grid: face tokens per side (grid² tokens): the face box's latent resampled onto this lattice.
    margin: the face box grows by this share of its width / height on each side before resampling.
    """

    grid: int = 4
    margin: float = 0.2

    def __post_init__(self) -> None:
        if not 1 <= self.grid <= 16:
            raise ValueError(f"face_identity.grid must be in [1, 16], got {self.grid}")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"face_identity.margin must be in [0, 1], got {self.margin}")


def has_face(face_box: torch.Tensor) -> torch.Tensor:
    """(B, 4) normalised boxes -> (B,) bool: finite, with positive width and height."""
    finite = torch.isfinite(face_box).all(dim=-1)
    box = torch.nan_to_num(face_box)
    return finite & (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])


def face_cells(reference: torch.Tensor, face_box: torch.Tensor, config: FaceIdentityConfig) -> torch.Tensor:
    """The reference latent (B, z, h, w) over each face box (B, 4) (x0, y0, x1, y1 in [0, 1] of the
    frame) -> (B, grid², z) cells, row-major. Bilinear sampling at the cell centres of the enlarged
    box (clamped to the frame); rows without a face give zeros (`has_face`)."""
    b = reference.shape[0]
    valid = has_face(face_box)
    box = torch.where(valid[:, None], torch.nan_to_num(face_box.float()), torch.tensor([0.0, 0.0, 1.0, 1.0]).to(face_box.device))
    x0, y0, x1, y1 = box.unbind(-1)
    mx, my = config.margin * (x1 - x0), config.margin * (y1 - y0)
    x0, x1 = (x0 - mx).clamp(0, 1), (x1 + mx).clamp(0, 1)
    y0, y1 = (y0 - my).clamp(0, 1), (y1 + my).clamp(0, 1)
    steps = (torch.arange(config.grid, device=reference.device, dtype=torch.float32) + 0.5) / config.grid  # cell centres
    xs = x0[:, None].to(steps.device) + (x1 - x0)[:, None].to(steps.device) * steps  # (B, G) in [0, 1]
    ys = y0[:, None].to(steps.device) + (y1 - y0)[:, None].to(steps.device) * steps
    # grid_sample's coordinates: -1 / 1 are the outer edges of the corner pixels (align_corners=False)
    where = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1) * 2 - 1  # (B, G, G, 2) as (x, y)
    cells = nn.functional.grid_sample(reference.float(), where, mode="bilinear", padding_mode="border", align_corners=False)
    cells = cells.flatten(2).transpose(1, 2)  # (B, G², z)
    return cells * valid.to(device=cells.device, dtype=cells.dtype).view(b, 1, 1)


class FaceTokens(nn.Module):
    """Face cells (B, grid², z) -> (B, grid², D) tokens: a linear embedding plus a learned position
    per cell (zero at init)."""

    def __init__(self, config: FaceIdentityConfig, z_dim: int, dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(z_dim, dim)
        self.pos = nn.Parameter(torch.zeros(config.grid**2, dim))

    def reset_parameters(self) -> None:
        """Positions at zero (the embedding follows Wan's linear rule, applied by the DiT)."""
        nn.init.zeros_(self.pos)

    def forward(self, reference: torch.Tensor, face_box: torch.Tensor) -> torch.Tensor:
        cells = face_cells(reference, face_box, self.config).to(self.embed.weight.dtype)
        return self.embed(cells) + self.pos


class FaceCrossAttnProcessor:
    """Every video token attends to its sample's face tokens; samples without a face get zeros."""

    def __call__(self, attn: "FaceCrossAttention", x: torch.Tensor, face: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        q = attn.norm_q(attn.to_q(x)).unflatten(-1, (attn.heads, -1))  # (B, L, H, Dh)
        k = attn.norm_k(attn.to_k(face)).unflatten(-1, (attn.heads, -1))  # (B, G², H, Dh)
        v = attn.to_v(face).unflatten(-1, (attn.heads, -1))
        mask = valid[:, None].expand(-1, face.shape[1])  # (B, G²)
        out = guarded_attention(q, k, v, mask, backend=attn.backend).flatten(2)  # (B, L, D)
        # zeroed after the projection too: its bias would otherwise reach samples without a face
        return attn.to_out(out.type_as(x)) * valid[:, None, None].to(x.dtype)


class FaceCrossAttention(Attention):
    """One block's face-focused cross-attention, output projection at zero.

    Args:
        dim: model width (face tokens are embedded to it once, by `FaceTokens`).
        heads: attention heads.
        eps: RMSNorm epsilon.
        backend: attention kernel.
    """

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6, backend: Backend = "sdpa") -> None:
        super().__init__(dim, heads, eps=eps, zero_init_out=True, processor=FaceCrossAttnProcessor(), backend=backend)

    def reset_parameters(self) -> None:
        """Zero output: neutral until trained."""
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, face: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) normalised video tokens; face (B, G², D); valid (B,) bool. Returns (B, L, D)."""
        return self.processor(self, x, face, valid)
