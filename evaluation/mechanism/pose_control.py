"""Does the pose branch follow the given pose? (arm (f), `model.pose`; ApoAvatar / TALK-Act)

The first `eval.pose_windows` test windows are sampled with the pose arm ((f), or (g) when (f) is
not trained) twice, with the same seed,
text, audio and reference frame: pose-controlled (the real window's keypoints, read by the exact
puppet reader, as `--pose`) and pose-free (the arm's ordinary unguided samples). The reader then
reads the keypoints of every generated window, and the report gives, against the real window's:

    keypoint error   mean distance (frame heights) over the keypoints read in both, frames 1..
                     (frame 0 is the given reference), all keypoints and the two hands
    hand PCK@0.1     share of (frame, hand) pairs within 0.1 frame heights
    found            share of the real window's keypoints the reader also finds in the sample

for both, plus a model without the part when it was trained ((a) `paca`, pose-free) and copying
the reference frame (its keypoints held still: the floor a model that ignores the pose reaches).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dataset.pose import KEYPOINTS
from evaluation.mechanism.config import ARM_TITLES, MechanismConfig

POSE_ARMS = ("paca_pose", "paca_refocus")  # the first one trained is sampled with poses
HANDS = (KEYPOINTS.index("right_wrist"), KEYPOINTS.index("left_wrist"))  # the puppet reader's gloves
PCK_RADIUS = 0.1


def keypoint_errors(real: np.ndarray, generated: np.ndarray) -> dict[str, Any]:
    """Per-window figures of `generated` (F, K, 3) against `real` (F, K, 3), frames 1.. (square frames)."""
    n = min(len(real), len(generated))
    r, g = real[1:n], generated[1:n]
    both = (r[..., 2] > 0) & (g[..., 2] > 0)  # (F-1, K)
    dist = np.hypot(r[..., 0] - g[..., 0], r[..., 1] - g[..., 1])
    hands = np.zeros(r.shape[1], bool)
    hands[list(HANDS)] = True
    hand_pairs = both & hands
    return {"error_sum": float(dist[both].sum()), "pairs": int(both.sum()),
            "hand_error_sum": float(dist[hand_pairs].sum()), "hand_pairs": int(hand_pairs.sum()),
            "hand_hits": int((dist[hand_pairs] <= PCK_RADIUS).sum()),
            "real": int((r[..., 2] > 0).sum()), "found": int(both.sum())}


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures over windows (every pair counts once)."""
    total = {key: sum(row[key] for row in rows) for key in ("error_sum", "pairs", "hand_error_sum", "hand_pairs", "hand_hits",
                                                            "real", "found")}

    def ratio(a: str, b: str) -> float | None:
        return round(total[a] / total[b], 4) if total[b] else None

    return {"windows": len(rows), "keypoint_error": ratio("error_sum", "pairs"), "hand_error": ratio("hand_error_sum", "hand_pairs"),
            "hand_pck": ratio("hand_hits", "hand_pairs"), "found": ratio("found", "real")}


def _read(path: Path) -> np.ndarray:
    from annotate.pose import reader_pose
    from evaluation.video_folder import read_frames

    return reader_pose(read_frames(path))


def pose_arm(checkpoints: dict[str, Path]) -> str | None:
    """The arm the pose-control step samples: (f) when trained, else (g), else None."""
    return next((arm for arm in POSE_ARMS if arm in checkpoints), None)


def pose_control_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Sample the first `eval.pose_windows` test windows with their real keypoints and score both modes."""
    import dataclasses

    from dataset.atomic import atomic_write_bytes
    from dataset.pose import encode_pose
    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.mechanism.evaluate import sample_config
    from evaluation.sample import AvatarSampler, resolve_checkpoint
    from evaluation.sample_jobs import run_jobs

    bench, root = paths["benchmark"], Path(cfg.out) / "samples" / "pose"
    jobs = jobs_from_benchmark(bench, cfg.eval.pose_windows)  # same order, so the same seeds as the ordinary samples
    real = {job.key: _read(bench / f"{job.key}.mp4") for job in jobs}
    inputs = root / "inputs"
    posed_jobs = []
    for job in jobs:
        target = inputs / f"{job.key}.pose.npy"
        if not target.is_file():
            atomic_write_bytes(target, encode_pose(real[job.key]))
        posed_jobs.append(dataclasses.replace(job, pose=target))
    arm = pose_arm(checkpoints)
    letter = ARM_TITLES[arm][:3]
    sampler = AvatarSampler(resolve_checkpoint(sample_config(cfg, "unguided"), checkpoints[arm]))
    run_jobs(sampler, posed_jobs, root / arm, progress=True, skip_existing=True)
    del sampler

    def score(folder: Path) -> dict[str, Any]:
        rows = [keypoint_errors(real[key], _read(folder / f"{key}.mp4")) for key in real if (folder / f"{key}.mp4").is_file()]
        return aggregate(rows)

    unguided = Path(cfg.out) / "samples" / "unguided"
    rows = {f"pose-controlled {letter}, real keypoints given": score(root / arm),
            f"pose-free {letter}, same windows": score(unguided / arm)}
    if "paca" in checkpoints:
        rows["(a) PACA, no pose branch"] = score(unguided / "paca")
    rows["copy the reference frame"] = aggregate([keypoint_errors(pose, np.repeat(pose[:1], len(pose), axis=0))
                                                  for pose in real.values()])
    return {"rows": rows, "pck_radius": PCK_RADIUS}


def markdown_section(result: dict[str, Any]) -> list[str]:
    """Lines of the report's pose-control section."""
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = ["", "## Pose control (ApoAvatar's pose-controlled and pose-free inference)", "",
             f"| samples | keypoint error | hand error | hand PCK@{result['pck_radius']} | keypoints found | windows |",
             "|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {fmt(row['keypoint_error'])} | {fmt(row['hand_error'])} | {fmt(row['hand_pck'])} | "
                     f"{fmt(row['found'])} | {row['windows']} |")
    lines += ["", "Errors in frame heights against the real window's keypoints (exact reader), frames after the reference; "
              "lower is better. PCK: share of hand positions within the radius."]
    return lines
