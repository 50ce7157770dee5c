"""Data contracts shared by every stage: sample keys, shard members, the manifest schema.

See DESIGN.md §3. The annotation JSON schema and its validator live in `dataset.annotation`.
"""

from __future__ import annotations

import re

import pyarrow as pa

SCHEMA_VERSION = 1

# `<source_id>_<clip:04d>`, source_id = first 16 hex chars of the source file's SHA-256.
SAMPLE_KEY_RE = re.compile(r"^[0-9a-f]{16}_[0-9]{4,}$")
# What may appear as a key inside a tar at all: webdataset splits member names at the first
# dot and treats "/" as a directory, so neither may occur; nor may anything outside ASCII.
# At most 90 characters so "<key>.<ext>" fits a plain USTAR name field (100 bytes).
SAFE_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,89}$")

# Members every sample of a media shard carries (extension -> what it is).
REQUIRED_MEMBERS: dict[str, str] = {
    "json": "annotation (schema v1)",
    "mp4": "H.264 yuv420p video, 25 fps, AAC 16 kHz mono",
    "wav": "16 kHz mono PCM16 audio",
}
# Members a media sample may carry besides those (older corpora lack them).
OPTIONAL_MEMBERS: dict[str, str] = {
    "pose.npy": "per-frame keypoints, float16 (num_frames, 15, 3) x, y, confidence (dataset.pose)",
}
SHARD_PATTERN = "shard-%06d.tar"
# `shard-000012.tar` (ShardWriter's running index) or `shard-000012-003.tar` (the corpus pipeline:
# shard group 12, its shard 3; groups are written independently by workers).
SHARD_RE = re.compile(r"^shard-(\d{6,})(?:-(\d{3,}))?\.tar$")
GROUP_SHARD_PATTERN = "shard-%06d-%03d.tar"
SHARDS_DIRNAME = "shards"
MANIFEST_FILENAME = "manifest.parquet"
PARTIAL_SUFFIX = ".partial"

VIDEO_FPS = 25.0
AUDIO_SAMPLE_RATE = 16_000

STATUSES = ("ok", "rejected", "failed")

# One row per clip candidate (or per source that failed before it had clips).
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("source_uri", pa.string()),
        pa.field("source_sha256", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("shard", pa.string()),
        # quality figures (null where the stage producing them did not run)
        pa.field("duration_s", pa.float64()),
        pa.field("num_frames", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("fps", pa.float64()),
        pa.field("speech_ratio", pa.float64()),
        pa.field("av_offset_frames", pa.int32()),
        pa.field("av_sync_confidence", pa.float64()),
        pa.field("face_detected_ratio", pa.float64()),
        pa.field("face_max_faces", pa.int32()),
        pa.field("face_area", pa.float64()),
        pa.field("language", pa.string()),
        pa.field("num_words", pa.int32()),
        pa.field("num_phases", pa.int32()),
        # motion intensity (`dataset.pose`): absolute 0..1 scale, and the corpus quantile level 0..4
        pa.field("motion_face", pa.float64()),
        pa.field("motion_body", pa.float64()),
        pa.field("motion_face_level", pa.int32()),
        pa.field("motion_body_level", pa.int32()),
    ]
)
MANIFEST_COLUMNS = tuple(MANIFEST_SCHEMA.names)


def shard_name(index: int) -> str:
    return SHARD_PATTERN % index


def is_safe_key(key: str) -> bool:
    return bool(SAFE_KEY_RE.match(key))
