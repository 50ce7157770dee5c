"""The benchmark's data, built with the real pipeline: synth -> tiny encoders -> data run -> test windows.

    DIR/synth/             actavatar synth --profile mechanism (train videos first, then test videos)
    DIR/models/            tiny random-weight UMT5, wav2vec2, Whisper + aligner (actavatar models tiny)
    DIR/corpus/train|test  actavatar data run --config configs/annotate/mechanism.yaml, one run per split
    DIR/benchmark/         the test clips cut into windows (<key>.json/.mp4/.wav/.png), what `actavatar eval
                           --benchmark` reads

The split is by source video, so no test phase schedule is ever trained on. Each step is skipped
when its output is already complete (a rerun resumes).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from evaluation.mechanism.config import MechanismConfig

log = logging.getLogger(__name__)

ANNOTATE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "annotate" / "mechanism.yaml"
TINY_ENCODERS = ("umt5", "wav2vec2", "whisper", "aligner")
DONE = ".done"


def done(folder: Path) -> bool:
    return (folder / DONE).is_file()


def mark_done(folder: Path, info: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE).write_text(json.dumps(info or {}) + "\n")


def build_synth(cfg: MechanismConfig, out: Path) -> Path:
    """Raw videos + truth.jsonl of both splits (one corpus seed: every video has its own schedule)."""
    from dataset.synth.corpus import SynthConfig, generate_corpus

    if not done(out):
        c = cfg.corpus
        summary = generate_corpus(SynthConfig(
            out=str(out), videos=c.train_videos + c.test_videos, seed=cfg.seed, min_duration=c.min_duration,
            max_duration=c.max_duration, resolutions=c.resolution, profile="mechanism", overwrite=True), progress=True)
        mark_done(out, {"videos": summary.videos, "shots": summary.shots, "seconds": round(summary.seconds, 1)})
    return out


def build_models(out: Path) -> Path:
    """The tiny encoders (text, audio) and the ASR models the pipeline needs."""
    from actavatar.models_cli import main as models_main

    if not done(out):
        if models_main(["tiny", "--out", str(out), "--only", ",".join(TINY_ENCODERS)]) != 0:
            raise RuntimeError(f"actavatar models tiny failed for {out}")
        mark_done(out)
    return out


def split_lists(synth: Path, cfg: MechanismConfig, out: Path) -> dict[str, Path]:
    """Text files listing each split's raw videos (the last `test_videos` are the test split)."""
    videos = sorted((synth / "raw").glob("synth_*.mp4"))
    n_test = cfg.corpus.test_videos
    lists = {"train": videos[:-n_test], "test": videos[-n_test:]}
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, files in lists.items():
        paths[split] = out / f"{split}_sources.txt"
        paths[split].write_text("".join(f"{p.resolve()}\n" for p in files))
    return paths


def pipeline_argv(sources: Path, out: Path, synth: Path, models: Path, cfg: MechanismConfig) -> list[str]:
    """`actavatar data run` on one split (a child process with its own local Ray)."""
    size = cfg.corpus.clip_size
    return [sys.executable, "-m", "annotate.cli", "run", "--input", str(sources), "--output", str(out),
            "--config", str(ANNOTATE_CONFIG), f"caption.truth={synth / 'truth.jsonl'}",
            f"asr.model={models / 'whisper'}", f"asr.align_models.en={models / 'aligner'}",
            f"asr.nltk_data={models / 'nltk_data'}", f"clip.width={size}", f"clip.height={size}"] + (
                [] if cfg.corpus.crop_scale is None else [f"clip.crop_scale={cfg.corpus.crop_scale}"])


def run_pipelines(lists: dict[str, Path], root: Path, synth: Path, models: Path, cfg: MechanismConfig) -> dict[str, Path]:
    """The splits' data runs, at the same time: most of a small run is Ray start-up and actor
    start-up, which overlap; each child logs to `corpus/data_run_<split>.log`."""
    outs = {split: root / split for split in lists}
    procs = []
    for split, sources in lists.items():
        if done(outs[split]):
            continue
        argv = pipeline_argv(sources, outs[split], synth, models, cfg)
        log_path = root / f"data_run_{split}.log"
        log.info("data run (%s split; log %s): %s", split, log_path, " ".join(argv[2:]))
        with open(log_path, "ab") as handle:
            procs.append((split, log_path, subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)))
    failed = [(split, path) for split, path, proc in procs if proc.wait() != 0]
    if failed:
        split, path = failed[0]
        raise RuntimeError(f"data run of the {split} split failed; see {path}")
    for split, _, _ in procs:
        mark_done(outs[split])
    return outs


def build_benchmark(test_corpus: Path, out_dir: Path, cfg: MechanismConfig) -> Path:
    """The test clips cut into windows of `window_frames` (evaluation.benchmark's shard conversion)."""
    from evaluation.benchmark import BenchmarkConfig, prepare_benchmark

    target = out_dir / "benchmark"
    if not done(target):
        prepare_benchmark(test_corpus, out_dir, BenchmarkConfig(max_frames=cfg.window_frames))
        mark_done(target, {"windows": len(list(target.glob("*.json")))})
    return target


def build_corpus(cfg: MechanismConfig) -> dict[str, Path]:
    """Every data folder of the benchmark (see the module docstring)."""
    root = Path(cfg.out)
    synth = build_synth(cfg, root / "synth")
    models = build_models(root / "models")
    lists = split_lists(synth, cfg, root / "corpus")
    corpora = run_pipelines(lists, root / "corpus", synth, models, cfg)
    bench = build_benchmark(corpora["test"], root, cfg)
    return {"synth": synth, "models": models, "train": corpora["train"], "test": corpora["test"], "benchmark": bench}
