"""`actavatar encode`: precompute VAE latents, text embeddings and audio features into latent shards.

    actavatar encode --config configs/train/stage1_debug.yaml --out runs/latents \
        data.shards=demo-out/corpus encoders.text=TINY/umt5 encoders.vae=TINY/vae encoders.audio=TINY/wav2vec2
    python -m train.encode_cli ...   (the same without the console script)

Then train with `data.kind=latents data.shards=runs/latents`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dataset.command import standalone_main

HELP = "precompute VAE latents, text embeddings and audio features into latent shards"


def _encode(args: argparse.Namespace) -> int:
    from dataset.config_loader import load_config
    from train.config import TrainConfig
    from train.encode import encode_corpus

    cfg = load_config(TrainConfig, args.config, args.overrides)
    counts = encode_corpus(cfg, args.out, max_samples=args.max_samples, overwrite=args.overwrite, device=args.device)
    print(f"wrote {counts['written']} sample(s) to {args.out} ({counts['too_short']} clip(s) shorter than every bucket)")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="YAML", help="a train config (data, encoders, model)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output corpus folder (shards/ + manifest)")
    parser.add_argument("--max-samples", type=int, default=1000, help="samples per latent shard (default 1000)")
    parser.add_argument("--device", default="cpu", help="torch device for the encoders (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.set_defaults(func=_encode)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m train.encode_cli", HELP, argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
