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


def test_training_dropout_feeds_the_samplers_unconditional_inputs(tiny_models):
    """The trainer's dropped conditions are the very tensors the sampler's guidance branches feed."""
    import torch

    from evaluation.sample import fit_audio
    from train.conditioning import Conditioner, EncodersConfig

    n, negative = 9, "blurry, static"
    caption = {"base": "A puppet talks.", "phases": [{"start_s": 0.0, "end_s": 0.2, "text": "waves"},
                                                      {"start_s": 0.2, "end_s": 0.36, "text": "nods"}]}
    audio = fit_audio((0.1 * np.random.default_rng(1).standard_normal(6000)).astype(np.float32), n, 25.0)
    sampler = AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32, negative_prompt=negative), tiny_models))
    branches = sampler.conditions(caption, audio, n)
    encoders = EncodersConfig(text=str(tiny_models / "umt5"), vae=str(tiny_models / "vae"), audio=str(tiny_models / "wav2vec2"))
    cond = Conditioner(encoders, text_len=sampler.dit.config.text_len, vae_stride=(4, 8, 8), device=torch.device("cpu"),
                       negative_prompt=negative)
    batch = {"num_frames": n, "fps": [25.0], "texts": [("A puppet talks.", "waves", "nods")], "spans": [[(0.0, 0.2), (0.2, 0.36)]],
             "video": torch.zeros(1, 3, n, 32, 32), "audio": torch.from_numpy(audio)[None], "face_box": torch.full((1, 4), float("nan"))}
    inputs = cond(batch)
    for branch, (drop_text, drop_audio) in {"full": (False, False), "text": (False, True), "uncond": (True, True)}.items():
        got = inputs.with_dropped(torch.tensor([drop_text]), torch.tensor([drop_audio]))
        text, kw = branches[branch]
        for name in ("tokens", "block_ids", "frame_phases"):
            assert torch.equal(getattr(got, name), getattr(text, name)), (branch, name)
        for name in ("audio", "audio_index", "audio_mask"):
            assert torch.equal(getattr(got, name), kw[name]), (branch, name)
    uncond = branches["uncond"][0]
    assert uncond.block_ids.max() == 0 and not uncond.frame_phases[..., 1:].any() and not branches["uncond"][1]["audio"].any()
    # the same DiT output as the sampler's former unconditional text: the negative prompt's own layout
    from model.phase_layout import layout_from_annotation

    from evaluation.prompt import annotation_for

    former = sampler.text.encode_layouts([layout_from_annotation(annotation_for({"base": negative}, fps=25.0, num_frames=n))])
    assert torch.equal(former.tokens, uncond.tokens) and torch.equal(former.block_ids, uncond.block_ids)
    with torch.no_grad():  # off Wan's zero head, so the outputs depend on the text
        for param in sampler.dit.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    x, t, kw = torch.randn(1, 4, 3, 4, 4), torch.tensor([500.0]), branches["uncond"][1]
    a = sampler.dit(x, t, uncond.tokens, block_ids=uncond.block_ids, frame_phases=uncond.frame_phases, **kw)
    b = sampler.dit(x, t, former.tokens, block_ids=former.block_ids, frame_phases=former.frame_phases, **kw)
    assert torch.equal(a, b) and a.abs().sum() > 0


def _with_contract(tiny_models, folder, **changes):
    import shutil

    from model.resize import PREPROCESSING
    from train.contract import ConditioningContract, write_contract

    shutil.copytree(tiny_models / "dit", folder)
    values = dict(text_encoder=str(tiny_models / "umt5"), text_dim=32, text_len=64, max_base_tokens=8, max_phase_tokens=4,
                  phase_routing="global", vae=str(tiny_models / "vae"), vae_z_dim=4, vae_stride=(4, 8, 8),
                  audio_encoder=str(tiny_models / "wav2vec2"), audio_dim=32, audio_feature_hz=50.0, audio_context_s=0.08,
                  fps=25.0, reference="none", image_preprocessing=PREPROCESSING, text_drop=0.1, audio_drop=0.1,
                  both_drop=0.1, negative_prompt="blurry", audio_uncond="zeros", buckets=("9x32x32",))
    write_contract(folder, ConditioningContract(**{**values, **changes}))
    return folder


