"""Time `actavatar synth` on 10 raw videos of about 30 s, then score detect_actions on them.

    .venv/bin/python bench/bench_synth.py                       # 10 videos, 28-32 s, 2 workers
    .venv/bin/python bench/bench_synth.py --videos 4 --no-accuracy

Prints the generation wall time, then per-video action accuracy on the original files and on
copies re-encoded at half the resolution (H.264 crf 30), frames inside fades included.
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _decode(source: str | io.BytesIO) -> np.ndarray:
    import av

    with av.open(source) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _accuracy(root: Path) -> None:
    import cv2

    from dataset.media import encode_mp4
    from dataset.synth import detect_actions
    from dataset.synth.truth import frame_labels, read_truth

    totals = {"original": [0, 0], "half": [0, 0]}
    for record in read_truth(root):
        frames = _decode(str(root / record["file"]))
        truth = np.array(frame_labels(record))
        h, w = record["height"] // 2 // 2 * 2, record["width"] // 2 // 2 * 2
        small = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        half = _decode(io.BytesIO(encode_mp4(small, fps=25, crf=30)))
        line = [record["video_id"], f"{record['width']}x{record['height']}", f"fps {record['fps']:.3f}"]
        for name, video in (("original", frames), ("half", half)):
            hits = int((np.array(detect_actions(video, fps=record["fps"])) == truth).sum())
            totals[name][0] += hits
            totals[name][1] += truth.size
            line.append(f"{name} {hits / truth.size:.4f}")
        print("  ".join(line))
    for name, (hits, n) in totals.items():
        print(f"detect_actions accuracy, {name}: {hits / n:.4f} over {n} frames")


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the render workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="corpus folder (default: a temporary folder)")
    parser.add_argument("--no-accuracy", action="store_true")
    args = parser.parse_args()

    from dataset.synth.corpus import SynthConfig, generate_corpus

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        cfg = SynthConfig(out=str(out), videos=args.videos, seed=0, min_duration=28.0, max_duration=32.0,
                          workers=args.workers, overwrite=True)
        start, cpu0 = time.perf_counter(), _cpu_seconds()
        summary = generate_corpus(cfg, progress=False)
        took, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
        # CPU seconds too: on a shared machine the wall time depends on the neighbours.
        print(f"generated {summary.videos} videos, {summary.shots} shots, {summary.seconds:.1f} s of video "
              f"in {took:.1f} s wall, {cpu:.1f} CPU-s, with {args.workers} worker(s)")
        if not args.no_accuracy:
            _accuracy(out)


if __name__ == "__main__":
    main()
