"""Sync-C / Sync-D / AV offset: syncnet_python's definitions, offsets recovered from known shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from evaluation.sync import SyncConfig, aggregate_sync, calc_pdist, offset_scores, score_features, sync_scores
from evaluation.syncnet import SyncNet, load_syncnet
from evaluation.weights import WeightsError


def syncnet_python_calc_pdist(feat1, feat2, vshift):
    # syncnet_python SyncNetInstance.calc_pdist, verbatim in behaviour (loop over windows).
    win = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    return [torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(win, 1), feat2p[i : i + win, :]) for i in range(len(feat1))]


def test_calc_pdist_equals_the_reference_loop():
    g = torch.Generator().manual_seed(0)
    lip, aud = torch.randn(37, 24, generator=g), torch.randn(37, 24, generator=g)
    ref = torch.stack(syncnet_python_calc_pdist(lip, aud, 15))
    torch.testing.assert_close(calc_pdist(lip, aud, 15), ref, rtol=0, atol=0)


def test_figures_follow_the_syncnet_python_definitions():
    g = torch.Generator().manual_seed(1)
    lip, aud = torch.randn(30, 8, generator=g), torch.randn(30, 8, generator=g)
    res = offset_scores(lip, aud, vshift=15)
    mdist = torch.mean(torch.stack(syncnet_python_calc_pdist(lip, aud, 15), 1), 1)
    minval, minidx = torch.min(mdist, 0)
    assert res.offset == 15 - int(minidx)
    assert res.min_dist == pytest.approx(float(minval))
    assert res.confidence == pytest.approx(float(torch.median(mdist) - minval))
    assert len(res.mdist) == 31 and res.num_windows == 30


@pytest.mark.parametrize("shift", [-4, 0, 3, 15])
def test_offset_recovered_from_embeddings_with_a_known_shift(shift):
    # Audio window u carries the lip content of window u - shift: the audio lags the lips by `shift`
    # frames, which syncnet_python reports as offset -shift (offset > 0: audio leads the lips).
    g = torch.Generator().manual_seed(2)
    n = 60
    codes = torch.randn(n + 40, 16, generator=g)
    lip = codes[20 : 20 + n]
    aud = codes[20 - shift : 20 - shift + n]
    res = offset_scores(lip, aud, vshift=15)
    assert res.offset == -shift
    # At the true offset only the |shift| windows facing the zero padding add distance.
    facing_padding = lip[n - shift :] if shift > 0 else lip[: -shift]  # audio index i + shift outside [0, n)
    expected = float(facing_padding.norm(dim=1).sum()) / n
    assert res.min_dist == pytest.approx(expected, abs=1e-4)
    assert res.confidence > 1.0


class CodeNet(nn.Module):
    """Stand-in SyncNet: lip embedding = the 13-d code written into the first frame of a window;
    audio embedding = the first MFCC column of a window. Exercises the real window slicing."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 5, H, W)
        return x[:, 0, 0, 0, :13]

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 13, 20)
        return x[:, 0, :, 0]


@pytest.mark.parametrize("lag", [0, 2, -5])
def test_window_slicing_recovers_a_known_av_offset(lag):
    g = torch.Generator().manual_seed(3)
    frames = 50
    codes = torch.randn(frames + 40, 13, generator=g)
    video = torch.zeros(3, frames, 4, 16)
    video[0, :, 0, :13] = codes[20 : 20 + frames]
    cc = torch.randn(13, 4 * frames, generator=g)
    # MFCC step 4v (the first column of audio window v) holds the code of video frame v - lag:
    # the audio lags the video by `lag` frames, reported as offset -lag.
    cc[:, 0::4] = codes[20 - lag : 20 - lag + frames].T
    res = score_features(CodeNet(), video, cc, frames, SyncConfig(batch_size=7))
    assert res.num_windows == frames - 5  # syncnet_python stops at min_length - 5
    assert res.offset == -lag
    assert res.min_dist == pytest.approx(0.0, abs=1e-4) if lag == 0 else res.min_dist < min(res.mdist[:10] + res.mdist[21:])


def test_random_syncnet_end_to_end_on_a_short_clip_with_face_hook():
    torch.manual_seed(0)
    net = SyncNet().eval()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(12, 96, 96, 3), dtype=np.uint8)
    audio = (0.1 * rng.normal(size=12 * 640 + 100)).astype(np.float32)
    calls = []

    def crop_faces(x):
        calls.append(x.shape)
        return x[:, 8:88, 8:88]

    res = sync_scores(net, frames, audio, 16000, crop_faces=crop_faces, cfg=SyncConfig(batch_size=4))
    assert calls == [(12, 96, 96, 3)]
    assert res.num_windows == 12 - 5 and -15 <= res.offset <= 15
    assert np.isfinite([res.min_dist, res.confidence]).all() and res.confidence >= 0
    with pytest.raises(ValueError, match="16 kHz"):
        sync_scores(net, frames, audio, 8000)
    with pytest.raises(ValueError, match="at least 6 frames"):
        sync_scores(net, frames[:5], audio, 16000)


def test_syncnet_state_dict_round_trip_and_old_checkpoints(tmp_path, tiny_weights):
    net = load_syncnet(tiny_weights["syncnet"])
    assert not net.training
    # torch < 0.4.1 checkpoints (syncnet_v2.model) have no num_batches_tracked buffers.
    state = {k: v for k, v in torch.load(tiny_weights["syncnet"], weights_only=True).items() if "num_batches_tracked" not in k}
    old = tmp_path / "syncnet_v2.model"
    torch.save(state, old)
    reloaded = load_syncnet(old)
    x = torch.randn(2, 1, 13, 20)
    torch.testing.assert_close(reloaded.forward_aud(x), net.forward_aud(x))
    del state["netfclip.0.weight"]
    torch.save(state, old)
    with pytest.raises(WeightsError, match=r"1 missing \(e.g. netfclip.0.weight\).*syncnet_v2.model"):
        load_syncnet(old)


def test_aggregate_is_the_mean_over_clips():
    g = torch.Generator().manual_seed(4)
    results = [offset_scores(torch.randn(20, 4, generator=g), torch.randn(20, 4, generator=g), 5) for _ in range(3)]
    agg = aggregate_sync(results)
    assert agg["sync_c"] == pytest.approx(np.mean([r.confidence for r in results]))
    assert agg["sync_d"] == pytest.approx(np.mean([r.min_dist for r in results]))
    assert agg["num_clips"] == 3
    with pytest.raises(ValueError, match="sync.vshift"):
        SyncConfig(vshift=0)


def test_tiny_syncnet_embeddings_vary_with_the_input(tiny_weights):
    # PyTorch's default init gave nearly the same audio embedding for every window (relative std ~2e-2);
    # the tiny weights must let a Sync test tell windows apart.
    net = load_syncnet(tiny_weights["syncnet"])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        lip = net.forward_lip(torch.rand(8, 3, 5, 224, 224, generator=g) * 255)
        aud = net.forward_aud(torch.randn(8, 1, 13, 20, generator=g) * 5)
    for emb in (lip, aud):
        assert (emb.std(0).mean() / emb.abs().mean()) > 0.1
