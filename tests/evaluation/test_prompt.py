"""Structured prompt parsing: compact form, JSON, validation errors."""

from __future__ import annotations

import json

import pytest

from evaluation.prompt import parse_prompt


def test_compact_and_json_forms_agree():
    compact = parse_prompt("A woman talks in an office. | 0-2.5: raises her right hand | 2.5-5: nods")
    doc = {"base": "A woman talks in an office.", "phases": [{"start_s": 0, "end_s": 2.5, "text": "raises her right hand"},
                                                              {"start_s": 2.5, "end_s": 5, "text": "nods"}]}
    assert compact == parse_prompt(json.dumps(doc)) == parse_prompt(doc)
    assert compact["phases"][1] == {"start_s": 2.5, "end_s": 5.0, "text": "nods"}
    assert parse_prompt("just a base caption") == {"base": "just a base caption", "phases": []}
    # a whole annotation (DESIGN §3) works too; labels are kept for scoring
    ann = {"caption": {"base": "b", "phases": [{"start_s": 0.5, "end_s": 1, "text": "waves", "label": "wave"}]}}
    assert parse_prompt(ann)["phases"][0]["label"] == "wave"
    assert parse_prompt("b | .5-1.25: text with: colon")["phases"][0] == {"start_s": 0.5, "end_s": 1.25, "text": "text with: colon"}


@pytest.mark.parametrize("prompt, message", [
    ("base | 2-1: backwards", "start_s < end_s"),
    ("base | 0-2: a | 1-3: b", "must not overlap"),
    ("base | two to three: x", "START-END: text"),
    (" | 0-1: x", "base caption"),
    ('{"base": "b", "phases": [{"start_s": 0, "text": "x"}]}', "numeric start_s"),
    ('{"phases": []}', "needs a 'base'"),
    ("{not json", "invalid JSON"),
])
def test_bad_prompts_are_clear_errors(prompt, message):
    with pytest.raises(ValueError, match=message):
        parse_prompt(prompt, "p.jsonl:3")
