"""(frames, height, width) buckets: parse them, pick one per clip, and group samples into batches.

Every sample of a batch shares its bucket, so latents, audio windows and frame maps stack without
padding. A clip goes to the bucket whose aspect ratio is closest to its own, then the longest
window it can hold, then the largest area (Open-Sora's `bucket_config`, without probabilities).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dataset.errors import UserError

_BUCKET_RE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True, order=True, slots=True)
class Bucket:
    """A training shape: `frames` video frames of `height` x `width` pixels."""

    frames: int
    height: int
    width: int

    @classmethod
    def parse(cls, text: str) -> "Bucket":
        m = _BUCKET_RE.match(text.strip())
        if not m:
            raise UserError(f"data.buckets entries must look like FRAMESxHEIGHTxWIDTH (e.g. 17x64x64), got {text!r}")
        frames, height, width = (int(g) for g in m.groups())
        if min(frames, height, width) < 1:
            raise UserError(f"data.buckets entry {text!r} must have positive sizes")
        return cls(frames, height, width)

    def __str__(self) -> str:
        return f"{self.frames}x{self.height}x{self.width}"

    def check(self, temporal_stride: int, spatial_multiple: int) -> None:
        """Raise unless the VAE / patch strides divide this shape (Wan VAE: frames = 1 + 4k)."""
        if (self.frames - 1) % temporal_stride:
            raise UserError(
                f"data.buckets entry {self}: frames must be 1 + {temporal_stride}k for the VAE's temporal stride "
                f"{temporal_stride}, got {self.frames}"
            )
        if self.height % spatial_multiple or self.width % spatial_multiple:
            raise UserError(
                f"data.buckets entry {self}: height and width must be multiples of {spatial_multiple} "
                "(VAE spatial stride x patch size)"
            )


def parse_buckets(texts: Sequence[str]) -> tuple[Bucket, ...]:
    if not texts:
        raise UserError("data.buckets must list at least one FRAMESxHEIGHTxWIDTH entry")
    buckets = tuple(Bucket.parse(t) for t in texts)
    if len(set(buckets)) != len(buckets):
        raise UserError(f"data.buckets has duplicates: {list(texts)}")
    return buckets


def choose_bucket(buckets: Sequence[Bucket], num_frames: int, height: int, width: int) -> Bucket | None:
    """The bucket for a clip of this size, or None when the clip is shorter than every bucket."""
    fitting = [b for b in buckets if b.frames <= num_frames]
    if not fitting:
        return None
    aspect = width / max(height, 1)

    def rank(b: Bucket) -> tuple[float, int, int]:
        return (abs(b.width / b.height - aspect), -b.frames, -b.height * b.width)

    return min(fitting, key=rank)


def bucket_batches(
    items: Iterable[tuple[Hashable, Any]], batch_size: int
) -> Iterator[tuple[Hashable, list[Any]]]:
    """Group (bucket, item) pairs into full batches of one bucket, in the order they complete.

    Partial batches wait for more items (the stream is endless across epochs); what is left when
    the input ends is dropped, so every batch has exactly `batch_size` items.
    """
    pending: dict[Hashable, list[Any]] = {}
    for key, item in items:
        group = pending.setdefault(key, [])
        group.append(item)
        if len(group) == batch_size:
            yield key, pending.pop(key)
