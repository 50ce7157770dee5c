"""LoRA (peft): adapters train with the new ActAvatar parts, merge exactly, export in diffusers' format
(loadable by diffusers' Wan LoRA loader), resume exactly, and apply at sampling with a scale."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from dataset.config_loader import load_config  # noqa: E402
from dataset.errors import UserError  # noqa: E402
from model.registry import FLAVORS, build_model  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.lora import (  # noqa: E402
    LORA_FILE,
    LoraConfig,
    adapters_from_state,
    add_lora,
    merge_adapters,
    merge_lora_state,
    parse_lora_arg,
    read_diffusers_lora,
    save_diffusers_lora,
    to_diffusers_name,
)
from train.trainer import build_trainer  # noqa: E402

from .conftest import fast_overrides  # noqa: E402

STAGE1 = "configs/train/stage1_debug.yaml"


def _randomise_adapters(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _inputs(cfg, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, cfg.in_channels, 3, 4, 4, generator=g), torch.tensor([700.0]),
            torch.randn(1, 8, cfg.text_dim, generator=g))


def test_merged_weights_and_exported_adapters_equal_the_adapted_model(tmp_path):
    torch.manual_seed(0)
    base = build_model(FLAVORS["debug"]())
    with torch.no_grad():  # off Wan's zero head
        base.proj_out.weight.normal_(std=0.1)
    lora = LoraConfig(rank=4, alpha=8)
    adapted = copy.deepcopy(base)
    names = add_lora(adapted, lora)
    assert "blocks.0.self_attn.to_q" in names and "blocks.1.ffn.proj_out" in names
    assert not any("audio_attn" in n for n in names)  # the audio branch trains at full rank, not as LoRA
    x = _inputs(base.config)
    with torch.no_grad():
        assert torch.equal(adapted(*x), base(*x))  # B = 0 at start: the output is unchanged
    _randomise_adapters(adapted)
    with torch.no_grad():
        want = adapted(*x)
    # merged state dict -> a plain model
    merged = build_model(FLAVORS["debug"]())
    merged.load_state_dict(merge_lora_state(adapted.state_dict(), lora.scale))
    with torch.no_grad():
        torch.testing.assert_close(merged(*x), want, atol=1e-5, rtol=1e-5)
    # adapters in diffusers' format, read back and merged onto the base with a scale
    path = save_diffusers_lora(tmp_path, adapters_from_state(adapted.state_dict()), scale=lora.scale)
    assert path.name == LORA_FILE
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert "transformer.blocks.0.attn1.to_q.lora_A.weight" in keys and "transformer.blocks.1.ffn.net.2.lora_B.weight" in keys
    on_base = copy.deepcopy(base)
    merge_adapters(on_base, read_diffusers_lora(tmp_path))
    with torch.no_grad():
        torch.testing.assert_close(on_base(*x), want, atol=1e-5, rtol=1e-5)
        half = copy.deepcopy(base)
        merge_adapters(half, read_diffusers_lora(path), scale=0.5)
        layer, ref = half.blocks[0].self_attn.to_q.weight, base.blocks[0].self_attn.to_q.weight
        full = on_base.blocks[0].self_attn.to_q.weight
        torch.testing.assert_close(layer - ref, 0.5 * (full - ref), atol=1e-6, rtol=1e-5)
    with pytest.raises(UserError, match=r"lora.targets \['attn.nope'\] match no linear layer"):
        add_lora(copy.deepcopy(base), LoraConfig(rank=2, targets=("attn.nope",)))


def test_exported_adapters_load_into_diffusers_wan():
    """The file loads with diffusers' own Wan LoRA loader and gives our adapted model's output."""
    diffusers = pytest.importorskip("diffusers")
    from model.wan_import import import_diffusers_wan

    torch.manual_seed(0)
    ref = diffusers.WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                                          out_channels=4, text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2,
                                          rope_max_seq_len=32).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    ours = import_diffusers_wan(ref)
    lora = LoraConfig(rank=3, alpha=6)
    add_lora(ours, lora)
    _randomise_adapters(ours, seed=3)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        save_diffusers_lora(tmp, adapters_from_state(ours.state_dict()), scale=lora.scale)
        state = diffusers.WanPipeline.lora_state_dict(tmp, weight_name=LORA_FILE)
        ref.load_lora_adapter(state, prefix="transformer", adapter_name="actavatar")
    x, t, text = torch.randn(1, 4, 3, 4, 6), torch.tensor([400.0]), torch.randn(1, 9, 16)
    with torch.no_grad():
        expected = ref(x, t, text, return_dict=False)[0]
        got = ours(x, t, text)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def _lora_cfg(latents: Path, out: Path, steps: int, *extra: str) -> TrainConfig:
    # the random debug DiT's head is zero (Wan's init) and frozen under LoRA: an adapter on it
    # ("proj_out" also matches ffn.proj_out) lets gradients reach the blocks, as a trained head does
    targets = "[self_attn.to_q,self_attn.to_k,self_attn.to_v,self_attn.to_out,cross_attn.to_q,ffn.proj_in,proj_out]"
    return load_config(TrainConfig, STAGE1, [f"data.shards={latents}", "data.kind=latents", *fast_overrides(out, steps),
                                             "lora.rank=4", "lora.alpha=8", f"lora.targets={targets}", "stage.trainable=full",
                                             "ema.decay=0.9", "optim.lr=1e-2", "checkpoint.every=0", *extra])


def test_trainer_trains_adapters_and_new_parts_only_and_resumes_exactly(latents, tmp_path):
    from safetensors.torch import load_file

    from train.pretrained import load_dit

    trainer = build_trainer(_lora_cfg(latents, tmp_path / "once", 4))
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for n in trainable) and any(n.startswith(trainer.audio_prefixes) for n in trainable)
    assert not any(".base_layer." in n for n in trainable) and "patch_embed.weight" not in trainable
    base = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if ".base_layer." in n}
    trainer.train()
    assert all(torch.equal(base[n], p) for n, p in trainer.model.named_parameters() if n in base)  # frozen
    # exports: merged weights (plain keys, loadable) and the adapters in diffusers' format
    for name in ("final", "ema"):
        model = load_dit(tmp_path / "once" / name)
        assert (tmp_path / "once" / name / "lora" / LORA_FILE).is_file()
        merged_q = model.blocks[0].self_attn.to_q.weight
        assert not torch.equal(merged_q, base["blocks.0.self_attn.to_q.base_layer.weight"])  # the update is in
    from safetensors import safe_open

    with safe_open(str(tmp_path / "once/final/lora" / LORA_FILE), "pt") as f:
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
    assert meta["transformer.r"] == 4 and meta["transformer.lora_alpha"] == 4  # the scale 8/4 is folded into lora_B
    # interrupted at step 2, resumed: the same losses and exports
    build_trainer(_lora_cfg(latents, tmp_path / "twice", 4)).train(stop_at=2)
    build_trainer(_lora_cfg(latents, tmp_path / "twice", 4)).train()
    rows = [[json.loads(line)["loss"] for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("once", "twice")]
    assert rows[0] == rows[1]
    for name in ("final", "ema", "final/lora"):
        file = LORA_FILE if name.endswith("lora") else "model.safetensors"
        a, b = load_file(str(tmp_path / "once" / name / file)), load_file(str(tmp_path / "twice" / name / file))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_lora_settings_are_checked(latents, tmp_path):
    with pytest.raises(UserError, match="lora.rank > 0 with stage.trainable=audio trains no adapter"):
        load_config(TrainConfig, STAGE1, [f"data.shards={latents}", "lora.rank=4", "stage.trainable=audio"])
    with pytest.raises(UserError, match="lora.alpha must be > 0"):
        LoraConfig(rank=4, alpha=0)
    assert parse_lora_arg("runs/x/lora:0.5") == ("runs/x/lora", 0.5) and parse_lora_arg("C:/x/lora") == ("C:/x/lora", 1.0)
    assert to_diffusers_name("blocks.2.cross_attn.to_out") == "blocks.2.attn2.to_out.0"
    assert to_diffusers_name("time_proj") == "condition_embedder.time_proj" and to_diffusers_name("proj_out") == "proj_out"


def test_sample_applies_a_lora_with_its_scale(tiny_models_for_lora, tmp_path):
    """`actavatar sample --lora PATH:SCALE` merges the adapters into the DiT it loaded."""
    import numpy as np

    from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint

    models, lora_dir = tiny_models_for_lora
    plain = AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32), models))
    with_lora = AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32, lora=(f"{lora_dir}:0.5",)), models))
    adapters = read_diffusers_lora(lora_dir)
    a, b = adapters["blocks.0.self_attn.to_q"]
    delta = with_lora.dit.blocks[0].self_attn.to_q.weight - plain.dit.blocks[0].self_attn.to_q.weight
    torch.testing.assert_close(delta, 0.5 * (b @ a), atol=1e-6, rtol=1e-5)
    with pytest.raises(UserError, match="the adapter gives"):
        AvatarSampler(resolve_checkpoint(SampleConfig(width=32, height=32, lora=(str(tmp_path / "bad"),)), models))
    assert np.isfinite(with_lora({"base": "x", "phases": []}, np.zeros((32, 32, 3), np.uint8), np.zeros(4000, np.float32), seed=0)[0]).all()


@pytest.fixture
def tiny_models_for_lora(tmp_path_factory, tmp_path):
    """`actavatar models tiny` plus a random adapter file for its DiT, and a wrong-shaped one in tmp_path/bad."""
    from actavatar.models_cli import main
    from train.pretrained import load_dit

    root = tmp_path_factory.mktemp("tiny_lora")
    assert main(["tiny", "--out", str(root), "--only", "dit,vae,umt5,wav2vec2"]) == 0
    dit = load_dit(root / "dit")
    add_lora(dit, LoraConfig(rank=2))
    _randomise_adapters(dit, seed=5)
    save_diffusers_lora(root / "lora", adapters_from_state(dit.state_dict()), scale=1.0)
    wrong = {k: (a[:, :3], b) for k, (a, b) in adapters_from_state(dit.state_dict()).items()}
    save_diffusers_lora(tmp_path / "bad", wrong, scale=1.0)
    return root, root / "lora"
