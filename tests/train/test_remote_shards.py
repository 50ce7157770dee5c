"""Shards on object storage: a toy corpus uploaded to a real (moto) S3 server is listed, read,
encoded, trained on and benchmarked exactly as its local copy; bad credentials give one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from webdataset.handlers import reraise_exception

from dataset.errors import UserError
from dataset.reader import list_shards, shard_pipeline
from tests.s3_server import s3_in_environment
from tests.train.conftest import encoder_overrides, fast_overrides

REPO = Path(__file__).resolve().parents[2]
STAGE1 = "configs/train/stage1_debug.yaml"


def _upload(s3, folder: Path, url: str) -> str:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = s3.client()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return url


@pytest.fixture(scope="module")
def s3():
    with s3_in_environment() as server:
        server.make_bucket("data")
        yield server


@pytest.fixture(scope="module")
def remote(s3, corpus) -> str:
    """The trainer tests' toy corpus (4 shards + manifests) at s3://data/corpus."""
    return _upload(s3, corpus, "s3://data/corpus")


def test_list_shards_on_s3(remote, corpus, s3):
    names = [Path(s).name for s in list_shards(corpus)]
    for url in (remote, f"{remote}/", f"{remote}/shards", f"{remote}/shards/*.tar"):
        assert list_shards(url) == [f"{remote}/shards/{n}" for n in names], url
    assert list_shards(f"{remote}/shards/{names[0]}") == [f"{remote}/shards/{names[0]}"]
    s3.client().put_object(Bucket="data", Key="lists/train.txt", Body=f"# two shards\n{remote}/shards/{names[1]}\n\n{remote}/shards/{names[0]}\n")
    assert list_shards("s3://data/lists/train.txt") == [f"{remote}/shards/{names[1]}", f"{remote}/shards/{names[0]}"]
    with pytest.raises(FileNotFoundError, match=r"s3://data/lists: no shard-NNNNNN.tar files here"):
        list_shards("s3://data/lists")
    with pytest.raises(UserError, match=r"s3://data/nothing: not found"):
        list_shards("s3://data/nothing")
    with pytest.raises(FileNotFoundError, match=r"no shards found at s3://data/corpus/shards/x-\*.tar"):
        list_shards(f"{remote}/shards/x-*.tar")


def test_samples_from_s3_equal_local(remote, corpus):
    local = {s["__key__"]: s for s in shard_pipeline(corpus)}
    got = {s["__key__"]: s for s in shard_pipeline(remote)}
    assert sorted(got) == sorted(local) and len(got) == 8
    for key, sample in got.items():
        assert sample["__url__"].startswith(f"{remote}/shards/shard-")
        assert sample["annotation"] == local[key]["annotation"]
        assert torch.equal(sample["frames"], local[key]["frames"]) and torch.equal(sample["audio"], local[key]["audio"])
    # JSON members only, in a DataLoader worker (forked after this process used s3fs)
    loader = torch.utils.data.DataLoader(shard_pipeline(remote, decode="annotation"), batch_size=None, num_workers=1)
    assert sorted(s["__key__"] for s in loader) == sorted(local)


def test_missing_shard_object_is_named(remote):
    from train.data import check_shards

    missing = f"{remote}/shards/shard-999999.tar"
    with pytest.raises(UserError, match=rf"cannot open shard {missing}: FileNotFoundError"):
        list(shard_pipeline([missing], handler=reraise_exception))
    assert list(shard_pipeline([missing])) == []  # the default handler logs and skips it
    with pytest.raises(FileNotFoundError, match=rf"data.shards: shard {missing} does not exist"):
        check_shards([*list_shards(remote), missing], 1)


def test_validate_and_stats_on_s3(remote, corpus):
    from dataset.stats import corpus_stats
    from dataset.validate import validate_corpus

    report, local = validate_corpus(remote, decode=False), validate_corpus(corpus, decode=False)
    assert report.ok, report.problems
    assert (report.shards, report.samples, report.manifest_rows) == (local.shards, local.samples, local.manifest_rows)
    assert corpus_stats(remote) == {**corpus_stats(corpus), "corpus": remote}


