"""Check a corpus: every shard, every sample's members, media and annotation, and the manifest.

Shards are checked independently (in worker processes with `workers > 1`), then the manifest is
compared against what the shards hold. Each problem is one line naming the file, the sample key
and what is wrong. The corpus may be on object storage (`s3://bucket/corpus`): shards are then
streamed, manifests fetched whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tarfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from dataset.annotation import AnnotationRules, parse_annotation, validate_annotation
from dataset.manifest import read_manifest
from dataset.media import MediaError, decode_mp4, decode_wav, probe_mp4
from dataset.pose import PoseError, decode_pose
from dataset.schema import (
    AUDIO_SAMPLE_RATE,
    MANIFEST_FILENAME,
    PARTIAL_SUFFIX,
    REQUIRED_MEMBERS,
    SHARD_RE,
    SHARDS_DIRNAME,
    is_safe_key,
)
from dataset.storage import Store, check_readable, is_remote


@dataclasses.dataclass(slots=True)
class ShardResult:
    name: str
    keys: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


@dataclasses.dataclass(slots=True)
class CorpusReport:
    """What `validate_corpus` found. `ok` is True when there is no problem (warnings allowed)."""

    root: Path | str  # a URL for a corpus on object storage
    shards: int = 0
    samples: int = 0
    hours: float = 0.0
    manifest_rows: int = 0
    status_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _iter_samples(tar: tarfile.TarFile, shard: str, result: ShardResult) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group consecutive members by key, reporting names webdataset would mis-group."""
    current, members, seen = None, {}, set()
    for info in tar:
        if not info.isreg():
            result.problems.append(f"{shard}: {info.name}: not a regular file")
            continue
        key, dot, ext = info.name.partition(".")
        if not dot or not is_safe_key(key):
            result.problems.append(f"{shard}: {info.name}: member name is not <safe key>.<ext>")
            continue
        if key != current:
            if current is not None:
                yield current, members
            if key in seen:
                result.problems.append(f"{shard}: {key}: members are not contiguous (webdataset would split the sample)")
            current, members = key, {}
            seen.add(key)
        if ext in members:
            result.problems.append(f"{shard}: {key}: member .{ext} appears twice")
        members[ext] = tar.extractfile(info).read()  # type: ignore[union-attr]
    if current is not None:
        yield current, members


def _check_sample(shard: str, key: str, members: dict[str, bytes], decode: bool, rules: AnnotationRules) -> tuple[list[str], float]:
    problems = [f"{shard}: {key}: missing member .{ext}" for ext in REQUIRED_MEMBERS if ext not in members]
    where = f"{shard}: {key}"
    doc = None
    if "json" in members:
        try:
            doc = parse_annotation(members["json"])
        except ValueError as err:
            problems.append(f"{where}.json: {err}")
        if doc is not None:
            problems += [f"{where}.json: {p}" for p in validate_annotation(doc, rules)]
            if doc.get("key") != key:
                problems.append(f"{where}.json: $.key is {doc.get('key')!r}, not the sample key")
    video = doc.get("video") if isinstance(doc, dict) and isinstance(doc.get("video"), dict) else {}
    audio = doc.get("audio") if isinstance(doc, dict) and isinstance(doc.get("audio"), dict) else {}
    if "mp4" in members:
        try:
            if decode:
                frames = decode_mp4(members["mp4"])
                num_frames, height, width = frames.shape[:3]
            else:
                info = probe_mp4(members["mp4"])
                num_frames, height, width = info.num_frames, info.height, info.width
            if video.get("num_frames") not in (None, num_frames):
                problems.append(f"{where}.mp4: has {num_frames} frames, annotation says {video['num_frames']}")
            for name, actual in (("width", width), ("height", height)):
                if video.get(name) not in (None, actual):
                    problems.append(f"{where}.mp4: {name} is {actual}, annotation says {video[name]}")
        except MediaError as err:
            problems.append(f"{where}.mp4: {err}")
    if "wav" in members:
        try:
            samples, rate = decode_wav(members["wav"])
            if rate != AUDIO_SAMPLE_RATE:
                problems.append(f"{where}.wav: sample rate {rate} Hz, expected {AUDIO_SAMPLE_RATE}")
            if audio.get("num_samples") not in (None, len(samples)):
                problems.append(f"{where}.wav: has {len(samples)} samples, annotation says {audio['num_samples']}")
        except MediaError as err:
            problems.append(f"{where}.wav: {err}")
    if "pose.npy" in members:
        try:
            decode_pose(members["pose.npy"], video.get("num_frames"))
        except PoseError as err:
            problems.append(f"{where}.pose.npy: {err}")
    seconds = float(video.get("duration_s") or 0.0)
    return problems, seconds


def check_shard(path: str, decode: bool = True, rules: AnnotationRules = AnnotationRules()) -> ShardResult:
    """Every problem in one shard tar (and its sibling Parquet manifest); a local path or a URL."""
    folder, name = _split(path)
    result = ShardResult(name=name)
    try:
        with _open_tar(path) as tar:
            for key, members in _iter_samples(tar, result.name, result):
                problems, seconds = _check_sample(result.name, key, members, decode, rules)
                result.problems += problems
                result.keys.append(key)
                result.seconds += seconds
    except (tarfile.TarError, OSError) as err:
        result.problems.append(f"{result.name}: unreadable tar after {len(result.keys)} sample(s): {err}")
    sibling = name.removesuffix(".tar") + ".parquet"
    if not Store(folder).exists(sibling):
        result.problems.append(f"{result.name}: its manifest {sibling} is missing")
    else:
        try:
            rows = read_manifest(f"{folder}/{sibling}").column("key").to_pylist()
            if sorted(rows) != sorted(result.keys):
                extra, lost = set(rows) - set(result.keys), set(result.keys) - set(rows)
                for key in sorted(extra):
                    result.problems.append(f"{sibling}: {key}: listed but not in {result.name}")
                for key in sorted(lost):
                    result.problems.append(f"{sibling}: {key}: in {result.name} but not listed")
        except ValueError as err:
            result.problems.append(str(err))
    return result


