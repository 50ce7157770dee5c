"""`actavatar models train-vae`: train a compact Wan-architecture VAE on a corpus (see train/vae_train.py).

    actavatar models train-vae --data CORPUS --out VAE --steps 900 --window-steps 200 --frames 65 --size 64
    actavatar models train-vae --data CORPUS --out VAE z_dim=16 saturation_weight=4   # VaeTrainConfig keys
    python -m train.vae_cli train-vae --data CORPUS --out VAE                       # without the console script

Writes VAE/config.json + diffusion_pytorch_model.safetensors (diffusers AutoencoderKLWan, loadable
wherever a Wan VAE is: `encoders.vae=VAE`, `sample.vae=VAE`), VAE/vae_report.json (PSNR and the
action reader on reconstructed held-out clips) and VAE/train_state.pt (a rerun resumes from it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from dataset.command import standalone_main

HELP = "train a compact Wan-architecture VAE (AutoencoderKLWan) on a corpus of clips"
_FLAGS = ("steps", "window_steps", "frames", "size", "batch_size", "lr", "mouth_weight", "seed", "threads")  # VaeTrainConfig keys
_ARCH_FLAGS = ("z_dim", "base_dim", "patch_size")  # VaeArchConfig keys


def _train(args: argparse.Namespace) -> int:
    from dataset.config_loader import load_config
    from train.vae_train import VaeTrainConfig, train_vae

    overrides = [f"data={args.data}", f"out={args.out}"]
    keys = [(flag, flag) for flag in _FLAGS] + [(flag, f"arch.{flag}") for flag in _ARCH_FLAGS]
    overrides += [f"{key}={getattr(args, flag)}" for flag, key in keys if getattr(args, flag) is not None]
    overrides += list(args.overrides)
    report = train_vae(load_config(VaeTrainConfig, args.config, overrides), progress=not args.no_progress)
    print(f"train-vae: {report['steps']} steps -> {args.out}; held-out reconstruction: {json.dumps(report['reconstruction'])}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `train-vae` to the `models` group."""
    p = commands.add_parser("train-vae", help=HELP, description=HELP + ". Resumes from OUT/train_state.pt when present.")
    p.add_argument("--data", required=True, help="corpus folder or shards of clips (e.g. a `data run` output)")
    p.add_argument("--out", required=True, help="output folder (diffusers AutoencoderKLWan + vae_report.json)")
    p.add_argument("--steps", type=int, help="optimiser steps in total (default 900)")
    p.add_argument("--window-steps", dest="window_steps", type=int,
                   help="the last steps, on whole windows of --frames (default 200; the others see 9-frame clips)")
    p.add_argument("--frames", type=int, help="window in video frames, 1 + 4k: the DiT's window (default 65)")
    p.add_argument("--size", type=int, help="square frame size in pixels (default 64)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="whole windows per step (default 2)")
    p.add_argument("--lr", type=float, help="AdamW learning rate, cosine-decayed (default 3e-3)")
    p.add_argument("--mouth-weight", dest="mouth_weight", type=float,
                   help="extra loss weight inside each frame's lip box, from the clips' pose.npy (default 0: none)")
    p.add_argument("--z-dim", dest="z_dim", type=int, help="latent channels (default 16)")
    p.add_argument("--base-dim", dest="base_dim", type=int, help="channels of the first stage (default 16)")
    p.add_argument("--patch-size", dest="patch_size", type=int,
                   help="pixels folded into channels first; with the three default stages the spatial stride is 4 x this "
                        "(default 2: stride 8; 1: stride 4)")
    p.add_argument("--seed", type=int, help="init and data order (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--config", metavar="YAML", help="VaeTrainConfig values (flags and key=value win)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="VaeTrainConfig overrides, e.g. saturation_weight=2")
    p.set_defaults(func=_train)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m train.vae_cli", HELP, argv, register=register)


if __name__ == "__main__":
    raise SystemExit(main())
