"""End-to-end demo on the embedded default: local files, no downloads, 2 CPU cores.

    make demo                       # sets up the machine, then runs this
    .venv/bin/python scripts/demo.py --out demo-out

Stages (each prints what it produced; a summary closes the run):
  1. corpus   write a small corpus of rendered clips into WebDataset shards + Parquet manifest
  2. validate `actavatar data validate` on it (must pass)
  3. stats    `actavatar data stats` on it
  4. load     read it back through a torch DataLoader with 2 workers (decoded tensors)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

from actavatar.cli import main as actavatar
from dataset.reader import shard_pipeline
from dataset.stats import corpus_stats
from dataset.toy_corpus import write_toy_corpus


def stage(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run(out: Path, clips: int) -> int:
    summary: list[tuple[str, str]] = []
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    corpus = out / "corpus"

    stage("1/4 corpus: rendered clips -> WebDataset shards + manifest")
    shards = write_toy_corpus(corpus, clips, num_rejected=2, seconds=2.0, size=96, max_samples=4)
    summary.append(("corpus", f"{clips} clips in {len(shards)} shards + 2 rejected rows -> {corpus}"))
    print(summary[-1][1])

    stage("2/4 validate: actavatar data validate")
    code = actavatar(["data", "validate", str(corpus)])
    if code != 0:
        print("demo: validation failed", file=sys.stderr)
        return code
    summary.append(("validate", "corpus is valid (members, media, schema v1, manifest agree)"))

    stage("3/4 stats: actavatar data stats")
    actavatar(["data", "stats", str(corpus)])
    stats = corpus_stats(corpus)
    summary.append(("stats", f"{stats['clips']} clips, {stats['hours'] * 3600:.0f} s, "
                    f"{stats['phases_per_clip']['mean']:.1f} phases/clip, {stats['words_per_clip']['mean']:.1f} words/clip"))

    stage("4/4 load: torch DataLoader, 2 workers, full decode")
    loader = torch.utils.data.DataLoader(shard_pipeline(corpus), batch_size=None, num_workers=2)
    frames = audio = n = 0
    for sample in loader:
        n += 1
        frames += sample["frames"].shape[0]
        audio += sample["audio"].shape[0]
        shape = tuple(sample["frames"].shape)
    print(f"read {n} samples: {frames} frames (last clip {shape} uint8), {audio / 16000:.1f} s of 16 kHz audio")
    summary.append(("load", f"{n} samples decoded: {frames} frames, {audio / 16000:.1f} s audio"))

    elapsed = time.perf_counter() - started
    print(f"\n=== demo finished in {elapsed:.1f} s; outputs under {out.resolve()} ===")
    for name, text in summary:
        print(f"  {name:<9} {text}")
    print(f"  shards    {corpus.resolve() / 'shards'}")
    print(f"  manifest  {corpus.resolve() / 'manifest.parquet'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (replaced)")
    parser.add_argument("--clips", type=int, default=12, help="clips in the corpus")
    args = parser.parse_args(argv)
    return run(args.out, args.clips)


if __name__ == "__main__":
    raise SystemExit(main())
