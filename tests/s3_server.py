"""A real local S3 server for the tests: moto's server mode in its own process, with authentication on.

    with S3Server() as s3:
        s3.env            # AWS_* variables that point boto3/s3fs at it with valid credentials
        s3.bad_env        # the same with a wrong secret key
        s3.make_bucket("corpus")

The server starts with authentication on after its first three actions (moto's
`INITIAL_NO_AUTH_ACTION_COUNT`), which create an IAM user with an allow-all policy and its access
key; from then on a wrong key is refused as real S3 would refuse it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.bad_env: dict[str, str] = {}

    def __enter__(self) -> "S3Server":
        # Authentication starts after the first three AWS actions (the IAM set-up below).
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "admin",
               "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).read()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("the moto S3 server did not start")
                time.sleep(0.2)
        iam = self._client("iam", "admin", "admin")
        iam.create_user(UserName="actavatar")
        iam.put_user_policy(UserName="actavatar", PolicyName="all", PolicyDocument=json.dumps(_POLICY))
        key = iam.create_access_key(UserName="actavatar")["AccessKey"]
        base = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
            os.environ.pop(name, None)
        self.env = {**base, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        self.bad_env = {**self.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        return self

    def _client(self, service: str, key: str, secret: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def client(self, service: str = "s3"):
        return self._client(service, self.env["AWS_ACCESS_KEY_ID"], self.env["AWS_SECRET_ACCESS_KEY"])

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


def forget_filesystems() -> None:
    """Drop fsspec's cached S3 filesystems, so the next one reads the current AWS_* environment."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@contextlib.contextmanager
def s3_in_environment():
    """A server whose AWS_* variables are set in this process while the block runs."""
    import pytest

    with S3Server() as server, pytest.MonkeyPatch.context() as env:
        for name, value in server.env.items():
            env.setenv(name, value)
        forget_filesystems()
        yield server
    forget_filesystems()
