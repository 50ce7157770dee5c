"""`actavatar bench mechanism`: train small PACA models on the synthetic corpus and reproduce the
paper's ablation on exact ground truth (see evaluation/mechanism/__init__.py).

    actavatar bench mechanism --out runs/mech --scale cpu            # arms (a) PACA and (b) global caption
    actavatar bench mechanism --out runs/mech --scale gpu            # all five arms, larger model and data
    actavatar bench mechanism --out runs/mech --scale cpu arms=[paca,paca_motion]   # motion-intensity control (e) vs (a)
    actavatar bench mechanism --out runs/mech --scale cpu arms=[paca,paca_pose]     # pose control (f) vs (a)
    actavatar bench mechanism --out runs/mech --scale smoke          # every step in minutes (what the tests run)
    actavatar bench mechanism --out runs/mech --scale cpu train.stage2_steps=4000 arms=[paca,global,base]
    python -m evaluation.mechanism.cli mechanism --out runs/mech ...  # without the console script

Rerunning the same command resumes where it stopped. The report is DIR/report/report.md (+ .json,
plots/); each arm's checkpoint is DIR/train/<arm>/ema and the test benchmark DIR/benchmark.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dataset.command import standalone_main

HELP = "train small PACA models on a synthetic corpus and measure phase-level action control (the paper's ablation)"


def _mechanism(args: argparse.Namespace) -> int:
    from evaluation.mechanism.config import scale_config
    from evaluation.mechanism.report import COLUMNS
    from evaluation.mechanism.runner import run_benchmark

    overrides = list(args.overrides)
    if args.vae:
        overrides.append(f"vae.path={args.vae}")
    if args.threads is not None:
        overrides.append(f"cpu_threads={args.threads}")
    cfg = scale_config(args.scale, out=args.out, seed=args.seed, config=args.config, overrides=overrides)
    report = run_benchmark(cfg)
    key, title = COLUMNS[0]
    print(f"mechanism benchmark ({cfg.scale}): {title} per row")
    for name, row in report["rows"].items():
        value = row.get(key)
        print(f"  {name:<48} {value:.3f}" if isinstance(value, float) else f"  {name:<48} -")
    print(f"report: {args.out}/report/report.md")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `mechanism` to the `bench` group."""
    p = commands.add_parser("mechanism", help=HELP, description=HELP + ". A rerun resumes in --out.")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (corpus, VAE, checkpoints, samples, report)")
    p.add_argument("--scale", choices=("smoke", "cpu", "gpu"), default="cpu",
                   help="smoke: minutes, every code path; cpu: arms (a) and (b) on 2 cores; gpu: all arms, larger (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="corpus, init, data and sampling seed (default 0)")
    p.add_argument("--vae", metavar="DIR", help="use this VAE folder instead of training one (e.g. an earlier run's DIR/vae)")
    p.add_argument("--threads", type=int, help="torch CPU threads in total (default: all cores)")
    p.add_argument("--config", metavar="YAML", help="MechanismConfig values applied over the scale's preset")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="MechanismConfig overrides, e.g. train.stage2_steps=4000 eval.text_scale=4 arms=[paca,global]")
    p.set_defaults(func=_mechanism)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m evaluation.mechanism.cli", HELP, argv, register=register)


if __name__ == "__main__":
    raise SystemExit(main())
