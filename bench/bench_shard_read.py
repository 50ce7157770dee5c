"""Shard read throughput: our reader against a raw sequential `tarfile` read of the same shards.

    .venv/bin/python bench/bench_shard_read.py [--clips 160] [--repeats 3]

Builds a corpus of rendered clips in a temp folder, then times, in the same run and on the same
(page-cached) files: a raw `tarfile` pass reading every member's bytes (the baseline), plain
`webdataset.WebDataset`, our reader with `decode="annotation"`, and our reader with full decode
(every H.264 frame + WAV). Reports samples/s, MB/s of shard bytes and the ratio to raw; the best
of `--repeats` runs counts. Aim: annotation-only >= 0.8x raw.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import webdataset as wds

from dataset.reader import list_shards, shard_pipeline
from dataset.toy_corpus import write_toy_corpus


def raw_tarfile(shards: list[str]) -> int:
    samples = set()
    for shard in shards:
        with tarfile.open(shard, mode="r|") as tar:
            for member in tar:
                tar.extractfile(member).read()  # type: ignore[union-attr]
                samples.add(member.name.split(".", 1)[0])
    return len(samples)


def plain_webdataset(shards: list[str]) -> int:
    return sum(1 for _ in wds.WebDataset(shards, shardshuffle=False))


def ours(decode: str) -> Callable[[list[str]], int]:
    return lambda shards: sum(1 for _ in shard_pipeline(shards, decode=decode))  # type: ignore[arg-type]


def best_time(fn: Callable[[list[str]], int], shards: list[str], repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn(shards)
        times.append(time.perf_counter() - start)
    return min(times), count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length")
    parser.add_argument("--size", type=int, default=128, help="frame width and height")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        print(f"building {args.clips} clips of {args.seconds:g} s at {args.size}x{args.size} ...", flush=True)
        write_toy_corpus(root, args.clips, seconds=args.seconds, size=args.size, max_samples=40)
        shards = list_shards(root)
        megabytes = sum(Path(s).stat().st_size for s in shards) / 1e6
        print(f"{len(shards)} shards, {megabytes:.1f} MB\n")
        cases = [
            ("raw tarfile (baseline)", raw_tarfile),
            ("plain webdataset", plain_webdataset),
            ("ours: annotation only", ours("annotation")),
            ("ours: full decode", ours("full")),
        ]
        results = {name: best_time(fn, shards, args.repeats) for name, fn in cases}
    base = results["raw tarfile (baseline)"][0]
    print(f"{'reader':<24} {'samples/s':>10} {'MB/s':>9} {'x raw':>7}")
    for name, (seconds, count) in results.items():
        assert count == args.clips, f"{name} read {count} samples, expected {args.clips}"
        print(f"{name:<24} {count / seconds:>10.1f} {megabytes / seconds:>9.1f} {base / seconds:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
