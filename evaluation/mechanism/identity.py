"""Does the face stay the reference's over a long video? (arm (h), `model.face_identity`; FantasyTalking)

The mechanism corpus gives every video its own identity: RGB gains on the puppet's face photo
(`dataset.synth.rig.FACE_TINTS`; the test split's videos all differ). A window of a long video
after the first sees only the previous window's last frames, so identity can drift from window to
window; FantasyTalking's face-focused attention reads the reference's face in every window.

Each test clip's consecutive benchmark windows are joined into one long job (their audio and
phases back to back, the first window's frame as the reference image and its face box) and sampled
unguided, window after window (`sample.window_frames` = the benchmark's window, 5 motion frames),
by the face arm and by the models without it that the run trained. Per frame:

    face colour      mean RGB (0..1) in a disc at the head centre the exact reader finds (radius
                     0.3 of the ear-cup distance; the reference frame's head where none is read)
    colour error     distance of the frame's face colour to the reference frame's
    identified       the frame's face colour is nearest to a reference of its own video among the
                     long jobs' references (the test videos' identities)

reported per window of the long video (window 1 holds the reference frame) for the real frames
(how much talking and tilting alone move the colour), their VAE reconstruction (what the latents
carry of the face: the ceiling of any model sampled through this VAE) and each arm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.mechanism.config import MechanismConfig

FACE_ARM = "paca_face"
MOTION_FRAMES = 5
DISC = 0.3  # of the ear-cup distance (about the head's width)
SHOWN_WINDOWS = 4  # window columns of the markdown table
COMPARED = (("(h) face-focused identity attention", FACE_ARM), ("(a) PACA, first-frame reference only", "paca"))


def long_windows(bench: Path) -> list[list[str]]:
    """Benchmark keys grouped into runs of consecutive windows of one clip (source frames back to
    back), in key order; single windows are left out (nothing to continue)."""
    docs = {p.stem: json.loads(p.read_text()) for p in sorted(bench.glob("*.json"))}
    runs: list[list[str]] = []
    for key, doc in docs.items():
        src = doc.get("source") or {}
        prev = runs[-1][-1] if runs else None
        psrc = (docs[prev].get("source") or {}) if prev else {}
        if prev and src.get("clip_key") and src.get("clip_key") == psrc.get("clip_key") and src.get("start_frame") == psrc.get("end_frame"):
            runs[-1].append(key)
        else:
            runs.append([key])
    return [run for run in runs if len(run) > 1]


def long_job(bench: Path, keys: list[str], inputs: Path, seed: int, first):
    """One SampleJob of a run of windows: audio and phases back to back, the reference image and
    face box of `first` (the first window's SampleJob); the audio is written to `inputs`."""
    from dataset.atomic import atomic_write_bytes
    from dataset.media import encode_wav
    from evaluation.sample_jobs import SampleJob, read_audio_file

    docs = [json.loads((bench / f"{key}.json").read_text()) for key in keys]
    phases, offset = [], 0.0
    for doc in docs:
        for p in doc["caption"]["phases"]:
            phases.append({**p, "start_s": round(p["start_s"] + offset, 6), "end_s": round(p["end_s"] + offset, 6)})
        offset += doc["video"]["num_frames"] / doc["video"]["fps"]
    audio = np.concatenate([read_audio_file(bench / f"{key}.wav") for key in keys])
    key = f"{keys[0]}_long"
    wav = inputs / f"{key}.wav"
    if not wav.is_file():
        atomic_write_bytes(wav, encode_wav(audio))
    total = sum(doc["video"]["num_frames"] for doc in docs)
    return SampleJob(key=key, caption={"base": first.caption["base"], "phases": phases}, image=first.image, audio=wav, seed=seed,
                     num_frames=total - (total - 1) % 4, face_box=first.face_box)  # the VAE's 1 + 4k frames


def face_colours(frames: np.ndarray) -> np.ndarray:
    """(F, 3) mean face RGB in 0..1 per frame, in the disc at the read head; a frame whose head the
    reader does not find uses the first frame's disc (the frame centre's upper third if none)."""
    from annotate.pose import reader_pose

    kp = reader_pose(frames)
    h, w = frames.shape[1:3]
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((len(frames), 3))
    where = None
    for i, frame in enumerate(frames):
        head, right, left = kp[i, 0], kp[i, 4], kp[i, 5]
        if head[2] > 0 and right[2] > 0 and left[2] > 0:
            disc = (head[0] * w, head[1] * h, DISC * np.hypot((right[0] - left[0]) * w, (right[1] - left[1]) * h))
        else:
            disc = where if where is not None else (w / 2, h / 3, 0.1 * h)
        if where is None:
            where = disc
        x, y, r = disc
        mask = (xx - x) ** 2 + (yy - y) ** 2 <= max(r, 1.0) ** 2
        out[i] = frame[mask].reshape(-1, 3).mean(axis=0) / 255.0
    return out


def score_video(frames: np.ndarray, reference: np.ndarray, own: str, palette: dict[str, np.ndarray],
                window_starts: list[int]) -> list[dict[str, float]]:
    """Per window of a long video: mean colour error to `reference` (3,) and the share of frames
    identified as `own` among `palette` {video: (n, 3) reference colours}; frame 0 is left out."""
    colours = face_colours(frames)
    names = [name for name, refs in palette.items() for _ in refs]
    refs = np.concatenate(list(palette.values()))
    nearest = np.asarray(names)[np.argmin(((colours[:, None] - refs[None]) ** 2).sum(-1), axis=1)]
    error = np.linalg.norm(colours - reference, axis=1)
    bounds = [*window_starts, len(frames)]
    rows = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        a = max(a, 1)
        if b > a:
            rows.append({"error": float(error[a:b].mean()), "identified": float((nearest[a:b] == own).mean())})
    return rows


def summarise(per_video: list[list[dict[str, float]]]) -> dict[str, Any]:
    """Mean over videos per window index, and over every window."""
    n = max((len(rows) for rows in per_video), default=0)
    windows = []
    for i in range(n):
        rows = [rows[i] for rows in per_video if len(rows) > i]
        windows.append({"videos": len(rows), "error": round(float(np.mean([r["error"] for r in rows])), 4),
                        "identified": round(float(np.mean([r["identified"] for r in rows])), 3)})
    every = [r for rows in per_video for r in rows]
    return {"videos": len(per_video), "windows": windows,
            "error": round(float(np.mean([r["error"] for r in every])), 4) if every else None,
            "identified": round(float(np.mean([r["identified"] for r in every])), 3) if every else None}


def identity_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Sample every run of consecutive test windows as one long video with the face arm and the
    compared arms; score the face colour against the reference per window."""
    import dataclasses

    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.long_video import plan_windows
    from evaluation.mechanism.evaluate import reconstruct, sample_config
    from evaluation.sample import AvatarSampler, resolve_checkpoint
    from evaluation.sample_jobs import run_jobs
    from evaluation.video_folder import read_frames

    bench, root = paths["benchmark"], Path(cfg.out) / "samples" / "identity"
    runs = long_windows(bench)
    if cfg.eval.identity_videos:
        runs = runs[: cfg.eval.identity_videos]
    if not runs:
        return {"rows": {}, "note": "no test clip has two consecutive windows"}
    windows = {job.key: job for job in jobs_from_benchmark(bench)}  # read once, not per long job
    jobs = [long_job(bench, keys, root / "inputs", cfg.seed + i, windows[keys[0]]) for i, keys in enumerate(runs)]
    scfg = dataclasses.replace(sample_config(cfg, "unguided"), num_frames=0, max_frames=0, window_frames=cfg.window_frames,
                               motion_frames=MOTION_FRAMES)
    compared = [(name, arm) for name, arm in COMPARED if arm in checkpoints]
    for _, arm in compared:
        sampler = AvatarSampler(resolve_checkpoint(scfg, checkpoints[arm]))
        run_jobs(sampler, jobs, root / arm, progress=True, skip_existing=True)
        del sampler

    def video_of(key: str) -> str:  # the source video: clips of one video share its identity
        return json.loads((bench / f"{key}.json").read_text())["source"].get("sha256") or key.split("_")[0]

    real = {job.key: np.concatenate([read_frames(bench / f"{k}.mp4") for k in keys])[: job.num_frames] for job, keys in zip(jobs, runs)}
    refs = {job.key: face_colours(real[job.key][:1])[0] for job in jobs}
    owner = {job.key: video_of(keys[0]) for job, keys in zip(jobs, runs)}
    palette: dict[str, np.ndarray] = {}
    for key, colour in refs.items():
        palette[owner[key]] = np.vstack([palette.get(owner[key], np.zeros((0, 3))), colour[None]])
    starts = [w.start for w in plan_windows(max(len(v) for v in real.values()), cfg.window_frames, MOTION_FRAMES, 4)]

    def score(videos: dict[str, np.ndarray]) -> dict[str, Any]:
        return summarise([score_video(frames, refs[key], owner[key], palette, [s for s in starts if s < len(frames)])
                          for key, frames in videos.items()])

    rows = {"real frames": score(real),
            # what the latents carry of the face: the ceiling of any model sampled through this VAE
            "VAE reconstruction of the real frames": score(reconstruct(paths["vae"], real, batch=1))}
    for name, arm in compared:
        rows[name] = score({job.key: read_frames(root / arm / f"{job.key}.mp4") for job in jobs})
    return {"rows": rows, "identities": len(palette), "motion_frames": MOTION_FRAMES, "window_starts": starts}


def markdown_section(result: dict[str, Any]) -> list[str]:
    """Lines of the report's identity section."""
    lines = ["", "## Identity over long videos (arm (h), FantasyTalking's face-focused cross-attention)", ""]
    if not result.get("rows"):
        return [*lines, result.get("note", "not measured")]
    n = min(SHOWN_WINDOWS, max(len(row["windows"]) for row in result["rows"].values()))  # report.json keeps them all
    lines += ["| frames of | " + " | ".join(f"window {i + 1}: colour error / identified" for i in range(n)) + " | all windows | videos |",
              "|---|" + "---|" * (n + 2)]
    for name, row in result["rows"].items():
        cells = [f"{w['error']:.4f} / {w['identified']:.2f}" for w in row["windows"][:n]] + ["—"] * (n - len(row["windows"][:n]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['error']:.4f} / {row['identified']:.2f} | {row['videos']} |")
    lines += ["", f"Each test clip's consecutive windows sampled as one long video (later windows continue from the previous "
              f"one's last {result['motion_frames']} frames). Colour error: distance (RGB, 0..1) of the face's mean colour at the "
              "read head centre to the reference frame's; identified: share of frames whose face colour is nearest to a "
              f"reference of its own video among the {result['identities']} test identities. Lower error, higher identified is better."]
    return lines
