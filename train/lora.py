"""LoRA fine-tuning of the DiT (peft), merged exports, and adapters in the format diffusers' Wan pipelines load.

    lora:
      rank: 32            # 0 = off (full fine-tuning as the stage says)
      alpha: 32           # scale = alpha / rank (null = rank)
      targets: [...]      # module name suffixes; default: attention (self, cross) and FFN projections

With LoRA on, peft wraps each target `nn.Linear` (`inject_adapter_in_model`: parameters
`….lora_A.default.weight` / `….lora_B.default.weight`, the frozen weight under `….base_layer.`).
What trains: the adapters, plus the ActAvatar parts Wan checkpoints do not have (audio attention
and projector, the alignment schedule; `VideoDiT.new_parameter_prefixes`) at full rank, each as
the stage allows; every other parameter is frozen.

Exports (`train/trainer.py`): `OUT/final` / `OUT/ema` hold the merged weights (W + scale·B·A, plain
`save_dit` keys: sample or fine-tune them like any export), and `OUT/final/lora/` the adapters alone
as `pytorch_lora_weights.safetensors` in diffusers' Wan LoRA format (`transformer.blocks.N.attn1.
to_q.lora_A.weight`, written by diffusers' own `WanLoraLoaderMixin.save_lora_weights`, the scale
folded into lora_B so alpha = rank), for `WanPipeline.load_lora_weights` on the base model and for
`actavatar sample --lora PATH[:SCALE]`. The new ActAvatar parts are not in that file (diffusers' Wan
has no audio attention); they are in the merged export.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dataset.errors import UserError

ADAPTER = "default"  # peft's adapter name
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' name
DEFAULT_TARGETS = (
    "self_attn.to_q", "self_attn.to_k", "self_attn.to_v", "self_attn.to_out",
    "cross_attn.to_q", "cross_attn.to_k", "cross_attn.to_v", "cross_attn.to_out",
    "ffn.proj_in", "ffn.proj_out",
)
# Our block module names -> diffusers WanTransformerBlock names (inverse of model.wan_import's renames)
_TO_DIFFUSERS = (
    ("self_attn.to_out", "attn1.to_out.0"), ("cross_attn.to_out", "attn2.to_out.0"),
    ("self_attn.", "attn1."), ("cross_attn.", "attn2."),
    ("ffn.proj_in", "ffn.net.0.proj"), ("ffn.proj_out", "ffn.net.2"),
)
_LORA_KEY = re.compile(rf"^(.+)\.lora_([AB])\.{ADAPTER}\.weight$")


@dataclass(frozen=True, kw_only=True, slots=True)
class LoraConfig:
    """Args:
    rank: adapter rank (0 = no LoRA).
    alpha: scaling numerator: the update is (alpha / rank)·B·A; null = rank (scale 1).
    targets: module name suffixes to adapt (peft's `target_modules`), e.g. "self_attn.to_q".
    dropout: dropout on the adapter input during training.
    """

    rank: int = 0
    alpha: float | None = None
    targets: tuple[str, ...] = DEFAULT_TARGETS
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise UserError(f"lora.rank must be >= 0 (0 = off), got {self.rank}")
        if self.alpha is not None and self.alpha <= 0:
            raise UserError(f"lora.alpha must be > 0 or null (= rank), got {self.alpha}")
        if self.rank and not self.targets:
            raise UserError("lora.targets is empty: name the module suffixes to adapt, e.g. [self_attn.to_q]")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"lora.dropout must be in [0, 1), got {self.dropout}")

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    @property
    def scale(self) -> float:
        return (self.alpha if self.alpha is not None else self.rank) / self.rank


def add_lora(model: nn.Module, config: LoraConfig) -> list[str]:
    """Wrap the target linears of `model` in peft LoRA layers (B = 0: the output is unchanged);
    returns the adapted module names. Errors name targets that match nothing."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    unmatched = [t for t in config.targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched:
        raise UserError(f"lora.targets {unmatched} match no linear layer of the DiT (e.g. {names[:3]})")
    # the parts Wan has no weights for train at full rank: no adapters on them
    new_parts = tuple(model.new_parameter_prefixes()) if hasattr(model, "new_parameter_prefixes") else ()
    chosen = [n for n in names if any(n == t or n.endswith("." + t) for t in config.targets) and not (n + ".").startswith(new_parts)]
    peft_config = PeftLoraConfig(r=config.rank, lora_alpha=config.alpha if config.alpha is not None else config.rank,
                                 # a string is a full-match regex for peft: exactly these modules
                                 target_modules="|".join(re.escape(n) for n in chosen), lora_dropout=config.dropout)
    inject_adapter_in_model(peft_config, model, adapter_name=ADAPTER)
    return sorted({m.group(1) for k in model.state_dict() if (m := _LORA_KEY.match(k))})


def is_lora_parameter(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def freeze_outside_lora(model: nn.Module, keep_prefixes: Iterable[str]) -> None:
    """Only adapters and parameters under `keep_prefixes` (the new ActAvatar parts) may train; their
    requires_grad, set by the stage before, is kept."""
    keep = tuple(keep_prefixes)
    for name, param in model.named_parameters():
        clean = name.replace("_checkpoint_wrapped_module.", "")
        if not (is_lora_parameter(clean) or clean.startswith(keep)):
            param.requires_grad_(False)


def adapters_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module name: (A (r, in), B (out, r))} of a peft-wrapped model's state dict."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        m = _LORA_KEY.match(key)
        if m:
            parts.setdefault(m.group(1), {})[m.group(2)] = value
    return {name: (p["A"], p["B"]) for name, p in parts.items()}


def merge_lora_state(state: Mapping[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A peft-wrapped state dict -> the plain model's: W + scale·B·A under the original keys."""
    adapters = adapters_from_state(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _LORA_KEY.match(key):
            continue
        module, _, leaf = key.rpartition(".")
        if module.endswith(".base_layer"):
            module = module.removesuffix(".base_layer")
            if leaf == "weight" and module in adapters:
                a, b = adapters[module]
                value = (value.float() + scale * (b.float() @ a.float())).to(value.dtype)
            key = f"{module}.{leaf}"
        out[key] = value
    return out


def _root_renames() -> tuple[tuple[str, str], ...]:
    """(ours, diffusers) module-name prefixes outside the blocks, from model.wan_import's table."""
    from model.wan_import import _ROOT

    return tuple((ours.rstrip("."), theirs.rstrip(".")) for theirs, ours in _ROOT if theirs.endswith("."))


def _rename(module: str, *, to_diffusers: bool) -> str:
    """One module name between our names and diffusers' WanTransformer3DModel names."""
    def swap(pairs):
        return [(theirs, ours) for ours, theirs in pairs] if not to_diffusers else list(pairs)

    m = re.match(r"^blocks\.(\d+)\.(.+)$", module)
    prefix, rest, table = ("", module, swap(_root_renames())) if m is None else (f"blocks.{m.group(1)}.", m.group(2), swap(_TO_DIFFUSERS))
    for src, dst in table:
        if rest.startswith(src) and (m is not None or rest == src or rest.startswith(src + ".")):
            return prefix + dst + rest[len(src):]
    if m is None:
        raise ValueError(f"LoRA module {module!r} has no counterpart in the Wan transformer")
    return module


def to_diffusers_name(module: str) -> str:
    """`blocks.3.self_attn.to_out` -> `blocks.3.attn1.to_out.0`, `time_proj` -> `condition_embedder.time_proj`."""
    return _rename(module, to_diffusers=True)


def from_diffusers_name(module: str) -> str:
    """The inverse of `to_diffusers_name`."""
    return _rename(module, to_diffusers=False)


def save_diffusers_lora(directory: str | Path, adapters: Mapping[str, tuple[torch.Tensor, torch.Tensor]], *, scale: float) -> Path:
    """Write `directory/pytorch_lora_weights.safetensors` with diffusers' Wan LoRA saver; the scale is
    folded into lora_B, so the file's alpha equals its rank (any loader gets the same update)."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    if not adapters:
        raise ValueError("no LoRA adapters to save")
    layers = {}
    for module, (a, b) in adapters.items():
        name = to_diffusers_name(module)
        layers[f"{name}.lora_A.weight"] = a.detach().float().cpu().contiguous()
        layers[f"{name}.lora_B.weight"] = (b.detach().float() * scale).cpu().contiguous()
    rank = next(iter(adapters.values()))[0].shape[0]
    targets = sorted({re.sub(r"^blocks\.\d+\.", "", to_diffusers_name(m)) for m in adapters})
    out = Path(directory)
    WanLoraLoaderMixin.save_lora_weights(
        out, transformer_lora_layers=layers, weight_name=LORA_FILE,
        transformer_lora_adapter_metadata={"r": rank, "lora_alpha": rank, "target_modules": targets},
    )
    return out / LORA_FILE


def read_diffusers_lora(path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{our module name: (A, B·scale)} from a diffusers-format Wan LoRA file (or a folder holding
    `pytorch_lora_weights.safetensors`); a `….alpha` entry or metadata alpha/r sets the scale."""
    import json

    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / LORA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata() or {}
    config = json.loads(meta.get("lora_adapter_metadata", "{}") or "{}")  # diffusers' key: {"transformer.r": …}
    rank, alpha = config.get("transformer.r"), config.get("transformer.lora_alpha")
    default_scale = float(alpha) / float(rank) if rank and alpha else 1.0
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        m = re.match(r"^(?:transformer\.)?(.+)\.(lora_A|lora_B|alpha)(?:\.weight)?$", key)
        if m is None:
            raise UserError(f"{path}: {key!r} is not a diffusers Wan LoRA key (transformer.blocks.N.attn1.to_q.lora_A.weight)")
        parts.setdefault(m.group(1), {})[m.group(2)] = value
    adapters = {}
    for module, p in parts.items():
        if "lora_A" not in p or "lora_B" not in p:
            raise UserError(f"{path}: {module} has {sorted(p)}, needs lora_A and lora_B")
        rank = p["lora_A"].shape[0]
        scale = float(p["alpha"]) / rank if "alpha" in p else default_scale
        adapters[from_diffusers_name(module)] = (p["lora_A"], p["lora_B"] * scale)
    return adapters


@torch.no_grad()
def merge_adapters(model: nn.Module, adapters: Mapping[str, tuple[torch.Tensor, torch.Tensor]], scale: float = 1.0,
                   where: str = "LoRA") -> None:
    """W += scale·B·A for each adapter, in the plain (unwrapped) model; shapes are checked."""
    for module, (a, b) in adapters.items():
        try:
            layer = model.get_submodule(module)
        except AttributeError:
            raise UserError(f"{where}: the DiT has no layer {module}") from None
        if not isinstance(layer, nn.Linear) or layer.weight.shape != (b.shape[0], a.shape[1]):
            raise UserError(f"{where}: {module} is {tuple(layer.weight.shape)}, the adapter gives {(b.shape[0], a.shape[1])}")
        delta = b.float() @ a.float()
        layer.weight.copy_((layer.weight.float() + scale * delta.to(layer.weight.device)).to(layer.weight.dtype))


def parse_lora_arg(value: str) -> tuple[str, float]:
    """"PATH[:SCALE]" -> (PATH, SCALE); SCALE defaults to 1."""
    path, sep, scale = value.rpartition(":")
    if sep and path and re.fullmatch(r"-?\d+(\.\d*)?(e-?\d+)?", scale):
        return path, float(scale)
    return value, 1.0
