"""model.motion in training: window intensities from pose.npy (media and latent shards), the branch
learns, motion dropout, models without the branch unchanged, and sampling with --motion-intensity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.config_loader import load_config
from dataset.pose import BODY, FACE, empty_pose, encode_pose, window_motion
from dataset.toy_corpus import toy_clip
from dataset.writer import ShardWriter, ShardWriterConfig
from tests.train.conftest import encoder_overrides, fast_overrides
from train.config import TrainConfig
from train.trainer import build_trainer

STAGE1 = "configs/train/stage1_debug.yaml"


def clip_pose(index: int, num_frames: int) -> np.ndarray:
    """Clip i's body moves at 0.15 * i clip heights per second from frame 10 on; the face is still."""
    pose = empty_pose(num_frames)
    t = np.clip(np.arange(num_frames) - 10, 0, None) / 25.0
    for k in BODY:
        pose[:, k] = np.stack([np.full(num_frames, 0.5), 0.2 + 0.15 * index * t, np.ones(num_frames)], axis=1)
    for k in FACE:
        pose[:, k] = (0.5, 0.3, 1.0)
    return pose


@pytest.fixture(scope="module")
def pose_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pose_corpus")
    with ShardWriter(out, ShardWriterConfig(max_samples=2)) as writer:
        for i in range(8):
            sample = toy_clip(i, seconds=1.2, width=48, height=48)
            sample["pose.npy"] = encode_pose(clip_pose(i, sample["json"]["video"]["num_frames"]))
            writer.write(sample)
    return out


@pytest.fixture(scope="module")
def pose_latents(tmp_path_factory, pose_corpus, tiny_encoders) -> Path:
    from train.encode_cli import main

    out = tmp_path_factory.mktemp("pose_latents")
    argv = ["--config", STAGE1, "--out", str(out), "--max-samples", "2", "--windows-per-clip", "2", "--window-stride", "16",
            f"data.shards={pose_corpus}", "data.buckets=[9x32x32]", *encoder_overrides(tiny_encoders)]
    assert main(argv) == 0
    return out


def _cfg(shards: Path, out: Path, steps: int, *extra: str, kind: str = "latents", tiny: Path | None = None) -> TrainConfig:
    more = encoder_overrides(tiny) if tiny is not None else []
    return load_config(TrainConfig, STAGE1, [f"data.shards={shards}", f"data.kind={kind}", "data.buckets=[9x32x32]",
                                             *fast_overrides(out, steps), *more, *extra])


