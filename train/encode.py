"""Precompute encoder outputs into latent shards: VAE latents, UMT5 text blocks, audio features.

Each media sample becomes one window (the clip start, in the bucket `choose_bucket` picks) with
members `json` (the annotation, unchanged), `window.json` (bucket, start frame, text block
lengths, feature rate), `latents.npy` (z, F, h, w), `text.npy` (base + phase blocks concatenated,
(L, C)) and `audio.npy` (Ta, C). Training reads them with `data.kind=latents`.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import torch

from dataset.reader import SampleDecoder, shard_pipeline
from dataset.writer import ShardWriter, ShardWriterConfig
from train.buckets import choose_bucket, parse_buckets
from train.clip_window import WindowPlan, cut_window, window_caption
from train.conditioning import Conditioner
from train.config import TrainConfig
from train.data import LATENT_MEMBERS, check_shards
from train.model_init import dit_config
from train.trainer import check_config

log = logging.getLogger(__name__)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def encode_corpus(config: TrainConfig, out_dir: str | Path, *, max_samples: int = 1000, overwrite: bool = False, device: str = "cpu") -> dict[str, int]:
    """Encode every usable sample of `config.data.shards` into latent shards under `out_dir`.

    Returns counts: {"written": n, "too_short": m}.
    """
    arch = dit_config(config.model)
    check_config(config, arch)
    from dataset.reader import list_shards

    check_shards(list_shards(config.data.shards), 1)
    buckets = parse_buckets(config.data.buckets)
    cond = Conditioner(config.encoders, text_len=arch.text_len, vae_stride=arch.vae_stride, device=torch.device(device))
    decoder = SampleDecoder(video=True, audio=True)
    counts = {"written": 0, "too_short": 0}
    writer_cfg = ShardWriterConfig(max_samples=max_samples)
    with ShardWriter(out_dir, writer_cfg, required_members=LATENT_MEMBERS, overwrite=overwrite) as writer:
        for raw in shard_pipeline(config.data.shards, decode="none"):
            sample = decoder(raw)
            ann = sample["annotation"]
            v = ann["video"]
            bucket = choose_bucket(buckets, int(v["num_frames"]), int(v["height"]), int(v["width"]))
            if bucket is None:
                counts["too_short"] += 1
                continue
            plan = WindowPlan(bucket, 0, True)
            fps = float(v["fps"])
            texts, _ = window_caption(ann, plan, config.data.max_phases)
            video, audio = cut_window(sample["frames"], sample["audio"], plan, fps)
            latents = cond.encode_video(video[None])[0].cpu().numpy().astype(np.float32)
            blocks = cond.encode_text_blocks(texts)
            feats = cond.encode_audio(audio[None])[0].cpu().numpy().astype(np.float32)
            window = {
                "bucket": str(bucket),
                "start_frame": 0,
                "text_lengths": [int(b.shape[0]) for b in blocks],
                "feature_hz": cond.feature_hz,
            }
            writer.write({
                "__key__": raw["__key__"],
                "json": ann,
                "window.json": json.dumps(window).encode(),
                "latents.npy": _npy(latents),
                "text.npy": _npy(torch.cat(blocks).cpu().numpy().astype(np.float32)),
                "audio.npy": _npy(feats),
            })
            counts["written"] += 1
    log.info("encoded %d sample(s) into %s (%d too short for every bucket)", counts["written"], out_dir, counts["too_short"])
    return counts
