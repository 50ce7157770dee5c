"""The `actavatar` console script.

    actavatar --help
    actavatar data validate OUT/

Each group's commands live in a package's `cli.py`, which exposes `register(subparsers)` (adds
its commands, each with `func=`) and `main(argv)` for `python -m <package>.cli`. This module only
dispatches. Package cli modules import heavy libraries inside their command functions, so
`actavatar --help` stays fast and a group needing an optional extra fails only when used.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from actavatar import __version__
from dataset.command import add_global_flags, run_command

# group name -> (one-line help, modules that register commands in that group).
# Only groups whose work exists are listed: a missing group is absent, not a placeholder.
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data": ("build, check and inspect corpora (shards + manifest)", ("dataset.cli", "annotate.cli")),
    "models": ("build tiny random-weight models with the real architectures, train a compact VAE",
               ("actavatar.models_cli", "train.vae_cli")),
    "bench": ("benchmarks that train and measure: the PACA mechanism on exact ground truth", ("evaluation.mechanism.cli",)),
}

# Single commands (no subcommands): name -> (one-line help, module with `configure(parser)`).
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("generate a synthetic talking-video corpus with exact ground truth", "dataset.synth.cli"),
    "eval": ("score generated videos against references (FID, FVD, Sync-C/D, identity, actions)", "evaluation.cli"),
    "train": ("train the PACA DiT (stage 1 or 2) in-process, under torchrun or on Ray Train", "train.cli"),
    "encode": ("precompute VAE latents, text embeddings and audio features into latent shards", "train.encode_cli"),
    "sample": ("generate talking-avatar videos from a checkpoint, a reference image, audio and a phased prompt", "evaluation.sample_cli"),
    "pose": ("read a driving video's per-frame keypoints into a pose.npy for `actavatar sample --pose`", "evaluation.pose_cli"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actavatar",
        description="Open ActAvatar toolkit: build phase-annotated talking-avatar corpora, "
        "train the PACA model and evaluate it.",
    )
    parser.add_argument("--version", action="version", version=f"actavatar {__version__}")
    add_global_flags(parser)
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for name, (help_text, modules) in GROUPS.items():
        group = groups.add_parser(name, help=help_text, description=help_text)
        commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for module in modules:
            importlib.import_module(module).register(commands)
    for name, (help_text, module) in COMMANDS.items():
        importlib.import_module(module).configure(groups.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args, prog="actavatar")


if __name__ == "__main__":
    raise SystemExit(main())
