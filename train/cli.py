"""`actavatar train`: two-stage training of the PACA DiT.

    actavatar train --config configs/train/stage1_debug.yaml [--num-workers N] [--use-gpu] [key=value ...]
    python -m train.cli --config configs/train/stage1_debug.yaml optim.lr=1e-4        # in this process
    torchrun --nproc-per-node 2 -m train.cli --config configs/train/stage1_debug.yaml # one rank each

`--num-workers N` (N >= 1) launches Ray Train's TorchTrainer with N workers; without it the run
happens in this process (a torchrun rank when WORLD_SIZE is set). Outputs go to `output_dir`:
checkpoints/ (resume), final/ and ema/ (safetensors), metrics.jsonl, tensorboard/.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from dataset.command import standalone_main

HELP = "train the PACA DiT (stage 1 audio-visual, stage 2 phase captions) from a YAML config"


def _train(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["use_gpu=true"] if args.use_gpu else [])
    if args.num_workers:
        from train.launch import launch

        metrics = launch(args.config, overrides, num_workers=args.num_workers, use_gpu=args.use_gpu, ray_address=args.ray_address)
    else:
        from dataset.config_loader import load_config
        from train.config import TrainConfig
        from train.trainer import build_trainer

        trainer = build_trainer(load_config(TrainConfig, args.config, overrides))
        metrics = {"step": trainer.step, **trainer.train()}
        metrics["step"] = trainer.step
        if not trainer.dist.is_main:
            return 0
    shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items() if k in ("step", "loss", "samples_per_s")}
    print(f"done: {json.dumps(shown)}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="YAML", help="TrainConfig values, e.g. configs/train/stage1_debug.yaml")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N",
                        help="Ray Train workers (default 0: run in this process / this torchrun rank)")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per worker (bf16, NCCL)")
    parser.add_argument("--ray-address", metavar="ADDR", help="existing Ray cluster (default: start a local one)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="TrainConfig overrides, e.g. optim.lr=1e-4 steps=100")
    parser.set_defaults(func=_train)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m train.cli", HELP, argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
