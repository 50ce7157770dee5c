"""`actavatar sample` with the tiny random-weight models: mp4 + audio, seeds, batches, guidance calls, I2V."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from dataset.media import decode_mp4, encode_wav, probe_mp4
from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
from evaluation.sample_cli import main
from evaluation.sampler import GuidanceConfig, SamplerConfig

TINY = ["width=32", "height=32", "max_frames=9", "sampler.steps=2", "sampler.solver=euler", "threads=1"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(root / "ref.png")
    t = np.arange(int(0.5 * 16000)) / 16000  # 0.5 s -> 12 frames -> 9 (1 + 4k)
    (root / "speech.wav").write_bytes(encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)))
    return root


def test_sample_cli_writes_a_playable_mp4_with_audio(tiny_models, inputs, tmp_path, capsys):
    rc = main(["--checkpoint", str(tiny_models), "--image", str(inputs / "ref.png"), "--audio", str(inputs / "speech.wav"),
               "--prompt", "A puppet talks. | 0-0.2: waves | 0.2-0.4: nods", "--out", str(tmp_path), "--key", "demo",
               "--no-progress", *TINY])
    assert rc == 0 and str(tmp_path / "demo.mp4") in capsys.readouterr().out
    data = (tmp_path / "demo.mp4").read_bytes()
    info = probe_mp4(data)
    assert info.has_audio and (info.width, info.height) == (32, 32) and info.fps == 25.0
    assert decode_mp4(data).shape == (9, 32, 32, 3)
    meta = json.loads((tmp_path / "demo.json").read_text())
    assert meta["caption"]["phases"][1]["text"] == "nods" and meta["sample"]["reference_mode"] == "ti2v"
    assert meta["sample"]["config"]["sampler"]["steps"] == 2 and meta["video"]["num_frames"] == 9


def test_seed_controls_the_noise(tiny_models, inputs):
    cfg = resolve_checkpoint(SampleConfig(width=32, height=32, max_frames=9, sampler=SamplerConfig(steps=1, solver="euler")), tiny_models)
    sampler = AvatarSampler(cfg)
    image = np.asarray(Image.open(inputs / "ref.png"))
    audio = np.zeros(8000, np.float32)
    caption = {"base": "a puppet", "phases": []}
    a, _ = sampler(caption, image, audio, seed=1)
    b, _ = sampler(caption, image, audio, seed=1)
    c, fitted = sampler(caption, image, audio, seed=2)
    assert a.dtype == np.uint8 and a.shape == (9, 32, 32, 3) and fitted.size == 9 * 640
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_guidance_ranges_decide_the_dit_calls(tiny_models, inputs, monkeypatch):
    guidance = SamplerConfig(steps=4, solver="heun", text=GuidanceConfig(scale=1.0), audio=GuidanceConfig(scale=3.0, end=0.5))
    sampler = AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32, max_frames=5, sampler=guidance), tiny_models))
    seen = []
    forward = sampler.dit.forward

    def counting(x, t, text, **kw):
        seen.append(float(kw["audio"].abs().sum()) if "audio" in kw else None)
        return forward(x, t, text, **kw)

    monkeypatch.setattr(sampler.dit, "forward", counting)
    sampler({"base": "x", "phases": []}, np.zeros((32, 32, 3), np.uint8), np.ones(4000, np.float32) * 0.1, seed=0)
    # Heun: 2 evaluations per step; steps 0-1 with audio CFG (full + audio-free), steps 2-3 full only
    assert len(seen) == 2 * (2 * 2 + 2 * 1)
    assert sum(1 for s in seen if s == 0.0) == 4  # "zeros" unconditional audio on the guided steps


def test_prompt_file_batch_and_errors(tiny_models, inputs, tmp_path, capsys):
    lines = [{"key": "one", "image": "ref.png", "audio": "speech.wav", "prompt": "a | 0-0.2: nods", "seed": 3},
             {"key": "two", "image": "ref.png", "audio": "speech.wav", "prompt": {"base": "b", "phases": []}}]
    prompts = inputs / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["--checkpoint", str(tiny_models / "dit"), "--prompts", str(prompts), "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    assert {p.name for p in tmp_path.glob("*.mp4")} == {"one.mp4", "two.mp4"}
    assert json.loads((tmp_path / "one.json").read_text())["sample"]["seed"] == 3
    assert json.loads((tmp_path / "two.json").read_text())["sample"]["seed"] == 1  # seed 0 + index 1

    bad = inputs / "bad.jsonl"
    bad.write_text(json.dumps({**lines[0], "audio": "missing.wav"}) + "\n")
    assert main(["--checkpoint", str(tiny_models), "--prompts", str(bad), "--out", str(tmp_path), *TINY]) == 2
    assert "bad.jsonl:1: audio file not found" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path), "--prompts", str(prompts), "--out", str(tmp_path)]) == 2
    assert "neither" in capsys.readouterr().err
    assert main(["--checkpoint", str(tiny_models), "--prompts", str(prompts), "--out", str(tmp_path), "sampler.solver=rk4"]) == 2
    assert "sampler.solver must be one of" in capsys.readouterr().err


def test_i2v_checkpoint_concatenates_the_reference(tiny_models, inputs, tmp_path):
    from model.registry import FLAVORS, build_model
    from train.pretrained import save_dit

    model = build_model(dataclasses.replace(FLAVORS["debug"](), in_channels=2 * 4 + 4))  # z=4 + mask 4 + cond 4
    model.init_weights()
    save_dit(model, tmp_path / "i2v")
    with pytest.raises(FileNotFoundError, match="no vae for checkpoint"):
        resolve_checkpoint(SampleConfig(), tmp_path / "i2v")
    cfg = resolve_checkpoint(SampleConfig(width=32, height=32, max_frames=5, sampler=SamplerConfig(steps=1, solver="euler"),
                                          vae=str(tiny_models / "vae")), tmp_path / "i2v", encoders=tiny_models)
    assert (cfg.dit, cfg.vae, cfg.text_encoder) == (str(tmp_path / "i2v"), str(tiny_models / "vae"), str(tiny_models / "umt5"))
    sampler = AvatarSampler(cfg)
    assert sampler.mode == "i2v"
    frames, _ = sampler({"base": "x", "phases": []}, np.zeros((32, 32, 3), np.uint8), np.zeros(4000, np.float32), seed=0)
    assert frames.shape == (5, 32, 32, 3)
