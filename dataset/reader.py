"""Read shards as decoded samples, built from `webdataset` pipeline stages.

    pipe = shard_pipeline(list_shards("OUT"), decode="full")
    loader = torch.utils.data.DataLoader(pipe, batch_size=None, num_workers=4)
    for sample in loader:
        sample["frames"]      # torch.uint8 tensor (T, H, W, 3)
        sample["audio"]       # torch.float32 tensor (N,), 16 kHz
        sample["annotation"]  # dict (schema v1)

`shard_pipeline` returns a `wds.DataPipeline`, so further webdataset stages (`wds.shuffle`,
`wds.batched`, `wds.map`, ...) append with `pipe.append(stage)` or via `stages=`.
Shards are split across nodes (torch.distributed ranks) and DataLoader workers.

Shards on object storage (`s3://bucket/corpus`, any fsspec URL) are listed and read like a local
folder: listed through `dataset.storage.Store`, streamed with `fsspec.open` (`open_shard`).
`pipe:` and http(s):// URLs keep going through webdataset's `gopen`.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import torch
import webdataset as wds
from webdataset.filters import pipelinefilter
from webdataset.gopen import gopen
from webdataset.tariterators import group_by_keys, tar_file_expander

from dataset.annotation import parse_annotation
from dataset.errors import UserError
from dataset.media import MediaError, decode_mp4, decode_wav
from dataset.schema import AUDIO_SAMPLE_RATE, SHARD_RE, SHARDS_DIRNAME
from dataset.storage import Store, check_readable, describe_storage_error, is_remote

log = logging.getLogger(__name__)

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_GLOB_RE = re.compile(r"[*?[]")
_GOPEN_SCHEMES = ("http", "https")  # streamed by webdataset's gopen (curl), as before
DecodeMode = Literal["full", "annotation", "none"]


def list_shards(path: str | Path | Sequence[str]) -> list[str]:
    """Resolve a corpus folder, a shards folder, a tar, a glob, a text file of paths or a URL
    pattern (`s3://b/shard-{000000..000009}.tar`) into an ordered list of shard URLs. The folder,
    glob, tar and text-file forms work on object storage too (`s3://b/corpus`, `s3://b/c/shards/*.tar`)."""
    if not isinstance(path, (str, Path)):
        return [str(p) for p in path]
    text = str(path)
    if "{" in text or ("://" in text and not is_object_url(text)):
        return list(wds.shardlists.expand_urls(text))
    if is_object_url(text):
        return _remote_shards(text.rstrip("/"))
    p = Path(text)
    if p.is_dir():
        folder = p / SHARDS_DIRNAME if (p / SHARDS_DIRNAME).is_dir() else p
        shards = sorted(str(s) for s in folder.iterdir() if SHARD_RE.match(s.name))
        if not shards:
            raise FileNotFoundError(f"{folder}: no shard-NNNNNN.tar files here")
        return shards
    if p.is_file() and p.suffix == ".txt":
        return _list_lines(p.read_text())
    if p.is_file():
        return [str(p)]
    matches = sorted(glob.glob(text))
    if not matches:
        raise FileNotFoundError(f"no shards found at {text}")
    return matches


def _list_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _remote_shards(url: str) -> list[str]:
    """`list_shards` for an fsspec URL: a glob, one tar, a text file of URLs, or a corpus / shards folder."""
    if _GLOB_RE.search(url.split("://", 1)[1]):
        fs = Store(url).fs
        with storage_errors(url):
            matches = sorted(fs.unstrip_protocol(m) for m in fs.glob(url))
        if not matches:
            raise FileNotFoundError(f"no shards found at {url}")
        return matches
    if url.endswith(".tar"):
        return [url]  # opening it reports a missing object
    if url.endswith(".txt"):
        folder, _, name = url.rpartition("/")
        with storage_errors(url):
            return _list_lines(Store(folder).read_bytes(name).decode())
    check_readable(url)  # a missing bucket or bad credentials: one clear error before listing
    store = Store(url)
    with storage_errors(url):
        if SHARDS_DIRNAME in store.listdir() and store.is_dir(SHARDS_DIRNAME):
            store = store.sub(SHARDS_DIRNAME)
        shards = [store.url(n) for n in store.listdir() if SHARD_RE.match(n)]
    if not shards:
        raise FileNotFoundError(f"{store.root}: no shard-NNNNNN.tar files here")
    return shards


@contextlib.contextmanager
def storage_errors(url: str, what: str = "cannot read") -> Iterator[None]:
    """Turn a storage failure under this block (credentials, permissions, endpoint, missing bucket)
    into one error naming `url`: FileNotFoundError for a missing object, UserError otherwise."""
    try:
        yield
    except UserError:
        raise
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{url}: not found") from err
    except Exception as err:  # noqa: BLE001 - reported as one clear error
        raise UserError(f"{what} {url}: {describe_storage_error(err)}") from err


def is_local_url(url: str) -> bool:
    """A plain path or file:// URL (not s3://, gs://, pipe:..., http://...)."""
    return url.startswith("file://") or not _SCHEME_RE.match(url)


