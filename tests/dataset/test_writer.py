from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import textwrap

import pyarrow.parquet as pq
import pytest

from dataset.manifest import read_manifest
from dataset.toy_corpus import toy_clip
from dataset.writer import ShardWriter, ShardWriterConfig, _encode_members, _member_bytes


@pytest.fixture(scope="module")
def clips():
    return [toy_clip(i, seconds=0.8, width=32, height=32) for i in range(5)]


def members(path):
    with tarfile.open(path) as tar:
        return [m.name for m in tar.getmembers()]


def test_limits_by_samples_and_deterministic_member_order(tmp_path, clips):
    with ShardWriter(tmp_path, ShardWriterConfig(max_samples=2)) as writer:
        names = [writer.write(c) for c in clips]
    assert names == ["shard-000000.tar"] * 2 + ["shard-000001.tar"] * 2 + ["shard-000002.tar"]
    first = members(tmp_path / "shards" / "shard-000000.tar")
    k0, k1 = clips[0]["__key__"], clips[1]["__key__"]
    assert first == [f"{k0}.json", f"{k0}.mp4", f"{k0}.wav", f"{k1}.json", f"{k1}.mp4", f"{k1}.wav"]
    shard_rows = pq.read_table(tmp_path / "shards" / "shard-000001.parquet").column("key").to_pylist()
    assert shard_rows == sorted([clips[2]["__key__"], clips[3]["__key__"]])


def test_limits_by_bytes(tmp_path, clips):
    limit = 2 * sum(_member_bytes(len(v)) for v in _encode_members(clips[0]).values()) + 4096
    with ShardWriter(tmp_path, ShardWriterConfig(max_bytes=limit)) as writer:
        names = [writer.write(c) for c in clips]
    assert len(set(names)) >= 3
    for shard in set(names):
        # the limit counts headers + padded data; the tar adds only its 1 KiB end marker (+ block padding)
        assert os.path.getsize(tmp_path / "shards" / shard) <= limit + 10240


def test_same_samples_give_identical_shards(tmp_path, clips):
    for run in ("a", "b"):
        with ShardWriter(tmp_path / run, ShardWriterConfig(max_samples=3)) as writer:
            for c in clips:
                writer.write(c)
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000000.parquet"):
        assert (tmp_path / "a/shards" / name).read_bytes() == (tmp_path / "b/shards" / name).read_bytes()


def test_manifest_has_ok_and_rejected_rows(tmp_path, clips):
    with ShardWriter(tmp_path) as writer:
        writer.write(clips[0])
        writer.add_row({"key": "00000000000000ff_0000", "status": "failed", "stage": "probe", "reason": "no_video_stream"})
    table = read_manifest(tmp_path / "manifest.parquet")
    rows = {r["key"]: r for r in table.to_pylist()}
    assert rows[clips[0]["__key__"]]["status"] == "ok" and rows[clips[0]["__key__"]]["num_frames"] == 20
    assert rows["00000000000000ff_0000"]["reason"] == "no_video_stream"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("wav"), r"missing member\(s\) \.wav"),
        (lambda s: s.update(__key__="bad.key"), "not a safe shard key"),
        (lambda s: s["json"]["video"].update(fps=-1), r"invalid annotation: \$\.video\.fps"),
        (lambda s: s.update(mp4="text"), r"member \.mp4 must be bytes"),
    ],
)
def test_bad_samples_are_refused_with_the_key(tmp_path, clips, mutate, message):
    import copy

    sample = copy.deepcopy(clips[0])
    mutate(sample)
    with ShardWriter(tmp_path) as writer, pytest.raises(ValueError, match=message):
        writer.write(sample)


def test_duplicate_key_and_existing_output_are_refused(tmp_path, clips):
    with ShardWriter(tmp_path) as writer:
        writer.write(clips[0])
        with pytest.raises(ValueError, match="key written twice"):
            writer.write(clips[0])
    with pytest.raises(FileExistsError, match="already holds"):
        ShardWriter(tmp_path)
    ShardWriter(tmp_path, overwrite=True).close()
    assert not list((tmp_path / "shards").glob("shard-*.tar"))


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from dataset.toy_corpus import toy_clip
    from dataset.writer import ShardWriter, ShardWriterConfig
    writer = ShardWriter(sys.argv[1], ShardWriterConfig(max_samples=2))
    for i in range(3):  # shard 0 complete, shard 1 open with one sample
        writer.write(toy_clip(i, seconds=0.6, width=32, height=32))
    print("mid-shard", flush=True)
    time.sleep(60)
    """
)


def test_killed_writer_leaves_no_partial_shard_under_a_final_name(tmp_path):
    out = tmp_path / "corpus"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mid-shard"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    shard_dir = out / "shards"
    finals = sorted(p.name for p in shard_dir.glob("shard-*"))
    assert finals == ["shard-000000.parquet", "shard-000000.tar"]
    assert len(members(shard_dir / "shard-000000.tar")) == 6  # complete and readable
    assert list(shard_dir.glob(".shard-000001.tar.*.partial"))  # the interrupted one, hidden
    assert not (out / "manifest.parquet").exists()
    # A new writer cleans the debris up before it starts.
    ShardWriter(out, overwrite=True).close()
    assert not list(shard_dir.glob(".*partial"))
