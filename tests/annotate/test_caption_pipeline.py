"""`actavatar data run` with the caption stage: the tiny random VLM on a synthetic corpus, and a
server backend that cannot be reached (failure rows; the run goes on)."""

from __future__ import annotations

import json
import socket
import tarfile
from pathlib import Path

import pytest

from annotate.pipeline import CAPTION_AUDIT
from dataset.annotation import parse_annotation, validate_annotation
from dataset.manifest import read_manifest
from dataset.validate import validate_corpus

from .conftest import asr_overrides

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs/annotate/demo.yaml")


@pytest.fixture(scope="module", autouse=True)
def shut_ray_down_afterwards():
    """The runs below start Ray inside the test process; later tests start their own."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def synth_raw(tmp_path_factory) -> Path:
    from dataset.synth.cli import main as synth

    root = tmp_path_factory.mktemp("synth_caption")
    assert synth(["--out", str(root), "--videos", "2", "--seed", "3", "--min-duration", "8", "--max-duration", "10",
                  "--no-progress"]) == 0
    return root / "raw"


def run(raw: Path, out: Path, models: Path, *overrides: str) -> int:
    from actavatar.cli import main

    return main(["data", "run", "--input", str(raw), "--output", str(out), "--config", CONFIG, *asr_overrides(models),
                 "workers=1", *overrides])


def shard_docs(out: Path) -> list[dict]:
    docs = []
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            docs += [parse_annotation(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    return docs


def test_tiny_vlm_captions_every_kept_clip(synth_raw, tiny_asr_dir, tiny_vlm_dir, tmp_path):
    out = tmp_path / "corpus"
    assert run(synth_raw, out, tiny_asr_dir, "caption.backend=local", f"caption.vlm.model={tiny_vlm_dir}") == 0
    rows = read_manifest(out / "manifest.parquet").to_pylist()
    assert not [r for r in rows if r["stage"] == "caption" and r["status"] != "ok"], "no clip may fail captioning"
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["stage"] == "caption" for r in ok)
    docs = shard_docs(out)
    assert ok and len(docs) == len(ok)
    for doc in docs:  # 100 % of kept clips: schema-valid caption, transcript, full provenance
        assert validate_annotation(doc) == [], doc["key"]
        assert doc["caption"]["phases"] and doc["transcript"]["words"]
        provenance = doc["provenance"]
        assert provenance["models"]["vlm"] == str(tiny_vlm_dir)
        assert provenance["caption"]["prompt"]["name"] == "phase_caption" and provenance["caption"]["attempts"] >= 1
        assert set(provenance["caption"]["sampling"]) == {"temperature", "top_p", "max_new_tokens", "seed"}
        # not a synthetic-truth run: `pose.backend=auto` measured the keypoints with the real models
        assert provenance["models"]["pose"] == doc["motion"]["method"] == "mediapipe-blazeface-blazepose-facemesh-hands"
        assert doc["motion"]["face_speed"] is not None
    assert all(r["num_phases"] >= 1 for r in ok)
    assert validate_corpus(out).ok
    audit = [json.loads(line) for line in (out / CAPTION_AUDIT).read_text().splitlines()]
    assert sorted(a["key"] for a in audit) == sorted(d["key"] for d in docs)
    assert all(a["status"] == "ok" and a["attempts"][-1]["raw"].startswith("{") for a in audit)


def test_unreachable_server_gives_failure_rows_and_the_run_goes_on(synth_raw, tiny_asr_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "corpus"
    one = sorted(synth_raw.glob("*.mp4"))[0]  # one source is enough to see every clip fail and the run finish
    assert run(one, out, tiny_asr_dir, "caption.backend=server", f"caption.vlm.server_url=http://127.0.0.1:{port}/v1",
               "caption.vlm.model=any", "caption.vlm.max_retries=1", "caption.attempts=2", "caption.vlm.timeout_s=5",
               "pose.backend=reader") == 0
    rows = read_manifest(out / "manifest.parquet").to_pylist()
    failed = [r for r in rows if r["stage"] == "caption" and r["status"] != "ok"]
    assert failed and not [r for r in rows if r["status"] == "ok"]
    for row in failed:
        assert row["status"] == "failed" and row["reason"] == "vlm_connection_error"
        assert row["detail"].startswith("after 2 attempt(s): ") and f"127.0.0.1:{port}" in row["detail"]
    assert validate_corpus(out).ok  # an empty but consistent corpus: every clip is accounted for
    audit = [json.loads(line) for line in (out / CAPTION_AUDIT).read_text().splitlines()]
    assert {a["key"] for a in audit} == {r["key"] for r in failed}
