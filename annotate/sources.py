"""Input sources: resolve `--input` into URIs, and content-address each one (source_id)."""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

import fsspec

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"}
_CHUNK = 1 << 20


def resolve_inputs(spec: str) -> list[str]:
    """A folder (its video files, recursively), a glob, a text file listing paths or URLs (one
    per line, `#` comments) or a single file; local or as an fsspec URL (`s3://bucket/raw/`).
    Sorted, duplicates removed."""
    if "://" in spec and not spec.startswith("file://"):
        found = _resolve_remote(spec)
        if not found:
            raise FileNotFoundError(f"no input videos found at {spec}")
        return found
    path = Path(spec.removeprefix("file://"))
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    elif path.is_file() and path.suffix == ".txt":
        found = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    elif path.is_file():
        found = [str(path)]
    else:
        found = sorted(glob.glob(spec, recursive=True))
    if not found:
        raise FileNotFoundError(f"no input videos found at {spec}")
    return sorted(set(found))


def _resolve_remote(spec: str) -> list[str]:
    """The same rules on object storage: a prefix ("folder") is searched recursively for video
    files, a glob expands, a .txt object lists URLs, anything else is one video."""
    fs, path = fsspec.core.url_to_fs(spec)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    if any(ch in path for ch in "*?["):
        return sorted({f"{protocol}://{p}" for p in fs.glob(path)})
    path = path.rstrip("/")
    if fs.isdir(path):
        return sorted(f"{protocol}://{p}" for p in fs.find(path) if Path(p).suffix.lower() in VIDEO_SUFFIXES)
    if path.endswith(".txt"):
        text = fs.cat_file(path).decode()
        return sorted({line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")})
    return [f"{protocol}://{path}"]


def open_source(uri: str):
    """A binary file object for a local path or any fsspec URL."""
    return fsspec.open(uri, "rb").open()


def source_sha256(uri: str) -> str:
    """SHA-256 of the source's bytes; of its URI when it cannot be read (so it still has an id)."""
    digest = hashlib.sha256()
    try:
        with open_source(uri) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return hashlib.sha256(f"unreadable:{uri}".encode()).hexdigest()
    return digest.hexdigest()


def clip_key(source_id: str, index: int) -> str:
    return f"{source_id}_{index:04d}"
