"""Load and save model weights: our DiT folders, diffusers Wan transformers, UMT5, Wan VAE, wav2vec2.

Every loader takes a local path or a Hugging Face id; `local_files_only=True` never touches the
network. Never `trust_remote_code`. The pure conversions live in `model/` (`model.wan_import`).

    from train.pretrained import import_wan, load_text_encoder, load_vae, load_audio_encoder
    dit = import_wan("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")           # or a local diffusers folder
    text = load_text_encoder("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")    # text_encoder/ + tokenizer/
    vae = load_vae("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")              # vae/
    audio = load_audio_encoder("facebook/wav2vec2-base-960h")
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from model.alignment import AlignmentConfig
from model.audio_attention import AudioAttentionConfig
from model.dit import DiTConfig, VideoDiT, cast_keeping_fp32
from model.face_identity import FaceIdentityConfig
from model.motion import MotionConfig
from model.pose import PoseConfig
from model.refocus import RefocusConfig
from model.phase_attention import PhaseAttentionConfig
from model.registry import build_model

DIT_CONFIG = "config.json"
DIT_WEIGHTS = "model.safetensors"
_NESTED = {"phase": PhaseAttentionConfig, "audio": AudioAttentionConfig, "alignment": AlignmentConfig, "motion": MotionConfig,
           "pose": PoseConfig, "refocus": RefocusConfig, "face_identity": FaceIdentityConfig}
_TUPLES = ("patch_size", "vae_stride")


# -- our DiT ------------------------------------------------------------------------------------


def dit_config_to_dict(config: DiTConfig) -> dict[str, Any]:
    # An exported model is fully ramped: a run that starts from it must not warm up from neutral again.
    config = dataclasses.replace(config, alignment=dataclasses.replace(config.alignment, warmup_steps=0))
    return {"_class": "VideoDiT", **dataclasses.asdict(config)}


def dit_config_from_dict(data: Mapping[str, Any]) -> DiTConfig:
    """Inverse of `dit_config_to_dict`; unknown keys raise (DiTConfig's own error)."""
    fields = {k: v for k, v in data.items() if k != "_class"}
    for key in _TUPLES:
        if key in fields:
            fields[key] = tuple(fields[key])
    for key, cls in _NESTED.items():
        value = fields.get(key)
        if isinstance(value, Mapping):
            value = dict(value)
            if key == "audio" and value.get("layers") is not None:
                value["layers"] = tuple(value["layers"])
            fields[key] = cls(**value)
    return DiTConfig(**fields)


def save_dit(model: VideoDiT, directory: str | os.PathLike) -> Path:
    """Write `config.json` + `model.safetensors` (each via a temporary file and rename)."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / f".{DIT_WEIGHTS}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / DIT_WEIGHTS)
    tmp = out / f".{DIT_CONFIG}.tmp"
    tmp.write_text(json.dumps(dit_config_to_dict(model.config), indent=2) + "\n")
    tmp.replace(out / DIT_CONFIG)
    return out


def load_dit(
    directory: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
    config: DiTConfig | None = None,
) -> VideoDiT:
    """Load a folder written by `save_dit`.

    Args:
        config: build this architecture instead of the folder's config.json, e.g. with another
            attention backend or PACA option (the weights must fit it: the state dict loads strictly,
            except that branches which start neutral, e.g. `model.motion` or `model.pose`, may be new).
    """
    from safetensors.torch import load_file

    path = Path(directory)
    if not (path / DIT_CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no {DIT_CONFIG} (expected a folder written by save_dit)")
    if config is None:
        config = dit_config_from_dict(json.loads((path / DIT_CONFIG).read_text()))
    model = _materialize(config, device, dtype)
    missing, unexpected = model.load_state_dict(load_file(str(path / DIT_WEIGHTS), device=str(device)), strict=False)
    new = model.zero_init_prefixes()
    missing = [k for k in missing if not k.startswith(new)]  # neutral new branches keep their zero init
    if missing or unexpected:
        raise RuntimeError(f"{path / DIT_WEIGHTS} does not fit the model: missing keys {missing[:5]}"
                           f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}")
    return model


def _materialize(config: DiTConfig, device: str | torch.device, dtype: torch.dtype | None) -> VideoDiT:
    """Build on meta (no memory, fast for 14B), allocate on `device` in `dtype`, initialise."""
    model = build_model(config, device="meta")
    if dtype is not None:
        model = cast_keeping_fp32(model, dtype)  # time embedding, adaLN tables, norms stay fp32 as in Wan
    model = model.to_empty(device=device)
    model.init_weights()
    return model


# -- diffusers Wan transformer ------------------------------------------------------------------


def _snapshot(source: str | os.PathLike, patterns: list[str], local_files_only: bool, revision: str | None) -> Path:
    """A local folder for `source`: itself when it exists, else a Hugging Face snapshot."""
    path = Path(source)
    if path.exists():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns, local_files_only=local_files_only, revision=revision))
    except LocalEntryNotFoundError:
        raise FileNotFoundError(
            f"{source}: neither a local folder nor in the Hugging Face cache, and downloads are off "
            "(model.local_files_only / encoders.local_files_only = true); download it first "
            f"(`huggingface-cli download {source}`) or set the setting to false") from None


def _wan_folder(source: str | os.PathLike, subfolder: str | None, patterns: tuple[str, ...], local_files_only: bool,
                revision: str | None) -> Path:
    """The folder holding a diffusers Wan transformer's config.json (a pipeline's `transformer/`)."""
    path = Path(source)
    if subfolder is None and not (path.exists() and (path / "config.json").is_file()):
        subfolder = "transformer"
    root = _snapshot(source, [f"{subfolder}/{p}" for p in patterns] if subfolder else list(patterns), local_files_only, revision)
    folder = root / subfolder if subfolder else root
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json of a diffusers WanTransformer3DModel")
    return folder


def read_diffusers_wan_config(
    source: str | os.PathLike, *, subfolder: str | None = None, local_files_only: bool = False, revision: str | None = None
) -> dict[str, Any]:
    """The config of a diffusers Wan transformer, reading (or fetching) config.json only: every rank
    can know the architecture without touching the weights."""
    folder = _wan_folder(source, subfolder, ("config.json",), local_files_only, revision)
    return json.loads((folder / "config.json").read_text())


def read_diffusers_wan(
    source: str | os.PathLike, *, subfolder: str | None = None, local_files_only: bool = False, revision: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state dict) of a diffusers `WanTransformer3DModel` folder, pipeline folder or HF id.

    A pipeline folder or id (with `transformer/`) is read from `subfolder` (default "transformer").
    """
    from safetensors.torch import load_file

    folder = _wan_folder(source, subfolder, ("*.json", "*.safetensors"), local_files_only, revision)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return json.loads((folder / "config.json").read_text()), state


