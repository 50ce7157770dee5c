"""One folder API over a local path or any fsspec URL (`s3://bucket/corpus`, `gs://…`, `file://…`).

The corpus pipeline keeps its work ledger, clip media, shards, manifest and audit files under one
root; with `Store` none of them assumes a shared local filesystem:

    store = Store("s3://bucket/run1")           # or Store("/data/run1")
    store.write_bytes("_work/abc/probe.json", data)
    store.read_bytes("_work/abc/probe.json")
    with store.local_file("clips/k.wav") as path: ...   # a local copy for tools that need a path

Writes are atomic in both worlds: locally a temp sibling is renamed into place (`dataset.atomic`);
on object storage one PUT (or a completed multipart upload) replaces the object whole, so readers
see the old or the new object, never a partial one. Credentials and endpoints come from the
backend's usual places (for S3: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, an
instance role), or fsspec's `FSSPEC_S3_*` environment variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataset.atomic import atomic_open, atomic_write_bytes
from dataset.errors import UserError

_CHUNK = 1 << 22


def is_remote(url: str | Path) -> bool:
    """An fsspec URL other than file:// (s3://, gs://, memory://, …)."""
    text = str(url)
    return "://" in text and not text.startswith("file://")


def local_path(url: str | Path) -> Path:
    return Path(str(url).removeprefix("file://"))


class Store:
    """Files under one root, local or remote.

    Args:
        root: a local folder (plain path or file:// URL) or an fsspec URL.
    """

    def __init__(self, root: str | Path) -> None:
        self.remote = is_remote(root)
        if self.remote:
            import fsspec

            self.root = str(root).rstrip("/")
            try:
                self.fs, self._base = fsspec.core.url_to_fs(self.root)
            except ImportError as err:  # e.g. s3fs missing
                raise UserError(f"{root}: no filesystem for this URL ({err}); install the backend "
                                "(`pip install 'actavatar[storage]'` for s3://, gcsfs for gs://)") from err
            protocol = self.fs.protocol[0] if isinstance(self.fs.protocol, (tuple, list)) else self.fs.protocol
            self._protocol = protocol
        else:
            self.root = str(local_path(root))
            self.fs, self._base, self._protocol = None, self.root, "file"

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def __reduce__(self):  # pickles by root (Ray ships stores to workers; fsspec instances re-create there)
        return (Store, (self.root,))

    # -- paths --------------------------------------------------------------------------------

    def _path(self, rel: str) -> str:
        rel = rel.strip("/")
        return f"{self._base}/{rel}" if rel else self._base

    def url(self, rel: str = "") -> str:
        """The full URL (remote) or path (local) of `rel`."""
        rel = rel.strip("/")
        return f"{self.root}/{rel}" if rel else self.root

    def sub(self, rel: str) -> "Store":
        return Store(self.url(rel))

    # -- reading ------------------------------------------------------------------------------

    def _fresh(self, path: str) -> str:
        """Drop fsspec's cached listing of `path`'s folder: another process may have written there
        since we listed it, and a stale listing makes a present object look missing."""
        self.fs.invalidate_cache(path.rsplit("/", 1)[0])
        return path

    def read_bytes(self, rel: str) -> bytes:
        if not self.remote:
            return Path(self._path(rel)).read_bytes()
        return self.fs.cat_file(self._fresh(self._path(rel)))

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return os.path.exists(self._path(rel))
        return self.fs.exists(self._fresh(self._path(rel)))

    def is_dir(self, rel: str = "") -> bool:
        if not self.remote:
            return os.path.isdir(self._path(rel))
        self.fs.invalidate_cache(self._path(rel))
        return self.fs.isdir(self._path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names directly under `rel` (files and folders), sorted; [] when it does not exist."""
        path = self._path(rel)
        if not self.remote:
            return sorted(os.listdir(path)) if os.path.isdir(path) else []
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries} - {""})

    def open(self, rel: str, mode: str = "rb"):
        if not self.remote:
            return open(self._path(rel), mode)
        return self.fs.open(self._fresh(self._path(rel)), mode)

    @contextlib.contextmanager
    def local_file(self, rel: str) -> Iterator[Path]:
        """A local path holding `rel`'s bytes (the file itself when local; a temp copy otherwise)."""
        if not self.remote:
            yield Path(self._path(rel))
            return
        with tempfile.TemporaryDirectory(prefix="actavatar-") as tmp:
            target = Path(tmp) / rel.rsplit("/", 1)[-1]
            self.fs.get_file(self._fresh(self._path(rel)), str(target))
            yield target

    # -- writing ------------------------------------------------------------------------------

    def write_bytes(self, rel: str, data: bytes) -> None:
        if not self.remote:
            atomic_write_bytes(self._path(rel), data)
            return
        self.fs.pipe_file(self._path(rel), data)

    def write_json(self, rel: str, record: Any) -> None:
        self.write_bytes(rel, json.dumps(record, sort_keys=True, separators=(",", ":")).encode())

    def put_file(self, local: str | Path, rel: str) -> None:
        """Copy a finished local file to `rel` atomically (the local file stays)."""
        if not self.remote:
            with open(local, "rb") as src, atomic_open(self._path(rel)) as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            return
        self.fs.put_file(str(local), self._path(rel))

    def remove(self, rel: str) -> None:
        """Delete a file if it exists."""
        if not self.remote:
            Path(self._path(rel)).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(rel))

    def makedirs(self, rel: str = "") -> None:
        if not self.remote:
            os.makedirs(self._path(rel), exist_ok=True)
        # object stores have no folders: a key's prefix exists once an object is under it

    # -- checks -------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Write, read back and delete a probe object; any failure (missing bucket, bad or missing
        credentials, no permission, unreachable endpoint) becomes one UserError naming the root."""
        probe = f".write-probe-{uuid.uuid4().hex}"
        try:
            self.makedirs()
            self.write_bytes(probe, b"ok")
            if self.read_bytes(probe) != b"ok":
                raise OSError("read back different bytes")
            self.remove(probe)
        except Exception as err:  # noqa: BLE001 - reported as one clear error
            raise UserError(f"cannot write to {self.root}: {describe_storage_error(err)}") from err


def describe_storage_error(err: BaseException) -> str:
    """A one-line reason for a storage failure, with the usual fix for credential problems."""
    text = f"{type(err).__name__}: {err}"
    lowered = text.lower()
    hints = ("credential", "accesskey", "access key", "signature", "token", "forbidden", "accessdenied",
             "access denied", "permission")
    if any(h in lowered for h in hints) or isinstance(err, PermissionError):
        text += (" (check the credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an instance role for s3://, "
                 "GOOGLE_APPLICATION_CREDENTIALS for gs://; and the endpoint, AWS_ENDPOINT_URL, for a non-AWS S3 server)")
    return text


def check_readable(url: str) -> None:
    """Fail early, with one UserError, when a remote input or corpus URL cannot be listed."""
    if not is_remote(url):
        return
    store = Store(url)
    try:
        store.fs.invalidate_cache(store._base)
        store.fs.info(store._base)
    except FileNotFoundError as err:
        raise UserError(f"{url}: not found") from err
    except Exception as err:  # noqa: BLE001
        raise UserError(f"cannot read {url}: {describe_storage_error(err)}") from err
