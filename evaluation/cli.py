"""`actavatar eval`: metrics for folders of generated videos against reference videos, or for
checkpoints sampled on a benchmark.

    actavatar eval --generated runs/ckpt1000 --generated base=runs/baseline --reference bench/ref \
        --out reports/ --fid-weights pt_inception-2015-12-05-6726825d.pth --i3d i3d_torchscript.pt \
        --syncnet syncnet_v2.model [--metrics fid,fvd,sync] [--config configs/eval/x.yaml] [fvd.num_frames=16 ...]
    actavatar eval --checkpoint runs/a/final --checkpoint base=runs/b/final --benchmark BENCH --out reports/ \
        [--actions synthetic] [sample.sampler.steps=20 sample.width=256 benchmark.max_frames=49 ...]
    python -m evaluation.cli ... (the same without the console script)

Writes OUT/report.json, OUT/report.md and OUT/plots/*.png, and prints the table. A metric whose
weights are not given is skipped and the reason printed; a given path that is wrong is an error.
`--checkpoint` runs sample every benchmark clip into OUT/samples/<name>/ first (BENCH: a folder of
<key>.json + <key>.mp4 [+ .wav, .png], or a synthetic corpus with truth.jsonl, converted into
OUT/benchmark/; see evaluation/benchmark.py). `--actions vlm judge.vlm.model=M` scores phase-level action
accuracy with a VLM judge (evaluation/action_judge.py; `judge.backend=server judge.vlm.server_url=...` for an
OpenAI-compatible endpoint); `--actions synthetic` uses the exact reader of the synthetic puppet
(dataset.synth.detect_actions) instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dataset.command import standalone_main
from dataset.errors import UserError

HELP = "score generated videos (FID, FVD, Sync-C/D, identity, action accuracy) against references"


def _runs(items: Sequence[str], flag: str = "--generated") -> dict[str, str]:
    """`DIR` or `NAME=DIR` -> {name: dir}; names must be unique."""
    runs: dict[str, str] = {}
    for item in items:
        name, _, folder = item.partition("=") if "=" in item else (Path(item.rstrip("/")).name, "", item)
        if not name or not folder:
            raise UserError(f"{flag} {item!r}: expected DIR or NAME=DIR")
        if name in runs:
            raise UserError(f"{flag}: run name {name!r} given twice (use NAME=DIR to tell them apart)")
        runs[name] = folder
    return runs


def _eval(args: argparse.Namespace) -> int:
    from dataset.config_loader import load_config
    from evaluation.config import EvalConfig
    from evaluation.report import markdown_table, write_report
    from evaluation.suite import evaluate_folders

    overrides = list(args.overrides)
    for key, value in (("fid_weights", args.fid_weights), ("i3d", args.i3d), ("syncnet", args.syncnet),
                       ("face_embedder", args.face_embedder), ("device", args.device), ("faces.crop", args.face_crop),
                       ("faces.model", args.face_model)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.metrics is not None:
        overrides.append(f"metrics=[{args.metrics}]")
    cfg = load_config(EvalConfig, args.config, overrides)
    runs: dict[str, str | Path] = dict(_runs(args.generated or []))
    reference = _reference(args, cfg)
    sampling: dict = {}
    if args.checkpoint:
        from evaluation.checkpoints import sample_checkpoints

        checkpoints = _runs(args.checkpoint, "--checkpoint")
        clash = sorted(set(checkpoints) & set(runs))
        if clash:
            raise UserError(f"run name(s) {clash} used by both --generated and --checkpoint (use NAME=DIR)")
        folders, sampling = sample_checkpoints(
            cfg.sample, checkpoints, reference, Path(args.out) / "samples", encoders=args.encoders,
            max_clips=cfg.benchmark.max_clips, progress=not args.no_progress, skip_existing=args.skip_existing)
        runs.update(folders)
    detect = judge = None
    if args.actions == "synthetic":
        from dataset.synth import detect_actions as detect
    elif args.actions == "vlm":
        from evaluation.action_judge import ActionJudge

        judge = ActionJudge(cfg.judge)
    report = evaluate_folders(cfg, runs, reference, detect_actions=detect, judge=judge, progress=not args.no_progress)
    if "actions" in report["protocol"]:
        report["protocol"]["actions"].update(judge.protocol if judge is not None else
                                             {"detector": "dataset.synth.detect_actions (exact reader of the synthetic puppet)"})
    if sampling:
        report["protocol"]["sampling"] = sampling
    files = write_report(report, args.out)
    print(markdown_table(report["metrics"], report["skipped"]), end="")
    print(f"wrote {files['json']}, {files['markdown']} and {len(files['plots']) + len(files['timelines'])} plot(s)")
    return 0


def _reference(args: argparse.Namespace, cfg) -> Path:
    """The reference folder (--reference, or the prepared --benchmark) after checking the flag combination."""
    if not args.generated and not args.checkpoint:
        raise UserError("give --generated DIR (with --reference) and/or --checkpoint CKPT (with --benchmark)")
    if args.checkpoint and args.benchmark is None:
        raise UserError("--checkpoint needs --benchmark BENCH (the prompts, audio and references to sample)")
    if args.benchmark is not None and args.reference is not None:
        raise UserError("give --reference or --benchmark, not both (a benchmark is its own reference)")
    if args.benchmark is None:
        if args.reference is None:
            raise UserError("--generated needs --reference DIR (or --benchmark BENCH)")
        return Path(args.reference)
    from evaluation.benchmark import prepare_benchmark

    return prepare_benchmark(args.benchmark, args.out, cfg.benchmark)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `eval` arguments to `parser` (the `actavatar eval` subparser, or this module's own)."""
    parser.add_argument("--generated", action="append", metavar="[NAME=]DIR",
                        help="folder of generated <key>.mp4 (audio muxed in, or <key>.wav beside); repeat for several runs")
    parser.add_argument("--reference", metavar="DIR",
                        help="folder of reference <key>.mp4 (+ optional <key>.png identity image, <key>.json annotation)")
    parser.add_argument("--checkpoint", action="append", metavar="[NAME=]CKPT",
                        help="sample --benchmark with this checkpoint (save_dit folder, or one with dit/ vae/ umt5/ wav2vec2/) "
                             "and score it; repeat for several checkpoints side by side")
    parser.add_argument("--encoders", metavar="DIR", help="folder with vae/ umt5/ wav2vec2/ for checkpoints that have none "
                        "(or sample.vae= / sample.text_encoder= / sample.audio_encoder=)")
    parser.add_argument("--benchmark", metavar="DIR", help="benchmark folder (<key>.json + .mp4 [+ .wav, .png]), synthetic corpus "
                        "(truth.jsonl) or WebDataset shards (a `data run` output, shards folder, .tar, .txt list or "
                        "{000000..000009} pattern; captioned clips are used); the reference of every run")
    parser.add_argument("--actions", choices=("none", "synthetic", "vlm"), default="none",
                        help="phase-level action accuracy: vlm = a VLM judge asks per phase whether its action is "
                             "performed in each phase span (judge.vlm.model=HF id or folder, judge.backend=local|server, "
                             "judge.vlm.server_url=...); synthetic = exact reader of the synthetic puppet "
                             "(dataset.synth.detect_actions); none = skip")
    parser.add_argument("--skip-existing", action="store_true", help="keep already sampled videos in OUT/samples (resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (sampling, reference statistics, scoring)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where report.json, report.md and plots/ go")
    parser.add_argument("--fid-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth (pytorch-fid)")
    parser.add_argument("--i3d", metavar="PATH", help="i3d_torchscript.pt (StyleGAN-V FVD detector)")
    parser.add_argument("--syncnet", metavar="PATH", help="syncnet_v2.model (syncnet_python)")
    parser.add_argument("--face-embedder", metavar="PATH", help="TorchScript face-recognition network (identity)")
    parser.add_argument("--face-crop", choices=("face_track", "whole_frame"),
                        help="what Sync and identity score: face_track (default; syncnet_python's pipeline: detect, track, "
                             "crop; clips without a track get a per-clip note) or whole_frame (frames squashed to 224x224, "
                             "not comparable with published Sync-C/Sync-D); tracking settings: faces.min_track=N ...")
    parser.add_argument("--face-model", metavar="PATH", help="face detector .tflite for face tracks (default: fetched once, "
                        "see annotate/face_detector.py)")
    parser.add_argument("--metrics", metavar="LIST", help="comma-separated subset of fid,fvd,sync,identity,actions (default: all)")
    parser.add_argument("--device", help="torch device (default cpu)")
    parser.add_argument("--config", metavar="YAML", help="EvalConfig values (e.g. configs/eval/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="EvalConfig overrides, e.g. fvd.num_frames=16 sample.sampler.steps=8")
    parser.set_defaults(func=_eval)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m evaluation.cli", HELP, argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
