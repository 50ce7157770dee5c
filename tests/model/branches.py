"""Shared by the optional-branch tests (motion, pose, audio–video interaction)."""

from __future__ import annotations

import dataclasses

import torch

from model.registry import FLAVORS, build_model


def paired_models(branch: str | None = None, shared: dict | None = None, **changes):
    """The debug DiT (with `shared` changes) without and with `changes`, from the same seed, both
    moved off Wan's zero heads by the same noise (as after some training, shared branches included);
    with `branch`, that submodule is moved off its zero output too (a "trained" branch)."""
    base_cfg = dataclasses.replace(FLAVORS["debug"](), **(shared or {}))
    torch.manual_seed(0)
    base = build_model(base_cfg).eval()
    torch.manual_seed(0)
    other = build_model(dataclasses.replace(base_cfg, **changes)).eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        theirs = dict(other.named_parameters())
        for name, p in base.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.05
            p.add_(noise)
            theirs[name].add_(noise)
        if branch is not None:
            for p in other.get_submodule(branch).parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return base, other


def saved_and_loaded(model, folder):
    """`model` after `save_dit` into `folder` and `load_dit` (what its checkpoint gives back)."""
    from train.pretrained import load_dit, save_dit

    save_dit(model, folder)
    return load_dit(folder)


def grown_from(base, folder, **branches: bool):
    """`base` saved into `folder`, then built from it with `ModelConfig(init_from=folder, **branches)`,
    as stage 2 adds a branch to a stage-1 export."""
    from train.model_init import ModelConfig, build_dit
    from train.pretrained import save_dit

    save_dit(base, folder)
    return build_dit(ModelConfig(init_from=str(folder), **branches), seed=0).eval()
