"""Load evaluation weights from local files only, with errors that say what is wrong and how to fix it.

Nothing here downloads: every metric network (Inception, I3D, SyncNet, face embedder) is read from a
path the user gives. State dicts go through `torch.load(weights_only=True)`; TorchScript archives
through `torch.jit.load`. Errors are `WeightsError` (a ValueError, so the CLI prints one line).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from dataset.errors import UserError


class WeightsError(UserError):
    """A weights path is missing or holds the wrong format; the message names the file and the fix."""


def require_file(path: str | Path, *, what: str, how: str) -> Path:
    """Return `path` as a Path if it is a readable file, else raise naming `what` and `how` to get it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"{what} weights not found: {path} does not exist. {how}")
    if not path.is_file():
        raise WeightsError(f"{what} weights: {path} is not a file. {how}")
    return path


def load_state_dict(path: str | Path, *, what: str, how: str) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} state dict saved with `torch.save` (read with weights_only=True)."""
    path = require_file(path, what=what, how=how)
    if zipfile.is_zipfile(path) and _is_torchscript_zip(path):
        raise WeightsError(f"{what} weights: {path} is a TorchScript archive, expected a state dict. {how}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise WeightsError(f"{what} weights: {path} is not a torch state dict ({type(err).__name__}: {err}). {how}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # Lightning-style wrapper
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{what} weights: {path} does not hold a mapping of parameter names to tensors. {how}")
    return dict(state)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], *, path: str | Path, what: str, how: str) -> nn.Module:
    """Copy `state` into `module`; every parameter and buffer must be present with its shape.

    `num_batches_tracked` buffers may be absent: files saved by torch < 0.4.1 (e.g. syncnet_v2.model)
    predate them, and they do not affect eval-mode outputs.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise WeightsError(f"{what} weights: {path} does not match the architecture: {'; '.join(parts)}. {how}")
    module.load_state_dict({k: v for k, v in state.items()}, strict=False)
    return module


def load_torchscript(path: str | Path, *, what: str, how: str, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """A TorchScript archive (`torch.jit.save`) in eval mode."""
    path = require_file(path, what=what, how=how)
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{what} weights: {path} is not a TorchScript archive (not a zip file). {how}")
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # torch.jit raises RuntimeError subclasses with long C++ traces
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{what} weights: {path} is not a loadable TorchScript archive ({first}). {how}") from None
    return module.eval()


def _is_torchscript_zip(path: Path) -> bool:
    # torch.jit.save archives hold code/ and constants.pkl; torch.save zips hold only data.pkl + data/.
    with zipfile.ZipFile(path) as zf:
        return any(name.split("/", 1)[-1].startswith("code/") for name in zf.namelist())