def test_conditioning_json_sets_the_defaults(tiny_models, tmp_path, caplog):
    ckpt = _with_contract(tiny_models, tmp_path / "ckpt")
    cfg = resolve_checkpoint(SampleConfig(width=32, height=32, max_frames=5, sampler=SamplerConfig(steps=1, solver="euler")), ckpt)
    # no encoders next to the copy: the recorded sources are used (they exist locally)
    recorded = (str(tiny_models / "umt5"), str(tiny_models / "vae"), str(tiny_models / "wav2vec2"))
    assert (cfg.text_encoder, cfg.vae, cfg.audio_encoder) == recorded
    with caplog.at_level("WARNING"):
        sampler = AvatarSampler(cfg)
    assert not caplog.records
    used = sampler.cfg
    assert (used.max_base_tokens, used.max_phase_tokens, used.audio_context_s, used.negative_prompt, used.phase_routing) == (
        8, 4, 0.08, "blurry", "global")
    assert sampler.mode == "none" and sampler.text.max_base_tokens == 8  # reference "none": no image needed
    caption = {"base": "x", "phases": [{"start_s": 0.0, "end_s": 0.04, "text": "y"}]}
    frames, _ = sampler(caption, None, np.zeros(4000, np.float32), seed=0)
    assert frames.shape == (5, 32, 32, 3)
    text, _ = sampler.conditions(caption, np.zeros(3200, np.float32), 5)["full"]
    assert text.frame_phases.all()  # global routing: every frame sees the phase that covers frame 0 only


def test_explicit_settings_that_contradict_training_warn(tiny_models, tmp_path, caplog):
    ckpt = _with_contract(tiny_models, tmp_path / "ckpt", text_drop=0.0, audio_drop=0.0, both_drop=0.0)
    cfg = resolve_checkpoint(SampleConfig(width=32, height=32, max_base_tokens=16, negative_prompt="", reference="ti2v"), ckpt)
    with caplog.at_level("WARNING", logger="evaluation"):
        sampler = AvatarSampler(cfg)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "sample.max_base_tokens=16 differs from 8" in messages and "sample.negative_prompt='' differs from 'blurry'" in messages
    assert "sample.reference='ti2v' differs from 'none'" in messages
    # defaults text 5 / audio 4 on a checkpoint trained without dropout
    assert "trained without dropping text and audio together" in messages and "trained without audio dropout" in messages
    assert sampler.cfg.max_base_tokens == 16 and sampler.mode == "ti2v"  # explicit values win
    caplog.clear()
    guided_off = SamplerConfig(text=GuidanceConfig(scale=1.0), audio=GuidanceConfig(scale=1.0))
    with caplog.at_level("WARNING", logger="evaluation"):
        AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32, sampler=guided_off), ckpt))
    assert not caplog.records


def test_without_conditioning_json_the_old_defaults_hold(tiny_models, caplog):
    with caplog.at_level("WARNING", logger="evaluation"):
        sampler = AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32), tiny_models))
    used = sampler.cfg
    assert sampler.contract is None and not caplog.records
    assert (used.max_base_tokens, used.max_phase_tokens, used.audio_context_s, used.negative_prompt, used.phase_routing) == (
        256, 32, 0.04, "", "per_frame")
    assert sampler.mode == "ti2v"  # auto: from the DiT's in_channels, as before


def test_missing_recorded_encoders_fall_back_to_the_search(tiny_models, tmp_path):
    ckpt = _with_contract(tiny_models, tmp_path / "ckpt", text_encoder=str(tmp_path / "gone"), vae="Org/not-cached-anywhere")
    cfg = resolve_checkpoint(SampleConfig(), ckpt, encoders=tiny_models)
    assert (cfg.text_encoder, cfg.vae) == (str(tiny_models / "umt5"), str(tiny_models / "vae"))
    with pytest.raises(FileNotFoundError, match="no vae for checkpoint"):
        resolve_checkpoint(SampleConfig(), ckpt)
