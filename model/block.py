"""DiTBlock: adaLN-modulated self-attention, phase-aware text + per-frame audio cross-attention, FFN."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from model.attention import Attention
from model.audio_attention import AudioCrossAttention
from model.av_interaction import AudioVideoInteraction
from model.embeddings import FeedForward, FP32LayerNorm, Modulation
from model.face_identity import FaceCrossAttention
from model.phase_attention import PhaseCrossAttention, PhaseKeys

if TYPE_CHECKING:
    from model.dit import DiTConfig


class DiTBlock(nn.Module):
    """One Wan transformer block plus ActAvatar's audio branch and per-layer modality weights.

    The text (PACA) and audio cross-attentions read the same normalised tokens and are added in
    parallel, each scaled by this layer's progressive-alignment weight. With text weight 1 and the
    audio output projection at zero the block computes exactly Wan's block.

    Args:
        config: the DiT config.
        audio: give this block an audio cross-attention.
    """

    def __init__(self, config: "DiTConfig", *, audio: bool) -> None:
        super().__init__()
        dim, heads, eps = config.dim, config.num_heads, config.eps
        # 1. Self-attention
        self.norm1 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.self_attn = Attention(dim, heads, eps=eps, qk_norm=config.qk_norm, backend=config.attention_backend)
        # 2. Cross-attention: text with PACA (+ image tokens for I2V) and audio, on one normalised input
        self.norm2 = FP32LayerNorm(dim, eps, elementwise_affine=True) if config.cross_attn_norm else nn.Identity()
        self.cross_attn = PhaseCrossAttention(
            dim,
            heads,
            image_kv=config.image_dim is not None,
            eps=eps,
            config=config.phase,
            backend=config.attention_backend,
        )
        self.audio_attn = AudioCrossAttention(dim, heads, eps=eps, backend=config.attention_backend) if audio else None
        # 3. Feed-forward
        self.norm3 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.ffn = FeedForward(dim, config.ffn_dim)
        # shift/scale/gate for self-attention, then for the FFN (added to the timestep projection)
        self.modulation = Modulation(6, dim)
        # 4. Optional (ApoAvatar, `model.av_interaction`): the audio windows read this frame's tokens
        # before the audio cross-attention; registered last, zero output
        self.av_interaction = (AudioVideoInteraction(dim, heads, eps=eps, backend=config.attention_backend)
                               if audio and config.av_interaction else None)
        # 5. Optional (FantasyTalking, `model.face_identity`): video tokens attend to the reference's
        # face tokens; registered last, zero output
        self.face_attn = (FaceCrossAttention(dim, heads, eps=eps, backend=config.attention_backend)
                          if config.face_identity is not None else None)

    def forward(
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        text: torch.Tensor,
        *,
        text_weight: torch.Tensor,
        audio_weight: torch.Tensor,
        phase_keys: PhaseKeys | None = None,
        image: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        face: torch.Tensor | None = None,
        face_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, L, D); temb (B, L or 1, 6, D) timestep projection; text (B, Lk, D); phase_keys: PACA key
        selection (None = all text); audio (B, F, W, D) windows with audio_mask (B, F, W); face (B, G², D)
        face tokens with face_valid (B,)."""
        # (B, L|1, 6, D) -> six (B, L|1, D) in fp32
        shift, scale, gate, c_shift, c_scale, c_gate = self.modulation(temb).unbind(2)

        # 1. Self-attention
        h = (self.norm1(x.float()) * (1 + scale) + shift).type_as(x)
        x = (x.float() + self.self_attn(h, rope) * gate).type_as(x)

        # 2. Cross-attention (text via PACA, audio per frame), weighted per layer
        h = self.norm2(x.float()).type_as(x)
        text_out = self.cross_attn(h, text, phase_keys=phase_keys, image=image)
        x = x + (text_out * text_weight).type_as(x)
        if self.audio_attn is not None and audio is not None:
            if self.av_interaction is not None:  # video-aware audio windows for this block (zero update at init)
                audio = self.av_interaction(audio, h)
            x = x + (self.audio_attn(h, audio, audio_mask) * audio_weight).type_as(x)
        if self.face_attn is not None and face is not None:  # the reference face, read by every frame
            x = x + self.face_attn(h, face, face_valid).type_as(x)

        # 3. Feed-forward
        h = (self.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
        return (x.float() + self.ffn(h).float() * c_gate).type_as(x)
