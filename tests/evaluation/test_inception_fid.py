"""FID Inception architecture, weight loading and FID through torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.fid import FIDAccumulator, FIDConfig, compute_fid
from evaluation.frechet import frechet_distance_from_features
from evaluation.inception import FIDInceptionFeatures, FIDInceptionV3, InceptionResizeConfig, load_fid_inception
from evaluation.tiny_weights import random_fid_inception
from evaluation.weights import WeightsError


def _frames(n: int, seed: int, size: int = 48) -> np.ndarray:
    """Smooth random 'video frames': 6x6 colour blocks upsampled, so blur and noise change them visibly."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, size=(n, 6, 6, 3))
    return np.repeat(np.repeat(base, size // 6, 1), size // 6, 2).astype(np.uint8)


@pytest.fixture(scope="module")
def extractor():
    # 192-d (pytorch-fid's second block): a 2048-d FID needs an eigendecomposition of a 2048x2048
    # product (~30 s on 2 shared cores) per value; the code path through torchmetrics is the same.
    return FIDInceptionFeatures(random_fid_inception(seed=0), dims=192)


@pytest.fixture(scope="module")
def pytorch_fid_with_our_weights(tmp_path_factory):
    """pytorch-fid's own InceptionV3, built by its own loader from our random state dict: its weights
    download (torch.hub.load_state_dict_from_url) is pointed at a local file through TORCH_HOME."""
    pf = pytest.importorskip("pytorch_fid.inception")
    import os

    net = random_fid_inception(seed=1)
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), home / "hub" / "checkpoints" / pf.FID_WEIGHTS_URL.rsplit("/", 1)[-1])
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        blocks = {dims: pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval() for dims in (64, 2048)}
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    return net, blocks


def test_features_equal_pytorch_fid_bit_for_bit(pytorch_fid_with_our_weights):
    net, theirs = pytorch_fid_with_our_weights
    images = _frames(3, seed=3, size=120)  # uint8 (N, H, W, 3), as decoded from a video
    with torch.no_grad():
        ref = theirs[2048](torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255.0)[0].flatten(1)
    # Through the FID accumulator, i.e. torchmetrics calling our extractor with the batch we build.
    seen = []
    extractor = FIDInceptionFeatures(net)
    extractor.register_forward_hook(lambda mod, args, out: seen.append(out))
    acc = FIDAccumulator(extractor, FIDConfig(batch_size=3))
    acc.add_images(images, real=True)
    assert seen[0].shape == (3, 2048)
    assert torch.equal(seen[0], ref)


def test_fid_equals_pytorch_fid_calculate_frechet_distance(pytorch_fid_with_our_weights):
    from pytorch_fid.fid_score import calculate_frechet_distance

    net, theirs = pytorch_fid_with_our_weights
    # 64-d stem features of 72 images each: full-rank covariances, so the square root is well defined.
    real, fake = _frames(72, seed=4, size=48), _frames(72, seed=5, size=48)
    with torch.no_grad():
        # pytorch-fid's get_activations: average-pool block outputs that are not 1x1.
        feats = [torch.nn.functional.adaptive_avg_pool2d(theirs[64](torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().float() / 255.0)[0], 1)
                 .flatten(1).double().numpy() for x in (real, fake)]
    expected = calculate_frechet_distance(feats[0].mean(0), np.cov(feats[0], rowvar=False), feats[1].mean(0), np.cov(feats[1], rowvar=False))
    ours = compute_fid([real], [fake], FIDInceptionFeatures(net, dims=64), FIDConfig(dims=64, batch_size=36))
    assert ours.fid == pytest.approx(expected, rel=1e-6)


def test_loads_state_dict_file_and_rejects_wrong_files(tiny_weights, tmp_path):
    ex = load_fid_inception(tiny_weights["fid_weights"])
    assert ex.num_features == 2048 and not ex.training
    assert load_fid_inception(tiny_weights["fid_weights"], dims=64)(torch.zeros(1, 3, 80, 80, dtype=torch.uint8)).shape == (1, 64)
    with pytest.raises(WeightsError, match=r"does not exist.*pt_inception"):
        load_fid_inception(tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="does not match the architecture"):
        load_fid_inception(tiny_weights["syncnet"])
    with pytest.raises(WeightsError, match="TorchScript archive, expected a state dict"):
        load_fid_inception(tiny_weights["i3d"])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth is not a torch state dict"):
        load_fid_inception(junk)


def test_resize_config_is_validated_and_described():
    with pytest.raises(ValueError, match="fid.resize.mode"):
        InceptionResizeConfig(mode="nearest")
    with pytest.raises(ValueError, match="fid.dims must be one of"):
        FIDConfig(dims=100)
    assert "bilinear to 299x299, antialias=False" in InceptionResizeConfig().describe()


def test_plugs_into_torchmetrics_and_agrees_with_frechet(extractor):
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _frames(5, seed=10), _frames(5, seed=11)
    metric = FrechetInceptionDistance(feature=extractor, normalize=False)
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2)  # noqa: E731
    metric.update(to_t(real), real=True)
    metric.update(to_t(fake), real=False)
    ours = frechet_distance_from_features(extractor(to_t(real)).double().numpy(), extractor(to_t(fake)).double().numpy())
    assert float(metric.compute()) == pytest.approx(ours, rel=1e-4)


def test_fid_zero_for_identical_sets_and_ordered_for_noise_and_blur(extractor):
    refs, clean = _frames(6, seed=20), _frames(6, seed=21)  # same distribution, other samples
    rng = np.random.default_rng(0)
    noised = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 255).astype(np.uint8)
    t = torch.from_numpy(clean).permute(0, 3, 1, 2).float()
    blurred = torch.nn.functional.avg_pool2d(t, 9, stride=1, padding=4, count_include_pad=False)
    blurred = blurred.round().byte().permute(0, 2, 3, 1).numpy()

    acc = FIDAccumulator(extractor, FIDConfig(batch_size=6))
    acc.add_images(refs, real=True)
    scores = {}
    for name, images in (("same", refs), ("clean", clean), ("noised", noised), ("blurred", blurred)):
        acc.reset_fake()
        acc.add_images(images, real=False)
        scores[name] = acc.compute().fid
    # Random weights: the ordering holds on features; it says nothing about perceived quality.
    assert abs(scores["same"]) < 1e-3 * scores["clean"]
    assert scores["clean"] < scores["noised"] and scores["clean"] < scores["blurred"]


def test_compute_fid_on_videos_reports_counts_and_resize(extractor):
    videos = [_frames(6, seed=30), _frames(6, seed=31)]
    res = compute_fid(videos, videos, extractor, FIDConfig(frame_stride=2, max_frames_per_video=2))
    assert res.num_real_images == res.num_fake_images == 4
    assert abs(res.fid) < 1e-2
    assert "bilinear" in res.resize and res.as_dict()["resize"] == res.resize
    assert res.dims == 192 and "not standard FID" in res.features
    with pytest.raises(ValueError, match="at least 2 real"):
        compute_fid([videos[0][:1]], videos, extractor)


def test_fid_inception_state_dict_keys_are_pytorch_fid_names():
    keys = set(FIDInceptionV3().state_dict())
    assert "Mixed_7c.branch_pool.conv.weight" in keys and "fc.weight" in keys
    assert not any(k.startswith("AuxLogits") for k in keys)
