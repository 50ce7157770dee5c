"""Caption stage: a base caption + timestamped phase captions per clip, valid by construction.

    stage = CaptionStage(cfg.caption)
    out = stage({"key": [...], "mp4": [path, ...], "annotation": [doc, ...]})
    # out: key, status ("ok" | "failed"), reason, detail, caption, attempts (raw outputs), repairs

Per clip: frames sampled at `sample_fps` with their times written in the prompt, the aligned
transcript with word times and the face box go in (`annotate.prompts`); the VLM answers under the
clip's output schema (`annotate.caption_schema`: constrained decoding locally, guided JSON on a
server); `annotate.phases` parses and repairs the answer (clamp, sort, overlaps, minimum length,
snapping to frames and word gaps). A clip whose answer still cannot be repaired, or whose
requests keep failing, is tried again with a new seed, up to `attempts` times, then becomes a
`failed` row; every raw output is kept for audit either way.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

from annotate.caption_schema import caption_schema, token_budget
from annotate.config import CaptionConfig
from annotate.frames import sample_frames
from annotate.phases import CaptionError, RepairRules, caption_from_raw
from annotate.prompts import PromptTemplate
from annotate.vlm_config import build_vlm
from annotate.vlm_local import Sampling

log = logging.getLogger(__name__)
MAX_RAW_CHARS = 20_000  # kept per attempt for audit; a rambling unconstrained model is cut here


def clip_seed(base: int, key: str, attempt: int) -> int:
    """A seed per clip and attempt that does not depend on batching or worker order."""
    digest = hashlib.sha256(f"{base}:{key}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def check_caption_setup(cfg: CaptionConfig) -> None:
    """Stop a run before Ray starts when the caption stage could not work for any clip: a missing
    prompt file, a local model folder that does not exist, or a backend library not installed."""
    import importlib.util
    import os

    if cfg.backend not in ("local", "server"):
        return
    PromptTemplate.load(cfg.prompt)
    needed = ("transformers", "xgrammar") if cfg.backend == "local" else ("openai",)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"caption.backend={cfg.backend} needs {', '.join(missing)} (pip install 'actavatar[annotate]')")
    # A path (not an "org/name" hub id) must exist; hub ids are resolved by transformers.
    model = cfg.vlm.model
    if cfg.backend == "local" and model.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(model)):
        raise FileNotFoundError(f"caption.vlm.model: {model} is not a model folder (build a tiny one with "
                                "`actavatar models tiny --out M --only vlm`, or give a Hugging Face id)")


class CaptionStage:
    """Args:
    cfg: the caption config (backend "local" or "server").
    backend: an already built backend (e.g. a test double); None builds the configured one.
    """

    def __init__(self, cfg: CaptionConfig, backend: Any = None) -> None:
        self.cfg = cfg
        self.prompt = PromptTemplate.load(cfg.prompt)
        self.limits = cfg.limits()
        self.rules = RepairRules(min_phase_s=cfg.min_phase_s, max_phases=cfg.max_phases, word_snap_s=cfg.word_snap_s,
                                 max_base_chars=cfg.max_base_chars, max_text_chars=cfg.max_text_chars)
        self.sampling = Sampling(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed,
                                 max_new_tokens=cfg.max_new_tokens or token_budget(self.limits))
        self.backend = backend if backend is not None else build_vlm(cfg.backend, cfg.vlm)

    @property
    def provenance(self) -> dict[str, Any]:
        """What produced the captions: recorded in each annotation's `provenance.caption`."""
        return {"backend": self.cfg.backend, "model": self.backend.model_id, "prompt": self.prompt.provenance,
                "sampling": self.sampling.as_dict(), "guided": self.cfg.vlm.guided if self.cfg.backend == "server" else "xgrammar"}

    def _request(self, mp4: str, doc: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg = self.cfg
        frames = sample_frames(mp4, cfg.sample_fps, cfg.max_frames, cfg.frame_size)
        words = (doc.get("transcript") or {}).get("words") or []
        face = (doc.get("face") or {}).get("bbox") if cfg.use_face_box else None
        duration = doc["video"]["duration_s"]
        messages = self.prompt.messages(frames=frames, duration_s=duration, sample_fps=cfg.sample_fps, words=words,
                                        face_bbox=face, min_phase_s=cfg.min_phase_s, max_phases=cfg.max_phases,
                                        actions=self.limits.actions)
        return messages, caption_schema(duration, self.limits)

    def _generate(self, keys: list[str], messages: list, schemas: list, attempt: int) -> list[Any]:
        """Raw text or an exception per request; a batch that fails as a whole fails each request."""
        seeds = [clip_seed(self.cfg.seed, key, attempt) for key in keys]  # servers honour per-request seeds
        sampling = replace(self.sampling, seed=clip_seed(self.cfg.seed, ",".join(keys), attempt))
        try:
            return self.backend.generate(messages, schemas, sampling, request_ids=keys, seeds=seeds)
        except Exception as err:  # noqa: BLE001 - recorded per clip; the run goes on
            log.warning("caption batch of %d clips failed: %r", len(keys), err)
            return [err] * len(keys)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        keys = list(batch["key"])
        results: dict[str, dict[str, Any]] = {
            k: {"status": "failed", "reason": "", "detail": "", "caption": None, "attempts": [], "repairs": []} for k in keys}
        requests: dict[str, tuple] = {}
        for key, mp4, doc in zip(keys, batch["mp4"], batch["annotation"]):
            try:
                requests[key] = (*self._request(mp4, doc), doc)
            except Exception as err:  # noqa: BLE001 - an unreadable clip is a failed row, not a crash
                results[key].update(reason="caption_input_error", detail=f"{mp4}: {type(err).__name__}: {err}")
        pending = list(requests)
        for attempt in range(self.cfg.attempts):
            if not pending:
                break
            outputs = self._generate(pending, [requests[k][0] for k in pending], [requests[k][1] for k in pending], attempt)
            still = []
            for key, raw in zip(pending, outputs):
                result = results[key]
                if isinstance(raw, BaseException):
                    reason = getattr(raw, "reason", "vlm_error")
                    result["attempts"].append({"error": reason})
                    result.update(reason=reason, detail=getattr(raw, "detail", f"{type(raw).__name__}: {raw}"))
                    still.append(key)
                    continue
                result["attempts"].append({"raw": raw[:MAX_RAW_CHARS]})
                doc = requests[key][2]
                try:
                    caption, repairs = caption_from_raw(raw, doc["video"]["duration_s"],
                                                        (doc.get("transcript") or {}).get("words"),
                                                        replace(self.rules, fps=doc["video"]["fps"]))
                except CaptionError as err:
                    result.update(reason=f"caption_{err.reason}", detail=err.detail)
                    still.append(key)
                    continue
                result.update(status="ok", reason="", detail="", caption=caption, repairs=repairs)
            pending = still
        for key in pending:
            result = results[key]
            result["detail"] = f"after {len(result['attempts'])} attempt(s): {result['detail']}"
        return {"key": keys, **{name: [results[k][name] for k in keys]
                                for name in ("status", "reason", "detail", "caption", "attempts", "repairs")}}
