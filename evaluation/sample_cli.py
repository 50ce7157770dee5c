"""`actavatar sample`: generate talking-avatar mp4s (audio muxed in) from a DiT checkpoint.

    actavatar sample --checkpoint M --image ref.png --audio speech.wav \
        --prompt "A woman talks in an office. | 0-2.5: raises her right hand | 2.5-5: nods" --out out/
    actavatar sample --checkpoint M --prompts prompts.jsonl --out out/          # batch (format: evaluation/sample_jobs.py)
    actavatar sample --checkpoint runs/stage2/ema --encoders M --prompts prompts.jsonl --out out/   # a trained export
    actavatar sample --checkpoint M --benchmark BENCH --out out/                # every <key>.json of a benchmark folder
    actavatar sample --checkpoint BASE --lora runs/s2/final/lora:0.8 ...        # a LoRA on its base, scaled
    actavatar sample --checkpoint M ... --motion-intensity 0.2,0.9              # face, body (model.motion checkpoints)
    actavatar sample --checkpoint M ... --pose driving.pose.npy                 # keypoints per frame (model.pose checkpoints)
    actavatar sample ... --config configs/eval/sample_tiny.yaml sampler.steps=4 sampler.solver=euler width=64 height=64
    python -m evaluation.sample_cli ...                                         # the same without the console script

`--prompt` takes the compact form above or JSON {"base": ..., "phases": [{"start_s", "end_s", "text"}]}.
A trainer export's conditioning.json supplies the encoders, token budgets, audio context, negative
prompt, phase routing and reference mode it was trained with, unless set here (evaluation/sample.py).
Writes OUT/<key>.mp4 and OUT/<key>.json (caption, seed, settings). SampleConfig keys (width, height,
num_frames, seed, sampler.steps, sampler.text.scale, sampler.audio.start, ...) come from the
dataclass defaults, then --config YAML, then key=value.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dataset.command import standalone_main
from dataset.errors import UserError

HELP = "generate talking-avatar videos from a checkpoint, a reference image, audio and a phased prompt"


def _jobs(args: argparse.Namespace) -> list:
    from pathlib import Path

    from evaluation.benchmark import jobs_from_benchmark, prepare_benchmark
    from evaluation.prompt import parse_prompt
    from evaluation.sample_jobs import SampleJob, jobs_from_jsonl

    sources = [x for x in (args.prompt, args.prompts, args.benchmark) if x is not None]
    if len(sources) != 1:
        raise UserError("give exactly one of --prompt (with --image and --audio), --prompts FILE or --benchmark DIR")
    if args.prompts is not None:
        return jobs_from_jsonl(args.prompts)
    if args.benchmark is not None:
        return jobs_from_benchmark(prepare_benchmark(args.benchmark, args.out))
    if args.audio is None:
        raise UserError("--prompt needs --audio FILE (and --image FILE unless reference=none)")
    for flag, path in (("--audio", args.audio), ("--image", args.image)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag}: file not found: {path}")
    return [SampleJob(key=args.key, caption=parse_prompt(args.prompt, "--prompt"),
                      image=Path(args.image) if args.image else None, audio=Path(args.audio))]


def parse_motion_intensity(text: str) -> tuple[float, ...]:
    """'0.7' or '0.2,0.9' -> floats in [0, 1] (SampleConfig checks the range)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--motion-intensity must be FACE or FACE,BODY numbers in [0, 1], got {text!r}") from None
    if len(values) > 2 or not all(0.0 <= v <= 1.0 for v in values):
        raise UserError(f"--motion-intensity must be FACE or FACE,BODY numbers in [0, 1], got {text!r}")
    return values


def with_pose(jobs: list, pose: str) -> list:
    """`--pose FILE`: the jobs without a pose of their own (a prompt file's "pose") get FILE."""
    import dataclasses
    from pathlib import Path

    from evaluation.sample_jobs import read_pose_file

    path = Path(pose)
    if not path.is_file():
        raise FileNotFoundError(f"--pose: file not found: {path}")
    read_pose_file(path)  # a broken file fails before any model loads
    return [job if job.pose else dataclasses.replace(job, pose=path) for job in jobs]


