"""`actavatar models train-vae`: a compact Wan VAE trained on a corpus, saved in the diffusers format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from train.vae_train import VaeArchConfig, VaeTrainConfig, reconstruction_loss, truth_labels


def test_arch_is_wan_layout_with_compact_latents() -> None:
    arch = VaeArchConfig(z_dim=8, base_dim=8)
    assert arch.spatial_stride == 8
    vae = arch.build().eval()
    x = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        y = vae.decode(z).sample
    assert z.shape == (2, 8, 3, 4, 4)  # latent frame 0 = frame 0, then 4 frames each; 8x spatially
    assert y.shape == x.shape
    assert vae.config.scale_factor_spatial == 8 and vae.config.scale_factor_temporal == 4
    with pytest.raises(ValueError, match="vae.dim_mult needs >= 3 stages"):
        VaeArchConfig(dim_mult=(1, 2))


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"frames": 10}, "frames must be 1 + 4k and >= 5, got 10"),
    ({"short_frames": 3}, "short_frames must be 1 + 4k and >= 5, got 3"),
    ({"size": 60}, "size must be a multiple of the VAE's spatial stride 8, got 60"),
    ({"window_steps": 5, "steps": 4}, "window_steps must be in [0, steps=4], got 5"),
    ({"motion_weight": -1.0}, "motion_weight must be >= 0, got -1.0"),
])
def test_config_errors_name_key_and_value(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        VaeTrainConfig(data="d", out="o", **kwargs)
    assert needle in str(info.value)


def test_loss_weighs_saturated_and_moving_pixels() -> None:
    x = torch.zeros(1, 3, 5, 4, 4)
    x[:, 1, :, 0, 0] = 1.0  # a saturated green pixel, still
    x[:, :, 2, 3, 3] = 0.5  # a grey pixel that flashes in one frame

    def loss_with_error_at(t: int, h: int, w: int) -> float:
        y = x.clone()
        y[0, 0, t, h, w] += 0.1
        return float(reconstruction_loss(x, y, 8.0, 8.0))

    grey_still = loss_with_error_at(0, 1, 1)
    assert loss_with_error_at(0, 0, 0) > grey_still and loss_with_error_at(2, 3, 3) > grey_still
    assert float(reconstruction_loss(x, x + 0.1, 0.0, 0.0)) == pytest.approx(0.1 + 0.01)


def test_truth_labels_from_labelled_phases() -> None:
    ann = {"video": {"fps": 25.0}, "caption": {"phases": [{"start_s": 0.0, "end_s": 0.2, "label": "idle"},
                                                         {"start_s": 0.2, "end_s": 0.4, "label": "nod"}]}}
    assert truth_labels(ann, 12) == ["idle"] * 5 + ["nod"] * 5 + ["?"] * 2
    assert truth_labels({"video": {"fps": 25.0}, "caption": {"phases": [{"start_s": 0, "end_s": 1, "text": "x"}]}}, 5) is None


def test_train_export_load_and_resume(tmp_path: Path) -> None:
    from dataset.toy_corpus import write_toy_corpus
    from train.pretrained import load_vae
    from train.vae_cli import main

    corpus = tmp_path / "corpus"
    write_toy_corpus(corpus, 4, seconds=1.2, size=32, max_samples=2)
    out = tmp_path / "vae"
    args = ["train-vae", "--data", str(corpus), "--out", str(out), "--steps", "3", "--window-steps", "1", "--frames", "17",
            "--size", "32", "--base-dim", "8", "--z-dim", "4", "--patch-size", "1", "--no-progress", "short_batch_size=2",
            "holdout_sources=1"]
    assert main(args) == 0
    report = json.loads((out / "vae_report.json").read_text())
    assert report["steps"] == 3 and report["latent"] == {"z_dim": 4, "stride": [4, 4, 4], "values_per_dit_token_1x2x2": 16,
                                                              "values_per_16px_token": 64}
    assert report["test_clips"] == 1 and report["train_clips"] == 3 and report["reconstruction"]["psnr_db"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["_class_name"] == "AutoencoderKLWan" and cfg["latents_std"] != [1.0] * 4  # measured statistics
    vae = load_vae(str(out))
    z = vae.encode(torch.zeros(1, 3, 17, 32, 32))
    assert z.shape == (1, 4, 5, 8, 8) and vae.spatial_stride == 4 and vae.temporal_stride == 4  # --patch-size 1
    # a rerun with more steps resumes from train_state.pt
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert int(state["step"]) == 3
    assert main([*args[:5], "--steps", "5", *args[7:]]) == 0
    assert json.loads((out / "vae_report.json").read_text())["steps"] == 5
    assert len(json.loads((out / "vae_report.json").read_text())["loss_curve"]) == 1


def _pose_with_mouth(frames: int, mouth_xy: tuple[float, float]) -> np.ndarray:
    from dataset.pose import KEYPOINTS

    pose = np.zeros((frames, len(KEYPOINTS), 3), np.float32)
    pose[..., :2] = np.nan
    pose[:, KEYPOINTS.index("mouth")] = (*mouth_xy, 1.0)
    return pose


def test_mouth_track_follows_the_mouth_into_the_cover_crop() -> None:
    from dataset.pose import encode_pose
    from train.vae_train import mouth_mask, mouth_track

    # a 128x64 clip cover-cropped to 32x32: scaled by 0.5, 16 pixels cut from each side
    ann = {"video": {"width": 128, "height": 64, "num_frames": 3}, "face": {"bbox": [0.4, 0.25, 0.6, 0.75]}}
    pose = _pose_with_mouth(3, (0.5, 0.5))
    pose[2, 3] = (np.nan, np.nan, 0.0)  # the last frame lost its mouth
    track = mouth_track(encode_pose(pose), ann, 32)
    # the face box becomes 0.4 x 0.5 of the crop; the lip box is 0.6 x 0.4 of it, centred on the mouth
    assert track[:2] == pytest.approx(np.array([[0.38, 0.4, 0.62, 0.6]] * 2), abs=2e-3)
    assert np.isnan(track[2]).all()
    mask = mouth_mask(track[None], 32)
    assert mask.shape == (1, 1, 3, 32, 32) and mask[0, 0, 2].sum() == 0
    ys, xs = np.nonzero(mask[0, 0, 0].numpy())
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (13, 18, 12, 19)
    assert mouth_track(None, ann, 32) is None
    assert mouth_track(b"not an npy", ann, 32, key="k") is None


def test_loss_weighs_the_mouth_box() -> None:
    x = torch.zeros(1, 3, 1, 4, 4)
    mouth = torch.zeros(1, 1, 1, 4, 4)
    mouth[..., 2:, 1:3] = 1.0

    def loss_with_error_at(h: int, w: int, weight: float) -> float:
        y = x.clone()
        y[0, 0, 0, h, w] = 0.5
        return float(reconstruction_loss(x, y, 0.0, 0.0, mouth, weight))

    outside = loss_with_error_at(0, 0, 9.0)
    assert loss_with_error_at(3, 1, 9.0) == pytest.approx(10 * outside)
    assert loss_with_error_at(3, 1, 0.0) == pytest.approx(outside)


def test_train_with_a_mouth_weight_reports_the_mouth_psnr(tmp_path: Path) -> None:
    from dataset.pose import encode_pose
    from dataset.toy_corpus import toy_clip
    from dataset.writer import ShardWriter, ShardWriterConfig
    from train.vae_cli import main

    corpus = tmp_path / "corpus"
    with ShardWriter(corpus, ShardWriterConfig(max_samples=2)) as writer:
        for i in range(4):
            sample = toy_clip(i, seconds=1.2, width=32, height=32)
            if i != 3:  # one clip without pose.npy: it trains without a mouth box
                sample["pose.npy"] = encode_pose(_pose_with_mouth(sample["json"]["video"]["num_frames"], (0.5, 0.6)))
            writer.write(sample)
    out = tmp_path / "vae"
    assert main(["train-vae", "--data", str(corpus), "--out", str(out), "--steps", "2", "--window-steps", "1",
                 "--frames", "17", "--size", "32", "--base-dim", "8", "--z-dim", "4", "--mouth-weight", "8",
                 "--no-progress", "short_batch_size=2", "holdout_sources=0"]) == 0
    report = json.loads((out / "vae_report.json").read_text())
    assert report["config"]["mouth_weight"] == 8.0
    assert 0 < report["reconstruction"]["mouth_psnr_db"] < 100
