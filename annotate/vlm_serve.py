"""`actavatar data serve-vlm`: a small OpenAI-compatible chat-completions server for a local VLM.

    actavatar data serve-vlm --model Qwen/Qwen2.5-VL-7B-Instruct --port 8000      # GPU box
    actavatar data run ... caption.backend=server caption.vlm.server_url=http://HOST:8000/v1

Why it exists: vLLM and SGLang are the production servers but need CUDA; `transformers serve`
(4.57) ignores `response_format` (its UNUSED_CHAT_COMPLETION_FIELDS) and pulls in fastapi and
uvicorn. This server runs `annotate.vlm_local.LocalVlm` with the same xgrammar-constrained
decoding, so `response_format` / `guided_json` are honoured on any machine, CPU included (and the
server backend is tested end to end against it). Concurrent requests are micro-batched: a worker
thread takes up to `--batch-size` queued requests with the same sampling settings and generates
them together. Images must be inline `data:` URLs; the server never fetches remote URLs.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from annotate.vlm_local import LocalVlm, Sampling

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 << 20


class BadRequest(ValueError):
    pass


def _decode_image(url: str) -> np.ndarray:
    from PIL import Image

    if not url.startswith("data:image/") or ";base64," not in url:
        raise BadRequest("image_url must be an inline data:image/...;base64 URL (remote URLs are not fetched)")
    try:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    except Exception as err:  # noqa: BLE001 - any decoding problem is the client's
        raise BadRequest(f"image_url is not a decodable image: {err}") from None


def parse_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI chat messages -> the neutral format of annotate.vlm_local."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise BadRequest(f"messages[{i}] needs a role of system, user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            items = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            items = []
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    items.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind == "image_url":
                    items.append({"type": "image", "image": _decode_image(str((part.get("image_url") or {}).get("url", "")))})
                else:
                    raise BadRequest(f"messages[{i}].content[{j}]: type must be text or image_url, got {kind!r}")
        else:
            raise BadRequest(f"messages[{i}].content must be a string or a list")
        out.append({"role": message["role"], "content": items})
    return out


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema asked for by `response_format` (json_schema) or vLLM's `guided_json`."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object")
        return schema
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise BadRequest(f"response_format type {fmt.get('type')!r} is not supported (json_schema or text)")
    guided = body.get("guided_json")
    if guided is not None and not isinstance(guided, dict):
        raise BadRequest("guided_json must be an object")
    return guided


def request_sampling(body: dict[str, Any], default_max_tokens: int) -> Sampling:
    try:
        return Sampling(temperature=float(body.get("temperature", 1.0)), top_p=float(body.get("top_p", 1.0)),
                        max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens),
                        seed=int(body.get("seed") or 0))
    except (TypeError, ValueError) as err:
        raise BadRequest(f"bad sampling parameter: {err}") from None


class Batcher:
    """Runs queued requests on the model from one thread, up to `batch_size` at a time."""

    def __init__(self, vlm: LocalVlm, batch_size: int) -> None:
        self.vlm, self.batch_size = vlm, batch_size
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, name="vlm-batcher", daemon=True).start()

    def submit(self, messages, schema, sampling: Sampling) -> Future:
        future: Future = Future()
        self.queue.put((messages, schema, sampling, future))
        return future

    def _loop(self) -> None:
        while True:
            items = [self.queue.get()]
            while len(items) < self.batch_size:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple, list] = {}
            for item in items:  # one generate call per (sampling without the seed, constrained or not)
                groups.setdefault((replace(item[2], seed=0), item[1] is None), []).append(item)
            for group in groups.values():
                # A batch is seeded once, with its first request's seed: a request's own seed
                # decides its output only when it is generated alone.
                sampling = group[0][2]
                try:
                    texts = self.vlm.generate([g[0] for g in group], [g[1] for g in group], sampling)
                    for g, text in zip(group, texts):
                        g[3].set_result(text)
                except Exception as err:  # noqa: BLE001 - reported to each waiting client as a 500
                    for g in group:
                        g[3].set_exception(err)


def make_handler(batcher: Batcher, model_name: str, default_max_tokens: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error"}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            elif self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "actavatar"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._error(404, f"no route {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                return self._error(413 if length else 400, f"body must be 1..{MAX_BODY_BYTES} bytes, got {length}")
            try:
                body = json.loads(self.rfile.read(length))
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                if body.get("stream"):
                    raise BadRequest("stream=true is not supported")
                if body.get("model") not in (None, model_name):
                    raise BadRequest(f"this server serves {model_name!r}, not {body.get('model')!r}")
                messages, schema = parse_messages(body.get("messages")), request_schema(body)
                sampling = request_sampling(body, default_max_tokens)
            except (BadRequest, json.JSONDecodeError) as err:
                return self._error(400, str(err))
            try:
                text = batcher.submit(messages, schema, sampling).result()
            except Exception as err:  # noqa: BLE001
                log.exception("generation failed")
                return self._error(500, f"generation failed: {type(err).__name__}: {err}")
            self._send(200, {
                "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            })

    return Handler


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto", dtype: str = "auto",
          batch_size: int = 8, max_tokens: int = 2048, served_name: str = "", ready: threading.Event | None = None) -> None:
    """Load the model and serve until interrupted. Port 0 picks a free port (printed)."""
    vlm = LocalVlm(model, device=device, dtype=dtype, batch_size=batch_size)
    name = served_name or model
    server = ThreadingHTTPServer((host, port), make_handler(Batcher(vlm, batch_size), name, max_tokens))
    server.daemon_threads = True
    print(f"serving {name} on http://{host}:{server.server_address[1]}/v1 (Ctrl-C stops)", flush=True)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