@pytest.fixture(scope="module")
def remote_latents(s3, remote, corpus, tiny_encoders, tmp_path_factory) -> str:
    """`actavatar encode` reading one media shard from S3 (in this process), its latents uploaded."""
    from train.encode_cli import main

    out = tmp_path_factory.mktemp("s3_latents")
    first = Path(list_shards(corpus)[0]).name
    argv = ["--config", STAGE1, "--out", str(out), f"data.shards={remote}/shards/{first}", "data.buckets=[9x32x32]",
            *encoder_overrides(tiny_encoders)]
    assert main(argv) == 0
    assert len(list(shard_pipeline(out, decode="none"))) == 2  # the shard's two clips
    return _upload(s3, out, "s3://data/latents")


def test_train_reads_latent_shards_from_s3(remote_latents, tmp_path, capsys):
    # in this process (torch is loaded already; no Ray, so the AWS_* environment is all it needs);
    # the credentials check below runs the CLI in a process of its own
    from train.cli import main
    from train.data import first_window

    assert first_window(list_shards(remote_latents))["negative_prompt"] == ""  # streamed from the first shard
    assert main(["--config", STAGE1, f"data.shards={remote_latents}", "data.kind=latents", *fast_overrides(tmp_path, 2)]) == 0
    assert '"step": 2' in capsys.readouterr().out and (tmp_path / "final/model.safetensors").is_file()


def test_eval_benchmark_from_s3(remote, corpus, tmp_path):
    from evaluation.benchmark import prepare_benchmark
    from evaluation.cli import main

    folder = prepare_benchmark(remote, tmp_path / "from_s3")
    local = prepare_benchmark(corpus, tmp_path / "local")
    names = sorted(p.name for p in local.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names and len(names) > 8
    assert all((folder / n).read_bytes() == (local / n).read_bytes() for n in names if n != ".synth_benchmark")
    out = tmp_path / "report"
    assert main(["--generated", f"run={local}", "--benchmark", remote, "--out", str(out), "--metrics", "actions", "--no-progress"]) == 0
    assert json.loads((out / "report.json").read_text())["metrics"]["run"]["num_videos"] == 8
    assert json.loads((out / "benchmark" / ".synth_benchmark").read_text())["corpus"] == remote


def test_bad_credentials_give_one_clear_error(remote, s3, tmp_path):
    # a process of its own (fsspec caches filesystems and their credentials per process), one for
    # the three: train on a folder URL, train on a brace pattern (no listing: the shard check lists
    # its folder), eval --benchmark; each fails with one line naming the URL, no traceback
    brace = f"{remote}/shards/shard-{{000000..000001}}.tar"
    calls = [
        ["train", "--config", STAGE1, f"data.shards={remote}", f"output_dir={tmp_path / 'a'}"],
        ["train", "--config", STAGE1, f"data.shards={brace}", "data.num_workers=0", f"output_dir={tmp_path / 'b'}"],
        ["eval", "--generated", f"run={tmp_path}", "--benchmark", remote, "--out", str(tmp_path / "c"), "--metrics", "actions"],
    ]
    code = f"import sys\nfrom actavatar.cli import main\nsys.exit(sum(main(a) for a in {calls!r}))"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **s3.bad_env}, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("actavatar: error:")]
    assert len(errors) == 3, proc.stderr
    assert errors[0].startswith(f"actavatar: error: cannot read {remote}: PermissionError")
    assert errors[1].startswith(f"actavatar: error: data.shards: cannot list {remote}/shards: PermissionError")
    assert errors[2].startswith(f"actavatar: error: cannot read {remote}: PermissionError")
    assert all("check the credentials" in line for line in errors)


def test_review_page_rows_from_s3_equal_local(remote, corpus, tmp_path):
    from dataset.review import review_rows

    here = review_rows(corpus, tmp_path / "local", progress=False)
    there = review_rows(remote, tmp_path / "remote", progress=False)
    assert [r["key"] for r in there] == [r["key"] for r in here] and any(r.get("strip") for r in here)
    for a, b in zip(here, there):
        assert {k: v for k, v in a.items() if k != "strip"} == {k: v for k, v in b.items() if k != "strip"}
    for path in sorted((tmp_path / "local").iterdir()):
        assert (tmp_path / "remote" / path.name).read_bytes() == path.read_bytes()  # the same frame strips