def import_wan(
    source: str | os.PathLike,
    *,
    subfolder: str | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> VideoDiT:
    """A `VideoDiT` with diffusers Wan weights (folder or HF id); `overrides` replace DiTConfig fields."""
    from model.wan_import import config_from_diffusers, load_wan_state_dict

    config, state = read_diffusers_wan(source, subfolder=subfolder, local_files_only=local_files_only, revision=revision)
    model = _materialize(config_from_diffusers(config, **overrides), device, dtype)
    load_wan_state_dict(model, state)
    return model


# -- encoders -----------------------------------------------------------------------------------


def _hf_location(source: str | os.PathLike, subfolder: str) -> tuple[str, dict[str, Any]]:
    """(path or id, from_pretrained kwargs): a pipeline folder's `subfolder/` if present, else the folder."""
    path = Path(source)
    if path.is_dir():
        return (str(path / subfolder), {}) if (path / subfolder).is_dir() else (str(path), {})
    return str(source), {"subfolder": subfolder} if subfolder else {}


def _dtype_kwarg(dtype: torch.dtype | None) -> dict[str, Any]:
    # transformers >= 4.56 (and 5.x) name it `dtype`; older releases only know `torch_dtype`.
    if dtype is None:
        return {}
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def load_text_encoder(
    source: str | os.PathLike,
    *,
    subfolder: str = "text_encoder",
    tokenizer_subfolder: str = "tokenizer",
    local_files_only: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    **kwargs: Any,
):
    """`TextEncoder` from a UMT5 encoder folder/id (with its tokenizer) or a Wan diffusers pipeline.

    For a plain HF id such as "google/umt5-xxl" pass subfolder="" and tokenizer_subfolder="".
    """
    from transformers import AutoTokenizer, UMT5EncoderModel

    from model.text_encoder import TextEncoder

    tokenizer, encoder = _load_with_preprocessor(source, UMT5EncoderModel, subfolder, AutoTokenizer, tokenizer_subfolder,
                                                 local_files_only=local_files_only, dtype=dtype)
    return TextEncoder(tokenizer, encoder.to(device), **kwargs)


def _load_with_preprocessor(source: str | os.PathLike, model_cls: Any, subfolder: str, pre_cls: Any, pre_subfolder: str, *,
                            local_files_only: bool, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """(preprocessor, model) from one folder/id, or a pipeline's two sub-folders (tokenizer/ + text_encoder/, …)."""
    where, extra = _hf_location(source, subfolder)
    pre_where, pre_extra = _hf_location(source, pre_subfolder)
    pre = pre_cls.from_pretrained(pre_where, local_files_only=local_files_only, **pre_extra)
    model = model_cls.from_pretrained(where, local_files_only=local_files_only, **_dtype_kwarg(dtype), **extra)
    return pre, model


def load_vae(
    source: str | os.PathLike,
    *,
    subfolder: str = "vae",
    local_files_only: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
):
    """`VideoVAE` from an `AutoencoderKLWan` folder/id or a Wan diffusers pipeline (its `vae/`)."""
    from diffusers import AutoencoderKLWan

    from model.vae import VideoVAE

    where, extra = _hf_location(source, subfolder)
    dtype_kw = {"torch_dtype": dtype} if dtype is not None else {}
    vae = AutoencoderKLWan.from_pretrained(where, local_files_only=local_files_only, **dtype_kw, **extra)
    return VideoVAE(vae.to(device))


def load_image_encoder(
    source: str | os.PathLike,
    *,
    subfolder: str = "image_encoder",
    processor_subfolder: str = "image_processor",
    local_files_only: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
):
    """`ImageEncoder` (CLIP vision tower + processor) from a folder/id holding both, or a Wan2.1 I2V
    diffusers pipeline (its `image_encoder/` and `image_processor/`)."""
    from transformers import CLIPImageProcessor, CLIPVisionModel

    from model.image_encoder import ImageEncoder

    processor, model = _load_with_preprocessor(source, CLIPVisionModel, subfolder, CLIPImageProcessor, processor_subfolder,
                                               local_files_only=local_files_only, dtype=dtype)
    return ImageEncoder(processor, model.to(device))


def image_encoder_width(source: str | os.PathLike, *, local_files_only: bool = False) -> int:
    """Token width (hidden_size) of a CLIP vision tower, from its config.json only."""
    from transformers import CLIPVisionConfig

    where, extra = _hf_location(source, "image_encoder")
    return int(CLIPVisionConfig.from_pretrained(where, local_files_only=local_files_only, **extra).hidden_size)


def encoder_widths(text: str | os.PathLike, audio: str | os.PathLike, *, local_files_only: bool = False) -> dict[str, int]:
    """Feature widths of a UMT5 text encoder (d_model) and a wav2vec2 audio encoder (hidden_size),
    read from their config.json files only (nothing loads): {"text": ..., "audio": ...} for those given."""
    from transformers import AutoConfig

    widths: dict[str, int] = {}
    if text:
        where, extra = _hf_location(text, "text_encoder")
        widths["text"] = int(AutoConfig.from_pretrained(where, local_files_only=local_files_only, **extra).d_model)
    if audio:
        widths["audio"] = int(AutoConfig.from_pretrained(str(audio), local_files_only=local_files_only).hidden_size)
    return widths


def load_audio_encoder(
    source: str | os.PathLike,
    *,
    local_files_only: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    **kwargs: Any,
):
    """`AudioEncoder` from a wav2vec2 folder/id (e.g. facebook/wav2vec2-base-960h; a CTC head is dropped)."""
    from transformers import Wav2Vec2Model

    from model.audio_encoder import AudioEncoder

    model = Wav2Vec2Model.from_pretrained(str(source), local_files_only=local_files_only, **_dtype_kwarg(dtype))
    return AudioEncoder(model.to(device), **kwargs)
