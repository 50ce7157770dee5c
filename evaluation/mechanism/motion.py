"""Does the requested motion intensity change the generated motion? (arm (e), `model.motion`)

The test windows are sampled with the motion arm at three requested intensities: the 10th, 50th
and 90th percentile of the training windows' own (face, body) intensities (`window.json` of the
latent windows, so every request is one the model saw), with the same seed and text. The exact
puppet reader measures the motion of every generated window (`annotate.pose.reader_pose` ->
`dataset.pose.window_motion`, the definition the training data used), and the report gives the
mean measured intensity per request, whether it rises with the request, and the Spearman rank
correlation between requested and measured body intensity over all (window, request) pairs.
References: the same windows sampled without a request, the real test windows, and their VAE
reconstructions (the motion the latent space carries: the most a DiT in it can generate). A use check
(like the text-swap check) compares the arm's denoising error on the same windows with each
window's own measured intensity, a far-off one (the low or the high request, whichever is farther)
and none: a model that ignores the intensity has equal errors.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.mechanism.config import MechanismConfig

MOTION_ARM = "paca_motion"
PERCENTILES = {"low": 10, "mid": 50, "high": 90}


def training_intensities(latents: Path) -> np.ndarray:
    """(N, 2) (face, body) intensities of the training windows (NaN where unmeasured)."""
    from dataset.reader import shard_pipeline

    rows = []
    for raw in shard_pipeline(latents, decode="none"):
        motion = json.loads(raw["window.json"]).get("motion")
        if motion is not None:
            rows.append([np.nan if v is None else float(v) for v in motion])
    if not rows:
        raise ValueError(f"{latents}: no training window carries a motion intensity (a corpus without pose.npy?)")
    return np.array(rows, np.float64)


def requests(train: np.ndarray) -> dict[str, tuple[float, float]]:
    """The requested (face, body) intensity per level: percentiles of the training windows'."""
    return {name: tuple(round(float(np.nanpercentile(train[:, j], q)), 4) for j in range(2))  # type: ignore[misc]
            for name, q in PERCENTILES.items()}


def measured_intensity(frames: np.ndarray) -> tuple[float | None, float | None]:
    """(face, body) intensity of a generated window, read by the exact puppet reader."""
    from annotate.pose import reader_pose
    from dataset.pose import window_motion

    return window_motion(reader_pose(frames), 0, len(frames))


def _folder_intensities(folder: Path, keys: list[str]) -> dict[str, tuple[float | None, float | None]]:
    from evaluation.video_folder import read_frames

    return {key: measured_intensity(read_frames(folder / f"{key}.mp4")) for key in keys if (folder / f"{key}.mp4").is_file()}


def reconstructed_intensities(vae: Path, folder: Path, keys: list[str]) -> dict[str, tuple[float | None, float | None]]:
    """The motion the latents carry: each real window encoded and decoded by the VAE, then measured
    (a DiT that works in this latent space cannot generate more motion than survives here)."""
    from evaluation.mechanism.evaluate import reconstruct
    from evaluation.video_folder import read_frames

    videos = {key: read_frames(folder / f"{key}.mp4") for key in keys if (folder / f"{key}.mp4").is_file()}
    return {key: measured_intensity(frames) for key, frames in reconstruct(vae, videos).items()}


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return round(float(np.mean(finite)), 4) if finite else None


def summarise(requested: dict[str, tuple[float, float]], measured: dict[str, dict[str, tuple[float | None, float | None]]],
              references: dict[str, dict[str, tuple[float | None, float | None]]]) -> dict[str, Any]:
    """Means per request and reference, monotonicity and the Spearman correlation (body)."""
    from scipy.stats import spearmanr

    out: dict[str, Any] = {"levels": {}, "references": {}}
    pairs = []
    for name, values in measured.items():
        out["levels"][name] = {"requested": list(requested[name]), "windows": len(values),
                               "measured_face": _mean([v[0] for v in values.values()]),
                               "measured_body": _mean([v[1] for v in values.values()])}
        pairs += [(requested[name][1], v[1]) for v in values.values() if v[1] is not None]
    for name, values in references.items():
        out["references"][name] = {"windows": len(values), "measured_face": _mean([v[0] for v in values.values()]),
                                   "measured_body": _mean([v[1] for v in values.values()])}
    body = [out["levels"][name]["measured_body"] for name in PERCENTILES if name in out["levels"]]
    out["body_rises_with_request"] = all(a is not None and b is not None and a < b for a, b in zip(body, body[1:]))
    asked, got = zip(*pairs) if pairs else ((), ())
    rho = spearmanr(asked, got).statistic if len(set(asked)) > 1 and len(set(got)) > 1 else float("nan")
    out["spearman_body"] = None if not np.isfinite(rho) else round(float(rho), 4)
    return out


SIGMAS = (0.25, 0.5, 0.75)


