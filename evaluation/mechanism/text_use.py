"""Does a model use its phase texts at all? Its denoising error with the right texts against swapped ones.

For test windows, the clean latents are noised at a few fixed levels with fixed noise, and the
checkpoint predicts the velocity twice: with the window's phase captions, and with every phase
text replaced by another action's text (a fixed derangement of the vocabulary, timing unchanged).
A model that ignores its captions has equal errors; one that follows them is hurt by the swap.
The reference frame (latent frame 0) is given clean and left out of the error, as in training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

SIGMAS = (0.25, 0.5, 0.75)


def swapped_caption(caption: dict[str, Any], vocabulary: dict[str, str]) -> dict[str, Any]:
    """Each phase's text -> the text of the next label in sorted vocabulary order (never its own)."""
    labels = sorted(vocabulary)
    nxt = {a: labels[(i + 1) % len(labels)] for i, a in enumerate(labels)}
    phases = []
    for p in caption["phases"]:
        label = str(p.get("label", ""))
        if label not in vocabulary:
            raise ValueError(f"phase label {label!r} is not in the vocabulary {labels}")
        phases.append({**p, "text": vocabulary[nxt[label]], "label": nxt[label]})
    return {**caption, "phases": phases}


@torch.no_grad()
def denoising_errors(sampler: Any, jobs: Sequence[Any], num_frames: int, vocabulary: dict[str, str], seed: int = 0) -> dict[str, Any]:
    """Mean velocity MSE with the right and the swapped phase texts, per noise level and overall."""
    from dataset.media import decode_mp4
    from evaluation.video_folder import read_audio
    from model.reference import ti2v_inject, ti2v_timesteps
    from model.resize import cover_crop

    from evaluation.sample import fit_audio

    cfg, dit, vae = sampler.cfg, sampler.dit, sampler.vae
    dev = torch.device(cfg.device)
    errors: dict[str, list[list[float]]] = {"right": [[] for _ in SIGMAS], "swapped": [[] for _ in SIGMAS]}
    for w, job in enumerate(jobs):
        frames = decode_mp4(Path(job.audio).with_suffix(".mp4").read_bytes())[:num_frames]
        video = cover_crop(torch.from_numpy(np.ascontiguousarray(frames)), cfg.height, cfg.width).permute(1, 0, 2, 3)[None]
        x0 = vae.encode(video.to(dev))  # (1, z, F, h, w) normalised
        wav = read_audio(Path(job.audio).with_suffix(".mp4"))
        audio = fit_audio(wav[0] if wav is not None else np.zeros(0, np.float32), num_frames, cfg.fps)
        for name, caption in (("right", job.caption), ("swapped", swapped_caption(job.caption, vocabulary))):
            text, kw = sampler.conditions(caption, audio, num_frames)["full"]
            for i, sigma in enumerate(SIGMAS):
                # the same noise for both captions: only the text differs
                noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed * 100_003 + w * 10 + i)).to(dev)
                x_t = ti2v_inject((1 - sigma) * x0 + sigma * noise, x0[:, :, :1])
                t = ti2v_timesteps(torch.full((1,), sigma * 1000.0, device=dev), tuple(x0.shape[2:]), dit.config.patch_size)
                pred = dit(x_t, t, text.tokens, block_ids=text.block_ids, frame_phases=text.frame_phases, **kw)
                err = (pred.float() - (noise - x0))[:, :, 1:].square().mean()
                errors[name][i].append(float(err))
    per_sigma = {f"{s:g}": {"right": float(np.mean(errors["right"][i])), "swapped": float(np.mean(errors["swapped"][i]))}
                 for i, s in enumerate(SIGMAS)}
    right = float(np.mean([v["right"] for v in per_sigma.values()]))
    swapped = float(np.mean([v["swapped"] for v in per_sigma.values()]))
    return {"windows": len(jobs), "sigmas": list(SIGMAS), "right": right, "swapped": swapped,
            "relative_increase": (swapped - right) / right if right > 0 else float("nan"), "per_sigma": per_sigma}


@torch.no_grad()
def audio_denoising_errors(sampler: Any, jobs: Sequence[Any], num_frames: int, lip_box: tuple[float, float, float, float],
                           seed: int = 0) -> dict[str, Any]:
    """Mean velocity MSE with each window's own audio and with the next window's (same noise,
    same captions), over the whole frame and inside the mouth cells."""
    from annotate.pose import reader_pose
    from dataset.media import decode_mp4
    from evaluation.sample import fit_audio
    from evaluation.video_folder import read_audio
    from model.reference import ti2v_inject, ti2v_timesteps
    from model.resize import cover_crop
    from train.objective import lip_tracing_weight

    if len(jobs) < 2:
        raise ValueError("the audio swap needs at least 2 test windows")
    cfg, dit, vae = sampler.cfg, sampler.dit, sampler.vae
    dev = torch.device(cfg.device)
    audios = []
    for job in jobs:
        wav = read_audio(Path(job.audio).with_suffix(".mp4"))
        audios.append(fit_audio(wav[0] if wav is not None else np.zeros(0, np.float32), num_frames, cfg.fps))
    sums = {name: {"all": [], "mouth": []} for name in ("right", "swapped")}
    for w, job in enumerate(jobs):
        frames = decode_mp4(Path(job.audio).with_suffix(".mp4").read_bytes())[:num_frames]
        video = cover_crop(torch.from_numpy(np.ascontiguousarray(frames)), cfg.height, cfg.width)  # (F, 3, H, W) in [-1, 1]
        x0 = vae.encode(video.permute(1, 0, 2, 3)[None].to(dev))  # (1, z, T, h, w) normalised
        seen = ((video.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # the frames the model sees
        keypoints = torch.from_numpy(reader_pose(seen))[None]
        grid = tuple(x0.shape[2:])
        mouth = lip_tracing_weight(keypoints, torch.full((1, 4), float("nan")), lip_box, grid, sampler.vae.temporal_stride,
                                   2.0)[0, 0, 1:] > 1.5  # (T - 1, h, w): cells of the lips after the reference
        for name, audio in (("right", audios[w]), ("swapped", audios[(w + 1) % len(jobs)])):
            text, kw = sampler.conditions(job.caption, audio, num_frames)["full"]
            for i, sigma in enumerate(SIGMAS):
                noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed * 100_003 + w * 10 + i)).to(dev)
                x_t = ti2v_inject((1 - sigma) * x0 + sigma * noise, x0[:, :, :1])
                t = ti2v_timesteps(torch.full((1,), sigma * 1000.0, device=dev), grid, dit.config.patch_size)
                pred = dit(x_t, t, text.tokens, block_ids=text.block_ids, frame_phases=text.frame_phases, **kw)
                err = (pred.float() - (noise - x0))[0, :, 1:].square().mean(0).cpu()  # (T - 1, h, w)
                sums[name]["all"].append(float(err.mean()))
                if mouth.any():
                    sums[name]["mouth"].append(float(err[mouth].mean()))

    def summary(key: str) -> dict[str, Any]:
        right, swapped = sums["right"][key], sums["swapped"][key]
        if not right:
            return {"right": None, "swapped": None, "relative_increase": None}
        r, s = float(np.mean(right)), float(np.mean(swapped))
        return {"right": r, "swapped": s, "relative_increase": (s - r) / r if r > 0 else float("nan")}

    return {"windows": len(jobs), "sigmas": list(SIGMAS), "all": summary("all"), "mouth": summary("mouth")}
