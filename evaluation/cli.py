"""`actavatar eval`: metrics for folders of generated videos against reference videos.

    actavatar eval --generated runs/ckpt1000 --generated base=runs/baseline --reference bench/ref \
        --out reports/ --fid-weights pt_inception-2015-12-05-6726825d.pth --i3d i3d_torchscript.pt \
        --syncnet syncnet_v2.model [--metrics fid,fvd,sync] [--config configs/eval/x.yaml] [fvd.num_frames=16 ...]
    python -m evaluation.cli --generated ... (the same without the console script)

Writes OUT/report.json, OUT/report.md and OUT/plots/*.png, and prints the table. A metric whose
weights are not given is skipped and the reason printed; a given path that is wrong is an error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dataset.command import add_global_flags, run_command

HELP = "score generated videos (FID, FVD, Sync-C/D, identity, action accuracy) against references"


def _runs(items: Sequence[str]) -> dict[str, str]:
    """`DIR` or `NAME=DIR` -> {name: dir}; names must be unique."""
    runs: dict[str, str] = {}
    for item in items:
        name, _, folder = item.partition("=") if "=" in item else (Path(item.rstrip("/")).name, "", item)
        if not name or not folder:
            raise ValueError(f"--generated {item!r}: expected DIR or NAME=DIR")
        if name in runs:
            raise ValueError(f"--generated: run name {name!r} given twice (use NAME=DIR to tell them apart)")
        runs[name] = folder
    return runs


def _eval(args: argparse.Namespace) -> int:
    from dataset.config_loader import load_config
    from evaluation.config import EvalConfig
    from evaluation.report import markdown_table, write_report
    from evaluation.suite import evaluate_folders

    overrides = list(args.overrides)
    for key, value in (("fid_weights", args.fid_weights), ("i3d", args.i3d), ("syncnet", args.syncnet),
                       ("face_embedder", args.face_embedder), ("device", args.device)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.metrics is not None:
        overrides.append(f"metrics=[{args.metrics}]")
    cfg = load_config(EvalConfig, args.config, overrides)
    report = evaluate_folders(cfg, _runs(args.generated), args.reference)
    files = write_report(report, args.out)
    print(markdown_table(report["metrics"], report["skipped"]), end="")
    print(f"wrote {files['json']}, {files['markdown']} and {len(files['plots']) + len(files['timelines'])} plot(s)")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `eval` arguments to `parser` (the `actavatar eval` subparser, or this module's own)."""
    parser.add_argument("--generated", action="append", required=True, metavar="[NAME=]DIR",
                        help="folder of generated <key>.mp4 (audio muxed in, or <key>.wav beside); repeat for several runs")
    parser.add_argument("--reference", required=True, metavar="DIR",
                        help="folder of reference <key>.mp4 (+ optional <key>.png identity image, <key>.json annotation)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where report.json, report.md and plots/ go")
    parser.add_argument("--fid-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth (pytorch-fid)")
    parser.add_argument("--i3d", metavar="PATH", help="i3d_torchscript.pt (StyleGAN-V FVD detector)")
    parser.add_argument("--syncnet", metavar="PATH", help="syncnet_v2.model (syncnet_python)")
    parser.add_argument("--face-embedder", metavar="PATH", help="TorchScript face-recognition network (identity)")
    parser.add_argument("--metrics", metavar="LIST", help="comma-separated subset of fid,fvd,sync,identity,actions (default: all)")
    parser.add_argument("--device", help="torch device (default cpu)")
    parser.add_argument("--config", metavar="YAML", help="EvalConfig values (e.g. configs/eval/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="EvalConfig overrides, e.g. fvd.num_frames=16")
    parser.set_defaults(func=_eval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.cli", description=HELP)
    add_global_flags(parser)
    configure(parser)
    return run_command(parser.parse_args(argv), prog="python -m evaluation.cli")


if __name__ == "__main__":
    raise SystemExit(main())
