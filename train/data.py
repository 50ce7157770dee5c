"""Training batches from WebDataset shards: media shards (decoded with PyAV in DataLoader workers)
or latent shards written by `actavatar encode`.

    stream = ClipStream(cfg.data, buckets, rank=0, world_size=1)
    loader = build_loader(stream, cfg.data, start_batch=0)   # endless, bucketed, exact on replay

Per rank the stream is endless: epoch e shuffles the shard list with (seed, e) and gives reader
r = rank * workers + worker every readers-th shard (so shards >= ranks x workers is required).
Each sample is planned from its annotation alone (bucket, window, caption mode), batched per
bucket, and only then decoded, so resuming at batch n skips the first n batches without decoding.
Latent samples also carry the negative prompt's features (`negative`, for guidance dropout) and
the prompt they encode (`negative_prompt`, checked against `guidance.negative_prompt`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any, Literal

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dataset.annotation import parse_annotation
from dataset.audio_intensity import frame_intensity
from dataset.errors import UserError
from dataset.pose import NUM_KEYPOINTS, PoseError, annotation_motion, decode_pose, window_motion
from dataset.reader import (
    LogAndContinue,
    SampleDecoder,
    is_local_url,
    is_object_url,
    list_shards,
    open_shard,
    storage_errors,
    tar_expansion,
)
from dataset.storage import Store
from model.motion import motion_tensor
from model.phase_layout import ROUTINGS
from model.pose import pose_batch
from model.refocus import intensity_batch
from train.buckets import Bucket, bucket_batches, choose_bucket
from train.clip_window import (
    WindowPlan,
    cut_window,
    face_box_in_window,
    has_phases,
    plan_window,
    pose_in_window,
    sample_rng,
    window_caption,
)

log = logging.getLogger(__name__)

# negative.npy: the negative prompt's base-block features (guidance dropout without a text encoder)
LATENT_MEMBERS = ("json", "window.json", "latents.npy", "text.npy", "audio.npy", "negative.npy")


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    """Args:
    shards: corpus folder, shards folder, glob, list file or URL pattern (see `dataset.reader.list_shards`).
    kind: "media" (mp4 + wav + json shards) or "latents" (shards written by `actavatar encode`).
    buckets: FRAMESxHEIGHTxWIDTH training shapes (frames = 1 + 4k for the Wan VAE).
    batch_size: samples per rank and step.
    num_workers: DataLoader worker processes per rank (decode with PyAV).
    shuffle_buffer: sample shuffle buffer per worker (0 = shard order).
    seed: data order seed (with the epoch and the sample key).
    phase_prob: chance a sample with phases uses them (stage 2); otherwise base caption only (stage 1 style).
    require_phases: drop clips without phase captions.
    max_phases: phases kept per window (text budget).
    random_window: random window start within the clip (False: the clip start).
    max_bad_fraction: samples that fail to decode (a broken mp4, a clip shorter than its
        annotation, a damaged latent) are skipped, logged with their key and counted; a run stops
        with an error once more than this fraction of the samples seen (after the first 20) failed.
    phase_routing: which phases a latent frame's queries see: "per_frame" (PACA: the phases
        overlapping the frame) or "global" (every phase of the window: the global-caption ablation
        through plain cross-attention). Recorded in the checkpoint's conditioning.json for sampling.
    """

    shards: str = ""
    kind: Literal["media", "latents"] = "media"
    buckets: tuple[str, ...] = ("17x64x64",)
    batch_size: int = 1
    num_workers: int = 0
    shuffle_buffer: int = 16
    seed: int = 0
    phase_prob: float = 0.0
    require_phases: bool = False
    max_bad_fraction: float = 0.01
    max_phases: int = 8
    random_window: bool = True
    phase_routing: Literal["per_frame", "global"] = "per_frame"

    def __post_init__(self) -> None:
        if not self.shards:
            raise UserError("data.shards must name a corpus folder, shard files or a URL pattern, got ''")
        if self.kind not in ("media", "latents"):
            raise UserError(f"data.kind must be 'media' or 'latents', got {self.kind!r}")
        for key in ("batch_size", "max_phases"):
            if getattr(self, key) < 1:
                raise UserError(f"data.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("num_workers", "shuffle_buffer"):
            if getattr(self, key) < 0:
                raise UserError(f"data.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.phase_prob <= 1.0:
            raise UserError(f"data.phase_prob must be in [0, 1], got {self.phase_prob}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise UserError(f"data.max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.phase_routing not in ROUTINGS:
            raise UserError(f"data.phase_routing must be one of {ROUTINGS}, got {self.phase_routing!r}")


def check_shards(urls: Sequence[str], min_count: int) -> None:
    """Fail at start, naming the shard, when a shard is missing, unreadable or empty: local shards
    each, object-storage shards by one listing per folder plus the first shard opened."""
    if len(urls) < min_count:
        raise UserError(
            f"data.shards: {len(urls)} shard(s) for {min_count} readers (ranks x DataLoader workers); "
            "every reader needs at least one shard: write smaller shards or use fewer workers"
        )
    remote = [url for url in urls if is_object_url(url)]
    if remote:
        _check_remote_shards(remote)
    for url in urls:
        if not is_local_url(url):
            continue
        path = url.removeprefix("file://")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data.shards: shard {path} does not exist")
        try:
            with tarfile.open(path, mode="r:") as tar:
                if tar.next() is None:
                    raise UserError(f"data.shards: shard {path} is empty (no samples)")
        except tarfile.TarError as err:
            raise UserError(f"data.shards: shard {path} is not a readable tar: {err}") from None


def _check_remote_shards(urls: Sequence[str]) -> None:
    """Every object exists and is not empty (one listing per folder: a HEAD per shard would be slow
    on thousands), and the first one opens as a tar (credentials that list but cannot read)."""
    by_folder: dict[str, list[str]] = {}
    for url in urls:
        by_folder.setdefault(url.rsplit("/", 1)[0], []).append(url)
    for folder, members in by_folder.items():
        sizes = _object_sizes(folder)
        for url in members:
            size = sizes.get(url.rsplit("/", 1)[1])
            if size is None:
                raise FileNotFoundError(f"data.shards: shard {url} does not exist")
            if not size:
                raise UserError(f"data.shards: shard {url} is empty (no samples)")
    with _first_member(urls[0]) as (_, member):
        if member is None:
            raise UserError(f"data.shards: shard {urls[0]} is empty (no samples)")


def _object_sizes(folder: str) -> dict[str, int]:
    """{name: size} of the files directly under an object-storage folder ({} when there is none)."""
    fs = Store(folder).fs
    with storage_errors(folder, "data.shards: cannot list"):
        fs.invalidate_cache(folder)  # another process may have just written the shards
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            return {}
    return {e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0) for e in entries if e.get("type") != "directory"}


@contextlib.contextmanager
def _first_member(url: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo | None]]:
    """A local or object-storage shard opened as a tar stream, and its first member."""
    stream = open_shard(url, block_size=1 << 20)  # a header or one sample, not the default 50 MiB read-ahead
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar, tar.next()
    except tarfile.TarError as err:
        raise UserError(f"data.shards: shard {url} is not a readable tar: {err}") from None
    finally:
        stream.close()


def first_window(urls: Sequence[str]) -> dict[str, Any] | None:
    """window.json of the first sample of the first local or object-storage latent shard (what
    `actavatar encode` recorded: encoders, negative prompt, feature rate), streaming only that
    sample; None when every shard is a pipe: or http(s) URL."""
    readable = [u for u in urls if is_local_url(u) or is_object_url(u)]
    if not readable:
        return None
    with _first_member(readable[0]) as (tar, member):
        while member is not None:
            if member.name.endswith(".window.json"):
                return json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
            member = tar.next()
    raise UserError(f"data.shards: {readable[0]} holds no .window.json (not a latent shard written by `actavatar encode`)")


def worker_skip(start_batch: int, worker: int, num_workers: int) -> int:
    """Batches worker `worker` already delivered when the loader consumed `start_batch` batches
    (DataLoader takes batches from its workers round-robin, in order)."""
    return len(range(worker, start_batch, max(num_workers, 1)))


class ClipStream(IterableDataset):
    """Endless bucketed batches for one rank; see the module docstring.

    Args:
        config: data options.
        buckets: training shapes.
        rank / world_size: this rank among the data-parallel ranks.
        start_batch: batches this rank already consumed (resume).
    """

    def __init__(self, config: DataConfig, buckets: Sequence[Bucket], *, rank: int = 0, world_size: int = 1, start_batch: int = 0) -> None:
        self.config, self.buckets = config, tuple(buckets)
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.shards = list_shards(config.shards)
        check_shards(self.shards, world_size * max(config.num_workers, 1))
        self._decoder = SampleDecoder(video=True, audio=True)
        self._handler = LogAndContinue()
        self.seen = self.bad = 0  # decoded / skipped samples of this reader (per DataLoader worker)

    # -- planning (annotation only) ---------------------------------------------------------

    def _plans(self, role: int, num_workers: int) -> Iterator[tuple[Bucket, tuple[dict[str, Any], WindowPlan]]]:
        cfg = self.config
        reader, readers = self.rank * num_workers + role, self.world_size * num_workers
        for epoch in count():
            n = 0
            for raw in self._raw_samples(epoch, reader, readers):
                try:
                    ann = parse_annotation(raw["json"])
                except (KeyError, ValueError) as err:
                    log.warning("skipping %s: %s", raw.get("__key__"), err)
                    continue
                if cfg.require_phases and not has_phases(ann):
                    continue
                if cfg.kind == "latents":
                    window = json.loads(raw["window.json"])
                    bucket = Bucket.parse(window["bucket"])
                    plan = WindowPlan(bucket, int(window["start_frame"]), False)
                    use = bool(sample_rng(cfg.seed, epoch, raw["__key__"]).random() < cfg.phase_prob)
                    plan = WindowPlan(bucket, plan.start_frame, use and has_phases(ann))
                else:
                    v = ann["video"]
                    bucket = choose_bucket(self.buckets, int(v["num_frames"]), int(v["height"]), int(v["width"]))
                    if bucket is None:
                        continue
                    rng = sample_rng(cfg.seed, epoch, raw["__key__"])
                    plan = plan_window(ann, bucket, rng, phase_prob=cfg.phase_prob, random_start=cfg.random_window)
                n += 1
                yield bucket, (raw | {"annotation": ann}, plan)
            if n == 0:
                raise UserError(
                    f"data.shards: rank {self.rank} found no usable sample in an epoch (buckets {[str(b) for b in self.buckets]} "
                    f"longer than every clip, require_phases={cfg.require_phases}, or empty shards)"
                )

    def _raw_samples(self, epoch: int, reader: int, readers: int) -> Iterator[dict[str, Any]]:
        """Raw samples (bytes per member) of this reader's shards for `epoch`.

        The split is explicit (reader = rank * workers + worker) rather than webdataset's
        environment-based `split_by_node`, so it is the same under torchrun, Ray Train and tests.
        """
        order = list(self.shards)
        random.Random(self.config.seed + epoch).shuffle(order)
        mine = order[reader::readers]
        stages: list[Any] = [wds.SimpleShardList(mine), tar_expansion(mine, handler=self._handler)]
        if self.config.shuffle_buffer:
            stages.append(wds.shuffle(self.config.shuffle_buffer, seed=self.config.seed + epoch))
        yield from wds.DataPipeline(*stages)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # a new DataLoader asks worker 0 first, but global batch `start_batch` belongs to the original
        # worker start_batch % W: rotate the roles so the replayed order is the original one
        role = (worker + self.start_batch) % num_workers
        skip = worker_skip(self.start_batch, role, num_workers)
        for i, (_, items) in enumerate(bucket_batches(self._plans(role, num_workers), self.config.batch_size)):
            if i < skip:
                continue  # replayed on resume: planned but never decoded
            samples = [sample for raw, plan in items if (sample := self._decode(raw, plan)) is not None]
            if samples:  # a batch may come out smaller; an all-bad batch is dropped (resume then replays one more)
                yield collate(samples)

    def _decode(self, raw: dict[str, Any], plan: WindowPlan) -> dict[str, Any] | None:
        """One sample, or None (logged and counted) when it cannot be decoded; too many stop the run."""
        self.seen += 1
        try:
            return self._materialize(raw, plan)
        except (ValueError, KeyError, OSError, EOFError, RuntimeError) as err:  # MediaError is a ValueError
            self.bad += 1
            key = raw.get("__key__")
            log.warning("data: skipping sample %s from %s: %s (%d of %d skipped)", key, raw.get("__url__"), err, self.bad, self.seen)
            if self.seen >= 20 and self.bad > self.config.max_bad_fraction * self.seen:
                raise UserError(
                    f"data.shards: {self.bad} of {self.seen} samples could not be decoded (more than data.max_bad_fraction="
                    f"{self.config.max_bad_fraction}); the data looks broken. Last: {key} from {raw.get('__url__')}: {err}"
                ) from err
            return None

    # -- decoding ---------------------------------------------------------------------------

    def _materialize(self, raw: dict[str, Any], plan: WindowPlan) -> dict[str, Any]:
        ann = raw["annotation"]
        fps = float(ann["video"]["fps"])
        texts, spans = window_caption(ann, plan, self.config.max_phases)
        out: dict[str, Any] = {
            "key": raw["__key__"],
            "fps": fps,
            "texts": texts,
            "spans": spans,
            "face_box": face_box_in_window(ann, plan.bucket),
            "num_frames": plan.bucket.frames,
            "motion": sample_motion(raw, ann, plan),
            "pose": sample_pose(raw, ann, plan),
        }
        if "window.json" in raw:  # stored by `actavatar encode` (older latent shards have none)
            out["audio_intensity"] = json.loads(raw["window.json"]).get("audio_intensity")
        if self.config.kind == "latents":
            out["latents"] = torch.from_numpy(_npy(raw["latents.npy"])).float()
            text = torch.from_numpy(_npy(raw["text.npy"])).float()
            window = json.loads(raw["window.json"])
            lengths = window["text_lengths"]
            blocks = list(torch.split(text, lengths))
            # the cached blocks are base + every phase of the window; keep the ones in `texts`
            out["text_blocks"] = blocks[: len(texts)]
            out["audio_features"] = torch.from_numpy(_npy(raw["audio.npy"])).float()
            for member, name in (("condition.npy", "condition"), ("image.npy", "image_tokens")):  # Wan2.1 I2V
                if member in raw:
                    out[name] = torch.from_numpy(_npy(raw[member])).float()
            if "negative.npy" in raw:  # shards of an older `actavatar encode` have none
                out["negative"] = torch.from_numpy(_npy(raw["negative.npy"])).float()
                out["negative_prompt"] = window.get("negative_prompt", "")
            return out
        decoded = self._decoder(raw)
        out["video"], out["audio"] = cut_window(decoded["frames"], decoded["audio"], plan, fps)
        out["audio_intensity"] = frame_intensity(out["audio"].numpy(), plan.bucket.frames)
        return out


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def sample_motion(raw: dict[str, Any], ann: dict[str, Any], plan: WindowPlan) -> tuple[float | None, float | None] | None:
    """(face, body) motion intensity of the training window: measured on the window's frames of the
    clip's `pose.npy` (media shards) or stored by `actavatar encode` (latent shards); the clip's
    annotation figures otherwise; None for corpora without either."""
    if "window.json" in raw:
        stored = json.loads(raw["window.json"]).get("motion")
        if stored is not None:
            return tuple(stored)
    elif "pose.npy" in raw:
        v = ann["video"]
        try:
            pose = decode_pose(raw["pose.npy"], int(v["num_frames"]))
        except PoseError as err:  # the clip still trains, with its annotation's figures
            log.warning("data: %s from %s: ignoring pose.npy: %s", raw.get("__key__"), raw.get("__url__"), err)
        else:
            return window_motion(pose, plan.start_frame, plan.bucket.frames, float(v["fps"]), v["width"] / v["height"])
    return annotation_motion(ann)


def sample_pose(raw: dict[str, Any], ann: dict[str, Any], plan: WindowPlan) -> np.ndarray | None:
    """(frames, K, 3) keypoints of the training window, normalised to the cropped frame: the
    window's own `pose.npy` (latent shards, stored by `actavatar encode`) or the window's frames of
    the clip's (media shards); None (pose-free) for corpora without one or a damaged one (logged)."""
    if "pose.npy" not in raw:
        return None
    try:
        if "window.json" in raw:  # a latent window: already cut and cropped
            return decode_pose(raw["pose.npy"], plan.bucket.frames)
        return pose_in_window(decode_pose(raw["pose.npy"], int(ann["video"]["num_frames"])), ann, plan)
    except PoseError as err:
        log.warning("data: %s from %s: ignoring pose.npy: %s", raw.get("__key__"), raw.get("__url__"), err)
        return None


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack same-bucket samples; texts, spans and text blocks stay lists."""
    batch: dict[str, Any] = {k: [s[k] for s in samples] for k in ("key", "fps", "texts", "spans")}
    batch["face_box"] = torch.stack([s["face_box"] for s in samples])
    batch["motion"] = motion_tensor([s.get("motion") for s in samples])
    batch["pose"] = pose_batch([s.get("pose") for s in samples], samples[0]["num_frames"], NUM_KEYPOINTS)
    batch["audio_intensity"] = intensity_batch([s.get("audio_intensity") for s in samples], samples[0]["num_frames"])
    batch["num_frames"] = samples[0]["num_frames"]
    for key in ("video", "audio", "latents", "audio_features", "condition", "image_tokens"):
        if key in samples[0]:
            batch[key] = torch.stack([s[key] for s in samples])
    for key in ("text_blocks", "negative", "negative_prompt"):
        if all(key in s for s in samples):
            batch[key] = [s[key] for s in samples]
    return batch


def build_loader(stream: ClipStream, config: DataConfig, *, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over `stream` (which yields whole batches)."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=config.num_workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if config.num_workers else None,
        persistent_workers=False,
    )
