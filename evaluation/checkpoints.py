"""Sample a benchmark with one or more checkpoints, for `actavatar eval --checkpoint ... --benchmark ...`.

Each checkpoint's videos go to OUT/samples/<name>/<key>.mp4 (+ <key>.json); the folders are then
scored like any `--generated` folder, so several checkpoints share one report table. Every
checkpoint is sampled with the same SampleConfig (seed, steps, guidance), only its paths differ and
the settings left "from the checkpoint" (token budgets, audio context, negative prompt, phase routing,
reference mode), which each checkpoint's conditioning.json fills; the protocol records what was used.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evaluation.benchmark import jobs_from_benchmark
from evaluation.sample import AvatarSampler, SampleConfig, resolve_checkpoint
from evaluation.sample_jobs import run_jobs

log = logging.getLogger(__name__)


def sample_checkpoints(
    cfg: SampleConfig, checkpoints: Mapping[str, str | Path], benchmark: str | Path, out_dir: str | Path, *,
    encoders: str | Path | None = None, max_clips: int = 0, progress: bool = True, skip_existing: bool = False,
) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """({run name: folder of generated videos}, {run name: sampling protocol}) for each checkpoint."""
    jobs = jobs_from_benchmark(benchmark, max_clips)
    resolved = {name: resolve_checkpoint(cfg, ckpt, encoders) for name, ckpt in checkpoints.items()}  # fail before sampling
    folders: dict[str, Path] = {}
    protocol: dict[str, dict[str, Any]] = {}
    for name, run_cfg in resolved.items():
        folder = Path(out_dir) / name
        log.info("sampling %d benchmark clip(s) with %s -> %s", len(jobs), run_cfg.dit, folder)
        sampler = AvatarSampler(run_cfg)
        run_jobs(sampler, jobs, folder, progress=progress, skip_existing=skip_existing)
        used = sampler.cfg  # with the checkpoint's conditioning.json applied
        protocol[name] = {"checkpoint": str(checkpoints[name]), "dit": used.dit, "vae": used.vae,
                          "text_encoder": used.text_encoder, "audio_encoder": used.audio_encoder,
                          "reference_mode": sampler.mode, "clips": len(jobs), "size": f"{used.width}x{used.height}",
                          "fps": used.fps, "max_frames": used.max_frames, "seed": used.seed,
                          "sampler": dataclasses.asdict(used.sampler), "audio_uncond": used.audio_uncond,
                          "negative_prompt": used.negative_prompt, "phase_routing": used.phase_routing,
                          "max_base_tokens": used.max_base_tokens, "max_phase_tokens": used.max_phase_tokens,
                          "audio_context_s": used.audio_context_s,
                          "conditioning": sampler.contract.to_dict() if sampler.contract is not None else None}
        folders[name] = folder
        del sampler
        gc.collect()  # one checkpoint in memory at a time
    return folders, protocol
