"""Trainer benchmark: debug-flavour step throughput vs data-loader throughput, same run, same data.

    .venv/bin/python bench/bench_train.py [--clips 8] [--steps 10] [--workers 1] [--bucket 17x32x32] [--batch 2]

Writes a toy corpus and the tiny encoders into a temp folder, then measures, in one process:

  loader   batches/s and samples/s of the DataLoader alone (PyAV decode, window, resize, collate)
  step     full train steps/s on media shards (loader + VAE/UMT5/wav2vec2 encode + DiT fwd/bwd + AdamW)
  latent   the latent-shard loader alone, then train steps/s on cached latents (`actavatar encode` output: DiT fwd/bwd + AdamW only)

The loader keeps up when its samples/s exceeds the step's samples/s (it runs in worker
processes, overlapping the step). Random tiny weights: the numbers measure the code paths.
On a GPU machine pass --flavor wan2.1-t2v-1.3b --use-gpu (with real encoders via --models).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _rate(fn, n: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bucket", default="17x32x32")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()

    from actavatar.models_cli import main as models_main
    from dataset.config_loader import load_config
    from dataset.toy_corpus import write_toy_corpus
    from train.config import TrainConfig
    from train.encode import encode_corpus
    from train.trainer import build_trainer

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    write_toy_corpus(tmp / "corpus", args.clips, seconds=2.0, size=48, max_samples=2)
    models_main(["tiny", "--out", str(tmp / "tiny"), "--only", "vae,umt5,wav2vec2"])
    common = [f"data.buckets=[{args.bucket}]", f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
              "log.progress=false", "log.tensorboard=false", "checkpoint.every=0", "checkpoint.export_final=false",
              f"encoders.text={tmp}/tiny/umt5", f"encoders.vae={tmp}/tiny/vae", f"encoders.audio={tmp}/tiny/wav2vec2"]
    media = load_config(TrainConfig, "configs/train/stage1_debug.yaml",
                        [*common, f"data.shards={tmp}/corpus", f"output_dir={tmp}/run", f"steps={10 * args.steps}"])
    trainer = build_trainer(media)
    batches = trainer.batches_from(0)
    loader_bps = _rate(lambda: next(batches), 3 * args.steps)
    step_sps = _rate(lambda: trainer.train_step(next(batches)), args.steps)

    encode_corpus(media, tmp / "latents", max_samples=2)
    latent = load_config(TrainConfig, "configs/train/stage1_debug.yaml",
                         [*common, f"data.shards={tmp}/latents", "data.kind=latents", f"output_dir={tmp}/run2", f"steps={10 * args.steps}"])
    trainer2 = build_trainer(latent)
    batches2 = trainer2.batches_from(0)
    latent_loader_bps = _rate(lambda: next(batches2), 3 * args.steps)
    latent_sps = _rate(lambda: trainer2.train_step(next(batches2)), args.steps)

    b = args.batch
    print(f"bucket {args.bucket}, batch {b}, {args.workers} loader worker(s), debug flavour, CPU")
    print(f"loader : {loader_bps:7.2f} batches/s  {loader_bps * b:7.2f} samples/s")
    print(f"step   : {step_sps:7.2f} steps/s    {step_sps * b:7.2f} samples/s  (media shards: encoders in the step)")
    print(f"latent loader: {latent_loader_bps:7.2f} batches/s  (latent shards: npy decode)")
    print(f"latent : {latent_sps:7.2f} steps/s    {latent_sps * b:7.2f} samples/s  (cached latents)")
    print(f"media loader / media step = {loader_bps / step_sps:.1f}x, latent loader / latent step = "
          f"{latent_loader_bps / latent_sps:.1f}x (> 1: the loader is not the bottleneck)")


if __name__ == "__main__":
    main()
