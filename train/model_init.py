"""Which DiT the trainer starts from: a registry flavour (random init), our safetensors folder
(e.g. a stage-1 export) or a diffusers Wan transformer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from model.dit import DiTConfig, VideoDiT
from model.registry import FLAVORS, build_model, get_config


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelConfig:
    """Args:
    flavor: registry flavour used when `init_from` is empty ("debug", "wan2.1-t2v-1.3b", ...).
    init_from: a `save_dit` folder (config.json with "_class": "VideoDiT", e.g. OUT/ema of stage 1)
        or a diffusers Wan transformer / pipeline folder or HF id ("" = random init of `flavor`).
    """

    flavor: str = "debug"
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f"model.flavor must be one of {sorted(FLAVORS)}, got {self.flavor!r}")


def _is_our_folder(path: Path) -> bool:
    cfg = path / "config.json"
    return cfg.is_file() and json.loads(cfg.read_text()).get("_class") == "VideoDiT"


def dit_config(config: ModelConfig) -> DiTConfig:
    """The architecture without loading weights (for validation before anything heavy starts)."""
    from train.pretrained import dit_config_from_dict, read_diffusers_wan

    if not config.init_from:
        return get_config(config.flavor)
    path = Path(config.init_from)
    if _is_our_folder(path):
        return dit_config_from_dict(json.loads((path / "config.json").read_text()))
    if path.exists() and not (path / "config.json").is_file() and not (path / "transformer").is_dir():
        raise FileNotFoundError(f"model.init_from: {path} holds neither a VideoDiT folder nor a diffusers Wan model")
    from model.wan_import import config_from_diffusers

    wan_config, _ = read_diffusers_wan(config.init_from, local_files_only=True)
    return config_from_diffusers(wan_config)


def build_dit(config: ModelConfig, seed: int) -> VideoDiT:
    """A full fp32 `VideoDiT` on CPU, identical on every rank (same seed / same file)."""
    from train.pretrained import import_wan, load_dit

    if not config.init_from:
        torch.manual_seed(seed)
        model = build_model(get_config(config.flavor))
        model.init_weights()
        return model
    path = Path(config.init_from)
    if _is_our_folder(path):
        return load_dit(path)
    return import_wan(config.init_from, local_files_only=True)
