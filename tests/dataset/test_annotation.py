from __future__ import annotations

import copy

import pytest

from dataset.annotation import AnnotationRules, dump_annotation, parse_annotation, validate_annotation
from dataset.toy_corpus import toy_clip


@pytest.fixture(scope="module")
def good() -> dict:
    doc = toy_clip(0, seconds=4.0, width=32, height=32)["json"]
    doc["caption"]["phases"] = [
        {"start_s": 0.0, "end_s": 1.5, "text": "raises the right hand"},
        {"start_s": 2.0, "end_s": 4.0, "text": "nods"},
    ]
    return doc


def paths(problems):
    return [p.path for p in problems]


def test_valid_annotation_has_no_problem(good):
    assert validate_annotation(good) == []


def test_absent_transcript_caption_and_face_are_valid(good):
    doc = copy.deepcopy(good)
    doc["transcript"] = doc["caption"] = doc["face"] = None
    assert validate_annotation(doc) == []


def test_every_problem_is_reported_with_its_json_path(good):
    doc = copy.deepcopy(good)
    del doc["video"]["fps"]
    doc["caption"]["phases"][1]["text"] = ""
    doc["source"]["sha256"] = "xyz"
    problems = validate_annotation(doc)
    assert set(paths(problems)) >= {"$.video.fps", "$.caption.phases[1].text", "$.source.sha256"}
    assert any(p.path == "$.video.fps" and "required" in p.message for p in problems)


def test_missing_top_level_block_and_unknown_field(good):
    doc = copy.deepcopy(good)
    del doc["provenance"]
    doc["extra"] = 1
    problems = validate_annotation(doc)
    assert "$.provenance" in paths(problems)
    assert any(p.path == "$" and "extra" in p.message for p in problems)


@pytest.mark.parametrize(
    ("phases", "path", "fragment"),
    [
        ([(0.0, 2.0), (1.5, 3.0)], "$.caption.phases[1]", "overlaps phase 0"),
        ([(2.0, 3.0), (0.0, 1.0)], "$.caption.phases[1]", "not sorted"),
        ([(0.0, 2.0), (2.5, 4.5)], "$.caption.phases[1]", "outside the clip"),
        ([(0.0, 0.2)], "$.caption.phases[0]", "shorter than the minimum"),
        ([(1.0, 0.5)], "$.caption.phases[0]", "ends (0.5s) before it starts"),
        ([], "$.caption.phases", "has 0 phases"),
        ([(i * 0.5, i * 0.5 + 0.5) for i in range(8)] + [(4.0, 4.0)], "$.caption.phases", "has 9 phases"),
    ],
)
def test_phase_rules(good, phases, path, fragment):
    doc = copy.deepcopy(good)
    doc["caption"]["phases"] = [{"start_s": a, "end_s": b, "text": "x"} for a, b in phases]
    problems = validate_annotation(doc)
    assert any(p.path == path and fragment in p.message for p in problems), problems


def test_min_phase_length_is_configurable(good):
    doc = copy.deepcopy(good)
    doc["caption"]["phases"] = [{"start_s": 0.0, "end_s": 0.3, "text": "x"}]
    assert validate_annotation(doc, AnnotationRules(min_phase_s=0.25)) == []
    assert validate_annotation(doc, AnnotationRules(min_phase_s=0.5))


def test_word_rules(good):
    doc = copy.deepcopy(good)
    doc["transcript"]["words"] = [
        {"word": "a", "start_s": 1.0, "end_s": 1.4},
        {"word": "b", "start_s": 0.5, "end_s": 0.7},
        {"word": "c", "start_s": 3.9, "end_s": 4.3},
        {"word": "d", "start_s": 0.5, "end_s": 4.0, "aligned": False},
    ]
    problems = validate_annotation(doc)
    assert any(p.path == "$.transcript.words[1]" and "monotonic" in p.message for p in problems)
    assert any(p.path == "$.transcript.words[2]" and "outside the clip" in p.message for p in problems)


def test_unaligned_words_may_overlap_aligned_ones(good):
    doc = copy.deepcopy(good)
    doc["transcript"]["words"] = [
        {"word": "a", "start_s": 0.5, "end_s": 1.0},
        {"word": "b", "start_s": 0.9, "end_s": 2.0, "aligned": False},
        {"word": "c", "start_s": 1.0, "end_s": 1.2},
    ]
    assert validate_annotation(doc) == []


def test_duration_and_audio_consistency(good):
    doc = copy.deepcopy(good)
    doc["video"]["num_frames"] += 5
    doc["audio"]["num_samples"] //= 2
    found = paths(validate_annotation(doc))
    assert "$.video.duration_s" in found and "$.audio.num_samples" in found


def test_validator_never_crashes_on_garbage():
    assert validate_annotation([]) and validate_annotation({"video": 3}) and validate_annotation(None)


def test_canonical_dump_round_trips(good):
    data = dump_annotation(good)
    assert parse_annotation(data) == good
    assert dump_annotation(parse_annotation(data)) == data
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_annotation(b"{nope")
