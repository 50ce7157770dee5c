"""A real two-node Ray cluster on this machine: a head and a second node, each a separate `ray start`
(1 CPU each, own custom resource), then `data run --ray-address` and `train --num-workers 2
--ray-address` against it. Work must land on both nodes and the corpus must equal a local run's, byte
for byte."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.annotate.conftest import mechanism_data_run

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
# A developer's ~/.ray/auth_token turns Ray's token authentication on, which a second `ray start`
# on the same machine does not pick up; the test cluster lives on 127.0.0.1 only.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_cluster(port: int, temp: Path) -> None:
    """Kill only this cluster's processes (`ray stop` would also stop other tests' local Ray): those
    naming its temp folder or its GCS port (on whichever address Ray chose to advertise)."""
    import psutil

    marks = (str(temp), f":{port} ", f"--gcs_server_port={port}", f"--port={port}")
    victims = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or []) + " "
        if any(mark in cmdline for mark in marks):
            victims.append(proc)
    for proc in victims:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats"]
    try:
        subprocess.run([str(RAY), "start", "--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
                        "--resources={\"node_a\": 1}", *common], env=ENV, check=True, capture_output=True, timeout=180)
        subprocess.run([str(RAY), "start", f"--address=127.0.0.1:{port}", "--resources={\"node_b\": 1}", *common],
                       env=ENV, check=True, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(port, temp)


def _digest(folder: Path) -> dict[str, str]:
    files = [*sorted((folder / "shards").iterdir()), folder / "manifest.parquet"]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def cluster_corpus(cluster, late_sources, tiny_asr_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cluster_run") / "corpus"
    mechanism_data_run(late_sources[0], out, tiny_asr_dir, "--ray-address", cluster, env=ENV)
    return out


def test_data_run_uses_both_nodes_and_equals_a_local_run(cluster_corpus, late_sources_run):
    nodes = {json.loads(record.read_text()).get("node") for record in (cluster_corpus / "_work").glob("*/*.json")
             if record.name != "config_hash"}
    nodes.discard(None)
    assert len(nodes) == 2, nodes  # the per-source stages ran on the head and on the second node
    # the local run of the same sources (one worker; shared with the AV-sync test)
    local = late_sources_run
    assert _digest(cluster_corpus) == _digest(local)  # same shards and manifest, byte for byte
    assert len(_digest(local)) >= 3  # two shards (pack.max_samples=2) and the manifest


def test_train_runs_two_workers_on_the_cluster(cluster, cluster_corpus, tmp_path):
    """Each node has 1 CPU and each Ray Train worker takes 1, so the two ranks sit on the two nodes."""
    from actavatar.models_cli import main as models

    assert models(["tiny", "--out", str(tmp_path / "m"), "--only", "umt5,vae,wav2vec2"]) == 0
    m = tmp_path / "m"
    cmd = [sys.executable, "-m", "actavatar", "train", "--config", str(REPO / "configs/train/stage1_debug.yaml"),
           f"data.shards={cluster_corpus}", f"encoders.text={m / 'umt5'}", f"encoders.vae={m / 'vae'}",
           f"encoders.audio={m / 'wav2vec2'}", f"output_dir={tmp_path / 'run'}", "steps=2", "data.buckets=[9x32x32]",
           "data.num_workers=0", "--num-workers", "2", "--ray-address", cluster]
    run = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "world_size=2" in run.stdout + run.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [r["step"] for r in rows] == [1, 2]
    assert (tmp_path / "run" / "final").is_dir() and (tmp_path / "run" / "ema").is_dir()
