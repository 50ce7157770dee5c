"""Annotation pipeline (part 1) benchmarks; every ratio is against a baseline timed in this run.

    .venv/bin/python bench/bench_pipeline.py [--videos 4] [--seconds 30] [--long-seconds 600]

1. Shot detection on 1280x544 synthetic videos: our analysis pass (shots only, and shots + face
   sampling) vs `scenedetect.detect(path, AdaptiveDetector())` vs a pure multi-threaded PyAV
   decode of the same files (the floor); wall-time ratios and agreement (F1 of cut lists).
2. Throughput of the whole part-1 pipeline (`actavatar data run`, 1 and 2 Ray workers): seconds
   of source per wall second per core, its ratio to the pure decode, and the 1 -> 2 scaling.
3. Memory: peak RSS of the analysis and cut passes on a short and a long 1080p source
   (streamed decoding: the peak should not grow with the source's length).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def decode_floor(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - start


def f1(ours: list[float], theirs: list[float], tol: float = 2 / 25) -> float:
    if not ours and not theirs:
        return 1.0
    hits = sum(any(abs(a - b) <= tol for b in theirs) for a in ours)
    precision, recall = hits / max(len(ours), 1), hits / max(len(theirs), 1)
    return 2 * precision * recall / max(precision + recall, 1e-9)


def bench_shots(videos: list[Path]) -> dict:
    from scenedetect import AdaptiveDetector, detect

    from annotate.analyse import analyse_source
    from annotate.config import FaceConfig, ShotConfig
    from annotate.face_detector import FaceDetector, ensure_face_model
    from annotate.probe import probe

    shots, face = ShotConfig(), FaceConfig()
    times = {"decode floor (PyAV, threads)": 0.0, "PySceneDetect detect(Adaptive)": 0.0,
             "ours: shots": 0.0, "ours: shots + faces": 0.0}
    agreement = []
    with FaceDetector(ensure_face_model(None)) as detector:
        for path in videos:
            info = probe(str(path)).to_dict()
            times["decode floor (PyAV, threads)"] += decode_floor(path)
            start = time.perf_counter()
            scenes = detect(str(path), AdaptiveDetector())
            times["PySceneDetect detect(Adaptive)"] += time.perf_counter() - start
            theirs = [s[0].seconds for s in scenes[1:]]
            start = time.perf_counter()
            result = analyse_source(str(path), info, shots, None, None)
            times["ours: shots"] += time.perf_counter() - start
            start = time.perf_counter()
            analyse_source(str(path), info, shots, face, detector)
            times["ours: shots + faces"] += time.perf_counter() - start
            agreement.append(f1([c / 25 for c in result["cuts"]], theirs))
    floor = times["decode floor (PyAV, threads)"]
    print("\n1. shot detection (%d videos, 1280x544)" % len(videos))
    print(f"{'pass':<34} {'seconds':>8} {'x floor':>8}")
    for name, seconds in times.items():
        print(f"{name:<34} {seconds:>8.2f} {seconds / floor:>8.2f}")
    print(f"ours vs PySceneDetect: {times['PySceneDetect detect(Adaptive)'] / times['ours: shots']:.2f}x faster; "
          f"cut-list F1 against PySceneDetect {np.mean(agreement):.3f}")
    return {"times": times, "f1_vs_pyscenedetect": float(np.mean(agreement))}


def bench_pipeline(raw: Path, source_seconds: float, floor: float, workdir: Path) -> dict:
    models = workdir / "models"
    subprocess.run([sys.executable, "-m", "actavatar", "models", "tiny", "--out", str(models), "--only", "whisper,aligner"],
                   check=True, capture_output=True, cwd=REPO)
    asr = [f"asr.model={models / 'whisper'}", f"asr.align_models.en={models / 'aligner'}",
           f"asr.nltk_data={models / 'nltk_data'}", "asr.language=en", "asr.max_new_tokens=24"]
    results = {}
    for workers in (1, 2):
        out = workdir / f"run-{workers}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "actavatar", "data", "run", "--input", str(raw), "--output", str(out),
                        "--config", str(REPO / "configs/annotate/default.yaml"), f"workers={workers}", "clip.width=256",
                        "clip.height=256", *asr], check=True, capture_output=True, cwd=REPO)
        results[workers] = time.perf_counter() - start
    print("\n2. whole pipeline (probe, analyse, plan, cut/normalise 256x256, tiny-model ASR, pack), Ray local, incl. start-up")
    print(f"{'workers':<8} {'wall s':>8} {'src s / wall s / core':>22} {'x decode floor':>15}")
    for workers, seconds in results.items():
        print(f"{workers:<8} {seconds:>8.1f} {source_seconds / seconds / workers:>22.2f} {seconds / floor:>15.2f}")
    print(f"scaling 1 -> 2 workers: {results[1] / results[2]:.2f}x")
    return results


def write_long_source(path: Path, seconds: float, size=(1920, 1080), fps=25) -> None:
    """A long 1080p source written frame by frame (hard cut every 20 s), never held in memory."""
    width, height = size
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "30"}
        audio = container.add_stream("aac", rate=16000, layout="mono")
        base = np.indices((height // 8, width // 8)).sum(0) % 255  # int64: shifting must not wrap silently
        for n in range(int(seconds * fps)):
            shift = (n // (20 * fps)) * 85 + n % 50
            plane = np.kron((base + shift) % 255, np.ones((8, 8), np.int64)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(plane[..., None], 3, axis=2), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        pcm = np.zeros((1, int(seconds * 16000)), np.float32)
        aframe = av.AudioFrame.from_ndarray(pcm, format="flt", layout="mono")
        aframe.sample_rate = 16000
        for packet in [*audio.encode(aframe), *audio.encode()]:
            container.mux(packet)


MEMORY_CHILD = """
import json, resource, sys
from annotate.analyse import analyse_source
from annotate.config import ClipConfig, ShotConfig
from annotate.cut import CutStage
from annotate.plan import clips_from_shots, shots_from_cuts
from annotate.probe import probe
uri, part = sys.argv[1], sys.argv[2]
info = probe(uri).to_dict()
shots = ShotConfig()
result = analyse_source(uri, info, shots, None, None)
if part == "cut":
    clips = [dict(c, index=i, face=None) for i, c in enumerate(clips_from_shots(shots_from_cuts(result["num_frames"], result["cuts"]), shots))]
    for _ in CutStage(ClipConfig(mode="pad"))(uri, info, clips):
        pass
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_memory(workdir: Path, long_seconds: float) -> dict:
    results = {}
    for seconds in (min(60.0, long_seconds), long_seconds):
        path = workdir / f"long-{int(seconds)}.mp4"
        write_long_source(path, seconds)
        for part in ("analyse", "cut"):
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), part], check=True, capture_output=True,
                                 text=True, cwd=REPO).stdout
            results[(seconds, part)] = json.loads(out.strip().splitlines()[-1])["peak_mib"]
    print("\n3. peak RSS per worker process, 1920x1080 source (cut: 512x512 clips, pad mode)")
    print(f"{'source s':>9} {'analyse MiB':>12} {'analyse+cut MiB':>16}")
    for seconds in sorted({s for s, _ in results}):
        print(f"{seconds:>9.0f} {results[(seconds, 'analyse')]:>12.0f} {results[(seconds, 'cut')]:>16.0f}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each synthetic video")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the long 1080p source")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: shots,pipeline,memory")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from dataset.synth.cli import main as synth

        synth(["--out", str(work / "synth"), "--videos", str(args.videos), "--seed", "7", "--min-duration",
               str(args.seconds), "--max-duration", str(args.seconds), "--resolutions", "1280x544", "--no-progress"])
        videos = sorted((work / "synth" / "raw").glob("*.mp4"))
        floor = sum(decode_floor(v) for v in videos)
        source_seconds = sum(float(av.open(str(v)).duration or 0) / 1e6 for v in videos)
        if "shots" not in skip:
            bench_shots(videos)
        if "pipeline" not in skip:
            bench_pipeline(work / "synth" / "raw", source_seconds, floor, work)
        if "memory" not in skip:
            bench_memory(work, args.long_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
