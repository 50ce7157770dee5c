"""Per-frame audio attention: windows, invariance outside a frame's window, zero init."""

import pytest
import torch

from model.audio_attention import AudioAttentionConfig, AudioCrossAttention
from model.audio_windows import (
    AudioWindowConfig,
    audio_window_index,
    batch_audio_windows,
    feature_count,
    gather_windows,
)

D, HEADS, S = 16, 2, 4


def test_window_index_covers_frame_interval_plus_context():
    # 17 video frames at 25 fps -> 5 latent frames; 50 Hz features; context 0.04 s = 2 features
    index, valid = audio_window_index(5, 25.0, num_features=34)
    assert index.shape == valid.shape and index.shape[0] == 5
    # latent 1 = video frames 1..4 = [0.04, 0.2) s -> features 2..9, plus 2 each side -> 0..11
    assert index[1][valid[1]].tolist() == list(range(0, 12))
    # latent 0 = [0, 0.04) -> features 0..1 (+2 after; before 0 is invalid)
    assert index[0][valid[0]].tolist() == [0, 1, 2, 3]
    # no context: windows tile the timeline without overlap
    index, valid = audio_window_index(5, 25.0, 34, AudioWindowConfig(context_s=0.0))
    used = torch.cat([index[f][valid[f]] for f in range(5)])
    assert used.tolist() == list(range(34))
    with pytest.raises(ValueError, match="context_s"):
        AudioWindowConfig(context_s=-1)


def test_batch_windows_pad_short_audio():
    index, mask = batch_audio_windows(5, [25.0, 25.0], [34, 10])
    assert index.shape == mask.shape == (2, 5, index.shape[-1])
    assert mask[1, 4].sum() == 0 and mask[0, 4].sum() > 0  # audio shorter than video: no window
    assert feature_count(16000, [10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2]) == 49


def _layer() -> AudioCrossAttention:
    torch.manual_seed(2)
    layer = AudioCrossAttention(D, HEADS).eval()
    torch.nn.init.normal_(layer.to_out.weight)  # as after training; zero-init would hide everything
    return layer


def test_output_projection_starts_at_zero():
    layer = AudioCrossAttention(D, HEADS)
    index, mask = batch_audio_windows(3, [25.0], [20])
    out = layer(torch.randn(1, 3 * S, D), gather_windows(torch.randn(1, 20, D), index), mask)
    assert out.abs().max() == 0


def test_frames_only_see_their_window():
    layer = _layer()
    n_frames, n_feat = 5, 34
    index, mask = batch_audio_windows(n_frames, [25.0], [n_feat])
    x, feats = torch.randn(1, n_frames * S, D), torch.randn(1, n_feat, D)
    with torch.no_grad():
        base = layer(x, gather_windows(feats, index), mask)
        for j in (0, 10, 20, 33):
            moved = feats.clone()
            moved[0, j] += 5.0
            out = layer(x, gather_windows(moved, index), mask)
            delta = (out - base).abs().view(n_frames, S, D).amax(dim=(1, 2))
            sees = ((index[0] == j) & mask[0]).any(dim=-1)  # (F,) frames whose window holds feature j
            assert sees.any()
            assert (delta[~sees] == 0).all(), (j, delta)
            assert (delta[sees] > 1e-4).all(), (j, delta)


def test_frame_without_audio_gets_zero_update():
    layer = _layer()
    index, mask = batch_audio_windows(5, [25.0], [10])
    out = layer(torch.randn(1, 5 * S, D), gather_windows(torch.randn(1, 10, D), index), mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.view(5, S, D)[4], layer.to_out.bias.expand(S, D))


def test_config_validation():
    with pytest.raises(ValueError, match="audio_dim"):
        AudioAttentionConfig(audio_dim=0)
