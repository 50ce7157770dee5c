"""VLM judge of phase-level action accuracy, on the caption stage's backends (local or server).

For a clip with phases 1..P, the judge is asked P x P yes/no questions: "in the frames of span j,
does the person perform the action of phase i?" (frames sampled inside the span, with their
times; answer schema `{"performed": bool}`, constrained locally and guided on a server). Then,
following `evaluation.action_accuracy`:
- phase i is **performed** when the answer for (i, i) is yes;
- phase i **leaks** when the answer for (i, j) is yes for some span j of a phase with another label;
- **temporal precision** counts a yes as labelling the whole span: frames of spans whose "yes" is
  their own phase's action / frames of all spans with a yes (frame-weighted, so it matches the
  frame-level definition when every frame of a span shows what the judge saw).
The per-frame timeline (for plots) gives each span the label judged performed there (its own
phase's first), and "none" elsewhere. On synthetic data the exact `detect_actions` reader replaces
the judge (`--actions synthetic`), which is how the metric itself is checked against truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotate.frames import sample_times
from annotate.vlm_config import VLM_BACKENDS, VlmConfig, build_vlm
from dataset.errors import UserError
from evaluation.action_accuracy import ClipActionScore, PhaseScore, phase_frames

JUDGE_SCHEMA = {"title": "ActionJudgement", "type": "object", "additionalProperties": False,
                "required": ["performed"], "properties": {"performed": {"type": "boolean"}}}


@dataclass(frozen=True, kw_only=True, slots=True)
class JudgeConfig:
    """Args:
    backend: "local" (transformers VLM, xgrammar-constrained) or "server" (OpenAI-compatible endpoint).
    vlm: the model and how to reach it (`annotate.vlm_config.VlmConfig`: `judge.vlm.model`,
        `judge.vlm.server_url`, ...); its default model only serves as an example: give one.
    prompt: versioned prompt template (YAML).
    sample_fps / max_frames / frame_size: frames shown per phase span.
    temperature: 0 judges greedily (the default: judgements should not depend on a seed).
    """

    backend: str = "local"
    vlm: VlmConfig = field(default_factory=VlmConfig)
    prompt: str = "configs/eval/prompts/action_judge_v1.yaml"
    sample_fps: float = 4.0
    max_frames: int = 8
    frame_size: int = 448
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in VLM_BACKENDS:
            raise UserError(f"judge.backend must be local or server, got {self.backend!r}")
        if not 0 < self.sample_fps <= 30 or self.max_frames < 1 or self.frame_size < 28:
            raise UserError("judge needs 0 < sample_fps <= 30, max_frames >= 1 and frame_size >= 28, got "
                             f"{self.sample_fps}, {self.max_frames}, {self.frame_size}")
        if self.temperature < 0:
            raise UserError(f"judge.temperature must be >= 0, got {self.temperature}")


def span_frames(frames: np.ndarray, fps: float, start_s: float, end_s: float, cfg: JudgeConfig) -> list[tuple[float, np.ndarray]]:
    """Frames inside [start_s, end_s) at `sample_fps` (at most `max_frames`, spread evenly), downscaled."""
    from PIL import Image

    idx = phase_frames(start_s, end_s, len(frames), fps)
    out = []
    for offset in sample_times(len(idx), fps, cfg.sample_fps, cfg.max_frames):  # the caption stage's frame choice
        i = idx[offset]
        image = Image.fromarray(frames[i])
        scale = min(1.0, cfg.frame_size / max(image.size))
        if scale < 1.0:
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
        out.append((i / fps, np.asarray(image)))
    return out


def parse_judgement(raw: str) -> bool:
    """`{"performed": true|false}` -> bool; anything else is a ValueError naming the answer."""
    try:
        value = json.loads(raw)["performed"]
    except (json.JSONDecodeError, KeyError, TypeError):
        value = None
    if not isinstance(value, bool):
        raise ValueError(f"judge answer is not {{\"performed\": true|false}}: {raw[:80]!r}")
    return value


def score_judgements(yes: np.ndarray, phases: Sequence[Mapping[str, Any]], span_sizes: Sequence[int]) -> ClipActionScore:
    """Scores from the P x P answer matrix `yes[i, j]` (action of phase i seen in span j); the answers
    are yes/no per span, so `ActionScoreConfig.min_fraction` (a share of frames) does not apply."""
    labels = [str(p["label"]) for p in phases]
    scores = []
    for i, phase in enumerate(phases):
        leaked = any(yes[i, j] and labels[j] != labels[i] for j in range(len(phases)) if j != i)
        scores.append(PhaseScore(label=labels[i], start_s=float(phase["start_s"]), end_s=float(phase["end_s"]),
                                 num_frames=int(span_sizes[i]), fraction=float(yes[i, i]),
                                 performed=bool(yes[i, i]) and span_sizes[i] > 0, leaked=bool(leaked)))
    sizes = np.asarray(span_sizes)
    seen = yes.any(axis=0)  # spans where some phase's action was seen
    own = np.array([yes[j, j] or any(yes[i, j] and labels[i] == labels[j] for i in range(len(phases)))
                    for j in range(len(phases))], dtype=bool)
    return ClipActionScore(phases=tuple(scores), precise_frames=int(sizes[own].sum()), labelled_frames=int(sizes[seen].sum()))


def judged_timeline(yes: np.ndarray, phases: Sequence[Mapping[str, Any]], num_frames: int, fps: float) -> list[str]:
    """Per-frame labels for the timeline plot: each span gets the label judged performed there."""
    timeline = ["none"] * num_frames
    for j, phase in enumerate(phases):
        order = [j] + [i for i in range(len(phases)) if i != j]
        seen = next((str(phases[i]["label"]) for i in order if yes[i, j]), "none")
        for t in phase_frames(float(phase["start_s"]), float(phase["end_s"]), num_frames, fps):
            timeline[t] = seen
    return timeline


class ActionJudge:
    """`judge(frames, fps, phases) -> (ClipActionScore, per-frame timeline)`.

    Args:
        cfg: the judge config.
        backend: a built backend (tests); None builds the configured one.
    """

    def __init__(self, cfg: JudgeConfig, backend: Any = None) -> None:
        from annotate.prompts import PromptTemplate
        from annotate.vlm_local import Sampling

        self.cfg = cfg
        self.prompt = PromptTemplate.load(cfg.prompt)
        self.sampling = Sampling(temperature=cfg.temperature, top_p=1.0, max_new_tokens=16, seed=cfg.seed)
        self.backend = backend if backend is not None else build_vlm(cfg.backend, cfg.vlm)

    @property
    def protocol(self) -> dict[str, Any]:
        return {"detector": f"VLM judge ({self.cfg.backend}: {self.backend.model_id})", "prompt": self.prompt.provenance,
                "questions": "P x P per clip: action of phase i in span j", "sampling": self.sampling.as_dict(),
                "frames": {"sample_fps": self.cfg.sample_fps, "max_frames": self.cfg.max_frames, "frame_size": self.cfg.frame_size}}

    def __call__(self, frames: np.ndarray, fps: float, phases: Sequence[Mapping[str, Any]]) -> tuple[ClipActionScore, list[str]]:
        spans = [span_frames(frames, fps, float(p["start_s"]), float(p["end_s"]), self.cfg) for p in phases]
        requests, cells = [], []
        for i, phase in enumerate(phases):
            for j, (span, target) in enumerate(zip(spans, phases)):
                if not span:
                    continue  # a span with no frames: nothing to judge, the answer stays "no"
                values = {"action": str(phase.get("text") or phase["label"]), "num_frames": str(len(span)),
                          "span_start_s": f"{float(target['start_s']):.2f}", "span_end_s": f"{float(target['end_s']):.2f}"}
                requests.append(self.prompt.render(span, values))
                cells.append((i, j))
        yes = np.zeros((len(phases), len(phases)), dtype=bool)
        if requests:
            answers = self.backend.generate(requests, [JUDGE_SCHEMA] * len(requests), self.sampling,
                                            request_ids=[f"judge-{i}-{j}" for i, j in cells])
            for (i, j), answer in zip(cells, answers):
                if isinstance(answer, BaseException):
                    raise ValueError(f"judge request failed: {answer}")
                yes[i, j] = parse_judgement(answer)
        sizes = [len(phase_frames(float(p["start_s"]), float(p["end_s"]), len(frames), fps)) for p in phases]
        return score_judgements(yes, phases, sizes), judged_timeline(yes, phases, len(frames), fps)
