"""`model.*`: every DiTConfig knob from YAML / key=value, flavour vs init_from, overrides of a
loaded checkpoint (applied when shapes stay, errors naming the key when they would change)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from dataset.config_loader import ConfigError, load_config
from model.registry import FLAVORS, build_model
from train.config import TrainConfig
from train.model_init import FREE_KEYS, SHAPE_KEYS, ModelConfig, build_dit, dit_config

BASE = ["data.shards=corpus"]
# one override per DiTConfig knob -> (DiTConfig attribute path, expected value)
KNOBS = {
    "model.dim=128": ("dim", 128),
    "model.num_layers=3": ("num_layers", 3),
    "model.num_heads=8": ("num_heads", 8),
    "model.ffn_dim=96": ("ffn_dim", 96),
    "model.in_channels=8": ("in_channels", 8),
    "model.out_channels=8": ("out_channels", 8),
    "model.text_dim=48": ("text_dim", 48),
    "model.freq_dim=64": ("freq_dim", 64),
    "model.patch_size=[1,1,1]": ("patch_size", (1, 1, 1)),
    "model.text_len=32": ("text_len", 32),
    "model.vae_stride=[4,16,16]": ("vae_stride", (4, 16, 16)),
    "model.qk_norm=false": ("qk_norm", False),
    "model.cross_attn_norm=false": ("cross_attn_norm", False),
    "model.eps=1e-5": ("eps", 1e-5),
    "model.rope_theta=500.0": ("rope_theta", 500.0),
    "model.attention_backend=math": ("attention_backend", "math"),
    "model.image_dim=16": ("image_dim", 16),
    "model.phase.pad_visible=true": ("phase.pad_visible", True),
    "model.phase.compact_keys=false": ("phase.compact_keys", False),
    "model.audio=null": ("audio", None),
    "model.audio.audio_dim=16": ("audio.audio_dim", 16),
    "model.audio.layers=[0]": ("audio.layers", (0,)),
    "model.alignment.schedule=cosine": ("alignment.schedule", "cosine"),
    "model.alignment.learned_init=constant": ("alignment.learned_init", "constant"),
    "model.alignment.text_start=0.7": ("alignment.text_start", 0.7),
    "model.alignment.text_end=0.2": ("alignment.text_end", 0.2),
    "model.alignment.audio_start=0.1": ("alignment.audio_start", 0.1),
    "model.alignment.audio_end=0.9": ("alignment.audio_end", 0.9),
}


def _get(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("override", sorted(KNOBS))
def test_every_knob_reaches_dit_config(override):
    path, expected = KNOBS[override]
    arch = dit_config(load_config(TrainConfig, None, [*BASE, override]).model)
    assert _get(arch, path) == expected
    untouched = FLAVORS["debug"]()
    assert arch.num_layers == (3 if "num_layers" in override else untouched.num_layers)


def test_yaml_example_with_nested_partial_overrides(tmp_path):
    yaml = tmp_path / "run.yaml"
    yaml.write_text("data: {shards: corpus}\nmodel:\n  flavor: debug\n  dim: 128\n  num_layers: 4\n  audio: null\n"
                    "  alignment: {schedule: constant, text_start: 1.0}\n")
    cfg = load_config(TrainConfig, yaml)
    arch = dit_config(cfg.model)
    assert (arch.dim, arch.num_layers, arch.audio, arch.text_dim) == (128, 4, None, 32)
    assert (arch.alignment.schedule, arch.alignment.text_start, arch.alignment.text_end) == ("constant", 1.0, 0.5)
    # a later layer fills the removed branch again, field by field
    arch = dit_config(load_config(TrainConfig, yaml, ["model.audio.audio_dim=8"]).model)
    assert arch.audio is not None and arch.audio.audio_dim == 8
    model = build_model(dit_config(cfg.model))
    assert len(model.blocks) == 4 and model.audio_proj is None and model.alignment.text_weight.tolist() == [1.0] * 4


def test_invalid_overrides_name_the_key_at_load_time():
    with pytest.raises(ConfigError, match=r"model.dim / model.num_heads must be an even integer, got 64 / 3"):
        load_config(TrainConfig, None, [*BASE, "model.num_heads=3"])
    with pytest.raises(ConfigError, match="model.alignment.schedule must be one of"):
        load_config(TrainConfig, None, [*BASE, "model.alignment.schedule=zigzag"])
    with pytest.raises(ConfigError, match="model.audio.layers must be < num_layers=2"):
        load_config(TrainConfig, None, [*BASE, "model.audio.layers=[5]"])
    with pytest.raises(ConfigError, match="unknown config key 'model.width'"):
        load_config(TrainConfig, None, [*BASE, "model.width=3"])


def test_flavor_and_init_from_are_exclusive():
    assert ModelConfig().flavor == "" and dit_config(ModelConfig()) == FLAVORS["debug"]()
    with pytest.raises(ConfigError, match=r"model.flavor='debug' and model.init_from='runs/s1/ema' are exclusive"):
        load_config(TrainConfig, None, [*BASE, "model.flavor=debug", "model.init_from=runs/s1/ema"])
    with pytest.raises(ConfigError, match="model.flavor must be one of"):
        load_config(TrainConfig, None, [*BASE, "model.flavor=huge"])


@pytest.mark.parametrize("name", ["stage1_debug", "stage2_debug", "stage1_1.3b", "stage2_1.3b", "stage1_14b_i2v_lora",
                                  "stage2_14b_i2v_lora", "stage1_5b_ti2v", "stage2_5b_ti2v"])
def test_shipped_configs_load(name):
    cfg = load_config(TrainConfig, f"configs/train/{name}.yaml")
    assert bool(cfg.model.flavor) != bool(cfg.model.init_from)
    if "14b" in name:  # LoRA on the I2V base, its CLIP tower named
        assert cfg.lora.rank == 32 and cfg.encoders.image and cfg.stage.reference == "auto"
    if "5b" in name:  # every bucket fits the 16x VAE and 2x2 patches
        assert all(int(b.split("x")[1]) % 32 == 0 and int(b.split("x")[2]) % 32 == 0 for b in cfg.data.buckets)
    # stage 2 from an export: dropping init_from falls back to the debug flavour (the tests' media smoke run)
    if name == "stage2_debug":
        assert load_config(TrainConfig, f"configs/train/{name}.yaml", ["model.init_from=''"]).model.origin == "debug"


@pytest.mark.parametrize("key", SHAPE_KEYS)
def test_shape_overrides_are_refused_with_init_from(key):
    value = "[1,1,1]" if key in ("patch_size", "vae_stride") else "true" if key in ("qk_norm", "cross_attn_norm") else "8"
    with pytest.raises(ConfigError, match=rf"model.{key}=.* changes weight shapes or meaning; it cannot override model.init_from='x'"):
        load_config(TrainConfig, None, [*BASE, "model.init_from=x", f"model.{key}={value}"])


def _shapes(cfg) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in build_model(cfg, device="meta").state_dict().items()}


def test_shape_keys_are_exactly_the_ones_that_change_the_state_dict():
    base = FLAVORS["debug"]()
    changed = {"dim": 32, "num_layers": 3, "num_heads": 2, "ffn_dim": 64, "in_channels": 8, "out_channels": 8, "text_dim": 16,
               "freq_dim": 16, "patch_size": (1, 1, 1), "qk_norm": False, "cross_attn_norm": False, "image_dim": 16,
               "eps": 1e-3, "rope_theta": 100.0, "text_len": 16, "attention_backend": "math"}
    for key, value in changed.items():
        same = _shapes(dataclasses.replace(base, **{key: value})) == _shapes(base)
        # num_heads keeps the shapes but re-splits the projections: refused with init_from all the same
        assert same == (key in (*FREE_KEYS, "num_heads")), key
    with_pos = dataclasses.replace(base, image_dim=16)
    assert _shapes(dataclasses.replace(with_pos, image_pos_embed_len=4)) != _shapes(with_pos)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from train.pretrained import save_dit

    out = tmp_path_factory.mktemp("dit")
    torch.manual_seed(1)
    save_dit(build_model(FLAVORS["debug"]()), out)
    return out


def test_free_overrides_rebuild_the_loaded_checkpoint(folder):
    from train.pretrained import load_dit

    cfg = load_config(TrainConfig, None, [*BASE, f"model.init_from={folder}", "model.attention_backend=math",
                                          "model.phase.pad_visible=true", "model.alignment.schedule=constant",
                                          "model.alignment.text_start=0.5", "model.text_len=48"]).model
    model = build_dit(cfg, seed=0)
    assert model.config.attention_backend == "math" and model.config.phase.pad_visible and model.config.text_len == 48
    assert model.alignment.text_weight.tolist() == [0.5, 0.5]  # the schedule buffer follows the new config
    assert model.blocks[0].self_attn.backend == "math" and model.blocks[1].audio_attn.backend == "math"
    saved = load_dit(folder).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())  # the weights are the checkpoint's


def test_checkpoint_audio_and_learned_alignment_are_refused(folder, tmp_path):
    for override, key in (("model.audio.audio_dim=16", "model.audio.audio_dim=16"), ("model.audio=null", "model.audio=null")):
        cfg = load_config(TrainConfig, None, [*BASE, f"model.init_from={folder}", override]).model
        with pytest.raises(ValueError, match=key):
            dit_config(cfg)
    from model.alignment import AlignmentConfig
    from train.pretrained import save_dit

    save_dit(build_model(dataclasses.replace(FLAVORS["debug"](), alignment=AlignmentConfig(schedule="learned"))), tmp_path / "l")
    cfg = load_config(TrainConfig, None, [*BASE, f"model.init_from={tmp_path / 'l'}", "model.alignment.text_start=0.3"]).model
    with pytest.raises(ValueError, match="model.alignment.text_start cannot override the learned alignment weights"):
        dit_config(cfg)
    cfg = load_config(TrainConfig, None, [*BASE, f"model.init_from={folder}", "model.alignment.schedule=learned"]).model
    with pytest.raises(ValueError, match="model.alignment.schedule='learned' adds weights"):
        dit_config(cfg)


def test_diffusers_import_takes_new_audio_modules(tmp_path):
    pytest.importorskip("diffusers")
    from model.tiny import tiny_diffusers_wan

    tiny_diffusers_wan().save_pretrained(tmp_path / "wan")
    cfg = load_config(TrainConfig, None, [*BASE, f"model.init_from={tmp_path / 'wan'}", "model.audio.audio_dim=16",
                                          "model.attention_backend=math", "model.alignment.schedule=learned"]).model
    model = build_dit(cfg, seed=0)
    assert model.config.audio.audio_dim == 16 and model.audio_proj.proj_in.in_features == 16
    assert isinstance(model.alignment.text_weight, torch.nn.Parameter)  # a new module: learned weights are fine
    assert model.config.attention_backend == "math" and dit_config(cfg) == model.config


def test_diffusers_import_reads_config_json_only_and_names_local_files_only(tmp_path):
    from model.registry import FLAVORS
    from model.wan_import import diffusers_config

    # a pipeline folder whose transformer has a config but (here) no weights at all: the architecture
    # is known without reading them (every rank does this; rank 0 alone reads the weights later)
    (tmp_path / "pipe" / "transformer").mkdir(parents=True)
    (tmp_path / "pipe" / "transformer" / "config.json").write_text(json.dumps(diffusers_config(FLAVORS["wan2.2-ti2v-5b"]())))
    arch = dit_config(load_config(TrainConfig, None, [*BASE, f"model.init_from={tmp_path / 'pipe'}"]).model)
    assert arch.dim == 3072 and arch.vae_stride == (4, 16, 16) and arch.alignment.text_end == 1.0
    cfg = load_config(TrainConfig, None, [*BASE, "model.init_from=nobody-here/no-such-wan"]).model
    assert cfg.local_files_only
    with pytest.raises(FileNotFoundError, match=r"no-such-wan: neither a local folder nor in the Hugging Face cache.*"
                                                r"model.local_files_only"):
        dit_config(cfg)


def test_shipped_1_3b_stage1_ramps_progressive_alignment_in_and_trains_the_backbone():
    cfg = load_config(TrainConfig, "configs/train/stage1_1.3b.yaml")
    assert cfg.stage.trainable == "full" and cfg.stage.reference == "first_frame"
    assert cfg.model.alignment.schedule == "linear" and cfg.model.alignment.warmup_steps > 0
    assert not cfg.model.local_files_only and not cfg.encoders.local_files_only
