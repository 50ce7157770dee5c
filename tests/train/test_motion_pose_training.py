"""model.motion, model.pose and model.refocus in training: window intensities and keypoints from
pose.npy and the audio's per-frame intensity (media and latent shards), the branches learn, their
dropout, models without them unchanged, and sampling with --motion-intensity and --pose."""

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
    # the toy clips' audio is a 0.2-amplitude sine: RMS 0.2 / sqrt(2) = -17.0 dBFS -> (60 - 17) / 50 in every frame
    for window in windows.values():
        assert window["audio_intensity"] == pytest.approx([0.8598] * 9, abs=0.01)


def test_encode_stores_each_windows_keypoints_in_the_cropped_frame(pose_latents):
    import io
    import tarfile

    from dataset.pose import decode_pose

    found = 0
    for shard in sorted((pose_latents / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, data in members.items():
            if not name.endswith(".window.json"):
                continue
            key, start = name.split(".")[0], json.loads(data)["start_frame"]
            pose = decode_pose(members[f"{key}.pose.npy"], 9)
            i = next(j for j in range(8) if key.startswith(toy_clip(j, seconds=1.2, width=48, height=48)["__key__"]))
            # a square 48 px clip in a square 32 px bucket: scaled, not cropped, so the normalised keypoints stay
            np.testing.assert_allclose(pose, clip_pose(i, 30)[start : start + 9], atol=1e-3)
            found += 1
    assert found == 16
    assert np.load(io.BytesIO(members[f"{key}.pose.npy"]), allow_pickle=False).dtype == np.float16


def test_window_keypoints_follow_the_training_crop():
    from dataset.pose import crop_pose
    from train.buckets import Bucket
    from train.clip_window import WindowPlan, pose_in_window

    pose = empty_pose(20)
    pose[:, 0] = (0.5, 0.5, 1.0)  # centre: stays the centre
    pose[:, 1] = (0.1, 0.5, 1.0)  # near the left edge of a 64x32 clip: cropped away by a square bucket
    pose[:, 2] = (0.75, 0.25, 0.9)
    ann = {"video": {"width": 64, "height": 32, "num_frames": 20}}
    out = pose_in_window(pose, ann, WindowPlan(Bucket.parse("9x16x16"), 4, False))
    assert out.shape == (9, 57, 3)
    np.testing.assert_allclose(out[:, 0], [[0.5, 0.5, 1.0]] * 9)
    assert (out[:, 1, 2] == 0).all() and np.isnan(out[:, 1, :2]).all()
    np.testing.assert_allclose(out[0, 2], [(0.75 * 64 * 0.5 - 8) / 16, 0.25, 0.9])  # scale 0.5, 8 px cut left
    np.testing.assert_array_equal(crop_pose(pose, 32, 64, 1.0, 0, 0, 32, 64)[:, :3], pose[:, :3])  # identity crop


def test_media_batches_measure_the_window_and_old_corpora_give_nan(pose_corpus, corpus, tmp_path, tiny_encoders):
    batch = next(build_trainer(_cfg(pose_corpus, tmp_path / "a", 1, "model.motion=true", kind="media", tiny=tiny_encoders)).batches_from(0))
    assert batch["motion"].shape == (len(batch["key"]), 2) and torch.isfinite(batch["motion"]).all()
    old = next(build_trainer(_cfg(corpus, tmp_path / "b", 1, "model.motion=true", kind="media", tiny=tiny_encoders)).batches_from(0))
    assert torch.isnan(old["motion"]).all()  # no pose.npy, no annotation motion: unconditioned
    assert batch["pose"].shape == (len(batch["key"]), 9, 57, 3) and (batch["pose"][..., :15, 2] == 1).all()
    assert (old["pose"][..., 2] == 0).all()  # pose-free
    assert batch["audio_intensity"].shape == (len(batch["key"]), 9)
    torch.testing.assert_close(batch["audio_intensity"], torch.full_like(batch["audio_intensity"], 0.8598), atol=0.01, rtol=0)

def test_the_branch_learns_and_records_what_it_means(pose_latents, tmp_path):
    trainer = build_trainer(_cfg(pose_latents, tmp_path, 4, "model.motion=true", "stage.trainable=full", "ema.decay=0.0",
                                 "guidance.motion_drop=0.0", "optim.warmup_steps=0"))
    trainer.train()
    assert trainer.model.motion_embed.linear_2.weight.abs().sum() > 0  # off its zero init: it got gradients
    contract = json.loads((tmp_path / "final" / "conditioning.json").read_text())
    assert contract["motion"].startswith("dataset.pose v1") and contract["motion_drop"] == 0.0
    assert json.loads((tmp_path / "final" / "config.json").read_text())["motion"] == {"freq_dim": 64}


def test_the_pose_refocus_and_audio_video_interaction_branches_learn(pose_latents, tmp_path):
    # (a fresh debug DiT has Wan's zero head, so a full run: 3 steps, since the cosine schedule's last
    # step has lr 0 and the audio attention's zero output must move before the interaction gets gradients)
    trainer = build_trainer(_cfg(pose_latents, tmp_path, 3, "model.pose=true", "model.av_interaction=true", "model.refocus=true",
                                 "model.face_identity=true", "ema.decay=0.0", "guidance.pose_drop=0.0", "optim.warmup_steps=0"))
    trainer.train()
    # face-focused identity: the windows' first latent frame over the clip's face box reaches every block
    assert all(b.face_attn.to_out.weight.detach().abs().sum() > 0 for b in trainer.model.blocks)
    assert trainer.model.pose_embed.proj.weight.abs().sum() > 0  # off its zero init: it got gradients
    assert sum(float(b.av_interaction.to_out.weight.abs().sum()) for b in trainer.model.blocks) > 0
    # refocusing: every sample is posed, so the gain learns and the prior (pose-free samples only) does not
    assert trainer.model.refocus.gain.weight.abs().sum() > 0 and not trainer.model.refocus.prior.weight.any()
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["av_interaction"] is True and config["refocus"] == {"hidden": 64}
    assert config["face_identity"] == {"grid": 4, "margin": 0.2}
    contract = json.loads((tmp_path / "final" / "conditioning.json").read_text())
    assert contract["pose"].startswith("dataset.pose v2") and contract["pose_drop"] == 0.0 and "motion" not in contract
    assert contract["audio_intensity"].startswith("dataset.audio_intensity v1")
    assert config["pose"] == {"num_keypoints": 15, "sigma": 0.75, "hidden": 64}


def test_stage1_audio_training_includes_the_new_branches():
    from model.dit import zero_init_prefixes
    from model.registry import FLAVORS
    from train.model_init import ModelConfig, apply_overrides

    arch = apply_overrides(FLAVORS["debug"](), ModelConfig(motion=True, pose=True, av_interaction=True, refocus=True))
    assert set(zero_init_prefixes(arch)) == {"motion_embed.", "pose_embed.", "refocus.",
                                             *(f"blocks.{i}.av_interaction." for i in range(arch.num_layers))}


def test_dropping_every_sample_leaves_the_branches_untrained(pose_latents, tmp_path):
    trainer = build_trainer(_cfg(pose_latents, tmp_path, 3, "model.motion=true", "model.pose=true", "model.refocus=true",
                                 "stage.trainable=full", "guidance.motion_drop=1.0", "guidance.pose_drop=1.0", "optim.warmup_steps=0"))
    trainer.train()
    assert not trainer.model.motion_embed.linear_2.weight.any()
    assert not trainer.model.pose_embed.proj.weight.any()
    # every sample pose-free: the refocusing prior learns from the audio alone, the gain has nothing to scale
    assert trainer.model.refocus.prior.weight.abs().sum() > 0 and not trainer.model.refocus.gain.weight.any()


def test_models_without_the_branch_train_exactly_as_before(pose_latents, tmp_path):
    runs = []
    for name, drop in (("a", 0.0), ("b", 0.7)):  # motion_drop / pose_drop must not touch the noise stream without a branch
        build_trainer(_cfg(pose_latents, tmp_path / name, 3, f"guidance.motion_drop={drop}", f"guidance.pose_drop={drop}")).train()
        runs.append([json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()])
    assert runs[0] == runs[1]
    contract = json.loads((tmp_path / "a" / "final" / "conditioning.json").read_text())
    assert "motion" not in contract and "pose" not in contract and "audio_intensity" not in contract


def test_lip_tracing_weights_the_loss_where_the_mouth_is(pose_latents, tmp_path):
    """stage1_debug trains with flow.lip_weight 2: with the windows' mouth keypoints the weighted
    region follows them (clip_pose puts the mouth at (0.5, 0.3)), so the losses differ from the
    static face-box region's."""
    losses = {}
    for tracing in ("true", "false"):
        # a lip box of 0.4 x 0.2 face boxes: on the 4 x 4 latent grid it covers cells around the mouth keypoint
        build_trainer(_cfg(pose_latents, tmp_path / tracing, 2, f"flow.lip_tracing={tracing}", "flow.lip_box=[0.0,0.5,1.0,1.0]")).train()
        losses[tracing] = [json.loads(line)["loss"] for line in (tmp_path / tracing / "metrics.jsonl").read_text().splitlines()]
    assert losses["true"] != losses["false"]


def test_sampling_with_motion_intensity_and_pose(pose_latents, tiny_encoders, tmp_path):
    import dataclasses

    from dataset.errors import UserError
    from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
    from evaluation.sample_cli import parse_motion_intensity
    from evaluation.sampler import SamplerConfig

    trainer = build_trainer(_cfg(pose_latents, tmp_path / "run", 2, "model.motion=true", "model.pose=true", "stage.trainable=full"))
    trainer.train()
    with torch.no_grad():  # branches that matter, so the intensity and the pose must reach the DiT to change the video
        torch.nn.init.normal_(trainer.model.motion_embed.linear_2.weight, std=0.5)
        torch.nn.init.normal_(trainer.model.pose_embed.proj.weight, std=0.5)
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

    # --pose: keypoints per output frame (a prompt file's "pose", or --pose for every job)
    from evaluation.sample_cli import with_pose
    from evaluation.sample_jobs import SampleJob, read_pose_file, run_jobs

    still, moving = empty_pose(12), clip_pose(5, 12)
    still[:, 8] = (0.5, 0.6, 1.0)
    for name, pose in (("still", still), ("moving", moving)):
        (tmp_path / f"{name}.npy").write_bytes(encode_pose(pose))
    cfg = resolve_checkpoint(base, tmp_path / "run" / "ema", tiny_encoders)
    sampler = AvatarSampler(cfg)
    np.testing.assert_array_equal(sampler({"base": "a puppet", "phases": []}, image, np.zeros(8000, np.float32), seed=3)[0],
                                  videos["none"].astype(np.uint8))  # no pose: the same video as before
    posed = {name: sampler({"base": "a puppet", "phases": []}, image, np.zeros(8000, np.float32), seed=3,
                           pose=read_pose_file(tmp_path / f"{name}.npy"))[0].astype(np.int16) for name in ("still", "moving")}
    assert np.abs(posed["still"] - posed["moving"]).max() > 0 and not np.array_equal(posed["still"], videos["none"])
    from PIL import Image

    from dataset.media import encode_wav

    (tmp_path / "a.wav").write_bytes(encode_wav(np.zeros(8000, np.float32)))
    Image.fromarray(image).save(tmp_path / "ref.png")
    jobs = with_pose([SampleJob(key="k", caption={"base": "a puppet", "phases": []}, image=tmp_path / "ref.png",
                                audio=tmp_path / "a.wav")], str(tmp_path / "moving.npy"))
    written = run_jobs(sampler, jobs, tmp_path / "out", progress=False)
    assert json.loads(written[0].with_suffix(".json").read_text())["sample"]["pose"] == str(tmp_path / "moving.npy")
    with pytest.raises(UserError, match="pose has 5 frames, the video has 9"):
        sampler({"base": "a puppet", "phases": []}, image, np.zeros(8000, np.float32), seed=3, pose=still[:5])
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match="bad.npy: pose.npy is not a numpy array file"):
        with_pose(jobs, str(tmp_path / "bad.npy"))
    with pytest.raises(FileNotFoundError, match="--pose: file not found"):
        with_pose(jobs, str(tmp_path / "missing.npy"))
    # model.refocus: the sampler measures the speech's intensity and feeds it to the refocusing branch
    import shutil

    from train.model_init import ModelConfig, build_dit

    grown = build_dit(ModelConfig(init_from=str(tmp_path / "run" / "ema"), refocus=True), seed=0).eval()
    with torch.no_grad():
        torch.nn.init.normal_(grown.refocus.prior.weight, std=0.5)
    save_dit(grown, tmp_path / "refocus")
    shutil.copy(tmp_path / "run" / "ema" / "conditioning.json", tmp_path / "refocus")
    sampler = AvatarSampler(resolve_checkpoint(base, tmp_path / "refocus", tiny_encoders))
    speech = (0.2 * np.sin(np.arange(8000) * 0.3)).astype(np.float32)
    refocused = sampler({"base": "a puppet", "phases": []}, image, speech, seed=3)[0]
    with torch.no_grad():
        sampler.dit.refocus.prior.weight.zero_()
    assert not np.array_equal(sampler({"base": "a puppet", "phases": []}, image, speech, seed=3)[0], refocused)
    # model.face_identity: the reference image's latent over the given face box, in every window
    from evaluation.sample_jobs import parse_face_box

    grown = build_dit(ModelConfig(init_from=str(tmp_path / "run" / "ema"), face_identity=True), seed=0).eval()
    with torch.no_grad():
        for block in grown.blocks:
            torch.nn.init.normal_(block.face_attn.to_out.weight, std=0.5)
    save_dit(grown, tmp_path / "face")
    shutil.copy(tmp_path / "run" / "ema" / "conditioning.json", tmp_path / "face")
    sampler = AvatarSampler(resolve_checkpoint(dataclasses.replace(base, max_frames=25, window_frames=13, motion_frames=5),
                                               tmp_path / "face", tiny_encoders))
    prompt = {"base": "a puppet", "phases": []}
    faceless = sampler(prompt, image, np.zeros(16000, np.float32), seed=3)[0].astype(np.int16)
    faces = {box: sampler(prompt, image, np.zeros(16000, np.float32), seed=3, face_box=box)[0].astype(np.int16)
             for box in ((0.2, 0.2, 0.6, 0.6), (0.5, 0.5, 0.9, 0.9))}
    assert len(faceless) == 25 and all(not np.array_equal(v, faceless) for v in faces.values())
    a, b = faces.values()
    assert np.abs(a - b)[-4:].max() > 0  # the second window (a continuation) still reads the face
    job = SampleJob(key="f", caption=prompt, image=tmp_path / "ref.png", audio=tmp_path / "a.wav", face_box=(0.2, 0.2, 0.6, 0.6))
    written = run_jobs(sampler, [job], tmp_path / "out_face", progress=False)
    assert json.loads(written[0].with_suffix(".json").read_text())["sample"]["face_box"] == [0.2, 0.2, 0.6, 0.6]
    assert parse_face_box("0.1,0.2,0.3,0.4", "--face-box") == (0.1, 0.2, 0.3, 0.4)
    with pytest.raises(UserError, match=r"--face-box: face_box must be x0,y0,x1,y1 in \[0, 1\].*got '0.5,0.5,0.2,0.9'"):
        parse_face_box("0.5,0.5,0.2,0.9", "--face-box")
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