def _split(path: str) -> tuple[str, str]:
    """(folder, file name) of a local path or a URL."""
    if is_remote(path):
        folder, _, name = str(path).rpartition("/")
        return folder, name
    return str(Path(path).parent), Path(path).name


@contextlib.contextmanager
def _open_tar(path: str) -> Iterator[tarfile.TarFile]:
    """A local shard opened seekable; one on object storage streamed (members are read in order)."""
    if not is_remote(path):
        with tarfile.open(path, mode="r:") as tar:
            yield tar
        return
    import fsspec

    with fsspec.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        yield tar


def _check_manifest(root: Path | str, keys_by_shard: dict[str, list[str]], report: CorpusReport) -> None:
    path = manifest_path(root)
    try:
        table = read_manifest(path)
    except (FileNotFoundError, ValueError) as err:
        report.problems.append(f"{MANIFEST_FILENAME}: {err}")
        return
    report.manifest_rows = table.num_rows
    rows = table.select(["key", "status", "shard"]).to_pylist()
    report.status_counts = dict(Counter(r["status"] for r in rows))
    name = Path(str(path)).name
    for key, count in Counter(r["key"] for r in rows).items():
        if count > 1:
            report.problems.append(f"{name}: {key}: {count} rows for one key")
    shard_of = {key: shard for shard, keys in keys_by_shard.items() for key in keys}
    listed = set()
    for row in rows:
        key, status, shard = row["key"], row["status"], row["shard"]
        if status == "ok":
            listed.add(key)
            if key not in shard_of:
                report.problems.append(f"{name}: {key}: status ok (shard {shard}) but no shard contains this sample")
            elif shard != shard_of[key]:
                report.problems.append(f"{name}: {key}: row says shard {shard}, sample is in {shard_of[key]}")
        elif key in shard_of:
            report.problems.append(f"{name}: {key}: status {status} but the sample is in {shard_of[key]}")
    for key in sorted(set(shard_of) - listed):
        report.problems.append(f"{shard_of[key]}: {key}: sample has no 'ok' row in {name}")


def validate_corpus(
    root: str | Path,
    *,
    decode: bool = True,
    rules: AnnotationRules = AnnotationRules(),
    workers: int = 1,
    progress: bool | None = None,
) -> CorpusReport:
    """Check every shard of the corpus at `root` (a folder holding shards/ and manifest.parquet).

    Args:
        decode: decode every video frame (slow, thorough); False only probes the container.
        workers: shards checked in parallel processes.
        progress: show a progress bar (None: only on a terminal).
    """
    root = str(root).rstrip("/") if is_remote(root) else Path(root)
    check_readable(str(root))  # object storage: bad credentials or a missing bucket, one clear error
    store = Store(root)
    if not store.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {root}")
    if not store.is_dir(SHARDS_DIRNAME):
        raise FileNotFoundError(f"{root}: no '{SHARDS_DIRNAME}/' folder; is this a corpus written by actavatar?")
    shard_dir = store.sub(SHARDS_DIRNAME)
    names = shard_dir.listdir()
    report = CorpusReport(root=root)
    shards = [shard_dir.url(n) for n in names if SHARD_RE.match(n)]
    report.warnings += [
        f"{n}: partial file left by an interrupted writer (not part of the corpus)"
        for n in names if n.startswith(".") and n.endswith(PARTIAL_SUFFIX)
    ]
    report.shards = len(shards)
    keys_by_shard: dict[str, list[str]] = {}
    first_shard: dict[str, str] = {}
    bar = tqdm(total=len(shards), desc="validate", unit="shard", disable=(not progress) if progress is not None else None)
    with ProcessPoolExecutor(workers) if workers > 1 else _Serial() as pool:
        for result in pool.map(check_shard, shards, [decode] * len(shards), [rules] * len(shards)):
            bar.update(1)
            keys_by_shard[result.name] = result.keys
            report.problems += result.problems
            report.samples += len(result.keys)
            report.hours += result.seconds / 3600
            for key in result.keys:
                if key in first_shard:
                    report.problems.append(f"{result.name}: {key}: duplicate key (also in {first_shard[key]})")
                first_shard.setdefault(key, result.name)
    bar.close()
    if not shards:
        report.warnings.append(f"{shard_dir.root}: no shards (an empty corpus)")
    _check_manifest(root, keys_by_shard, report)
    return report


class _Serial:
    """Same interface as an executor, run in this process (no pickling, easy to debug)."""

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    map = staticmethod(map)


def manifest_path(root: str | Path) -> Path | str:
    """`root/manifest.parquet`, or `root/manifest/` when the manifest is a folder of parts (a URL
    under a URL root)."""
    if is_remote(root):
        store = Store(root)
        return store.url("manifest") if not store.exists(MANIFEST_FILENAME) and store.is_dir("manifest") else store.url(MANIFEST_FILENAME)
    root = Path(root)
    path = root / MANIFEST_FILENAME
    return root / "manifest" if not path.exists() and (root / "manifest").is_dir() else path
