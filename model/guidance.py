"""The unconditional inputs of classifier-free guidance, shared by training dropout and sampling.

Guidance (evaluation/sampler.py) mixes v(∅), v(T) and v(T, A). The model can only give meaningful
v(∅) / v(T) if it saw exactly those inputs in training, so the trainer's condition dropout and the
sampler's guidance branches build them with the same function, `unconditional_inputs`:
  dropped text  = the negative prompt's encoding as the base block alone (no phases)
  dropped audio = zero audio features (the sampler's audio_uncond="zeros")
"""

from __future__ import annotations

import torch

from model.phase_layout import TextBatch, block_ids_from_lengths

AUDIO_UNCOND = "zeros"  # what dropped audio is, recorded in a checkpoint's conditioning.json


def unconditional_inputs(
    text: TextBatch, audio: torch.Tensor | None, negative: torch.Tensor, *, drop_text: torch.Tensor, drop_audio: torch.Tensor
) -> tuple[TextBatch, torch.Tensor | None]:
    """Replace the conditions of the samples flagged in `drop_text` / `drop_audio`.

    Args:
        text: packed PACA text of B samples (tokens (B, L, C), block ids (B, L), frame map (B, F, 1 + P)).
        audio: (B, Ta, C) audio features, or None (no audio branch).
        negative: (n, C) encoder features of the negative prompt's base block (`TextEncoder.encode_base`).
        drop_text: (B,) bool: tokens = negative then zeros, block ids 0 / -1, frame map base column only.
        drop_audio: (B,) bool: audio features = 0.
    Returns:
        (text, audio) of the same shapes; rows not flagged are unchanged.
    """
    b, total, _ = text.tokens.shape
    if negative.ndim != 2 or negative.shape[1] != text.tokens.shape[2]:
        raise ValueError(f"negative must be (n, {text.tokens.shape[2]}) features, got shape {tuple(negative.shape)}")
    if drop_text.shape != (b,) or drop_audio.shape != (b,):
        raise ValueError(f"drop_text and drop_audio must be ({b},), got {tuple(drop_text.shape)} and {tuple(drop_audio.shape)}")
    n = negative.shape[0]
    if n > total:
        raise ValueError(f"the negative prompt has {n} tokens, more than the text budget of {total}")
    neg_tokens = text.tokens.new_zeros(total, text.tokens.shape[2])  # (L, C)
    neg_tokens[:n] = negative.to(neg_tokens)
    neg_ids = block_ids_from_lengths([n], total).to(text.block_ids.device)  # (L,)
    neg_map = torch.zeros_like(text.frame_phases[0])  # (F, 1 + P): base visible, no phase
    neg_map[:, 0] = True
    dt = drop_text.to(text.tokens.device, torch.bool)
    dropped = TextBatch(
        tokens=torch.where(dt[:, None, None], neg_tokens, text.tokens),
        block_ids=torch.where(dt[:, None], neg_ids, text.block_ids),
        frame_phases=torch.where(dt[:, None, None], neg_map, text.frame_phases),
    )
    if audio is None:
        return dropped, None
    da = drop_audio.to(audio.device, torch.bool)
    return dropped, torch.where(da[:, None, None], torch.zeros_like(audio), audio)
