"""I3D TorchScript loading (the real `torch.jit.load` path) and FVD with StyleGAN-V's protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.frechet import frechet_distance, gaussian_stats
from evaluation.fvd import FVDConfig, I3DFeatures, compute_fvd, fvd_from_features, fvd_result, load_i3d, video_clips
from evaluation.i3d import InceptionI3d, export_torchscript
from evaluation.weights import WeightsError


def _videos(n: int, seed: int, frames: int = 16, size: int = 32, shift: float = 0.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.uniform(40, 200, size=(1, 4, 4, 3)) + shift
        motion = np.linspace(0, 30, frames)[:, None, None, None]
        out.append(np.clip(np.repeat(np.repeat(base + motion, size // 4, 1), size // 4, 2), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return load_i3d(tiny_weights["i3d"])


def test_torchscript_export_loads_with_stylegan_v_call_signature(tmp_path):
    torch.manual_seed(0)
    model = InceptionI3d(width_div=8).eval()
    path = tmp_path / "i3d_torchscript.pt"
    export_torchscript(model, str(path))
    loaded = load_i3d(path)
    clips = torch.randint(0, 256, (2, 3, 16, 40, 56), dtype=torch.uint8)
    with torch.no_grad():
        resized = loaded(clips[:1], rescale=True, resize=True, return_features=True)  # the FVD call
        logits = loaded(clips, rescale=True, resize=False, return_features=True)
        probs = loaded(clips, rescale=True, resize=False, return_features=False)
        eager = model(clips, rescale=True, resize=False, return_features=True)
    assert resized.shape == (1, 400) and logits.shape == (2, 400)
    torch.testing.assert_close(logits, eager)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_full_size_i3d_has_the_real_shape():
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    assert 12_000_000 < sum(p.numel() for p in model.parameters()) < 13_500_000
    with torch.no_grad():
        out = model(torch.randint(0, 256, (1, 3, 16, 224, 224), dtype=torch.uint8), rescale=True, resize=False, return_features=True)
    assert out.shape == (1, 400) and torch.isfinite(out).all()


def test_load_i3d_errors_name_the_file(tmp_path, tiny_weights):
    with pytest.raises(WeightsError, match=r"missing\.pt does not exist.*i3d_torchscript\.pt"):
        load_i3d(tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="not a loadable TorchScript archive"):
        load_i3d(tiny_weights["syncnet"])  # a torch.save zip, not TorchScript
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    with pytest.raises(WeightsError, match="not a zip file"):
        load_i3d(bad)


def test_clips_are_consecutive_strided_and_short_videos_are_skipped():
    video = np.arange(40)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3).astype(np.uint8)
    clips = video_clips(video, FVDConfig(num_frames=10, clips_per_video=3))
    assert [c[0, 0, 0, 0] for c in clips] == [0, 10, 20]
    strided = video_clips(video, FVDConfig(num_frames=10, frame_stride=2, clips_per_video=2))
    assert len(strided) == 2 and list(strided[1][:3, 0, 0, 0]) == [20, 22, 24]
    assert video_clips(video[:9], FVDConfig(num_frames=10)) == []


def test_fvd_uses_biased_covariance_like_stylegan_v():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.5
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa = a.T @ a / 6 - np.outer(mu_a, mu_a)  # StyleGAN-V FeatureStats.get_mean_cov
    sb = b.T @ b / 6 - np.outer(mu_b, mu_b)
    assert fvd_from_features(a, b) == pytest.approx(frechet_distance(mu_a, sa, mu_b, sb), rel=1e-9)
    assert fvd_from_features(a, b) != pytest.approx(frechet_distance(*gaussian_stats(a), *gaussian_stats(b)), rel=1e-3)


def _features(detector, videos, cfg):
    acc = I3DFeatures(detector, cfg)
    for v in videos:
        acc.add_video(v)
    return acc.result()


def test_fvd_zero_for_identical_sets_larger_for_shifted(detector):
    cfg = FVDConfig(num_frames=16, batch_size=4)
    real, other, shifted = _videos(3, seed=1), _videos(3, seed=2), _videos(3, seed=2, shift=60.0)
    res = compute_fvd(real + [real[0][:5]], other, detector, cfg)  # one video too short for a clip
    assert (res.num_real_clips, res.num_fake_clips, res.num_frames, res.fps, res.skipped_short_videos) == (3, 3, 16, 25.0, 1)
    real_f, shifted_f = _features(detector, real, cfg), _features(detector, shifted, cfg)
    assert real_f.shape == (3, 400)
    # 3 clips in 400-d: singular covariances, so the pytorch-fid eps regularisation may leave ~1e-3.
    assert abs(fvd_from_features(real_f, real_f)) < 1e-2 * res.fvd
    assert fvd_from_features(real_f, shifted_f) > res.fvd > 0
    with pytest.raises(ValueError, match="at least 2 real and 2 generated clips"):
        compute_fvd(real[:1], real[:2], detector, cfg)


def test_config_validation_names_key():
    with pytest.raises(ValueError, match="fvd.num_frames must be >= 10, got 4"):
        FVDConfig(num_frames=4)


class FirstPixel(torch.nn.Module):
    """Stand-in detector: the first pixel of every frame of a clip (B, 3, T, H, W) -> (B, T)."""

    def forward(self, x, rescale=True, resize=True, return_features=True):
        return x[:, 0, :, 0, 0].float()


def _numbered(frames: int) -> np.ndarray:
    return np.arange(frames)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3).astype(np.uint8)


def test_reference_clips_start_at_seeded_random_offsets_generated_clips_at_zero():
    cfg = FVDConfig(num_frames=10, frame_stride=2, seed=3)
    starts = {}
    for seed in (3, 4):
        real = I3DFeatures(FirstPixel(), FVDConfig(num_frames=10, frame_stride=2, seed=seed), real=True)
        for _ in range(40):
            real.add_video(_numbered(40))
        feats = real.result()
        assert (np.diff(feats, axis=1) == 2).all()  # consecutive, strided
        starts[seed] = feats[:, 0]
    # StyleGAN-V: offsets uniform in [0, T - n*stride + stride - 1] = [0, 21]; seeded.
    assert starts[3].min() >= 0 and starts[3].max() <= 21 and len(set(starts[3])) > 5
    again = I3DFeatures(FirstPixel(), cfg, real=True)
    for _ in range(40):
        again.add_video(_numbered(40))
    assert (again.result()[:, 0] == starts[3]).all() and not (starts[3] == starts[4]).all()
    fake = I3DFeatures(FirstPixel(), cfg)  # generated: always frame 0
    fake.add_video(_numbered(40))
    first = I3DFeatures(FirstPixel(), FVDConfig(num_frames=10, start="0"), real=True)
    first.add_video(_numbered(40))
    assert fake.result()[0, 0] == 0 and first.result()[0, 0] == 0
    with pytest.raises(ValueError, match="fvd.start must be one of"):
        FVDConfig(start="middle")


def test_max_clips_caps_each_side_first_in_order_and_is_reported():
    cfg = FVDConfig(num_frames=10, start="0", max_clips=3)
    acc = I3DFeatures(FirstPixel(), cfg, real=True)
    for i in range(5):
        acc.add_video(_numbered(10) + i)
    assert list(acc.result()[:, 0]) == [0, 1, 2] and acc.capped == 2
    fake = I3DFeatures(FirstPixel(), cfg)
    for i in range(4):
        fake.add_video(_numbered(10) + 10 * i)
    res = fvd_result(acc, fake, cfg)
    assert (res.num_real_clips, res.num_fake_clips, res.capped_clips) == (3, 3, 3)
    assert res.start == "every clip at frame 0"
    assert "random offset (seed 0)" in FVDConfig().describe_start() and FVDConfig().max_clips == 2048


def test_tiny_i3d_features_vary_and_fvd_ranks_a_near_copy_below_a_different_set(detector):
    cfg = FVDConfig(num_frames=16, start="0", batch_size=4)
    real = _videos(6, seed=11)
    rng = np.random.default_rng(0)
    near = [np.clip(v.astype(int) + rng.integers(-2, 3, v.shape), 0, 255).astype(np.uint8) for v in real]
    other = _videos(6, seed=12, shift=-30.0)
    feats = _features(detector, real, cfg)
    # PyTorch's default init gave every clip the same logits (covariance trace ~1e-12).
    assert np.trace(np.cov(feats.T)) > 1e-3 * np.mean(feats**2) * feats.shape[1]
    assert compute_fvd(real, near, detector, cfg).fvd < 0.1 * compute_fvd(real, other, detector, cfg).fvd
