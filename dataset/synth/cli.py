"""`actavatar synth`: generate a synthetic talking-video corpus with exact ground truth.

    actavatar synth --out OUT --videos 10 --seed 0
    actavatar synth --out OUT --videos 2 --min-duration 8 --max-duration 12 --resolutions 320x180
    actavatar synth --out OUT --videos 40 --profile mechanism --resolutions 320x180   # benchmark corpus
    actavatar synth --config configs/synth.yaml --out OUT crf=23   # YAML, then key=value, then flags
    python -m dataset.synth.cli --out OUT ...                      # the same without the console script

Writes OUT/raw/synth_NNNNN.mp4 and OUT/truth.jsonl (format: dataset/synth/truth.py).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence

from dataset.command import standalone_main
from dataset.errors import UserError

# flag dest -> SynthConfig key; flags default to None so only the ones given override YAML.
_FLAGS = ("out", "videos", "seed", "min_duration", "max_duration", "resolutions", "workers", "crf", "preset", "profile")


def _run(args: argparse.Namespace) -> int:
    from dataset.config_loader import load_config
    from dataset.synth.corpus import SynthConfig, generate_corpus

    overrides = list(args.overrides)
    if args.out is None and args.config is None and not any(o.startswith("out=") for o in overrides):
        raise UserError("--out is required: the corpus folder to write")
    for key in _FLAGS:
        value = getattr(args, key)  # every key in _FLAGS is a declared flag
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.overwrite:
        overrides.append("overwrite=true")
    cfg = load_config(SynthConfig, args.config, overrides)
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng not found on PATH; install it (Debian/Ubuntu: apt-get install espeak-ng)")
    summary = generate_corpus(cfg, progress=not args.no_progress)
    print(f"synth: {summary.videos} video(s), {summary.shots} shot(s), {summary.seconds:.1f} s of video "
          f"-> {summary.out / 'raw'} and {summary.out / 'truth.jsonl'}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the synth arguments to `parser` (the `actavatar synth` subparser or a standalone one)."""
    parser.add_argument("--out", help="corpus folder to write (raw/ and truth.jsonl); required")
    parser.add_argument("--videos", type=int, help="number of raw videos (default 10)")
    parser.add_argument("--seed", type=int, help="corpus seed; same seed, same files (default 0)")
    parser.add_argument("--min-duration", dest="min_duration", type=float, help="shortest video in seconds (default 25)")
    parser.add_argument("--max-duration", dest="max_duration", type=float, help="longest video in seconds (default 35)")
    parser.add_argument("--resolutions", help="comma-separated WIDTHxHEIGHT list cycled over the videos "
                        "(default 640x360,854x480,960x540,1280x720)")
    parser.add_argument("--workers", type=int, help="parallel render processes (default 0: one per CPU)")
    parser.add_argument("--crf", type=int, help="x264 quality, lower is better (default 21)")
    parser.add_argument("--preset", help="x264 speed preset (default superfast)")
    parser.add_argument("--profile", choices=("default", "mechanism"),
                        help="default: varied corpus (negatives, textures, fades, VFR, head and arm actions); "
                             "mechanism: the benchmark corpus of `actavatar bench mechanism` (talking shots on plain "
                             "walls, 25 fps, the five arm actions only, balanced, 1-2 s each)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing synthetic corpus in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config", help="YAML file with SynthConfig values (flags and key=value win over it)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="SynthConfig overrides, e.g. crf=23")
    parser.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m dataset.synth.cli", __doc__.splitlines()[0], argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
