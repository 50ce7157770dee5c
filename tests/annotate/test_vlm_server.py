"""The server backend against a real local HTTP server (`actavatar data serve-vlm` on the tiny VLM).

A fault-injecting HTTP proxy in front of it answers 500 or stalls for chosen request ids, so the
client's retries, timeouts and failure rows are exercised over real sockets; a closed port gives
the refused connection.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from annotate.caption import CaptionStage
from annotate.caption_schema import CaptionLimits, caption_schema
from annotate.config import CaptionConfig
from annotate.vlm_config import VlmConfig
from annotate.vlm_local import Sampling
from annotate.vlm_server import ServerVlm, VlmRequestError
from dataset.annotation import validate_annotation

from .conftest import assert_follows_schema, write_toy_clips

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("openai")


@pytest.fixture(scope="module")
def server_url(tiny_vlm_dir):
    """`python -m actavatar data serve-vlm` in a subprocess on a free port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actavatar", "data", "serve-vlm", "--model", str(tiny_vlm_dir), "--served-name", "tiny",
         "--port", "0", "--batch-size", "4", "--device", "cpu"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = ""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/v1)", line)
        if match:
            break
        if proc.poll() is not None:
            pytest.fail(f"serve-vlm exited: {line}{proc.stdout.read()}")
    else:
        proc.kill()
        pytest.fail("serve-vlm did not start")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining its log
    yield match.group(1)
    proc.terminate()
    proc.wait(timeout=30)


class FaultProxy:
    """Forwards to the real server; `behaviour[request_id]` = "500" (always), "flaky" (500 twice,
    then forwards) or "stall" (answers after `stall_s`). Counts hits per request id."""

    def __init__(self, upstream: str, stall_s: float = 4.0) -> None:
        self.upstream, self.stall_s = upstream.rstrip("/"), stall_s
        self.behaviour: dict[str, str] = {}
        self.hits: Counter = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rid = self.headers.get("X-Request-Id", "")
                proxy.hits[rid] += 1
                mode = proxy.behaviour.get(rid, "")
                if mode == "500" or (mode == "flaky" and proxy.hits[rid] <= 2):
                    return self._reply(500, b'{"error": {"message": "injected failure"}}')
                if mode == "stall":
                    time.sleep(proxy.stall_s)
                request = urllib.request.Request(proxy.upstream + self.path.removeprefix("/v1"), data=body,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        self._reply(response.status, response.read())
                except urllib.error.HTTPError as err:
                    self._reply(err.code, err.read())
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(server_url):
    p = FaultProxy(server_url)
    yield p
    p.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(text: str = "Describe the clip as JSON."):
    import numpy as np

    image = (np.arange(56 * 56 * 3) % 251).astype(np.uint8).reshape(56, 56, 3)
    return [{"role": "user", "content": [{"type": "text", "text": "t=0.50s"}, {"type": "image", "image": image},
                                          {"type": "text", "text": text}]}]


LIMITS = CaptionLimits(max_phases=3, max_base_chars=60, max_text_chars=30)
SAMPLING = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=900, seed=3)


@pytest.mark.parametrize("guided", ["response_format", "guided_json"])
def test_guided_json_is_schema_valid_over_http(server_url, guided):
    client = ServerVlm(server_url, "tiny", guided=guided, concurrency=4, timeout_s=120)
    schema = caption_schema(4.0, LIMITS)
    answers = client.generate([request()] * 6, [schema] * 6, SAMPLING, seeds=list(range(6)))
    for answer in answers:
        assert isinstance(answer, str), answer
        assert_follows_schema(answer, schema)
    assert len(set(answers)) > 1  # per-request seeds reach the server


def test_server_rejects_bad_requests_with_400(server_url):
    def post(body) -> tuple[int, str]:
        req = urllib.request.Request(server_url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())["error"]["message"]

    assert post({"model": "tiny", "messages": []}) == (400, "messages must be a non-empty list")
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.jpg"}}]}]
    status, message = post({"model": "tiny", "messages": remote})
    assert status == 400 and "remote URLs are not fetched" in message
    status, message = post({"model": "other", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and "serves 'tiny', not 'other'" in message
    status, message = post({"model": "tiny", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert (status, message) == (400, "stream=true is not supported")
    with urllib.request.urlopen(server_url + "/models", timeout=10) as response:
        assert json.loads(response.read())["data"][0]["id"] == "tiny"


def test_500_is_retried_then_succeeds_or_fails_clearly(proxy):
    client = ServerVlm(proxy.url, "tiny", max_retries=2, timeout_s=60)
    schema = caption_schema(4.0, LIMITS)
    proxy.behaviour.update({"flaky": "flaky", "broken": "500"})
    flaky, broken = client.generate([request(), request()], [schema, schema], SAMPLING, request_ids=["flaky", "broken"])
    assert_follows_schema(flaky, schema)
    assert proxy.hits["flaky"] == 3  # two 500s, then the answer
    assert isinstance(broken, VlmRequestError) and broken.reason == "vlm_http_error"
    assert "HTTP 500" in broken.detail and proxy.url in broken.detail
    assert proxy.hits["broken"] == 3  # the first try + max_retries


def test_timeout_and_refused_connection_are_clear_errors(proxy):
    proxy.behaviour["slow"] = "stall"
    client = ServerVlm(proxy.url, "tiny", max_retries=1, timeout_s=1.0)
    started = time.monotonic()
    [slow] = client.generate([request()], [None], SAMPLING, request_ids=["slow"])
    assert isinstance(slow, VlmRequestError) and slow.reason == "vlm_timeout"
    assert proxy.hits["slow"] == 2 and time.monotonic() - started < 30
    closed = f"http://127.0.0.1:{free_port()}/v1"
    [refused] = ServerVlm(closed, "tiny", max_retries=1, timeout_s=5).generate([request()], [None], SAMPLING)
    assert isinstance(refused, VlmRequestError) and refused.reason == "vlm_connection_error"
    assert closed in refused.detail


def test_caption_stage_over_http_keeps_going_past_failures(proxy, tmp_path):
    batch = write_toy_clips(tmp_path, 3)
    proxy.behaviour[batch["key"][1]] = "500"
    vlm = VlmConfig(model="tiny", server_url=proxy.url, max_retries=1, timeout_s=60)
    cfg = CaptionConfig(backend="server", vlm=vlm, attempts=2,
                        temperature=1.0, max_phases=3, max_base_chars=60, max_text_chars=30, max_frames=4, frame_size=56)
    stage = CaptionStage(cfg)
    out = stage(batch)
    assert out["status"] == ["ok", "failed", "ok"], out["detail"]
    assert out["reason"][1] == "vlm_http_error" and out["detail"][1].startswith("after 2 attempt(s): ")
    assert out["attempts"][1] == [{"error": "vlm_http_error"}] * 2 and proxy.hits[batch["key"][1]] == 4
    for i in (0, 2):
        assert validate_annotation({**batch["annotation"][i], "caption": out["caption"][i]}) == []
    assert stage.provenance["backend"] == "server" and stage.provenance["guided"] == "response_format"
