"""Evaluation throughput (videos/min) per metric with random-weight networks.

    python bench/bench_eval_metrics.py [--videos 4] [--seconds 2] [--size 256] [--device cpu] [--full-i3d] [--project 2048]

Synthetic 25 fps videos with 16 kHz audio; each metric's per-video work is timed on its own
(FID: Inception pool3 on every frame; FVD: one 16-frame I3D clip; Sync: SyncNet over every 5-frame
window; identity: embedder on every frame). `--full-i3d` uses the real-size I3D (default: the
tiny test export, width/8). The Fréchet statistic itself (2048-d eigendecomposition, once per
run) is timed separately. Numbers depend on the machine and its load: report them with the device.
The last line projects an N-clip FVD run (`--project`, StyleGAN-V's 2,048): I3D on N generated and N
reference 16-frame clips plus one 400-d Fréchet distance, from the rates measured here (meaningful
with `--full-i3d`, the real-size network).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from evaluation.fid import FIDAccumulator, FIDConfig
from evaluation.frechet import frechet_distance
from evaluation.fvd import FVDConfig, I3DFeatures, load_i3d
from evaluation.i3d import InceptionI3d, export_torchscript
from evaluation.identity import identity_similarity, load_face_embedder
from evaluation.inception import FIDInceptionFeatures
from evaluation.sync import SyncConfig, sync_scores
from evaluation.syncnet import SyncNet
from evaluation.tiny_weights import random_fid_inception, write_tiny_eval_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full-i3d", action="store_true")
    parser.add_argument("--project", type=int, default=2048, help="clips of the FVD run to project (per side)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = int(args.seconds * 25)
    videos = [rng.integers(0, 255, (frames, args.size, args.size, 3), dtype=np.uint8) for _ in range(args.videos)]
    audio = (0.1 * rng.normal(size=frames * 640)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_tiny_eval_weights(tmp)
        if args.full_i3d:
            export_torchscript(InceptionI3d(), f"{tmp}/i3d_full.pt")
            paths["i3d"] = f"{tmp}/i3d_full.pt"
        i3d = load_i3d(paths["i3d"], device=args.device)
        embedder = load_face_embedder(paths["face_embedder"], device=args.device)
    inception = FIDInceptionFeatures(random_fid_inception()).to(args.device)
    syncnet = SyncNet().eval().to(args.device)

    per_video_s: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        fn(videos[0])  # warm-up (TorchScript profiling, cuDNN autotune)
        start = time.perf_counter()
        for v in videos:
            fn(v)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        per_video = (time.perf_counter() - start) / len(videos)
        per_video_s[name] = per_video
        print(f"{name:10s} {60 / per_video:8.1f} videos/min  ({per_video:.2f} s per {args.seconds:g} s video at {args.size}px)")

    fid = FIDAccumulator(inception, FIDConfig(batch_size=25))
    timed("fid", lambda v: fid.add_video(v, real=True))
    fvd = I3DFeatures(i3d, FVDConfig())
    timed("fvd", lambda v: (fvd.add_video(v), fvd.result()))
    timed("sync", lambda v: sync_scores(syncnet, v, audio, cfg=SyncConfig()))
    timed("identity", lambda v: identity_similarity(embedder, v[0], v))
    frechet_s: dict[int, float] = {}
    for dims in (400, 2048):
        a = rng.normal(size=(dims + 10, dims))
        s = np.cov(a, rowvar=False)
        start = time.perf_counter()
        frechet_distance(a.mean(0), s, a.mean(0) + 0.1, s)
        frechet_s[dims] = time.perf_counter() - start
        print(f"frechet {dims}-d: {frechet_s[dims]:.1f} s (once per run)")
    total = 2 * args.project * per_video_s["fvd"] + frechet_s[400]
    i3d = "real-size I3D" if args.full_i3d else "TINY I3D (pass --full-i3d for a meaningful projection)"
    print(f"projected {args.project}-clip FVD run on {args.device} with {i3d}: {total / 60:.1f} min "
          f"({2 * args.project} I3D clips x {per_video_s['fvd']:.2f} s + Fréchet {frechet_s[400]:.1f} s)")


if __name__ == "__main__":
    main()
