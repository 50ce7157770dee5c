"""Server VLM backend: an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, `transformers
serve`, `actavatar data serve-vlm`), with bounded concurrency, timeouts and retries with backoff.

The official `openai` client does the HTTP work: it retries connection errors, timeouts, 408/409/
429 and 5xx responses with exponential backoff and jitter (`max_retries`), and honours
`Retry-After`. Requests run in a thread pool of `concurrency` workers; each returns its raw text
or a `VlmRequestError` naming what went wrong, so one failing clip never stops the others.
Guided decoding: `response_format={"type": "json_schema", ...}` (OpenAI, vLLM, SGLang) or vLLM's
older `guided_json` extra field.
"""

from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from annotate.vlm_config import GUIDED_MODES
from annotate.vlm_local import Sampling



class VlmRequestError(RuntimeError):
    """A request that failed after the client's retries. `.reason`: vlm_timeout,
    vlm_connection_error, vlm_http_error, vlm_empty_response or vlm_error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def image_data_url(image: np.ndarray, quality: int = 90) -> str:
    """HxWx3 uint8 -> `data:image/jpeg;base64,...` (what OpenAI-compatible servers accept inline)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral messages (see annotate.vlm_local) -> OpenAI chat format with inline JPEG images."""
    out = []
    for message in messages:
        content = [{"type": "image_url", "image_url": {"url": image_data_url(item["image"])}} if item["type"] == "image"
                   else {"type": "text", "text": item["text"]} for item in message["content"]]
        out.append({"role": message["role"], "content": content})
    return out


class ServerVlm:
    """Args:
    base_url: the endpoint's API root, e.g. http://gpu-node:8000/v1.
    model: the model name the server serves.
    api_key_env: environment variable holding the API key (keys never live in configs); unset
        sends "EMPTY", which vLLM and SGLang accept when they run without a key.
    timeout_s: per-request timeout (read and connect).
    max_retries: the client's retries per request, with exponential backoff.
    concurrency: requests in flight at once.
    guided: "response_format", "guided_json" or "none".
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0,
                 max_retries: int = 2, concurrency: int = 8, guided: str = "response_format") -> None:
        from openai import OpenAI

        if guided not in GUIDED_MODES:
            raise ValueError(f"guided must be one of {GUIDED_MODES}, got {guided!r}")
        self.model_id, self.base_url, self.guided, self.concurrency = model, base_url, guided, concurrency
        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                             timeout=timeout_s, max_retries=max_retries)

    def _one(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None, sampling: Sampling,
             request_id: str) -> str:
        import openai

        kwargs: dict[str, Any] = {}
        if schema is not None and self.guided == "response_format":
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": schema.get("title", "output"), "schema": schema, "strict": True}}
        elif schema is not None and self.guided == "guided_json":
            kwargs["extra_body"] = {"guided_json": schema}
        try:
            response = self.client.chat.completions.create(
                model=self.model_id, messages=to_openai_messages(messages), temperature=sampling.temperature,
                top_p=sampling.top_p, max_tokens=sampling.max_new_tokens, seed=sampling.seed,
                extra_headers={"X-Request-Id": request_id}, **kwargs,
            )
        except openai.APITimeoutError as err:
            raise VlmRequestError("vlm_timeout", f"{self.base_url}: no answer within the timeout ({err})") from None
        except openai.APIConnectionError as err:
            raise VlmRequestError("vlm_connection_error", f"{self.base_url}: cannot connect ({err.__cause__ or err})") from None
        except openai.APIStatusError as err:
            raise VlmRequestError("vlm_http_error", f"{self.base_url}: HTTP {err.status_code}: {str(err.message)[:200]}") from None
        except openai.OpenAIError as err:
            raise VlmRequestError("vlm_error", f"{self.base_url}: {type(err).__name__}: {err}") from None
        choices = getattr(response, "choices", None) or []
        text = choices[0].message.content if choices else None
        if not text:
            raise VlmRequestError("vlm_empty_response", f"{self.base_url}: the response has no message content")
        return text

    def generate(self, requests: list[list[dict[str, Any]]], schemas: list[dict[str, Any] | None], sampling: Sampling,
                 request_ids: list[str] | None = None, seeds: list[int] | None = None) -> list[str | VlmRequestError]:
        """Raw text or the error, per request, in request order; `seeds[i]` overrides the seed of request i."""
        ids = request_ids or [str(i) for i in range(len(requests))]

        def run(i: int) -> str | VlmRequestError:
            try:
                one = sampling if seeds is None else replace(sampling, seed=seeds[i])
                return self._one(requests[i], schemas[i], one, ids[i])
            except VlmRequestError as err:
                return err

        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(requests)))) as pool:
            return list(pool.map(run, range(len(requests))))

    def close(self) -> None:
        self.client.close()
