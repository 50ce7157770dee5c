from __future__ import annotations

import json

import pytest

from annotate.truth_captions import BASE_CAPTION, TruthCaptioner
from dataset.annotation import validate_annotation
from dataset.toy_corpus import toy_clip

RECORD = {
    "file": "raw/synth_00000.mp4",
    "shots": [
        {"kind": "talk", "start_s": 0.0, "end_s": 6.0, "phases": [
            {"start_s": 0.0, "end_s": 1.2, "label": "idle", "text": "stands still, hands down"},
            {"start_s": 1.2, "end_s": 2.9, "label": "raise_right_hand", "text": "raises the right hand"},
            {"start_s": 2.9, "end_s": 3.2, "label": "idle", "text": "stands still, hands down"},
            {"start_s": 3.2, "end_s": 6.0, "label": "nod", "text": "nods"}]},
        {"kind": "scene", "start_s": 6.0, "end_s": 9.0, "phases": []},
    ],
}


@pytest.fixture
def captioner(tmp_path):
    path = tmp_path / "truth.jsonl"
    path.write_text(json.dumps(RECORD) + "\n")
    return TruthCaptioner(path, min_phase_s=0.5)


def test_phases_are_moved_to_clip_time_trimmed_and_short_ones_dropped(captioner):
    caption = captioner("/data/raw/synth_00000.mp4", 1.0, 5.0)
    assert caption["base"] == BASE_CAPTION["talk"]
    assert caption["phases"] == [
        {"start_s": 0.2, "end_s": 1.9, "text": "raises the right hand", "label": "raise_right_hand"},
        {"start_s": 2.2, "end_s": 4.0, "text": "nods", "label": "nod"},
    ]  # idle 1.0-1.2 (0.2 s) and idle 2.9-3.2 (0.3 s) are shorter than 0.5 s


def test_captions_validate_in_an_annotation(captioner):
    doc = toy_clip(0, seconds=4.0, width=32, height=32)["json"]
    doc["caption"] = captioner("synth_00000.mp4", 1.0, 5.0)
    assert validate_annotation(doc) == []


def test_unknown_sources_and_shots_without_phases_get_no_caption(captioner):
    assert captioner("other.mp4", 0.0, 3.0) is None
    assert captioner("synth_00000.mp4", 6.5, 8.5) is None


def test_missing_truth_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="truth.jsonl written by actavatar synth"):
        TruthCaptioner(tmp_path / "nope.jsonl")