def is_object_url(url: str) -> bool:
    """An fsspec URL read with fsspec (s3://, gs://, az://, memory://, ...): not a local path, not
    `pipe:` and not http(s)://, which webdataset's gopen streams."""
    if url.startswith("pipe:") or not is_remote(url):
        return False
    return url.split("://", 1)[0].lower() not in _GOPEN_SCHEMES


def open_shard(url: str, *, block_size: int | None = None) -> IO[bytes]:
    """A readable stream of one shard: object-storage URLs through fsspec (read ahead in blocks,
    never downloaded whole first; `block_size` bytes per request, default the backend's, 50 MiB for
    s3fs), anything else through webdataset's gopen. A shard that cannot be opened (missing object,
    bad credentials) raises one UserError naming the URL."""
    if not is_object_url(url):
        return gopen(url, "rb")
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        return fs.open(path, "rb", **({"block_size": block_size} if block_size else {}))
    except Exception as err:  # noqa: BLE001 - reported as one clear error
        raise UserError(f"cannot open shard {url}: {describe_storage_error(err)}") from err


def open_shards(sources: Iterable[dict[str, Any]], handler: Callable[[BaseException], bool]) -> Iterator[dict[str, Any]]:
    """webdataset's `url_opener` stage with `open_shard`: adds `stream` to each {"url": ...}.
    Streams we opened with fsspec are closed once the next shard is asked for."""
    for source in sources:
        url = source["url"]
        try:
            stream = open_shard(url)
        except Exception as exn:  # noqa: BLE001 - the handler decides (log and skip, or raise)
            if handler(exn):
                continue
            break
        try:
            yield {**source, "stream": stream}
        finally:
            if is_object_url(url):
                stream.close()


def _json_only(name: str) -> bool:
    # Module-level (not a lambda) so the pipeline pickles into DataLoader workers.
    return name.endswith(".json")


def _local_tar_files(sources: Iterable[dict[str, Any]], handler: Callable[[BaseException], bool], select_files: Callable[[str], bool] | None = None) -> Iterable[dict[str, Any]]:
    """Like webdataset's tar expansion, but for local shards opened seekable: members that
    `select_files` rejects are skipped with a seek instead of being read (why: an
    annotation-only pass then touches a few KB per sample instead of the whole video)."""
    for source in sources:
        url = source["url"]
        try:
            with tarfile.open(url.removeprefix("file://"), mode="r:") as tar:
                for info in tar:
                    if not info.isreg() or (select_files is not None and not select_files(info.name)):
                        continue
                    yield {"fname": info.name, "data": tar.extractfile(info).read(), "__url__": url}  # type: ignore[union-attr]
                    tar.members = []  # don't keep every header of a large shard in memory
            yield {}  # end-of-shard marker: group_by_keys never merges samples across shards
        except (tarfile.TarError, OSError) as exn:
            if not handler(ValueError(f"{url}: {exn}")):
                break


def _local_tar_samples(src, handler, select_files=None):
    return group_by_keys(_local_tar_files(src, handler, select_files), handler=handler)


local_tarfile_to_samples = pipelinefilter(_local_tar_samples)


def _streamed_tar_samples(src, handler, select_files=None):
    files = tar_file_expander(open_shards(src, handler), handler=handler, select_files=select_files)
    return group_by_keys(files, handler=handler)


