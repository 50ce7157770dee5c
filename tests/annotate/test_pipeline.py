"""`actavatar data run` end to end on `actavatar synth` output (plus broken inputs).

One synthetic corpus and one uninterrupted run are shared by the module; a second run is
killed with SIGKILL partway (input and output on a real local S3 server) and resumed: the shard
groups finished before the kill survive, and the rerun gives the uninterrupted run's clips, rows and shards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from dataset.manifest import read_manifest
from dataset.validate import validate_corpus
from tests.annotate.conftest import asr_overrides

CONFIG = "configs/annotate/demo.yaml"
REPO = Path(__file__).resolve().parents[2]


def run_cli(models: Path, *args: str, truth: Path | None = None, overrides: tuple[str, ...] = (), **popen) -> subprocess.Popen:
    truth = truth or Path(args[args.index("--input") + 1]).parent / "truth.jsonl"
    captions = ["caption.backend=truth", f"caption.truth={truth}"]  # exact captions from the synthetic truth
    # Two sources per shard group: several groups, packed as they finish.
    cmd = [sys.executable, "-m", "actavatar", "data", "run", *args, "--config", str(REPO / CONFIG),
           *asr_overrides(models), *captions, "group_size=2", *overrides]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from dataset.synth.cli import main as synth

    root = tmp_path_factory.mktemp("synth")
    assert synth(["--out", str(root), "--videos", "3", "--seed", "1", "--min-duration", "10",
                  "--max-duration", "14", "--no-progress"]) == 0
    raw = root / "raw"
    good = sorted(raw.glob("*.mp4"))[0].read_bytes()
    (raw / "broken_truncated.mp4").write_bytes(good[: len(good) // 3])
    (raw / "broken_text.mp4").write_text("this is a text file, not a video\n" * 20)
    (raw / "broken_empty.mp4").write_bytes(b"")
    with av.open(str(raw / "broken_audio_only.mp4"), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 32000), np.float32), format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return root


@pytest.fixture(scope="module")
def run_a(corpus, tiny_asr_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "a"
    proc = run_cli(tiny_asr_dir, "--input", str(corpus / "raw"), "--output", str(out))
    log = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, log
    assert "clips kept" in log
    return out


def truth_records(corpus: Path) -> dict[str, dict]:
    return {Path(r["file"]).name: r for r in map(json.loads, (corpus / "truth.jsonl").read_text().splitlines())}


def rows_by_source(out: Path) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in read_manifest(out / "manifest.parquet").to_pylist():
        grouped.setdefault(Path(row["source_uri"]).name, []).append(row)
    return grouped


def test_cuts_match_the_truth(corpus, run_a):
    truth = truth_records(corpus)
    hits = detected_total = truth_total = 0
    for work in (run_a / "_work").iterdir():
        if not (work / "analyse.json").is_file():
            continue
        analyse = json.loads((work / "analyse.json").read_text())
        name = next(Path(r["source_uri"]).name for r in read_manifest(run_a / "manifest.parquet").to_pylist()
                    if r["source_sha256"] and r["source_sha256"].startswith(work.name))
        record = truth[name]
        times = record.get("frame_times_s")
        to_25 = lambda frame: (times[frame] if times else frame / record["fps"]) * 25  # noqa: E731
        truth_cuts = [to_25(b["frame"]) for b in record["boundaries"]]
        detected = analyse["ok"]["cuts"]
        detected_total += len(detected)
        truth_total += len(truth_cuts)
        hits += sum(any(abs(c - t) <= 2 for c in detected) for t in truth_cuts)
    precision, recall = hits / max(detected_total, 1), hits / max(truth_total, 1)
    assert truth_total > 0
    assert 2 * precision * recall / max(precision + recall, 1e-9) >= 0.95, (hits, detected_total, truth_total)


def test_no_clip_straddles_a_boundary_and_verdicts_follow_the_shots(corpus, run_a):
    truth, grouped = truth_records(corpus), rows_by_source(run_a)
    checked = 0
    for name, record in truth.items():
        fps = record["fps"]
        for row in grouped[name]:
            if row["start_s"] is None or row["reason"] == "shot_too_short":
                continue
            inside = [s for s in record["shots"] if s["start_s"] - 0.04 <= row["start_s"] and row["end_s"] <= s["end_s"] + 0.04]
            assert len(inside) == 1, f"{row['key']} [{row['start_s']}, {row['end_s']}] straddles shots of {name}"
            shot = inside[0]
            expected = ("ok", None) if shot["avatar_present"] and shot["face_count"] == 1 else (
                ("rejected", "multiple_faces") if shot["face_count"] >= 2 else ("rejected", "no_face"))
            if expected[0] == "ok" and shot["audio"] != "speech":  # silent / tone-only shots: the VAD says no
                expected = ("rejected", "low_speech_ratio")
            assert (row["status"], row["reason"]) == expected, (row["key"], shot["kind"], fps)
            checked += 1
    assert checked >= 4


def test_asr_fills_transcripts_and_rejects_non_speech(corpus, run_a):
    import tarfile

    from dataset.annotation import parse_annotation, validate_annotation

    rows = read_manifest(run_a / "manifest.parquet").to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["stage"] == "asr" and r["language"] == "en" and r["num_words"] >= 1 for r in ok)
    assert all(r["speech_ratio"] >= 0.3 for r in ok)
    silent = [r for r in rows if r["reason"] == "low_speech_ratio"]
    assert silent and all(r["stage"] == "asr" and r["speech_ratio"] < 0.3 for r in silent)
    docs = []
    for shard in sorted((run_a / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            docs += [parse_annotation(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    assert len(docs) == len(ok)
    for doc in docs:
        assert validate_annotation(doc) == [], doc["key"]
        words = doc["transcript"]["words"]
        assert words and all(0 <= w["start_s"] <= w["end_s"] <= doc["video"]["duration_s"] for w in words)
        assert [w["start_s"] for w in words] == sorted(w["start_s"] for w in words)
        assert doc["provenance"]["models"]["asr"].endswith("whisper")


def test_broken_inputs_become_failed_rows(run_a):
    grouped = rows_by_source(run_a)
    reasons = {name: rows[0]["reason"] for name, rows in grouped.items() if name.startswith("broken_")}
    assert set(reasons) == {"broken_truncated.mp4", "broken_text.mp4", "broken_empty.mp4", "broken_audio_only.mp4"}
    assert all(rows[0]["status"] == "failed" and len(rows) == 1 for name, rows in grouped.items() if name.startswith("broken_"))
    assert reasons["broken_empty.mp4"] == "empty_file" and reasons["broken_audio_only.mp4"] == "no_video_stream"
    assert reasons["broken_text.mp4"] == "not_media" and reasons["broken_truncated.mp4"] in ("not_media", "truncated")


def test_output_validates_and_clips_are_normalised(run_a):
    report = validate_corpus(run_a)
    assert report.ok, report.problems
    assert report.samples >= 4
    table = read_manifest(run_a / "manifest.parquet")
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert all(r["width"] == 256 and r["height"] == 256 and r["fps"] == 25.0 for r in ok)
    assert all(r["face_detected_ratio"] >= 0.8 and r["face_max_faces"] == 1 for r in ok)
    assert all(r["num_phases"] >= 1 for r in ok)  # truth captions on every kept (talking) clip


def test_every_kept_clip_has_exact_keypoints_and_motion(run_a):
    """Synthetic corpus (truth captions): the pose stage's `auto` backend is the puppet reader."""
    import tarfile

    from dataset.annotation import parse_annotation
    from dataset.pose import KEYPOINTS, decode_pose

    members: dict[str, dict[str, bytes]] = {}
    for shard in sorted((run_a / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                key, _, ext = m.name.partition(".")
                members.setdefault(key, {})[ext] = tar.extractfile(m).read()
    rows = {r["key"]: r for r in read_manifest(run_a / "manifest.parquet").to_pylist() if r["status"] == "ok"}
    assert set(members) == set(rows)
    for key, sample in members.items():
        doc = parse_annotation(sample["json"])
        pose = decode_pose(sample["pose.npy"], doc["video"]["num_frames"])
        found = pose[:, KEYPOINTS.index("neck"), 2] == 1.0
        assert found.mean() > 0.9, key  # the puppet is read in (nearly) every frame of a talking clip
        motion = doc["motion"]
        assert motion["method"] == "puppet-pixel-reader" and doc["provenance"]["models"]["pose"] == "puppet-pixel-reader"
        assert 0 <= motion["body_intensity"] <= 1 and 0 <= motion["face_intensity"] <= 1
        assert rows[key]["motion_body"] == motion["body_intensity"] and rows[key]["motion_face"] == motion["face_intensity"]
    levels = [(r["motion_body"], r["motion_body_level"]) for r in rows.values()]
    assert all(0 <= lvl <= 4 for _, lvl in levels)
    assert [lvl for _, lvl in sorted(levels)] == sorted(lvl for _, lvl in levels)  # quantile levels follow the value


def test_status_and_stats_commands(run_a, capsys):
    from actavatar.cli import main

    assert main(["data", "status", str(run_a)]) == 0
    out = capsys.readouterr().out
    assert "7 input(s)" in out and "cut      7 source(s) done" in out and "clips    6 cut" in out
    assert "4 shard group(s) packed" in out
    assert main(["data", "stats", str(run_a), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"]["failed"] == 4


@pytest.fixture(scope="module")
def s3():
    from tests.s3_server import S3Server

    with S3Server() as server:
        yield server


def s3_keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def committed_groups(s3) -> dict[str, list[str]]:
    """Shard names of each committed group of the S3 run."""
    client, found = s3.client(), {}
    for key in s3_keys(s3, "corpus", "run/_work/groups/"):
        if key.endswith(".json"):
            found[key] = json.loads(client.get_object(Bucket="corpus", Key=key)["Body"].read())["shards"]
    return found


def tar_members(data: bytes) -> dict[str, bytes]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_object_storage_end_to_end_with_a_kill_and_a_bad_credential(corpus, run_a, tiny_asr_dir, s3):
    """Input and output on a real local S3 server (moto, authentication on): a wrong secret stops
    the run with one error before any work; a run killed once a shard group is packed keeps that
    group's shards, and resumed gives the same clips,
    rows and shards as the local run (annotations differ only in the source URI), also when the
    rerun uses other `workers` and `asr.clip_batch`."""
    bucket = s3.make_bucket("corpus")
    client = s3.client()
    for path in sorted((corpus / "raw").iterdir()):
        client.upload_file(str(path), "corpus", f"raw/{path.name}")
    args = ("--input", f"{bucket}/raw/", "--output", f"{bucket}/run")
    truth = corpus / "truth.jsonl"

    bad = run_cli(tiny_asr_dir, *args, truth=truth, env={**os.environ, **s3.bad_env})
    log = bad.communicate(timeout=300)[0]
    assert bad.returncode != 0
    assert f"error: cannot read {bucket}/raw/: PermissionError" in log and "check the credentials" in log, log
    assert "Traceback" not in log and s3_keys(s3, "corpus", "run/") == []

    env = {**os.environ, **s3.env}
    # one worker: shard groups finish one after another, so the kill lands between two of them (with
    # two, the last two groups can commit within one poll of each other on a busy machine)
    proc = run_cli(tiny_asr_dir, *args, truth=truth, overrides=("workers=1",), env=env, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any(committed_groups(s3).values()):
            break  # partway: a shard group with clips is packed
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Ray workers
    proc.wait(timeout=60)
    assert "run/manifest.parquet" not in s3_keys(s3, "corpus", "run/")
    # the groups committed before the kill keep their shards, complete (checked against the local run below)
    survivors = {name: client.get_object(Bucket="corpus", Key=f"run/shards/{name}")["Body"].read()
                 for names in committed_groups(s3).values() for name in names}
    assert survivors and len(committed_groups(s3)) < len(list((run_a / "_work" / "groups").glob("*.json")))
    # resumed with other scheduling knobs (they stay out of the config hash and the output)
    rerun = run_cli(tiny_asr_dir, *args, truth=truth, overrides=("workers=2", "asr.clip_batch=3"), env=env)
    log = rerun.communicate(timeout=900)[0]
    assert rerun.returncode == 0, log

    local = sorted(p.name for p in (run_a / "shards").iterdir())
    assert [k.removeprefix("run/shards/") for k in s3_keys(s3, "corpus", "run/shards/")] == local
    for name, data in survivors.items():  # not rewritten by the rerun
        assert client.get_object(Bucket="corpus", Key=f"run/shards/{name}")["Body"].read() == data
    for name in (n for n in local if n.endswith(".tar")):
        remote = tar_members(client.get_object(Bucket="corpus", Key=f"run/shards/{name}")["Body"].read())
        here = tar_members((run_a / "shards" / name).read_bytes())
        assert remote.keys() == here.keys()
        for member, data in here.items():
            if member.endswith(".json"):
                ours, theirs = json.loads(remote[member]), json.loads(data)
                assert ours["source"].pop("uri").startswith("s3://corpus/raw/")
                theirs["source"].pop("uri")
                assert ours == theirs, member
            else:
                assert remote[member] == data, member  # the clip media, byte for byte
    import io

    import pyarrow.parquet as pq

    manifest = pq.read_table(io.BytesIO(client.get_object(Bucket="corpus", Key="run/manifest.parquet")["Body"].read()))
    expected = read_manifest(run_a / "manifest.parquet")
    assert manifest.column("key").to_pylist() == expected.column("key").to_pylist()
    assert manifest.drop_columns(["source_uri", "detail"]).equals(expected.drop_columns(["source_uri", "detail"]))
