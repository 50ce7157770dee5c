"""Exact captions for clips cut from `actavatar synth` videos, read from the corpus's truth.jsonl.

For synthetic sources the phases are known, so the caption stage can be exact: each kept clip gets
a base caption for its shot and the truth phases that overlap it, moved to clip time and trimmed
to the clip (phases left shorter than `min_phase_s` are dropped). This labels synthetic benchmarks
and lets stage 2 train on synthetic data; real videos need the VLM captioner, which this stands in
for only where the answer is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset.synth.truth import read_truth

MODEL_NAME = "synthetic-truth"
BASE_CAPTION = {
    "talk": "A cartoon presenter with a photographed face talks to the camera in a studio.",
    "silent": "A cartoon presenter with a photographed face stands silently facing the camera in a studio.",
    "music": "A cartoon presenter with a photographed face faces the camera in a studio while music plays.",
    "two_avatars": "Two cartoon presenters with photographed faces stand side by side in a studio.",
}
DEFAULT_BASE = "A cartoon presenter with a photographed face faces the camera."


class TruthCaptioner:
    """`captioner(source_uri, start_s, end_s) -> caption block or None`.

    Args:
        truth_path: the synthetic corpus's truth.jsonl (sources are matched by file name).
        min_phase_s: shortest phase kept after trimming to the clip.
        max_phases: the schema's limit; later phases are dropped.
    """

    def __init__(self, truth_path: str | Path, *, min_phase_s: float = 0.5, max_phases: int = 8) -> None:
        path = Path(truth_path)
        if not path.is_file():
            raise FileNotFoundError(f"caption.truth: {path} not found (it is the truth.jsonl written by actavatar synth)")
        self.records = {Path(r["file"]).name: r for r in read_truth(path)}
        self.min_phase_s, self.max_phases = min_phase_s, max_phases

    def __call__(self, source_uri: str, start_s: float, end_s: float) -> dict[str, Any] | None:
        record = self.records.get(Path(source_uri).name)
        if record is None:
            return None
        middle = (start_s + end_s) / 2
        shot = next((s for s in record["shots"] if s["start_s"] <= middle < s["end_s"]), None)
        if shot is None or not shot.get("phases"):
            return None
        phases = []
        for phase in shot["phases"]:
            lo, hi = max(phase["start_s"], start_s) - start_s, min(phase["end_s"], end_s) - start_s
            if hi - lo >= self.min_phase_s:
                phases.append({"start_s": round(lo, 3), "end_s": round(hi, 3), "text": phase["text"], "label": phase["label"]})
        if not phases:
            return None
        return {"base": BASE_CAPTION.get(shot["kind"], DEFAULT_BASE), "phases": phases[: self.max_phases]}
