"""`actavatar data run` and `actavatar data status`: the corpus pipeline (part 1).

    actavatar data run --input RAW/ --output OUT/ [--config configs/annotate/default.yaml] [key=value ...]
    actavatar data status OUT/
    python -m annotate.cli run --input RAW/ --output OUT/
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from dataset.command import standalone_main


def _run(args: argparse.Namespace) -> int:
    from annotate.config import AnnotateConfig
    from annotate.pipeline import format_summary, run_pipeline
    from dataset.config_loader import load_config

    cfg = load_config(AnnotateConfig, args.config, args.overrides)
    summary = run_pipeline(cfg, args.input, args.output, ray_address=args.ray_address, worker_logs=args.verbose)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _status(args: argparse.Namespace) -> int:
    from annotate.pipeline import run_status

    status = run_status(args.output)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"run {status['output']}: {status['inputs'] if status['inputs'] is not None else '?'} input(s)")
    for stage, count in status["stages"].items():
        print(f"  {stage:<8} {count} source(s) done")
    print(f"  clips    {status['clips_cut']} cut")
    packed = status["packed"]
    print("  packed   " + (", ".join(f"{n} {s}" for s, n in sorted(packed.items())) if packed else "not yet"))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `run` and `status` to the `data` group."""
    p = commands.add_parser(
        "run",
        help="build a corpus: probe, shots, cut/normalise, face filter, ASR + alignment, pack (Ray Data)",
        description="Cut raw talking videos into normalised clips (25 fps, 16 kHz mono, configured size), "
        "keep the clips with one dominant face and enough speech, transcribe them with word timings "
        "(whisperx; models from local folders or caches, never downloaded: see asr.* keys), and write "
        "WebDataset shards + manifest.parquet to OUTPUT. Resumable: rerun the same command after an "
        "interruption. The caption stays null (explicitly absent) until the caption stage exists.",
    )
    p.add_argument("--input", required=True, help="folder of videos, glob, text file listing paths/URLs, or an fsspec URL")
    p.add_argument("--output", required=True, help="output folder (shards/, manifest.parquet, _work/ progress)")
    p.add_argument("--config", default=None, help="YAML with values (e.g. configs/annotate/default.yaml)")
    p.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: local in-process Ray)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. clip.width=384")
    p.set_defaults(func=_run)

    p = commands.add_parser("status", help="per-stage progress of a run", description="Per-stage counts of a run, finished or not.")
    p.add_argument("output", help="the run's output folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m annotate.cli", __doc__.splitlines()[0], argv, register=register)


if __name__ == "__main__":
    raise SystemExit(main())
