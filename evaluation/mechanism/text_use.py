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
