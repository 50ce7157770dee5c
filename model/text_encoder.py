"""UMT5 text encoder wrapper: base + phase blocks encoded separately, then packed for PACA.

Takes an already-built tokenizer and transformers `UMT5EncoderModel` (loaders: train/pretrained.py).
Like Wan, each text is encoded with its attention mask and trimmed to its true length; packing
pads with zeros to the model's token budget (Wan: 512).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from model.phase_layout import PhaseLayout, TextBatch, collate_text_blocks


class TextEncoder(nn.Module):
    """Frozen UMT5 encoder + tokenizer.

    Args:
        tokenizer: a transformers tokenizer (callable returning input_ids / attention_mask).
        encoder: a transformers `UMT5EncoderModel` (or any module returning `last_hidden_state`).
        max_length: token budget of a packed sample (Wan: 512).
        max_base_tokens: truncation length of the base caption.
        max_phase_tokens: truncation length of each phase text; with the defaults 8 phases fit 512.
    """

    def __init__(
        self,
        tokenizer: Callable,
        encoder: nn.Module,
        *,
        max_length: int = 512,
        max_base_tokens: int = 256,
        max_phase_tokens: int = 32,
    ) -> None:
        super().__init__()
        for key, value in (("max_length", max_length), ("max_base_tokens", max_base_tokens), ("max_phase_tokens", max_phase_tokens)):
            if value <= 0:
                raise ValueError(f"text_encoder.{key} must be > 0, got {value}")
        self.tokenizer = tokenizer
        self.encoder = encoder.eval().requires_grad_(False)
        self.max_length = max_length
        self.max_base_tokens = min(max_base_tokens, max_length)
        self.max_phase_tokens = min(max_phase_tokens, max_length)

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode)
        self.encoder.eval()  # frozen: dropout stays off
        return self

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @torch.no_grad()
    def encode(self, texts: Sequence[str], max_tokens: int | None = None) -> list[torch.Tensor]:
        """Each text -> (n_i, C) features of its real tokens (EOS included, padding dropped)."""
        if not texts:
            return []
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            max_length=max_tokens or self.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (N, T, C)
        return [h[: int(n)] for h, n in zip(hidden, mask.sum(dim=1), strict=True)]

    def encode_base(self, text: str) -> torch.Tensor:
        """(n, C) features of one text encoded alone as a base block (the negative prompt of guidance)."""
        return self.encode([text], self.max_base_tokens)[0]

    def encode_layouts(self, layouts: Sequence[PhaseLayout]) -> TextBatch:
        """Encode every sample's base and phase texts and pack them (block ids, frame maps) for PACA."""
        bases = self.encode([lay.texts[0] for lay in layouts], self.max_base_tokens)
        phases = self.encode([t for lay in layouts for t in lay.texts[1:]], self.max_phase_tokens)
        blocks, start = [], 0
        for base, lay in zip(bases, layouts, strict=True):
            blocks.append([base, *phases[start : start + lay.num_phases]])
            start += lay.num_phases
        return collate_text_blocks(blocks, [lay.frame_phases for lay in layouts], total=self.max_length)

    def forward(self, layouts: Sequence[PhaseLayout]) -> TextBatch:
        return self.encode_layouts(layouts)
