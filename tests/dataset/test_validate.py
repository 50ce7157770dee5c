"""`actavatar data validate`: each kind of damage is reported with the key; a valid corpus exits 0."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow.parquet as pq
import pytest

from actavatar.cli import main
from dataset.manifest import read_manifest, write_manifest
from dataset.validate import validate_corpus


def rewrite_shard(path, change):
    """Rewrite a shard tar, passing {member name: bytes} (in order) through `change`."""
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members = change(members)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def first_key(corpus):
    return read_manifest(corpus / "shards" / "shard-000000.parquet").column("key").to_pylist()[0]


def run_cli(capsys, *args):
    code = main(["data", "validate", *map(str, args)])
    out = capsys.readouterr().out
    return code, [line for line in out.splitlines() if not line.startswith(("VALID", "INVALID"))], out


def test_valid_corpus_exits_0(toy_corpus, capsys):
    code, problems, out = run_cli(capsys, toy_corpus)
    assert code == 0 and problems == []
    assert "VALID" in out and "6 sample(s)" in out and "2 rejected" in out


def test_workers_and_no_decode_give_the_same_verdict(toy_corpus):
    assert validate_corpus(toy_corpus, workers=2).ok
    assert validate_corpus(toy_corpus, decode=False).ok


def test_missing_member(toy_corpus, capsys):
    key = first_key(toy_corpus)
    rewrite_shard(toy_corpus / "shards/shard-000000.tar", lambda m: {k: v for k, v in m.items() if k != f"{key}.wav"})
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1
    assert problems == [f"shard-000000.tar: {key}: missing member .wav"]


def test_undecodable_mp4(toy_corpus, capsys):
    key = first_key(toy_corpus)

    def damage(m):
        m[f"{key}.mp4"] = m[f"{key}.mp4"][:300]
        return m

    rewrite_shard(toy_corpus / "shards/shard-000000.tar", damage)
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(f"shard-000000.tar: {key}.mp4: not a decodable mp4")


def test_json_missing_required_field(toy_corpus, capsys):
    key = first_key(toy_corpus)

    def damage(m):
        doc = json.loads(m[f"{key}.json"])
        del doc["video"]["width"]
        m[f"{key}.json"] = json.dumps(doc).encode()
        return m

    rewrite_shard(toy_corpus / "shards/shard-000000.tar", damage)
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1
    assert problems == [f"shard-000000.tar: {key}.json: $.video.width: required field is missing"]


@pytest.mark.parametrize(
    ("phases", "fragment"),
    [
        ([(0.0, 0.7, "a"), (0.5, 1.2, "b")], "$.caption.phases[1]: overlaps phase 0"),
        ([(0.6, 1.2, "a"), (0.0, 0.5, "b")], "$.caption.phases[1]: phases are not sorted"),
        ([(0.0, 0.6, "a"), (0.6, 1.9, "b")], "$.caption.phases[1]: phase [0.6s, 1.9s] is outside the clip [0, 1.2s]"),
    ],
)
def test_bad_phases(toy_corpus, capsys, phases, fragment):
    key = first_key(toy_corpus)

    def damage(m):
        doc = json.loads(m[f"{key}.json"])
        doc["caption"]["phases"] = [{"start_s": a, "end_s": b, "text": t} for a, b, t in phases]
        m[f"{key}.json"] = json.dumps(doc).encode()
        return m

    rewrite_shard(toy_corpus / "shards/shard-000000.tar", damage)
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(f"shard-000000.tar: {key}.json: {fragment}")


def test_manifest_row_without_sample(toy_corpus, capsys):
    table = read_manifest(toy_corpus / "manifest.parquet")
    rows = table.to_pylist()
    ghost = dict(rows[0], key="ffffffffffffffff_0007", status="ok", shard="shard-000001.tar", reason=None)
    write_manifest(rows + [ghost], toy_corpus / "manifest.parquet")
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1
    assert problems == [
        "manifest.parquet: ffffffffffffffff_0007: status ok (shard shard-000001.tar) but no shard contains this sample"
    ]


def test_sample_without_manifest_row_and_wrong_shard(toy_corpus, capsys):
    rows = read_manifest(toy_corpus / "manifest.parquet").to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    dropped, moved = ok[0], ok[1]
    rows = [dict(r, shard="shard-000009.tar") if r["key"] == moved["key"] else r for r in rows if r["key"] != dropped["key"]]
    write_manifest(rows, toy_corpus / "manifest.parquet")
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1
    assert sorted(problems) == sorted([
        f"{dropped['shard']}: {dropped['key']}: sample has no 'ok' row in manifest.parquet",
        f"manifest.parquet: {moved['key']}: row says shard shard-000009.tar, sample is in {moved['shard']}",
    ])


def test_shard_manifest_disagreement_and_missing_sibling(toy_corpus, capsys):
    (toy_corpus / "shards/shard-000001.parquet").unlink()
    code, problems, _ = run_cli(capsys, toy_corpus)
    assert code == 1 and problems == ["shard-000001.tar: its manifest shard-000001.parquet is missing"]


def test_leftover_partial_is_a_warning_not_a_failure(toy_corpus, capsys):
    (toy_corpus / "shards/.shard-000002.tar.123.partial").write_bytes(b"x" * 100)
    assert main(["data", "validate", str(toy_corpus)]) == 0
    assert "partial file left by an interrupted writer" in capsys.readouterr().err


def test_not_a_corpus_is_a_clean_error(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "nope")]) == 2
    assert "corpus folder not found" in capsys.readouterr().err
    assert main(["data", "validate", str(tmp_path)]) == 2
    assert "no 'shards/' folder" in capsys.readouterr().err


def test_shard_parquet_is_what_pyarrow_reads(toy_corpus):
    table = pq.read_table(toy_corpus / "shards/shard-000000.parquet")
    assert table.num_rows == 3 and set(table.column("status").to_pylist()) == {"ok"}