@torch.no_grad()
def motion_use(sampler: Any, keys: list[str], bench: Path, requested: dict[str, tuple[float, float]],
               num_frames: int, seed: int = 0) -> dict[str, Any]:
    """Mean velocity MSE on the test windows with their own intensity, a far-off one and none."""
    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.sample import fit_audio
    from evaluation.video_folder import read_audio, read_frames
    from model.motion import motion_tensor
    from model.reference import ti2v_inject, ti2v_timesteps
    from model.resize import cover_crop

    cfg, dit = sampler.cfg, sampler.dit
    errors: dict[str, list[float]] = {"own": [], "far": [], "none": []}
    jobs = {job.key: job for job in jobs_from_benchmark(bench)}
    for w, key in enumerate(keys):
        frames = read_frames(bench / f"{key}.mp4")[:num_frames]
        own = measured_intensity(frames)
        far = requested["high"] if (own[1] or 0.0) < requested["mid"][1] else requested["low"]
        video = cover_crop(torch.from_numpy(np.ascontiguousarray(frames)), cfg.height, cfg.width).permute(1, 0, 2, 3)[None]
        x0 = sampler.vae.encode(video.to(cfg.device))
        wav = read_audio(bench / f"{key}.mp4")
        audio = fit_audio(wav[0] if wav is not None else np.zeros(0, np.float32), num_frames, cfg.fps)
        text, kw = sampler.conditions(jobs[key].caption, audio, num_frames)["full"]
        for i, sigma in enumerate(SIGMAS):  # the same noise for every intensity: only the intensity differs
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed * 100_003 + w * 10 + i)).to(x0.device)
            x_t = ti2v_inject((1 - sigma) * x0 + sigma * noise, x0[:, :, :1])
            t = ti2v_timesteps(torch.full((1,), sigma * 1000.0, device=x0.device), tuple(x0.shape[2:]), dit.config.patch_size)
            for name, value in (("own", own), ("far", far), ("none", None)):
                pred = dit(x_t, t, text.tokens, block_ids=text.block_ids, frame_phases=text.frame_phases,
                           motion=motion_tensor([value], device=x0.device), **kw)
                errors[name].append(float((pred.float() - (noise - x0))[:, :, 1:].square().mean()))
    means = {name: float(np.mean(v)) for name, v in errors.items()}
    return {"windows": len(keys), **{name: round(v, 5) for name, v in means.items()},
            "far_vs_own": round((means["far"] - means["own"]) / means["own"], 4) if means["own"] > 0 else None,
            "none_vs_own": round((means["none"] - means["own"]) / means["own"], 4) if means["own"] > 0 else None}


def motion_control_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoint: Path) -> dict[str, Any]:
    """Sample the first `eval.motion_windows` test windows at each requested intensity and measure them."""
    from evaluation.checkpoints import sample_checkpoints
    from evaluation.mechanism.evaluate import benchmark_windows, sample_config

    keys = [key for key, _ in benchmark_windows(paths["benchmark"], cfg.eval.motion_windows)]
    requested = requests(training_intensities(paths["latents"]))
    root = Path(cfg.out) / "samples" / "motion"
    measured = {}
    for name, intensity in requested.items():
        sample_cfg = dataclasses.replace(sample_config(cfg, "unguided"), motion_intensity=intensity)
        folders, _ = sample_checkpoints(sample_cfg, {name: str(checkpoint)}, paths["benchmark"], root,
                                        max_clips=cfg.eval.motion_windows, progress=True, skip_existing=True)
        measured[name] = _folder_intensities(folders[name], keys)
    references = {"no request": _folder_intensities(Path(cfg.out) / "samples" / "unguided" / MOTION_ARM, keys),
                  "real test windows": _folder_intensities(paths["benchmark"], keys),
                  "VAE reconstruction of the real windows": reconstructed_intensities(paths["vae"], paths["benchmark"], keys)}
    from evaluation.sample import AvatarSampler, resolve_checkpoint

    sampler = AvatarSampler(resolve_checkpoint(sample_config(cfg, "unguided"), checkpoint))
    return {**summarise(requested, measured, references),
            "use": motion_use(sampler, keys, paths["benchmark"], requested, cfg.window_frames, cfg.seed)}


def markdown_section(result: dict[str, Any]) -> list[str]:
    """Lines of the report's motion-control section."""
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = ["", "## Motion-intensity control (arm (e), FantasyTalking's modulation)", "",
             "| request | requested (face, body) | measured face | measured body | windows |", "|---|---|---|---|---|"]
    for name, row in result["levels"].items():
        face, body = row["requested"]
        lines.append(f"| {name} | {face:.3f}, {body:.3f} | {fmt(row['measured_face'])} | {fmt(row['measured_body'])} | {row['windows']} |")
    for name, row in result["references"].items():
        lines.append(f"| {name} | — | {fmt(row['measured_face'])} | {fmt(row['measured_body'])} | {row['windows']} |")
    lines += ["", f"Measured body intensity rises with the request: {'yes' if result['body_rises_with_request'] else 'no'}; "
              f"Spearman ρ (requested vs measured body, all windows): {fmt(result['spearman_body'])} "
              "(windows where the reader finds no puppet are left out)."]
    if result.get("use"):
        use = result["use"]
        lines += ["", f"Use check ({use['windows']} windows, noise {', '.join(f'{s:g}' for s in SIGMAS)}): denoising error "
                  f"{use['own']:.4f} with each window's own intensity, {use['far']:.4f} with a far-off one "
                  f"({use['far_vs_own']:+.1%}), {use['none']:.4f} with none ({use['none_vs_own']:+.1%}); equal errors: "
                  "the model ignores the intensity."]
    return lines
