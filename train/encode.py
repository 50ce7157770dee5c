"""Precompute encoder outputs into latent shards: VAE latents, UMT5 text blocks, audio features.

Each media sample becomes one window at the clip start (default) or several windows starting at
frames 0, s, 2s, ... (`windows_per_clip`, `window_stride`), in the bucket `choose_bucket` picks,
so a latent corpus keeps some of the variety of random windows. Members per window: `json` (the
clip's annotation, unchanged), `window.json` (bucket, start frame, text block lengths, feature
rate, negative prompt, encoder sources), `latents.npy` (z, F, h, w), `text.npy` (base + phase
blocks concatenated, (L, C)), `audio.npy` (Ta, C) and `negative.npy` (the negative prompt's base
block, for guidance dropout without a text encoder); for a Wan2.1-I2V model also `condition.npy`
((stride + z, F, h, w): mask + latents of [first frame, zeros…]) and `image.npy` (the first frame's
CLIP tokens, (Li, C)). Training reads them with `data.kind=latents`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.audio_intensity import frame_intensity
from dataset.errors import UserError
from dataset.pose import PoseError, decode_pose, encode_pose, window_motion
from dataset.reader import SampleDecoder, shard_pipeline
from dataset.writer import ShardWriter, ShardWriterConfig
from train.buckets import Bucket, choose_bucket, parse_buckets
from train.clip_window import WindowPlan, cut_window, pose_in_window, window_caption
from train.conditioning import Conditioner
from train.config import TrainConfig
from train.data import LATENT_MEMBERS, check_shards
from train.model_init import dit_config
from train.trainer import check_config, resolve_reference

log = logging.getLogger(__name__)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def window_starts(num_frames: int, window: int, *, count: int = 1, stride: int = 0) -> list[int]:
    """Start frames 0, s, 2s, ... of the full windows of `window` frames in a clip of `num_frames`.

    Args:
        count: at most this many windows (0 = every window that fits).
        stride: frames between starts (0 = `window`: back-to-back windows).
    """
    step = stride or window
    starts = list(range(0, num_frames - window + 1, step))
    return starts[:count] if count else starts


def _window_keys(key: str, n: int, multi: bool) -> list[str]:
    # one window keeps the clip's key (the layout before multi-window encoding existed)
    return [f"{key}_w{i:04d}" for i in range(n)] if multi else [key]


def encode_corpus(
    config: TrainConfig, out_dir: str | Path, *, max_samples: int = 1000, overwrite: bool = False, device: str = "cpu",
    windows_per_clip: int = 1, window_stride: int = 0, batch_size: int = 4,
) -> dict[str, int]:
    """Encode every usable sample of `config.data.shards` into latent shards under `out_dir`.

    Args:
        windows_per_clip: windows per clip (0 = every full window); != 1 names them `<key>_w0000`, ...
        window_stride: frames between window starts (0 = the window length).
        batch_size: windows per VAE / audio encoder call.
    Returns counts: {"written": windows, "clips": clips, "too_short": clips without a bucket}.
    """
    for key, value in (("windows_per_clip", windows_per_clip), ("window_stride", window_stride)):
        if value < 0:
            raise UserError(f"{key} must be >= 0, got {value}")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    arch = dit_config(config.model)
    reference = resolve_reference(config, arch)
    check_config(dataclasses.replace(config, stage=dataclasses.replace(config.stage, reference=reference)), arch)
    from dataset.reader import list_shards

    check_shards(list_shards(config.data.shards), 1)
    buckets = parse_buckets(config.data.buckets)
    cond = Conditioner(config.encoders, text_len=arch.text_len, vae_stride=arch.vae_stride, device=torch.device(device),
                       negative_prompt=config.guidance.negative_prompt, i2v=reference == "i2v",
                       image_tokens=arch.image_dim is not None)
    negative = _npy(cond.negative.cpu().numpy().astype(np.float32))
    sources = {"text": config.encoders.text, "vae": config.encoders.vae, "audio": config.encoders.audio}
    if config.encoders.image:  # Wan2.1 I2V's CLIP tower
        sources["image"] = config.encoders.image
    header = {"negative_prompt": config.guidance.negative_prompt, "feature_hz": cond.feature_hz, "i2v": reference == "i2v",
              "encoders": sources}
    decoder = SampleDecoder(video=True, audio=True)
    counts = {"written": 0, "clips": 0, "too_short": 0}
    multi = windows_per_clip != 1
    # window keys do not match the annotation's clip key, which the writer's schema check insists on;
    # the annotations were validated when the media shards were written
    writer_cfg = ShardWriterConfig(max_samples=max_samples, validate=not multi)
    with ShardWriter(out_dir, writer_cfg, required_members=LATENT_MEMBERS, overwrite=overwrite) as writer:
        for raw in shard_pipeline(config.data.shards, decode="none"):
            sample = decoder(raw)
            ann = sample["annotation"]
            if "pose.npy" in raw:  # per-frame keypoints: each window stores its own keypoints and motion intensity
                try:
                    sample["pose"] = decode_pose(raw["pose.npy"], int(ann["video"]["num_frames"]))
                except PoseError as err:  # the windows keep the clip's annotation figures instead
                    log.warning("%s: %s: ignoring pose.npy: %s", raw.get("__url__"), raw["__key__"], err)
            v = ann["video"]
            bucket = choose_bucket(buckets, int(v["num_frames"]), int(v["height"]), int(v["width"]))
            if bucket is None:
                counts["too_short"] += 1
                continue
            starts = window_starts(int(v["num_frames"]), bucket.frames, count=windows_per_clip, stride=window_stride)
            keys = _window_keys(raw["__key__"], len(starts), multi)
            for i in range(0, len(starts), batch_size):
                for item in _encode_windows(cond, config, sample, bucket, starts[i : i + batch_size], keys[i : i + batch_size]):
                    window = {**item.pop("window"), **header}
                    writer.write({**item, "json": ann, "window.json": json.dumps(window).encode(), "negative.npy": negative},
                                 row={"key": item["__key__"]})
                    counts["written"] += 1
            counts["clips"] += 1
    log.info("encoded %d window(s) of %d clip(s) into %s (%d too short for every bucket)",
             counts["written"], counts["clips"], out_dir, counts["too_short"])
    return counts


def _encode_windows(
    cond: Conditioner, config: TrainConfig, sample: dict[str, Any], bucket: Bucket, starts: list[int], keys: list[str]
) -> list[dict[str, Any]]:
    """Members of the windows starting at `starts` (one VAE and one audio encoder call for all)."""
    fps = float(sample["annotation"]["video"]["fps"])
    plans = [WindowPlan(bucket, start, True) for start in starts]
    cuts = [cut_window(sample["frames"], sample["audio"], plan, fps) for plan in plans]
    videos = torch.stack([video for video, _ in cuts])
    latents = cond.encode_video(videos).cpu().numpy().astype(np.float32)
    feats = cond.encode_audio(torch.stack([audio for _, audio in cuts])).cpu().numpy().astype(np.float32)
    condition, image = cond.reference_inputs(videos[:, :, 0], bucket.frames)  # (None, None) unless Wan2.1 I2V
    out = []
    for i, (plan, key) in enumerate(zip(plans, keys, strict=True)):
        texts, _ = window_caption(sample["annotation"], plan, config.data.max_phases)
        blocks = cond.encode_text_blocks(texts)
        window = {"bucket": str(bucket), "start_frame": plan.start_frame, "text_lengths": [int(b.shape[0]) for b in blocks],
                  # per-frame audio intensity of the window's audio (model.refocus reads it)
                  "audio_intensity": [round(float(v), 4) for v in frame_intensity(cuts[i][1].numpy(), bucket.frames)]}
        if "pose" in sample:
            v = sample["annotation"]["video"]
            window["motion"] = list(window_motion(sample["pose"], plan.start_frame, bucket.frames, fps, v["width"] / v["height"]))
        members = {
            "__key__": key,
            "window": window,
            "latents.npy": _npy(latents[i]),
            "text.npy": _npy(torch.cat(blocks).cpu().numpy().astype(np.float32)),
            "audio.npy": _npy(feats[i]),
        }
        if "pose" in sample:  # the window's keypoints in the cropped frame (model.pose trains on them)
            members["pose.npy"] = encode_pose(pose_in_window(sample["pose"], sample["annotation"], plan))
        if condition is not None:
            members["condition.npy"] = _npy(condition[i].cpu().numpy().astype(np.float32))
        if image is not None:
            members["image.npy"] = _npy(image[i].cpu().numpy().astype(np.float32))
        out.append(members)
    return out