def _sample(args: argparse.Namespace) -> int:
    from dataset.config_loader import load_config
    from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
    from evaluation.sample_jobs import run_jobs

    overrides = list(args.overrides)
    for key, value in (("seed", args.seed), ("device", args.device)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(SampleConfig, args.config, overrides)
    import dataclasses

    if args.lora:
        cfg = dataclasses.replace(cfg, lora=(*cfg.lora, *args.lora))
    if args.motion_intensity is not None:
        cfg = dataclasses.replace(cfg, motion_intensity=parse_motion_intensity(args.motion_intensity))
    cfg = resolve_checkpoint(cfg, args.checkpoint, args.encoders)
    jobs = _jobs(args)  # parse every prompt before loading any model
    if args.pose is not None:
        jobs = with_pose(jobs, args.pose)
    if args.face_box is not None:
        from evaluation.sample_jobs import parse_face_box

        box = parse_face_box(args.face_box, "--face-box")
        jobs = [job if job.face_box else dataclasses.replace(job, face_box=box) for job in jobs]
    sampler = AvatarSampler(cfg)
    if args.face_box is not None and sampler.dit.config.face_identity is None:
        raise UserError(f"--face-box needs a DiT trained with model.face_identity; {cfg.dit} has no face-identity branch")
    written = run_jobs(sampler, jobs, args.out, progress=not args.no_progress, skip_existing=args.skip_existing)
    for path in written:
        print(path)
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `sample` arguments to `parser` (the `actavatar sample` subparser, or this module's own)."""
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="DiT folder written by save_dit, or a folder with dit/ vae/ umt5/ wav2vec2/ (actavatar models tiny)")
    parser.add_argument("--encoders", metavar="DIR", help="folder with vae/ umt5/ wav2vec2/ when the checkpoint has none "
                        "(e.g. a trainer's OUT/final with --encoders M from `actavatar models tiny --out M`)")
    parser.add_argument("--prompt", help="'base | 0-2.5: phase text | 2.5-5: ...' or JSON {base, phases}")
    parser.add_argument("--image", metavar="FILE", help="reference image (png/jpg, or a video's first frame)")
    parser.add_argument("--audio", metavar="FILE", help="driving audio (wav, or any file with an audio stream)")
    parser.add_argument("--key", default="sample", help="output name for --prompt (default: sample)")
    parser.add_argument("--prompts", metavar="JSONL", help="batch: one {key, image, audio, prompt, seed} per line")
    parser.add_argument("--benchmark", metavar="DIR", help="batch: a benchmark folder or a synthetic corpus (see evaluation/benchmark.py)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for <key>.mp4 + <key>.json")
    parser.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]",
                        help="merge a LoRA (diffusers' Wan format, e.g. a trainer's OUT/final/lora) into the DiT, "
                        "scaled (default 1); repeatable")
    parser.add_argument("--motion-intensity", metavar="FACE[,BODY]",
                        help="motion intensity in [0, 1] for checkpoints trained with model.motion (FantasyTalking): "
                             "one value for face and body, or face,body (0 still .. 1 vigorous; default: unconditioned)")
    parser.add_argument("--pose", metavar="FILE",
                        help="per-frame keypoints (a pose.npy: `actavatar data pose VIDEO`, or a shard's pose.npy) for "
                             "checkpoints trained with model.pose (ApoAvatar / TALK-Act); default: pose-free")
    parser.add_argument("--face-box", metavar="X0,Y0,X1,Y1",
                        help="the reference image's face box in [0, 1] of the image, for checkpoints trained with "
                             "model.face_identity (FantasyTalking's face-focused attention; default: a prompt line's "
                             "face_box, a benchmark's face.bbox, else none)")
    parser.add_argument("--seed", type=int, help="noise seed (batch: seed + index unless a line sets its own)")
    parser.add_argument("--device", help="torch device (default cpu)")
    parser.add_argument("--skip-existing", action="store_true", help="keep videos already in --out (resume a batch)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--config", metavar="YAML", help="SampleConfig values (e.g. configs/eval/sample_tiny.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="SampleConfig overrides, e.g. sampler.steps=20")
    parser.set_defaults(func=_sample)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m evaluation.sample_cli", HELP, argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
