"""Does gesture follow the speech's loudness in pose-free samples? (arm (g), `model.refocus`; ApoAvatar)

The mechanism corpus's puppets make beat gestures whose size follows the speech's loudness
(`actavatar synth --profile mechanism`: vigour x loudness). For every test window, the exact
puppet reader reads the body keypoints of the window (real, or an arm's ordinary unguided sample,
which is pose-free), and the window's audio gives the per-frame intensity
(`dataset.audio_intensity.frame_intensity`, the definition the branch trains on). Per window:

    gesture      body keypoint speed per frame pair (clip heights per second, `dataset.pose`),
                 averaged over GESTURE_SMOOTH frames
    correlation  Pearson correlation between gesture and audio intensity over the window's frames
    loud / quiet mean gesture in the window's loudest and quietest third of frames

The report gives, per source, the mean correlation over windows, the pooled loud / quiet gesture
and their ratio: ApoAvatar's claim is that with refocusing the correlation and the ratio rise
towards the real windows' (models without the part: (f), the pose branch alone; (a); (e)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evaluation.mechanism.config import MechanismConfig

REFOCUS_ARM = "paca_refocus"
GESTURE_SMOOTH = 5  # frames (0.2 s): a beat cycle is 10-17 frames
# the arm, then models without the part, as far as the run trained them
COMPARED = (("(g) refocusing, pose-free", REFOCUS_ARM), ("(f) pose branch, pose-free", "paca_pose"), ("(a) PACA", "paca"),
            ("(e) motion-intensity branch, no request", "paca_motion"))


def gesture_and_intensity(frames: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gesture, intensity) per frame pair of a window: smoothed body speed and the mean intensity
    of the pair's two frames; NaN gesture where the reader found no body keypoint."""
    from annotate.pose import reader_pose
    from dataset.audio_intensity import frame_intensity
    from dataset.pose import BODY, keypoint_speeds

    speed = keypoint_speeds(reader_pose(frames), BODY)
    level = frame_intensity(audio, len(frames)).astype(np.float64)
    level = 0.5 * (level[1:] + level[:-1])
    if speed.size >= GESTURE_SMOOTH:
        kernel = np.ones(GESTURE_SMOOTH) / GESTURE_SMOOTH
        filled = np.where(np.isfinite(speed), speed, 0.0)
        counts = np.convolve(np.isfinite(speed).astype(np.float64), kernel, mode="same")
        with np.errstate(invalid="ignore", divide="ignore"):
            speed = np.where(counts > 0, np.convolve(filled, kernel, mode="same") / counts, np.nan)
    return speed, level


def window_figures(gesture: np.ndarray, level: np.ndarray) -> dict[str, float] | None:
    """Correlation and loud / quiet-third gesture of one window; None when too little was read."""
    ok = np.isfinite(gesture)
    if ok.sum() < 6 or np.ptp(gesture[ok]) < 1e-9 or np.ptp(level[ok]) < 1e-9:
        return None
    g, a = gesture[ok], level[ok]
    lo, hi = np.quantile(a, [1 / 3, 2 / 3])
    return {"correlation": float(np.corrcoef(g, a)[0, 1]), "loud": float(g[a >= hi].mean()), "quiet": float(g[a <= lo].mean())}


def summarise(rows: list[dict[str, float] | None]) -> dict[str, Any]:
    kept = [r for r in rows if r is not None]
    if not kept:
        return {"windows": 0, "correlation": None, "loud": None, "quiet": None, "ratio": None}
    loud, quiet = float(np.mean([r["loud"] for r in kept])), float(np.mean([r["quiet"] for r in kept]))
    return {"windows": len(kept), "correlation": round(float(np.mean([r["correlation"] for r in kept])), 4),
            "loud": round(loud, 4), "quiet": round(quiet, 4), "ratio": round(loud / quiet, 3) if quiet > 0 else None}


def refocus_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Gesture-loudness figures of the real test windows and of each compared arm's unguided samples."""
    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.sample_jobs import read_audio_file
    from evaluation.video_folder import read_frames

    bench = paths["benchmark"]
    jobs = jobs_from_benchmark(bench, cfg.eval.max_windows)
    audio = {job.key: read_audio_file(job.audio) for job in jobs}

    def score(folder: Path) -> dict[str, Any]:
        rows = [window_figures(*gesture_and_intensity(read_frames(folder / f"{key}.mp4"), audio[key]))
                for key in audio if (folder / f"{key}.mp4").is_file()]
        return summarise(rows)

    unguided = Path(cfg.out) / "samples" / "unguided"
    out = {"real test windows": score(bench)}
    for name, arm in COMPARED:
        if arm in checkpoints:
            out[name] = score(unguided / arm)
    return {"rows": out, "smooth_frames": GESTURE_SMOOTH}


def markdown_section(result: dict[str, Any]) -> list[str]:
    """Lines of the report's refocusing section."""
    def fmt(value: float | None, digits: int = 3) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    lines = ["", "## Gesture follows loudness (arm (g), ApoAvatar's audio–pose prior refocusing)", "",
             "| windows of | gesture–intensity correlation | gesture, loud third | gesture, quiet third | loud / quiet | windows |",
             "|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {fmt(row['correlation'])} | {fmt(row['loud'])} | {fmt(row['quiet'])} | "
                     f"{fmt(row['ratio'], 2)} | {row['windows']} |")
    lines += ["", f"Gesture: body keypoint speed (clip heights per second, exact reader) averaged over "
              f"{result['smooth_frames']} frames; intensity: the window audio's per-frame intensity. "
              "Unguided samples, which are pose-free; the correlation is the mean of the per-window Pearson correlations."]
    return lines
