"""Synthetic talking-video corpus with exact ground truth (`actavatar synth`) and its action reader.

    from dataset.synth import detect_actions
    labels = detect_actions(frames_uint8_THW3, fps=25.0)   # one label per frame

Modules: `rig` (vocabulary, colours, geometry, poses), `avatar` (drawing), `speech` (espeak-ng),
`sounds`, `scenes`, `plan` (shots and phases), `render`, `video_writer`, `truth` (truth.jsonl),
`corpus` (SynthConfig, generate_corpus), `actions` (detect_actions), `cli`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["detect_actions"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): importing `dataset.synth.cli` for `actavatar --help` must not load OpenCV.
    if name == "detect_actions":
        from dataset.synth.actions import detect_actions

        return detect_actions
    raise AttributeError(f"module 'dataset.synth' has no attribute {name!r}")
