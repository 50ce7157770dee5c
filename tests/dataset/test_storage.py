"""`dataset.storage.Store` on a local folder and on a real (moto) S3 server: the same round trips,
and one clear error for a missing bucket or a wrong secret."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dataset.errors import UserError
from dataset.storage import Store, check_readable, is_remote
from tests.s3_server import s3_in_environment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3():
    with s3_in_environment() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(tmp_path / "root")
    bucket = request.getfixturevalue("s3").make_bucket(f"store-{uuid.uuid4().hex[:8]}")
    return Store(f"{bucket}/root")


def test_round_trip(store, tmp_path):
    store.makedirs()
    store.write_bytes("a/b.bin", b"data")
    store.write_json("c.json", {"x": 1})
    assert store.read_bytes("a/b.bin") == b"data" and store.read_json("c.json") == {"x": 1}
    assert store.listdir() == ["a", "c.json"] and store.listdir("a") == ["b.bin"] and store.listdir("missing") == []
    assert store.exists("a/b.bin") and store.is_dir("a") and not store.is_dir("c.json") and not store.exists("nope")
    with store.open("a/b.bin") as f:
        assert f.read() == b"data"
    with store.open("d.bin", "wb") as f:
        f.write(b"written")
    assert store.read_bytes("d.bin") == b"written"
    with store.local_file("a/b.bin") as path:
        assert Path(path).read_bytes() == b"data"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    store.put_file(big, "deep/er/big.bin")
    assert store.read_bytes("deep/er/big.bin") == big.read_bytes() and big.is_file()
    store.remove("a/b.bin")
    store.remove("a/b.bin")  # removing a missing file is fine
    assert not store.exists("a/b.bin")
    assert store.url("a/b.bin") == f"{store.root}/a/b.bin" and store.sub("deep").url("er") == f"{store.root}/deep/er"
    assert pickle.loads(pickle.dumps(store)).read_json("c.json") == {"x": 1}  # Ray ships stores by root
    store.check_writable()
    check_readable(store.root)
    assert is_remote(store.root) == store.remote


def test_url_kinds():
    assert is_remote("s3://b/c") and is_remote("memory://x")
    assert not is_remote("/data/c") and not is_remote("file:///data/c") and not is_remote(Path("rel"))
    assert Store("file:///data/c").root == "/data/c" and not Store("file:///data/c").remote


def test_missing_bucket_and_key(s3):
    with pytest.raises(UserError, match=r"cannot write to s3://no-such-bucket/x: .*"):
        Store("s3://no-such-bucket/x").check_writable()
    with pytest.raises(UserError, match=r"s3://no-such-bucket/x: not found"):
        check_readable("s3://no-such-bucket/x")
    bucket = s3.make_bucket("present")
    with pytest.raises(UserError, match=rf"{bucket}/nothing: not found"):
        check_readable(f"{bucket}/nothing")
    assert Store(bucket).listdir("nothing") == [] and not Store(bucket).exists("nothing")


def test_wrong_secret_is_one_clear_error(s3):
    # a subprocess: fsspec caches the filesystem (and its credentials) per process
    bucket = s3.make_bucket("secret")
    code = (
        "from dataset.errors import UserError\n"
        "from dataset.storage import Store, check_readable\n"
        f"for check in (Store('{bucket}/run').check_writable, lambda: check_readable('{bucket}/run')):\n"
        "    try:\n"
        "        check()\n"
        "    except UserError as err:\n"
        "        print(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **s3.bad_env}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    write, read = proc.stdout.splitlines()
    assert write.startswith(f"cannot write to {bucket}/run: PermissionError") and "check the credentials" in write
    assert read.startswith(f"cannot read {bucket}/run: PermissionError") and "AWS_SECRET_ACCESS_KEY" in read
