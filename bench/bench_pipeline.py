"""Annotation pipeline (part 1) benchmarks; every ratio is against a baseline timed in this run.

    .venv/bin/python bench/bench_pipeline.py [--videos 4] [--seconds 30] [--long-seconds 600]
        [--scaling-videos 8] [--scaling-seconds 45] [--many 100]

1. Shot detection on 1280x544 synthetic videos: our analysis pass (shots only, and shots + face
   sampling) vs `scenedetect.detect(path, AdaptiveDetector())` vs a pure multi-threaded PyAV
   decode of the same files (the floor); wall-time ratios and agreement (F1 of cut lists).
2. Throughput of the whole pipeline (`actavatar data run` with tiny models, 1 and 2 Ray workers)
   on a corpus long enough that start-up does not dominate: source hours per core-hour, and the
   1 -> 2 scaling.
3. Memory: peak RSS of the analysis and cut passes on a short and a long 1080p source
   (streamed decoding: the peak should not grow with the source's length).
4. Driver memory: the `data run` driver's peak RSS on 10 and on `--many` short sources (the
   driver only counts rows; shards are packed by workers per group: it should stay flat).
"""

from __future__ import annotations

import argparse
import json
import os
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


def tiny_asr(workdir: Path) -> list[str]:
    models = workdir / "models"
    if not (models / "whisper").is_dir():
        subprocess.run([sys.executable, "-m", "actavatar", "models", "tiny", "--out", str(models), "--only", "whisper,aligner"],
                       check=True, capture_output=True, cwd=REPO)
    return [f"asr.model={models / 'whisper'}", f"asr.align_models.en={models / 'aligner'}",
            f"asr.nltk_data={models / 'nltk_data'}", "asr.language=en", "asr.max_new_tokens=24"]


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_and_watch(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds of a command, its own peak RSS in MiB (VmHWM, read until it exits: the Ray
    processes it starts are not counted, so only the driver is measured), and the machine's CPU
    utilisation meanwhile (busy core-seconds / (wall x cores))."""
    start, busy = time.perf_counter(), busy_cpu_seconds()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    peak = 0.0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    utilisation = (busy_cpu_seconds() - busy) / (wall * (os.cpu_count() or 1))
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:6])} … failed:\n{proc.stderr.read()[-3000:]}")
    return wall, peak, utilisation


def data_run(raw: Path, out: Path, asr: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "actavatar", "data", "run", "--input", str(raw), "--output", str(out),
            "--config", str(REPO / "configs/annotate/default.yaml"), "--progress-every", "0", "clip.width=256",
            "clip.height=256", "sync.enabled=false", *asr, *extra]


def bench_pipeline(raw: Path, source_seconds: float, workdir: Path) -> dict:
    asr = tiny_asr(workdir)
    results, busy = {}, {}
    for workers in (1, 2):
        results[workers], _, busy[workers] = run_and_watch(data_run(raw, workdir / f"run-{workers}", asr, f"workers={workers}"))
    cores = os.cpu_count() or 1
    print(f"\n2. whole pipeline on {source_seconds / 60:.1f} min of source (probe, analyse, plan, cut 256x256, "
          "tiny-model ASR, pack), Ray local, incl. start-up")
    print(f"{'workers':<8} {'wall s':>8} {'source h / worker-core h':>25} {'source h / machine-core h':>26} {'CPU busy':>9}")
    for workers, seconds in results.items():
        print(f"{workers:<8} {seconds:>8.1f} {source_seconds / seconds / workers:>25.2f} "
              f"{source_seconds / seconds / cores:>26.2f} {busy[workers]:>8.0%}")
    print(f"scaling 1 -> 2 workers: {results[1] / results[2]:.2f}x (machine: {cores} cores)")
    return results


def bench_driver_memory(raw: Path, many: int, workdir: Path) -> dict:
    asr = tiny_asr(workdir)
    videos = sorted(raw.glob("*.mp4"))
    results = {}
    for count in (10, many):
        listing = workdir / f"sources-{count}.txt"
        listing.write_text("".join(f"{v}\n" for v in videos[:count]))
        results[count] = run_and_watch(data_run(listing, workdir / f"many-{count}", asr, "workers=2", "group_size=8"))
    print(f"\n4. driver peak RSS (the `data run` process itself), short synthetic sources, 2 workers, groups of 8")
    print(f"{'sources':>8} {'wall s':>8} {'driver peak MiB':>16}")
    for count, (wall, peak, _) in results.items():
        print(f"{count:>8} {wall:>8.1f} {peak:>16.0f}")
    print(f"driver peak {many} / 10 sources: {results[many][1] / results[10][1]:.2f}x")
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


def synth_videos(out: Path, count: int, seconds: float, resolution: str, seed: int) -> list[Path]:
    from dataset.synth.cli import main as synth

    if synth(["--out", str(out), "--videos", str(count), "--seed", str(seed), "--min-duration", str(seconds),
              "--max-duration", str(seconds), "--resolutions", resolution, "--no-progress"]) != 0:
        raise SystemExit("actavatar synth failed")
    return sorted((out / "raw").glob("*.mp4"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4, help="videos for shot detection")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each shot-detection video")
    parser.add_argument("--scaling-videos", type=int, default=8, help="videos for the 1 -> 2 worker run")
    parser.add_argument("--scaling-seconds", type=float, default=45.0, help="length of each of those")
    parser.add_argument("--many", type=int, default=100, help="short sources for the driver-memory run")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the long 1080p source")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: shots,pipeline,memory,driver")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "shots" not in skip:
            bench_shots(synth_videos(work / "synth", args.videos, args.seconds, "1280x544", 7))
        if "pipeline" not in skip:
            videos = synth_videos(work / "scaling", args.scaling_videos, args.scaling_seconds, "640x360", 8)
            source_seconds = sum(float(av.open(str(v)).duration or 0) / 1e6 for v in videos)
            bench_pipeline(work / "scaling" / "raw", source_seconds, work)
        if "memory" not in skip:
            bench_memory(work, args.long_seconds)
        if "driver" not in skip:
            synth_videos(work / "many", args.many, 4.0, "320x180", 9)
            bench_driver_memory(work / "many" / "raw", args.many, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
