"""Caption prompt templates: versioned YAML files under configs/annotate/prompts/ turned into chat messages.

A template has `name`, `version`, `system`, `before_frames`, `frame` (repeated before each sampled
frame) and `after_frames`; the placeholders are filled with `str.format` from pre-formatted
strings only. `PromptTemplate.provenance` (name, version, sha256 of the file) goes into every
caption's provenance, so a caption can always be traced to the exact prompt that produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPT = "configs/annotate/prompts/phase_caption_v1.yaml"
_FIELDS = ("name", "version", "system", "before_frames", "frame", "after_frames")


def resolve_prompt_path(path: str) -> Path:
    """A path as given, else relative to the toolkit's source tree (where configs/ lives)."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute() and (REPO_ROOT / candidate).is_file():
        return REPO_ROOT / candidate
    raise FileNotFoundError(f"caption.prompt: {path} not found (looked in the working directory and {REPO_ROOT})")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: int
    system: str
    before_frames: str
    frame: str
    after_frames: str
    sha256: str

    @classmethod
    def load(cls, path: str) -> PromptTemplate:
        file = resolve_prompt_path(path)
        data = file.read_bytes()
        doc = yaml.safe_load(data)
        if not isinstance(doc, dict):
            raise ValueError(f"{file}: a prompt template is a YAML mapping with {', '.join(_FIELDS)}")
        missing = [f for f in _FIELDS if f not in doc]
        unknown = sorted(set(doc) - set(_FIELDS))
        if missing or unknown:
            raise ValueError(f"{file}: missing fields {missing}, unknown fields {unknown}")
        if not isinstance(doc["version"], int):
            raise ValueError(f"{file}: version must be an integer, got {doc['version']!r}")
        return cls(**{f: doc[f] for f in _FIELDS}, sha256=hashlib.sha256(data).hexdigest())

    @property
    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def render(self, frames: list[tuple[float, np.ndarray]], values: dict[str, str]) -> list[dict[str, Any]]:
        """Chat messages in the neutral format of `annotate.vlm_local`: the system text, then the
        user turn with `before_frames`, each frame preceded by `frame` (its time as {t}), `after_frames`."""
        try:
            content: list[dict[str, Any]] = [{"type": "text", "text": self.before_frames.format(**values)}]
            for t, image in frames:
                content.append({"type": "text", "text": self.frame.format(**values, t=f"{t:.2f}")})
                content.append({"type": "image", "image": image})
            content.append({"type": "text", "text": self.after_frames.format(**values)})
            system = self.system.format(**values)
        except (KeyError, IndexError) as err:
            raise ValueError(f"prompt {self.name} v{self.version}: unknown placeholder {err}") from None
        return [{"role": "system", "content": [{"type": "text", "text": system}]}, {"role": "user", "content": content}]

    def messages(self, *, frames: list[tuple[float, np.ndarray]], duration_s: float, sample_fps: float,
                 words: list[dict[str, Any]], face_bbox: list[float] | None, min_phase_s: float,
                 max_phases: int, actions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The caption prompt for one clip (placeholders listed in phase_caption_v1.yaml)."""
        values = {
            "duration_s": f"{duration_s:.2f}", "num_frames": str(len(frames)), "sample_fps": f"{sample_fps:g}",
            "words": format_words(words), "transcript": " ".join(w["word"] for w in words) or "(no speech)",
            "face": (f"The speaker's face is inside the box (x0, y0, x1, y1) = ({', '.join(f'{v:.2f}' for v in face_bbox)}) "
                     "in frame fractions." if face_bbox else ""),
            "min_phase_s": f"{min_phase_s:g}", "max_phases": str(max_phases),
            "actions": (f'Give each phase an "action" label from: {", ".join(actions)}.' if actions
                        else 'You may add an "action" label per phase (a short snake_case name).'),
        }
        return self.render(frames, values)


def format_words(words: list[dict[str, Any]]) -> str:
    """`hello [0.32-0.61] world [0.70-1.02]`; "(no speech)" when there are none."""
    if not words:
        return "(no speech)"
    return " ".join(f"{w['word']} [{w['start_s']:.2f}-{w['end_s']:.2f}]" for w in words)
