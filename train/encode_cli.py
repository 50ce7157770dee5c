"""`actavatar encode`: precompute VAE latents, text embeddings and audio features into latent shards.

    actavatar encode --config configs/train/stage1_debug.yaml --out runs/latents \
        data.shards=demo-out/corpus encoders.text=TINY/umt5 encoders.vae=TINY/vae encoders.audio=TINY/wav2vec2
    python -m train.encode_cli ...   (the same without the console script)

Then train with `data.kind=latents data.shards=runs/latents`. `--windows-per-clip 0 --window-stride 24`
writes every full window starting at frames 0, 24, 48, ... (keys `<key>_w0000`, ...) instead of one
window at the clip start. The negative prompt of guidance dropout (`guidance.negative_prompt`) is
encoded into every sample; training with another one fails at start.
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
    counts = encode_corpus(cfg, args.out, max_samples=args.max_samples, overwrite=args.overwrite, device=args.device,
                           windows_per_clip=args.windows_per_clip, window_stride=args.window_stride, batch_size=args.batch_size)
    print(f"wrote {counts['written']} window(s) of {counts['clips']} clip(s) to {args.out} "
          f"({counts['too_short']} clip(s) shorter than every bucket)")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="YAML", help="a train config (data, encoders, model)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output corpus folder (shards/ + manifest)")
    parser.add_argument("--max-samples", type=int, default=1000, help="samples per latent shard (default 1000)")
    parser.add_argument("--device", default="cpu", help="torch device for the encoders (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    parser.add_argument("--windows-per-clip", type=int, default=1, metavar="N",
                        help="windows per clip (default 1: the clip start; 0: every full window)")
    parser.add_argument("--window-stride", type=int, default=0, metavar="FRAMES",
                        help="frames between window starts (default 0: the window length, no overlap)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="windows per encoder call (default 4)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.set_defaults(func=_encode)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m train.encode_cli", HELP, argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
