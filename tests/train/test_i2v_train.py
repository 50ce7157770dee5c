"""Wan2.1-I2V training: [noisy | mask | condition latents] input and CLIP tokens of the first frame,
chosen by stage.reference=auto from the architecture; the export samples as I2V."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dataset.config_loader import load_config
from dataset.errors import UserError
from train.config import TrainConfig
from train.trainer import build_trainer, native_reference

from .conftest import encoder_overrides, fast_overrides

STAGE1 = "configs/train/stage1_debug.yaml"
I2V = ["model.in_channels=12", "model.image_dim=32", "stage.reference=auto"]  # debug DiT as Wan2.1 I2V (z 4 + mask 4 + z 4)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from actavatar.models_cli import main

    root = tmp_path_factory.mktemp("clip")
    assert main(["tiny", "--out", str(root), "--only", "clip"]) == 0
    return root / "clip"


def test_i2v_trains_with_condition_channels_and_clip_tokens_then_samples(corpus, tiny_encoders, clip, tmp_path, monkeypatch):
    from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
    from evaluation.sampler import SamplerConfig

    cfg = load_config(TrainConfig, STAGE1, [f"data.shards={corpus}", "data.buckets=[9x32x32]", "data.batch_size=2",
                                            *encoder_overrides(tiny_encoders), f"encoders.image={clip}", *I2V,
                                            *fast_overrides(tmp_path / "run", 2)])
    trainer = build_trainer(cfg)
    assert trainer.config.stage.reference == "i2v"
    seen = []
    forward = trainer.model.forward

    def spy(x, t, text, **kw):
        seen.append((x.shape[1], tuple(kw["image"].shape)))
        return forward(x, t, text, **kw)

    monkeypatch.setattr(trainer.model, "forward", spy)
    batch = next(trainer.batches_from(0))
    inputs = trainer.conditioner(batch)
    # the condition: mask on video frame 0 only, then the VAE latents of [first frame, zeros...]
    assert inputs.condition.shape == (2, 4 + 4, 3, 4, 4) and inputs.condition[:, :4, 0].eq(1).all()
    assert inputs.condition[:, :4, 1:].eq(0).all()
    assert inputs.image.shape == (2, 17, 32)
    trainer.train_step(batch)
    assert seen == [(12, (2, 17, 32))]
    monkeypatch.undo()
    trainer.train()
    contract = json.loads((tmp_path / "run/final/conditioning.json").read_text())
    assert contract["reference"] == "i2v" and contract["image_encoder"] == str(clip)

    # the sampler finds the CLIP tower through conditioning.json
    sample_cfg = SampleConfig(width=32, height=32, sampler=SamplerConfig(steps=1, solver="euler"))
    sampler = AvatarSampler(resolve_checkpoint(sample_cfg, tmp_path / "run/final", encoders=tiny_encoders))
    assert sampler.mode == "i2v"
    frames, _ = sampler({"base": "x", "phases": []}, np.full((32, 32, 3), 90, np.uint8), np.zeros(4000, np.float32), seed=0)
    assert frames.shape == (5, 32, 32, 3)


def test_reference_modes_follow_the_architecture(corpus, tiny_encoders, latents, clip, tmp_path):
    from model.registry import FLAVORS

    assert native_reference(FLAVORS["wan2.1-i2v-14b"]()) == "i2v"
    assert native_reference(FLAVORS["wan2.2-ti2v-5b"]()) == "first_frame"
    assert native_reference(FLAVORS["wan2.1-t2v-1.3b"]()) == "none"
    media = [f"data.shards={corpus}", "data.buckets=[9x32x32]", *encoder_overrides(tiny_encoders), *fast_overrides(tmp_path, 1)]
    with pytest.raises(UserError, match="stage.reference='i2v' does not fit the model"):
        build_trainer(load_config(TrainConfig, STAGE1, [*media, "stage.reference=i2v"]))
    with pytest.raises(UserError, match="set encoders.image to a CLIP vision folder"):
        build_trainer(load_config(TrainConfig, STAGE1, [*media, *I2V]))
    with pytest.raises(UserError, match="gives 32-d tokens; the model's image_dim is 16"):
        build_trainer(load_config(TrainConfig, STAGE1, [*media, "model.in_channels=12", "model.image_dim=16",
                                                        "stage.reference=auto", f"encoders.image={clip}"]))
    with pytest.raises(UserError, match="these latent shards hold no I2V condition latents"):  # T2V-encoded shards
        build_trainer(load_config(TrainConfig, STAGE1, [f"data.shards={latents}", "data.kind=latents", *I2V,
                                                        *fast_overrides(tmp_path, 1)]))


def test_i2v_inputs_are_cached_by_encode_and_train_from_latents(corpus, tiny_encoders, clip, tmp_path):
    """`actavatar encode` stores the condition latents and CLIP tokens; training from them equals
    training from the media they came from (same inputs to the DiT)."""
    from dataset.reader import shard_pipeline
    from train.encode_cli import main as encode_main

    media = [f"data.shards={corpus}", "data.buckets=[9x32x32]", *encoder_overrides(tiny_encoders), f"encoders.image={clip}", *I2V]
    out = tmp_path / "latents"
    assert encode_main(["--config", STAGE1, "--out", str(out), "--max-samples", "2", *media]) == 0
    raw = next(iter(shard_pipeline(str(out), decode="none")))
    assert {"condition.npy", "image.npy"} <= set(raw)
    cfg = load_config(TrainConfig, STAGE1, [f"data.shards={out}", "data.kind=latents", "data.batch_size=1", *I2V,
                                            "data.shuffle_buffer=0", *fast_overrides(tmp_path / "run", 1)])
    trainer = build_trainer(cfg)
    batch = next(trainer.batches_from(0))
    inputs = trainer.conditioner(batch)
    assert inputs.condition.shape == (1, 8, 3, 4, 4) and inputs.image.shape == (1, 17, 32)
    media_trainer = build_trainer(load_config(TrainConfig, STAGE1, [*media, "data.batch_size=1", "data.shuffle_buffer=0", "data.random_window=false",
                                                                    *fast_overrides(tmp_path / "m", 1)]))
    first = media_trainer.conditioner(next(media_trainer.batches_from(0)))
    key = batch["key"][0]
    assert key == next(media_trainer.batches_from(0))["key"][0]
    import torch

    torch.testing.assert_close(inputs.condition, first.condition, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(inputs.image, first.image, atol=1e-5, rtol=1e-5)
    trainer.train()


def test_ti2v_5b_kind_trains_with_its_16x_vae_then_samples(corpus, tiny_encoders, tmp_path):
    """Wan2.2-TI2V-5B's architecture in tiny: 48-channel latents from a residual 4x16x16 VAE; auto ->
    first_frame (clean first latent frame at t = 0), exported as ti2v, sampled at 16x."""
    from actavatar.models_cli import main
    from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
    from evaluation.sampler import SamplerConfig

    assert main(["tiny", "--out", str(tmp_path / "m"), "--only", "vae22"]) == 0
    overrides = [f"data.shards={corpus}", "data.buckets=[9x32x32]", "data.batch_size=1", *encoder_overrides(tiny_encoders),
                 f"encoders.vae={tmp_path / 'm/vae22'}", "model.in_channels=48", "model.out_channels=48",
                 "model.vae_stride=[4,16,16]", "stage.reference=auto", *fast_overrides(tmp_path / "run", 2)]
    trainer = build_trainer(load_config(TrainConfig, STAGE1, overrides))
    assert trainer.config.stage.reference == "first_frame"
    inputs = trainer.conditioner(next(trainer.batches_from(0)))
    assert inputs.latents.shape == (1, 48, 3, 2, 2)  # 9 x 32 x 32 video -> 3 x 2 x 2 latents
    from evaluation.sample_cli import main as sample_main
    from train.cli import main as train_main

    assert train_main(["--config", STAGE1, *overrides]) == 0  # `actavatar train`
    assert json.loads((tmp_path / "run/final/conditioning.json").read_text())["reference"] == "ti2v"
    cfg = SampleConfig(width=32, height=32, vae=str(tmp_path / "m/vae22"), sampler=SamplerConfig(steps=1, solver="euler"))
    sampler = AvatarSampler(resolve_checkpoint(cfg, tmp_path / "run/final", encoders=tiny_encoders))
    assert sampler.mode == "ti2v" and sampler.vae.spatial_stride == 16
    from dataset.media import decode_mp4, encode_wav
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "ref.png")
    (tmp_path / "a.wav").write_bytes(encode_wav(np.zeros(4000, np.float32)))
    assert sample_main(["--checkpoint", str(tmp_path / "run/final"), "--encoders", str(tiny_encoders), "--image", str(tmp_path / "ref.png"),
                        "--audio", str(tmp_path / "a.wav"), "--prompt", "x", "--out", str(tmp_path / "out"), "--no-progress",
                        f"vae={tmp_path / 'm/vae22'}", "width=32", "height=32", "sampler.steps=1", "sampler.solver=euler"]) == 0
    assert decode_mp4((tmp_path / "out/sample.mp4").read_bytes()).shape == (5, 32, 32, 3)
