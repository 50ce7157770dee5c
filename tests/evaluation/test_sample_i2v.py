"""Wan2.1-I2V sampling: condition tensors and CLIP image tokens equal diffusers' WanImageToVideoPipeline's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

diffusers = pytest.importorskip("diffusers")

from evaluation.sample import AvatarSampler, SampleConfig, image_tensor, resolve_checkpoint  # noqa: E402
from evaluation.sampler import GuidanceConfig, SamplerConfig  # noqa: E402
from model import tiny  # noqa: E402
from model.image_encoder import ImageEncoder  # noqa: E402
from model.reference import i2v_condition  # noqa: E402
from model.registry import plain_wan_config  # noqa: E402
from model.vae import VideoVAE  # noqa: E402
from model.wan_import import diffusers_config  # noqa: E402


def test_i2v_conditions_equal_the_diffusers_pipeline():
    processor, clip = tiny.tiny_clip_vision(0)
    vae = tiny.tiny_vae(0)
    tokenizer, umt5 = tiny.tiny_umt5(0)
    transformer = diffusers.WanTransformer3DModel(**diffusers_config(plain_wan_config(tiny.tiny_i2v_dit(0).config)))
    pipe = diffusers.WanImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=umt5, vae=vae, scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        image_processor=processor, image_encoder=clip, transformer=transformer)
    rgb = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)  # the output size: no resize on either side
    image, frames = Image.fromarray(rgb), 9
    with torch.no_grad():
        want_tokens = pipe.encode_image(image, device="cpu")
        pixels = pipe.video_processor.preprocess(image, height=32, width=48)
        _, want = pipe.prepare_latents(pixels, 1, 4, 32, 48, frames, torch.float32, "cpu", torch.Generator().manual_seed(0))
    got_tokens = ImageEncoder(processor, clip)([rgb])
    got = i2v_condition(VideoVAE(vae).encode_reference(image_tensor(rgb, 48, 32), frames), frames)
    assert got_tokens.shape == want_tokens.shape == (1, 17, 32)
    torch.testing.assert_close(got_tokens, want_tokens, atol=1e-6, rtol=1e-6)
    assert got.shape == want.shape == (1, 4 + 4, 3, 4, 6)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_i2v_checkpoint_samples_with_clip_tokens(tiny_models, tmp_path, monkeypatch):
    from actavatar.models_cli import main

    assert main(["tiny", "--out", str(tmp_path / "ckpt"), "--only", "dit_i2v"]) == 0
    assert main(["tiny", "--out", str(tmp_path / "enc"), "--only", "clip"]) == 0
    encoders = {"vae": str(tiny_models / "vae"), "text_encoder": str(tiny_models / "umt5"), "audio_encoder": str(tiny_models / "wav2vec2")}
    cfg = SampleConfig(width=32, height=32, sampler=SamplerConfig(steps=1, solver="euler", text=GuidanceConfig(scale=2.0)), **encoders)
    with pytest.raises(FileNotFoundError, match="no image_encoder for checkpoint"):
        resolve_checkpoint(cfg, tmp_path / "ckpt" / "dit_i2v")
    cfg = resolve_checkpoint(cfg, tmp_path / "ckpt" / "dit_i2v", encoders=tmp_path / "enc")  # clip/ in --encoders
    assert cfg.image_encoder == str(tmp_path / "enc" / "clip")
    sampler = AvatarSampler(cfg)
    assert sampler.mode == "i2v" and sampler.image is not None
    seen = []
    forward = sampler.dit.forward

    def spy(x, t, text, **kw):
        seen.append((x.shape[1], None if kw.get("image") is None else tuple(kw["image"].shape)))
        return forward(x, t, text, **kw)

    monkeypatch.setattr(sampler.dit, "forward", spy)
    ref = np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    frames, _ = sampler({"base": "x", "phases": []}, ref, np.zeros(4000, np.float32), seed=0)
    assert frames.shape == (5, 32, 32, 3)
    assert seen and all(s == (12, (1, 17, 32)) for s in seen)  # every branch: 2z + 4 channels and the CLIP tokens
