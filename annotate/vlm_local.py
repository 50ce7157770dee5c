"""Local VLM backend: a transformers image-text-to-text model (Qwen2.5-VL class), batched,
with JSON-schema-constrained decoding by xgrammar.

Why xgrammar (DESIGN.md §2 compared outlines 1.3.3, xgrammar 0.2.8 and lm-format-enforcer on a tiny
Qwen2.5-VL): it works under transformers 4.57 and 5.x, costs about 1.0x per token, honours
`minimum`/`maximum` on numbers (outlines-core 0.2 ignores them and its digit-count keywords
cannot express "1 to 3 integer digits"), and it is the engine vLLM and SGLang use for
`response_format`, so both backends decode against the same grammar. lm-format-enforcer does not
import under transformers 5.x.

Messages use one neutral format for both backends:
`[{"role": "system"|"user", "content": [{"type": "text", "text": s} | {"type": "image", "image": HxWx3 uint8}]}]`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True, slots=True)
class Sampling:
    """Decoding parameters (recorded in each caption's provenance).

    Args:
        temperature: 0 decodes greedily.
        top_p: nucleus sampling mass.
        max_new_tokens: generation cap per request.
        seed: torch seed set before each generated batch.
    """

    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 1024
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class LocalVlm:
    """Loads the model and processor once; `generate` answers a list of chat requests.

    Args:
        model: Hugging Face id (downloaded or from the cache) or a local directory.
        device: "auto", "cpu", "cuda" or "cuda:N".
        dtype: "auto" (bfloat16 on GPU, float32 on CPU), "bfloat16", "float16" or "float32".
        batch_size: requests generated together (left-padded).
        attn_implementation: "sdpa", "eager" or "flash_attention_2".
        trust_remote_code: run code shipped with the checkpoint (off: Qwen2.5-VL is built into transformers).
    """

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 attn_implementation: str = "sdpa", trust_remote_code: bool = False) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id, self.batch_size = model, batch_size
        self.device = _resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batched generation
        self.model = AutoModelForImageTextToText.from_pretrained(
            model, dtype=getattr(torch, dtype), attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        ).to(self.device).eval()
        self._compiler = None
        self._grammars: dict[str, Any] = {}

    def _grammar(self, schema: dict[str, Any]):
        """Compiled xgrammar grammar for a schema (cached: clips share a handful of schemas)."""
        import xgrammar as xgr

        text = json.dumps(schema, sort_keys=True)
        if text not in self._grammars:
            if self._compiler is None:
                vocab = self.model.config.get_text_config().vocab_size  # may exceed the tokenizer's (padding)
                info = xgr.TokenizerInfo.from_huggingface(self.processor.tokenizer, vocab_size=vocab)
                self._compiler = xgr.GrammarCompiler(info)
            # No free whitespace: every token the model spends goes into the caption.
            self._grammars[text] = self._compiler.compile_json_schema(text, any_whitespace=False, strict_mode=True)
        return self._grammars[text]

    def _inputs(self, requests: list[list[dict[str, Any]]]):
        from PIL import Image

        texts, images = [], []
        for messages in requests:
            plain = []
            for message in messages:
                content = []
                for item in message["content"]:
                    if item["type"] == "image":
                        images.append(Image.fromarray(np.asarray(item["image"], dtype=np.uint8)))
                        content.append({"type": "image"})
                    else:
                        content.append({"type": "text", "text": item["text"]})
                plain.append({"role": message["role"], "content": content})
            texts.append(self.processor.apply_chat_template(plain, add_generation_prompt=True, tokenize=False))
        return self.processor(text=texts, images=images or None, padding=True, return_tensors="pt").to(self.device)

    def generate(self, requests: list[list[dict[str, Any]]], schemas: list[dict[str, Any] | None],
                 sampling: Sampling, request_ids: list[str] | None = None, seeds: list[int] | None = None) -> list[str]:
        """One raw completion per request; `schemas[i]` constrains request i (None: free text).

        Sampling is seeded once per generated batch (`sampling.seed`); `request_ids` and per-request
        `seeds` are accepted for the server backend's interface and not used here.
        """
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        outputs: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            batch, batch_schemas = requests[start : start + self.batch_size], schemas[start : start + self.batch_size]
            inputs = self._inputs(batch)
            kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens}
            if sampling.temperature > 0:
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if any(s is not None for s in batch_schemas):
                if any(s is None for s in batch_schemas):
                    raise ValueError("a batch mixes constrained and free requests; pass schemas for all or none")
                # A processor holds per-sequence matcher state: a new one for every generate call.
                kwargs["logits_processor"] = [LogitsProcessor([self._grammar(s) for s in batch_schemas])]
            torch.manual_seed(sampling.seed + start)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, **kwargs)
            new = ids[:, inputs["input_ids"].shape[1] :]
            outputs += self.processor.batch_decode(new, skip_special_tokens=True)
        return outputs