# webdataset's tarfile_to_samples with `open_shards` as the opener (fsspec for object storage)
streamed_tarfile_to_samples = pipelinefilter(_streamed_tar_samples)


def tar_expansion(urls: Sequence[str], *, handler: Callable[[BaseException], bool], select_files: Callable[[str], bool] | None = None) -> Any:
    """The webdataset stage that turns shard URLs into raw samples: seekable reads for local
    shards (`local_tarfile_to_samples`), a streaming expansion for anything remote."""
    expand = local_tarfile_to_samples if all(map(is_local_url, urls)) else streamed_tarfile_to_samples
    return expand(handler=handler, select_files=select_files)


class LogAndContinue:
    """webdataset error handler: log the first few errors in full, then one in `every`."""

    def __init__(self, first: int = 10, every: int = 100) -> None:
        self.first, self.every, self.count = first, every, 0

    def __call__(self, exn: BaseException) -> bool:
        self.count += 1
        if self.count <= self.first or self.count % self.every == 0:
            log.warning("skipping a sample (error %d): %s", self.count, exn)
        return True


class SampleDecoder:
    """Turn a raw webdataset sample (bytes per member) into tensors and the annotation dict.

    Args:
        video: decode `<key>.mp4` into `frames`, a torch.uint8 tensor (T, H, W, 3).
        audio: decode `<key>.wav` into `audio`, a torch.float32 tensor (N,) at 16 kHz.
    """

    def __init__(self, *, video: bool = True, audio: bool = True) -> None:
        self.video, self.audio = video, audio

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        key, url = sample.get("__key__"), sample.get("__url__")
        try:
            out: dict[str, Any] = {"__key__": key, "__url__": url, "annotation": parse_annotation(sample["json"])}
            if self.video:
                out["frames"] = torch.from_numpy(decode_mp4(sample["mp4"]))
            if self.audio:
                samples, rate = decode_wav(sample["wav"])
                if rate != AUDIO_SAMPLE_RATE:
                    raise MediaError(f"audio is {rate} Hz, expected {AUDIO_SAMPLE_RATE}")
                out["audio"] = torch.from_numpy(samples)
        except KeyError as err:
            raise UserError(f"{url}: sample {key}: missing member .{err.args[0]}") from None
        except (ValueError, MediaError) as err:
            raise UserError(f"{url}: sample {key}: {err}") from None
        return out


def shard_pipeline(
    urls: str | Path | Sequence[str],
    *,
    decode: DecodeMode = "full",
    shuffle_shards: bool = False,
    shuffle_buffer: int = 0,
    seed: int = 0,
    handler: Callable[[BaseException], bool] | None = None,
    stages: Iterable[Any] = (),
) -> wds.DataPipeline:
    """A webdataset pipeline over shards that yields decoded samples.

    Args:
        urls: anything `list_shards` accepts.
        decode: "full" (frames + audio + annotation), "annotation" (reads only the JSON
            members), or "none" (raw bytes per member, as plain webdataset gives them).
        shuffle_shards / shuffle_buffer / seed: deterministic shard order shuffle and a sample
            shuffle buffer (0 = keep shard order).
        handler: what to do with a broken sample; default logs (rate-limited) and skips it.
        stages: extra webdataset stages appended at the end.
    """
    if decode not in ("full", "annotation", "none"):
        raise UserError(f"decode must be 'full', 'annotation' or 'none', got {decode!r}")
    handler = handler or LogAndContinue()
    shards = list_shards(urls)
    pipeline: list[Any] = [wds.SimpleShardList(shards)]
    if shuffle_shards:
        pipeline.append(wds.detshuffle(bufsize=len(shards), seed=seed))
    pipeline += [wds.split_by_node, wds.split_by_worker]
    select = _json_only if decode == "annotation" else None
    pipeline.append(tar_expansion(shards, handler=handler, select_files=select))
    if shuffle_buffer:
        pipeline.append(wds.shuffle(shuffle_buffer, rng=None, seed=seed))
    if decode != "none":
        full = decode == "full"
        pipeline.append(wds.map(SampleDecoder(video=full, audio=full), handler=handler))
    pipeline += list(stages)
    return wds.DataPipeline(*pipeline)