def test_encode_stores_each_windows_motion(pose_latents):
    import tarfile

    windows = {}
    for shard in sorted((pose_latents / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".window.json"):
                    windows[member.name.split(".")[0]] = json.loads(tar.extractfile(member).read())
    assert len(windows) == 16
    for key, window in windows.items():
        i = next(j for j in range(8) if key.startswith(toy_clip(j, seconds=1.2, width=48, height=48)["__key__"]))
        expect = window_motion(clip_pose(i, 30), window["start_frame"], 9)
        assert window["motion"] == pytest.approx(list(expect), rel=2e-3, abs=1e-4)  # the member is float16
    assert any(w["motion"][1] > 0 for w in windows.values()) and any(w["motion"][1] == 0 for w in windows.values())


def test_media_batches_measure_the_window_and_old_corpora_give_nan(pose_corpus, corpus, tmp_path, tiny_encoders):
    batch = next(build_trainer(_cfg(pose_corpus, tmp_path / "a", 1, "model.motion=true", kind="media", tiny=tiny_encoders)).batches_from(0))
    assert batch["motion"].shape == (len(batch["key"]), 2) and torch.isfinite(batch["motion"]).all()
    old = next(build_trainer(_cfg(corpus, tmp_path / "b", 1, "model.motion=true", kind="media", tiny=tiny_encoders)).batches_from(0))
    assert torch.isnan(old["motion"]).all()  # no pose.npy, no annotation motion: unconditioned


def test_the_branch_learns_and_records_what_it_means(pose_latents, tmp_path):
    trainer = build_trainer(_cfg(pose_latents, tmp_path, 4, "model.motion=true", "stage.trainable=full", "ema.decay=0.0",
                                 "guidance.motion_drop=0.0", "optim.warmup_steps=0"))
    trainer.train()
    assert trainer.model.motion_embed.linear_2.weight.abs().sum() > 0  # off its zero init: it got gradients
    contract = json.loads((tmp_path / "final" / "conditioning.json").read_text())
    assert contract["motion"].startswith("dataset.pose v1") and contract["motion_drop"] == 0.0
    assert json.loads((tmp_path / "final" / "config.json").read_text())["motion"] == {"freq_dim": 64}


def test_dropping_every_sample_leaves_the_branch_untrained(pose_latents, tmp_path):
    trainer = build_trainer(_cfg(pose_latents, tmp_path, 3, "model.motion=true", "stage.trainable=full",
                                 "guidance.motion_drop=1.0", "optim.warmup_steps=0"))
    trainer.train()
    assert not trainer.model.motion_embed.linear_2.weight.any()


def test_models_without_the_branch_train_exactly_as_before(pose_latents, tmp_path):
    runs = []
    for name, drop in (("a", 0.0), ("b", 0.7)):  # motion_drop must not touch the noise stream without a branch
        build_trainer(_cfg(pose_latents, tmp_path / name, 3, f"guidance.motion_drop={drop}")).train()
        runs.append([json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()])
    assert runs[0] == runs[1]
    assert "motion" not in json.loads((tmp_path / "a" / "final" / "conditioning.json").read_text())


def test_sampling_with_motion_intensity(pose_latents, tiny_encoders, tmp_path):
    import dataclasses

    from dataset.errors import UserError
    from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
    from evaluation.sample_cli import parse_motion_intensity
    from evaluation.sampler import SamplerConfig

    trainer = build_trainer(_cfg(pose_latents, tmp_path / "run", 2, "model.motion=true", "stage.trainable=full"))
    trainer.train()
    with torch.no_grad():  # a branch that matters, so the intensity must reach the DiT to change the video
        torch.nn.init.normal_(trainer.model.motion_embed.linear_2.weight, std=0.5)
    from train.pretrained import save_dit

    save_dit(trainer.model, tmp_path / "run" / "ema")  # beside the run's conditioning.json
    base = SampleConfig(width=32, height=32, max_frames=9, sampler=SamplerConfig(steps=2, solver="euler"))
    videos = {}
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for name, intensity in (("none", ()), ("low", (0.0, 0.0)), ("high", parse_motion_intensity("1.0"))):
        cfg = dataclasses.replace(resolve_checkpoint(base, tmp_path / "run" / "ema", tiny_encoders), motion_intensity=intensity)
        frames, _ = AvatarSampler(cfg)({"base": "a puppet", "phases": []}, image, np.zeros(8000, np.float32), seed=3)
        videos[name] = frames.astype(np.int16)
    assert np.abs(videos["low"] - videos["high"]).max() > 0
    assert not np.array_equal(videos["none"], videos["high"])
    with pytest.raises(UserError, match="FACE or FACE,BODY"):
        parse_motion_intensity("fast")
    with pytest.raises(UserError, match="motion_intensity must be"):
        SampleConfig(motion_intensity=(0.1, 0.2, 0.3))


def test_a_damaged_pose_member_falls_back_to_the_annotation():
    from train.buckets import Bucket
    from train.clip_window import WindowPlan
    from train.data import sample_motion

    clip = toy_clip(0, seconds=1.2, width=48, height=48)
    ann = {**clip["json"], "motion": {"face_speed": 0.1, "face_intensity": 0.2, "body_speed": 0.3, "body_intensity": 0.2,
                                      "method": "test"}}
    plan = WindowPlan(Bucket.parse("9x32x32"), 0, False)
    good = encode_pose(clip_pose(3, ann["video"]["num_frames"]))
    assert sample_motion({"pose.npy": good}, ann, plan) == window_motion(clip_pose(3, 30).astype(np.float16), 0, 9)
    assert sample_motion({"pose.npy": b"not an array"}, ann, plan) == (0.2, 0.2)
    assert sample_motion({}, {**ann, "motion": None}, plan) is None
