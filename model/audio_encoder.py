"""wav2vec2 audio encoder wrapper: 16 kHz waveform -> the average of all hidden layers.

Takes an already-built transformers `Wav2Vec2Model` (loaders: train/pretrained.py). The backbone is
frozen by default (FantasyTalking / OmniAvatar keep wav2vec2 fixed). The layers are averaged with
fixed, equal weights: learned layer weights would have to train through every batch's encoder pass,
which `actavatar encode`'s cached features rule out (they were never trained nor saved; removed).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AudioEncoder(nn.Module):
    """Layer-averaged wav2vec2 features at `feature_hz` (50 Hz for 16 kHz input).

    Args:
        wav2vec2: a transformers `Wav2Vec2Model` (anything with `.config` and `output_hidden_states`).
        freeze: keep the backbone frozen and in eval mode (SpecAugment and dropout off).
        normalize: zero-mean / unit-variance per sample over its valid samples, as the
            wav2vec2-base-960h feature extractor (`do_normalize=True`) does.
        sample_rate: expected input rate.
    """

    def __init__(self, wav2vec2: nn.Module, *, freeze: bool = True, normalize: bool = True, sample_rate: int = 16000) -> None:
        super().__init__()
        self.wav2vec2 = wav2vec2
        self.freeze = freeze
        self.normalize = normalize
        self.sample_rate = sample_rate
        cfg = wav2vec2.config
        self.output_dim = int(cfg.hidden_size)
        self.feature_hz = sample_rate / math.prod(cfg.conv_stride)
        # group-norm feature extractors (wav2vec2-base) must not get an attention mask (HF docs)
        self._pass_mask = getattr(cfg, "feat_extract_norm", "group") == "layer"
        self.num_layers = int(cfg.num_hidden_layers) + 1  # embeddings + each layer
        if freeze:
            self.wav2vec2.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "AudioEncoder":
        super().train(mode)
        if self.freeze:
            self.wav2vec2.eval()
        return self

    def forward(self, waveform: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """waveform (B, N) at `sample_rate`; mask (B, N) bool valid samples -> (B, T, C) features."""
        x = waveform.float()
        if self.normalize:
            m = torch.ones_like(x) if mask is None else mask.float()
            n = m.sum(dim=1, keepdim=True).clamp(min=1.0)
            mean = (x * m).sum(dim=1, keepdim=True) / n
            var = (((x - mean) * m) ** 2).sum(dim=1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-7) * m
        kwargs = {"attention_mask": mask.long()} if (mask is not None and self._pass_mask) else {}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            dtype = next(self.wav2vec2.parameters()).dtype
            out = self.wav2vec2(x.to(dtype), output_hidden_states=True, **kwargs)
        hidden = torch.stack(out.hidden_states, dim=0)  # (L+1, B, T, C)
        return hidden.float().mean(dim=0).type_as(hidden)  # (B, T, C)
