"""Which VLM answers and how to reach it: one config and one builder for the caption stage and
the evaluation judge (`caption.vlm.*`, `judge.vlm.*`)."""

from __future__ import annotations

from dataclasses import dataclass

from dataset.errors import UserError

VLM_BACKENDS = ("local", "server")
GUIDED_MODES = ("response_format", "guided_json", "none")


@dataclass(frozen=True, kw_only=True, slots=True)
class VlmConfig:
    """Args:
    model: "local": a Hugging Face id (downloaded or from the cache) or a local folder; "server":
        the model name the server serves.
    device / dtype / batch_size / attn_implementation / trust_remote_code: the local backend
        (`annotate.vlm_local.LocalVlm`; dtype "auto" = bfloat16 on GPU, float32 on CPU).
    server_url / api_key_env / timeout_s / max_retries / concurrency / guided: the server backend
        (`annotate.vlm_server.ServerVlm`; the key is read from the environment variable named here,
        never from a config file; guided = response_format, guided_json or none).
    """

    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    server_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 2
    concurrency: int = 8
    guided: str = "response_format"

    def __post_init__(self) -> None:
        if not self.model:
            raise UserError("vlm.model must name a model (Hugging Face id, local folder or served name), got ''")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise UserError(f"vlm.dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}")
        if self.guided not in GUIDED_MODES:
            raise UserError(f"vlm.guided must be one of {', '.join(GUIDED_MODES)}, got {self.guided!r}")
        for name in ("batch_size", "concurrency"):
            if getattr(self, name) < 1:
                raise UserError(f"vlm.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise UserError(f"need vlm.max_retries >= 0 and vlm.timeout_s > 0, got {self.max_retries} and {self.timeout_s}")


def build_vlm(backend: str, cfg: VlmConfig):
    """The backend object (`generate(requests, schemas, sampling, request_ids, seeds)`); "local" loads the model."""
    if backend == "local":
        from annotate.vlm_local import LocalVlm

        return LocalVlm(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size,
                        attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code)
    if backend == "server":
        from annotate.vlm_server import ServerVlm

        return ServerVlm(cfg.server_url, cfg.model, api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s,
                         max_retries=cfg.max_retries, concurrency=cfg.concurrency, guided=cfg.guided)
    raise ValueError(f"VLM backend must be one of {', '.join(VLM_BACKENDS)}, got {backend!r}")
