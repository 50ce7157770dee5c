"""Inputs for bench/gpu_check.sh's sampling step: a random DiT of a flavour's size with the tiny
encoders' widths (so the sampling time measured is the DiT's), a grey reference image and a tone.

    .venv/bin/python bench/sample_check_setup.py OUT --flavor wan2.1-t2v-1.3b --width 832 --height 480 --seconds 3.24
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--flavor", default="wan2.1-t2v-1.3b")
    parser.add_argument("--encoders", required=True, help="`actavatar models tiny` folder (vae/, umt5/, wav2vec2/)")
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seconds", type=float, default=3.24)
    args = parser.parse_args(argv)

    from PIL import Image

    from dataset.media import encode_wav
    from model.registry import build_model, get_config
    from train.pretrained import save_dit

    out = Path(args.out)
    enc = Path(args.encoders)
    z = json.loads((enc / "vae" / "config.json").read_text())["z_dim"]
    text_dim = json.loads((enc / "umt5" / "config.json").read_text())["d_model"]
    audio_dim = json.loads((enc / "wav2vec2" / "config.json").read_text())["hidden_size"]
    cfg = get_config(args.flavor, in_channels=z, out_channels=z, text_dim=text_dim)
    cfg = dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, audio_dim=audio_dim))
    model = build_model(cfg)
    save_dit(model, out / "dit")
    Image.fromarray(np.full((args.height, args.width, 3), 128, np.uint8)).save(out / "ref.png")
    t = np.arange(int(args.seconds * 16000)) / 16000
    (out / "speech.wav").write_bytes(encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)))
    print(f"{args.flavor}-size DiT ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params) in {out / 'dit'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
