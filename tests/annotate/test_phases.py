"""Behaviour of annotate.phases: raw VLM reply -> caption block valid by the annotation rules."""

from __future__ import annotations

import copy
import json
import pickle
import random

import pytest

from annotate.phases import (
    CAPTION_ERROR_REASONS,
    CaptionError,
    RepairRules,
    caption_from_raw,
    normalise_text,
    parse_caption_json,
    repair_caption,
)
from dataset.annotation import AnnotationRules, validate_annotation
from dataset.toy_corpus import toy_clip

DEFAULT = RepairRules()


# ----------------------------------------------------------------------------------------- helpers


def _phase(start, end, text="moves", **extra):
    return {"start_s": start, "end_s": end, "text": text, **extra}


def _repair(phases, duration=10.0, words=None, rules=DEFAULT, base="A person talks."):
    return repair_caption({"base": base, "phases": phases}, duration, words, rules)


def _spans(caption):
    return [(p["start_s"], p["end_s"]) for p in caption["phases"]]


def _doc(caption: dict, duration: float) -> dict:
    """A minimal full annotation around `caption` (consistent video/audio for `duration`)."""
    frames = max(1, round(duration * 25))
    return {
        "schema_version": 1, "key": "0123456789abcdef_0000",
        "source": {"uri": "x.mp4", "sha256": "0" * 64, "start_s": 0.0, "end_s": duration},
        "video": {"fps": 25.0, "num_frames": frames, "width": 64, "height": 64, "duration_s": duration},
        "audio": {"sample_rate": 16000, "num_samples": max(1, round(duration * 16000)), "speech_ratio": None},
        "face": None, "transcript": None, "caption": caption,
        "provenance": {"pipeline_version": "t", "config_hash": "h", "models": {}},
    }


def assert_valid(caption: dict, duration: float, rules: RepairRules = DEFAULT) -> None:
    """The annotation rules, checked by hand (exactly, no tolerance) and by the real validator."""
    assert set(caption) == {"base", "phases"}
    assert isinstance(caption["base"], str) and caption["base"] == normalise_text(caption["base"]) != ""
    assert len(caption["base"]) <= rules.max_base_chars
    phases = caption["phases"]
    assert 1 <= len(phases) <= rules.max_phases
    for p in phases:
        assert set(p) <= {"start_s", "end_s", "text", "label"} and {"start_s", "end_s", "text"} <= set(p)
        assert p["text"] == normalise_text(p["text"]) != "" and len(p["text"]) <= rules.max_text_chars
        assert 0.0 <= p["start_s"] < p["end_s"] <= duration
        assert p["end_s"] - p["start_s"] >= rules.min_phase_s - 1e-9
        for t in (p["start_s"], p["end_s"]):
            assert type(t) is float and (t == duration or round(t, 3) == t)  # ms, or exactly the clip's end
        if "label" in p:
            assert p["label"] and " " not in p["label"] and p["label"] == p["label"].lower()
    for a, b in zip(phases, phases[1:]):
        assert a["end_s"] <= b["start_s"]
    annotation_rules = AnnotationRules(min_phase_s=rules.min_phase_s, max_phases=rules.max_phases)
    assert validate_annotation(_doc(caption, duration), annotation_rules) == []


def assert_idempotent(caption, duration, words=None, rules=DEFAULT):
    again, notes = repair_caption(copy.deepcopy(caption), duration, words, rules)
    assert (again, notes) == (caption, [])


def reason(excinfo) -> str:
    return excinfo.value.reason


# ----------------------------------------------------------------------------------------- parsing

GOOD = '{"base": "A man speaks.", "phases": [{"start_s": 0.0, "end_s": 2.2, "text": "raises his right hand"}]}'


@pytest.mark.parametrize("raw", [
    GOOD,
    f"```json\n{GOOD}\n```",
    f"Sure! Here is the caption you asked for:\n```json\n{GOOD}\n```\nLet me know if you need anything else.",
    f"```\n{GOOD}\n```",
    f"The answer is {GOOD} -- hope it helps.",
    f"{GOOD}\n{{\"base\": \"a second object is ignored\"}}",
    f"Notes [draft]: ```JSON {GOOD}```",
])
def test_first_json_object_is_found_in_fences_and_prose(raw):
    assert parse_caption_json(raw) == json.loads(GOOD)


def test_fence_without_object_is_skipped_for_the_one_with_it():
    raw = f"Format:\n```text\nbase + phases\n```\nAnswer:\n```json\n{GOOD}\n```"
    assert parse_caption_json(raw) == json.loads(GOOD)


def test_raw_newlines_inside_strings_are_tolerated():
    raw = '{"base": "line one\nline two", "phases": []}'
    assert parse_caption_json(raw)["base"] == "line one\nline two"


@pytest.mark.parametrize("raw, fragment", [
    ('{"base": "A man speaks.", "phases": [{"start_s": 0.0, "end_s": 2.', "Expecting"),  # truncated
    ('{"base": "A man speaks.", "phases": [],}', "Expecting property name"),  # trailing comma
    ('{"base": "x", "phases": [{"start_s": 0, "end_s": 1, "text": "y"},]}', "Expecting value"),
    ("I cannot describe this video.", "no JSON object"),
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("```json\n{\"base\": \"cut off", "Unterminated string"),  # unterminated fence and string
    ("{'base': 'single quotes'}", "double quotes"),
])
def test_malformed_json_is_rejected_with_its_cause(raw, fragment):
    with pytest.raises(CaptionError) as excinfo:
        parse_caption_json(raw)
    assert reason(excinfo) == "malformed_json"
    assert fragment in excinfo.value.detail


def test_malformed_json_detail_quotes_a_short_excerpt():
    raw = "Here you go: " + '{"base": "' + "very long caption " * 40 + '", "phases": [,]}'
    with pytest.raises(CaptionError) as excinfo:
        parse_caption_json(raw)
    detail = excinfo.value.detail
    assert "[,]" in detail  # the excerpt is taken where the parser stopped
    quoted = detail[detail.index("near ") + 5:]
    assert len(quoted) <= 80 + 2  # the excerpt plus its quotes


@pytest.mark.parametrize("raw, kind", [
    ('[{"base": "x", "phases": []}]', "list"),
    ("```json\n[1, 2, 3]\n```", "list"),
    ("42", "int"),
    ('"just a string"', "str"),
    ("null", "NoneType"),
])
def test_json_that_is_not_an_object_is_rejected(raw, kind):
    with pytest.raises(CaptionError) as excinfo:
        parse_caption_json(raw)
    assert reason(excinfo) == "not_an_object"
    assert kind in excinfo.value.detail


def test_non_text_input_is_malformed():
    with pytest.raises(CaptionError) as excinfo:
        parse_caption_json(b"{}")  # type: ignore[arg-type]
    assert reason(excinfo) == "malformed_json"


def test_caption_error_carries_reason_and_detail_and_pickles():
    err = CaptionError("no_base", "the base caption is empty")
    assert isinstance(err, ValueError)
    assert (err.reason, err.detail, str(err)) == ("no_base", "the base caption is empty", "no_base: the base caption is empty")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.reason, back.detail) == (CaptionError, "no_base", "the base caption is empty")


# ------------------------------------------------------------------------------------------- rules


@pytest.mark.parametrize("kwargs, fragment", [
    ({"min_phase_s": -0.1}, "min_phase_s"),
    ({"min_phase_s": float("nan")}, "min_phase_s"),
    ({"max_phases": 0}, "max_phases"),
    ({"max_phases": 2.0}, "max_phases"),
    ({"max_phases": True}, "max_phases"),
    ({"fps": 0}, "fps"),
    ({"fps": 5000.0}, "fps"),
    ({"fps": float("inf")}, "fps"),
    ({"word_snap_s": -1}, "word_snap_s"),
    ({"max_base_chars": 0}, "max_base_chars"),
    ({"max_text_chars": "80"}, "max_text_chars"),
])
def test_repair_rules_reject_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        RepairRules(**kwargs)


def test_numpy_numbers_are_accepted_and_plain_floats_come_out():
    np = pytest.importorskip("numpy")
    rules = RepairRules(fps=np.float32(25), min_phase_s=np.float64(0.5))
    words = [{"word": "a", "start_s": np.float32(1.1), "end_s": np.float64(1.9)}]
    caption, _ = _repair([_phase(0, 1.2, "a"), _phase(1.2, 2.0, "b")], duration=np.float32(2.0), words=words, rules=rules)
    assert _spans(caption) == [(0.0, 1.08), (1.08, 2.0)]
    assert_valid(caption, 2.0, rules)
    json.dumps(caption)


def test_repair_rules_defaults_match_the_annotation_rules():
    assert (DEFAULT.min_phase_s, DEFAULT.max_phases) == (AnnotationRules().min_phase_s, AnnotationRules().max_phases)


@pytest.mark.parametrize("duration", [0, -1.0, float("nan"), float("inf"), "4"])
def test_bad_duration_is_a_caller_error_not_a_caption_error(duration):
    with pytest.raises(ValueError) as excinfo:
        _repair([_phase(0, 1)], duration=duration)
    assert not isinstance(excinfo.value, CaptionError)


# ------------------------------------------------------------------------------------------ repair


def test_valid_caption_passes_through_unchanged():
    phases = [_phase(0.0, 2.2, "raises her right hand", label="raise_hand"), _phase(2.2, 4.0, "nods")]
    caption, notes = _repair(copy.deepcopy(phases), duration=4.0)
    assert caption == {"base": "A person talks.", "phases": phases}
    assert notes == []


def test_input_is_not_mutated():
    obj = {"base": " x ", "phases": [_phase(3.0, 1.0, "b"), _phase(0.5, 2.0, "a", action="Wave")]}
    before = copy.deepcopy(obj)
    repair_caption(obj, 4.0, None)
    assert obj == before


def test_overlapping_phases_meet_at_the_middle_of_the_overlap():
    caption, notes = _repair([_phase(0.0, 3.2, "a"), _phase(2.0, 5.0, "b")], duration=6.0)
    assert _spans(caption) == [(0.0, 2.6), (2.6, 5.0)]
    assert any("overlapped" in n and "2.6s" in n for n in notes)
    assert_valid(caption, 6.0)


def test_contained_phase_splits_at_the_middle_of_the_overlap():
    caption, _ = _repair([_phase(0.0, 6.0, "outer"), _phase(2.0, 3.2, "inner")], duration=6.0)
    assert [(p["start_s"], p["end_s"], p["text"]) for p in caption["phases"]] == [(0.0, 2.6, "outer"), (2.6, 3.2, "inner")]


def test_chain_of_overlaps_is_resolved_until_none_remain():
    phases = [_phase(0.0, 10.0, "a"), _phase(1.0, 10.0, "b"), _phase(2.0, 10.0, "c")]
    caption, notes = _repair(phases, duration=10.0)
    # a/b meet at 5.5; then a/c at 3.75 (-> frame 3.76); then c/b at 7.75 (-> frame 7.76)
    assert [(p["text"], p["start_s"], p["end_s"]) for p in caption["phases"]] == [
        ("a", 0.0, 3.76), ("c", 3.76, 7.76), ("b", 7.76, 10.0)]
    assert sum("overlapped" in n for n in notes) == 3
    assert_valid(caption, 10.0)


def test_identical_phases_split_in_half():
    caption, _ = _repair([_phase(1.0, 3.0, "a"), _phase(1.0, 3.0, "b")], duration=4.0)
    assert _spans(caption) == [(1.0, 2.0), (2.0, 3.0)]


def test_negative_times_and_times_beyond_the_clip_are_clamped():
    caption, notes = _repair([_phase(-1.5, 1.0, "a"), _phase(1.0, 9.0, "b")], duration=4.0)
    assert _spans(caption) == [(0.0, 1.0), (1.0, 4.0)]
    assert sum("clamped" in n for n in notes) == 2
    assert_valid(caption, 4.0)


def test_phase_entirely_outside_the_clip_is_dropped():
    caption, notes = _repair([_phase(0.0, 2.0, "in"), _phase(5.0, 7.0, "out")], duration=4.0)
    assert [p["text"] for p in caption["phases"]] == ["in"]
    assert any("phase #1" in n and "dropped" in n for n in notes)


def test_reversed_phase_is_swapped_and_phases_are_sorted():
    caption, notes = _repair([_phase(3.0, 2.0, "second"), _phase(1.2, 0.0, "first")], duration=4.0)
    assert [(p["text"], p["start_s"], p["end_s"]) for p in caption["phases"]] == [("first", 0.0, 1.2), ("second", 2.0, 3.0)]
    assert sum("swapped" in n for n in notes) == 2


def test_gaps_between_phases_are_kept():
    caption, notes = _repair([_phase(0.4, 1.2, "a"), _phase(2.0, 3.0, "b")], duration=4.0)
    assert _spans(caption) == [(0.4, 1.2), (2.0, 3.0)] and notes == []


@pytest.mark.parametrize("obj", [
    {"base": "x", "phases": []},
    {"base": "x"},
    {"base": "x", "phases": None},
    {"base": "x", "phases": {"start_s": 0, "end_s": 1, "text": "a"}},
    {"base": "x", "phases": [None, 3, "text", []]},
    {"base": "x", "phases": [_phase(0, 1, ""), _phase(0, 1, "  \n"), _phase(0, 1, None)]},
    {"base": "x", "phases": [_phase(0.0, 0.3, "too short"), _phase(8.0, 9.0, "outside")]},
])
def test_no_usable_phase_is_an_error(obj):
    with pytest.raises(CaptionError) as excinfo:
        repair_caption(obj, 4.0, None)
    assert reason(excinfo) == "no_phases"


def test_no_phases_detail_lists_what_was_dropped():
    with pytest.raises(CaptionError) as excinfo:
        repair_caption({"base": "x", "phases": [_phase(0, float("nan"), "a")]}, 4.0, None)
    assert "no usable end_s" in excinfo.value.detail


def test_fifty_phases_keep_exactly_the_eight_longest_in_time_order():
    # Phase i starts at 1.2*i and lasts 0.6 + 0.04*(7i mod 11): five phases (i = 3, 14, 25, 36, 47)
    # last 1.0 s, four (i = 6, 17, 28, 39) last 0.96 s -- the tie keeps the earliest three.
    phases = [_phase(round(1.2 * i, 3), round(1.2 * i + 0.6 + 0.04 * (7 * i % 11), 3), f"p{i}") for i in range(50)]
    random.Random(7).shuffle(phases)
    caption, notes = _repair(phases, duration=60.0)
    kept = [3, 6, 14, 17, 25, 28, 36, 47]
    assert [p["text"] for p in caption["phases"]] == [f"p{i}" for i in kept]
    assert [round(p["end_s"] - p["start_s"], 3) for p in caption["phases"]] == [1.0, 0.96, 1.0, 0.96, 1.0, 0.96, 1.0, 1.0]
    assert "kept the 8 longest of 50 phases" in notes
    assert_valid(caption, 60.0)


def test_max_phases_is_configurable():
    rules = RepairRules(max_phases=2)
    phases = [_phase(0.0, 1.0, "a"), _phase(1.0, 3.0, "b"), _phase(3.0, 3.6, "c"), _phase(3.6, 5.0, "d")]
    caption, _ = _repair(phases, duration=5.0, rules=rules)
    assert [p["text"] for p in caption["phases"]] == ["b", "d"]


def test_phases_shorter_than_the_minimum_are_dropped_with_a_note():
    rules = RepairRules(fps=10.0)
    phases = [_phase(0.0, 0.2, "blink"), _phase(0.2, 0.7, "exactly half a second"), _phase(1.0, 1.4, "nod"), _phase(2.0, 3.0, "wave")]
    caption, notes = _repair(phases, duration=4.0, rules=rules)
    # 0.7 - 0.2 is 0.49999999999999994 in floats: still the minimum, kept.
    assert [p["text"] for p in caption["phases"]] == ["exactly half a second", "wave"]
    assert [n for n in notes if "dropped" in n] == [
        "phase #0 [0s, 0.2s]: dropped (0.200s, shorter than 0.5s)",
        "phase #2 [1s, 1.4s]: dropped (0.400s, shorter than 0.5s)",
    ]
    assert_valid(caption, 4.0, rules)


def test_min_phase_length_is_configurable():
    caption, _ = _repair([_phase(0.0, 0.2, "blink"), _phase(0.2, 1.0, "nod")], duration=1.0, rules=RepairRules(min_phase_s=0.0))
    assert _spans(caption) == [(0.0, 0.2), (0.2, 1.0)]
    with pytest.raises(CaptionError):
        _repair([_phase(0.0, 1.0, "nod")], duration=1.0, rules=RepairRules(min_phase_s=1.5))


# -------------------------------------------------------------------------------------------- times


@pytest.mark.parametrize("start, end, expected", [
    ("1.6", "3", (1.6, 3.0)),
    ("1.6s", " 3.0 s ", (1.6, 3.0)),
    ("+0.4", "2e0", (0.4, 2.0)),
    (1, 3, (1.0, 3.0)),
])
def test_numeric_strings_are_read_as_times(start, end, expected):
    caption, notes = _repair([_phase(start, end)], duration=4.0)
    assert _spans(caption) == [expected]
    assert all(type(t) is float for t in expected)
    if isinstance(start, str):
        assert f"phase #0: start_s {start!r} read as {expected[0]:g}" in notes


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), True, False, None, "nan", "inf", "1e999",
                                 "abc", "1.5 seconds", "", [], {}, 10 ** 400])
def test_unusable_times_drop_the_phase(bad):
    caption, notes = _repair([_phase(bad, 2.0, "bad"), _phase(2.0, 3.0, "good")], duration=4.0)
    assert [p["text"] for p in caption["phases"]] == ["good"]
    assert any(n.startswith("phase #0: dropped (no usable start_s") for n in notes)


def test_start_and_end_keys_are_accepted_when_the_suffixed_ones_are_missing():
    caption, _ = _repair([{"start": 0.0, "end": 1.2, "text": "waves"}], duration=4.0)
    assert _spans(caption) == [(0.0, 1.2)]


def test_boundaries_snap_to_frame_times():
    caption, notes = _repair([_phase(1.013, 2.219, "a"), _phase(2.219, 3.5, "b")], duration=4.0)
    assert _spans(caption) == [(1.0, 2.2), (2.2, 3.52)]  # 3.5 s is frame 87.5: halves round up
    assert "phase #0: snapped [1.013s, 2.219s] to [1s, 2.2s]" in notes


def test_frame_snapping_follows_fps_and_stays_in_milliseconds():
    rules = RepairRules(fps=30.0)
    caption, _ = _repair([_phase(0.52, 1.5, "a")], duration=2.0, rules=rules)
    assert _spans(caption) == [(0.533, 1.5)]  # frame 16 = 0.5333... s
    assert_idempotent(caption, 2.0, rules=rules)


def test_clip_end_caps_frame_snapping_when_duration_is_not_a_frame_multiple():
    caption, notes = _repair([_phase(0.52, 2.03, "a")], duration=2.03)
    assert _spans(caption) == [(0.52, 2.03)]  # the next frame (2.04 s) is past the clip's end
    assert notes == []
    caption, _ = _repair([_phase(0.52, 9.0, "a")], duration=2.0123)
    assert _spans(caption) == [(0.52, 2.0)]  # 2.0123 s rounds down to the frame at 2.0 s


def test_half_frame_times_round_up_and_can_fall_below_the_minimum():
    # At 25 fps 0.5 s is frame 12.5: it becomes 0.52 s, and a phase of exactly 0.5 s shrinks to
    # 0.48 s and is dropped -- snapping comes before the length check, so the output is valid.
    caption, notes = _repair([_phase(0.5, 1.0, "short"), _phase(1.5, 3.0, "long")], duration=4.0)
    assert [(p["text"], p["start_s"], p["end_s"]) for p in caption["phases"]] == [("long", 1.52, 3.0)]
    assert "phase #0 [0.52s, 1s]: dropped (0.480s, shorter than 0.5s)" in notes


def test_touching_phases_stay_touching_after_snapping():
    caption, _ = _repair([_phase(0.0, 1.013, "a"), _phase(1.013, 2.0, "b"), _phase(2.0, 3.111, "c")], duration=4.0)
    spans = _spans(caption)
    assert spans == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.12)]


# -------------------------------------------------------------------------------------------- words

WORDS = [
    {"word": "hello", "start_s": 0.3, "end_s": 1.02, "score": 0.9, "aligned": True},
    {"word": "there", "start_s": 1.18, "end_s": 1.9, "score": 0.8},
]


def test_boundary_inside_a_word_moves_to_the_gap_before_it():
    phases = [_phase(0.0, 1.25, "a"), _phase(1.25, 3.0, "b")]
    assert _spans(_repair(copy.deepcopy(phases), duration=3.0)[0]) == [(0.0, 1.24), (1.24, 3.0)]
    caption, notes = _repair(phases, duration=3.0, words=WORDS)
    # 1.24 s is inside "there" (1.18-1.9 s), 0.06 s from its start: the frame at or before it.
    assert _spans(caption) == [(0.0, 1.16), (1.16, 3.0)]
    assert 1.02 <= 1.16 <= 1.18  # in the gap between "hello" and "there"
    assert "phase #0: snapped [0s, 1.25s] to [0s, 1.16s]" in notes
    assert_idempotent(caption, 3.0, WORDS)


def test_boundary_near_a_word_end_moves_to_the_gap_after_it():
    words = [{"word": "okay", "start_s": 0.5, "end_s": 1.33}]
    caption, _ = _repair([_phase(0.0, 1.25, "a"), _phase(1.25, 3.0, "b")], duration=3.0, words=words)
    assert _spans(caption) == [(0.0, 1.36), (1.36, 3.0)]  # first frame at or after 1.33 s
    assert_idempotent(caption, 3.0, words)


def test_boundary_far_from_the_word_edges_only_snaps_to_a_frame():
    words = [{"word": "extraordinarily", "start_s": 0.2, "end_s": 2.8}]
    caption, _ = _repair([_phase(0.0, 1.6, "a"), _phase(1.6, 3.0, "b")], duration=3.0, words=words)
    assert _spans(caption) == [(0.0, 1.6), (1.6, 3.0)]
    narrow = RepairRules(word_snap_s=0.05)
    caption, _ = _repair([_phase(0.0, 1.25, "a")], duration=3.0, words=WORDS, rules=narrow)
    assert _spans(caption) == [(0.0, 1.24)]  # 0.06 s from the word start is beyond 0.05 s


def test_boundary_stays_when_the_gap_is_narrower_than_a_frame():
    words = [{"word": "a", "start_s": 0.5, "end_s": 1.01}, {"word": "b", "start_s": 1.03, "end_s": 2.0}]
    caption, _ = _repair([_phase(0.0, 1.1, "x")], duration=3.0, words=words)
    # The frame before "b" (1.0 s) is inside "a": moving there would only trade one word for another.
    assert _spans(caption) == [(0.0, 1.12)]
    assert_idempotent(caption, 3.0, words)


def test_unaligned_and_garbage_words_are_ignored():
    words = [{"word": "segment", "start_s": 1.0, "end_s": 2.0, "aligned": False}, "junk",
             {"word": "x", "start_s": "?", "end_s": 1.5}, {"word": "y", "start_s": 2.0, "end_s": float("nan")}]
    caption, _ = _repair([_phase(0.0, 1.1, "x")], duration=3.0, words=words)
    assert _spans(caption) == [(0.0, 1.12)]


# --------------------------------------------------------------------------------------------- text


def test_non_ascii_text_is_preserved_and_control_characters_removed():
    phases = [
        _phase(0.0, 1.0, "hebt die Hand\u200b"),  # zero-width space: a format character
        _phase(1.0, 2.0, "点头\x07微笑"),
        _phase(2.0, 3.0, "  winkt 👋\n\tund lächelt\r\n"),
        _phase(3.0, 4.0, "types 👩\u200d💻 fast\ufeff"),  # the joiner inside the emoji is kept
    ]
    caption, notes = _repair(phases, duration=4.0, base="\ufeffEine Frau\u202e spricht.\x00")
    assert caption["base"] == "Eine Frau spricht."
    assert [p["text"] for p in caption["phases"]] == ["hebt die Hand", "点头微笑", "winkt 👋 und lächelt", "types 👩\u200d💻 fast"]
    assert "base: removed control characters / extra whitespace" in notes
    assert_valid(caption, 4.0)
    json.dumps(caption, ensure_ascii=False).encode("utf-8")


def test_lone_surrogates_are_removed_so_the_caption_encodes():
    caption, _ = caption_from_raw('{"base": "a \\ud800 b", "phases": [{"start_s": 0, "end_s": 1, "text": "x\\udfff"}]}', 2.0)
    assert (caption["base"], caption["phases"][0]["text"]) == ("a b", "x")


def test_long_texts_are_truncated_at_a_word_boundary():
    rules = RepairRules(max_base_chars=20, max_text_chars=12)
    caption, notes = _repair([_phase(0.0, 1.0, "raises the right hand slowly")], duration=2.0, rules=rules,
                             base="A woman in a red coat talks to the camera")
    assert caption["base"] == "A woman in a red"
    assert caption["phases"][0]["text"] == "raises the"
    assert "base: truncated from 41 to 16 characters" in notes
    assert "phase #0: text truncated from 28 to 10 characters" in notes


def test_text_without_spaces_is_cut_hard():
    rules = RepairRules(max_text_chars=4)
    phases = [_phase(0.0, 1.0, "点头微笑然后挥手"), _phase(1.0, 2.0, "a bcdefghij"), _phase(2.0, 3.0, "ab cdefghij")]
    caption, _ = _repair(phases, duration=3.0, rules=rules)
    # Cutting at the space would keep less than half of the allowed 4 characters in "a bc...".
    assert [p["text"] for p in caption["phases"]] == ["点头微笑", "a bc", "ab"]


def test_label_comes_from_action():
    phases = [
        _phase(0.0, 1.0, "a", action="Raise Hand"),
        _phase(1.0, 2.0, "b", action="  nod\n"),
        _phase(2.0, 3.0, "c", action=""),
        _phase(3.0, 4.0, "d", action=7),
        _phase(4.0, 5.0, "e"),
        _phase(5.0, 6.0, "f", label="wave"),
    ]
    caption, notes = _repair(phases, duration=6.0)
    assert [p.get("label") for p in caption["phases"]] == ["raise_hand", "nod", None, None, None, "wave"]
    assert all("action" not in p for p in caption["phases"])
    assert notes == []
    assert_valid(caption, 6.0)


@pytest.mark.parametrize("obj, detail", [
    ({"phases": [_phase(0, 1)]}, "missing"),
    ({"base": "", "phases": [_phase(0, 1)]}, "empty"),
    ({"base": " \n\x07\u200b ", "phases": [_phase(0, 1)]}, "empty"),
    ({"base": 3, "phases": [_phase(0, 1)]}, "int"),
    ({"base": ["a"], "phases": [_phase(0, 1)]}, "list"),
])
def test_missing_or_empty_base_is_an_error(obj, detail):
    with pytest.raises(CaptionError) as excinfo:
        repair_caption(obj, 2.0, None)
    assert reason(excinfo) == "no_base"
    assert detail in excinfo.value.detail


def test_non_object_is_an_error():
    with pytest.raises(CaptionError) as excinfo:
        repair_caption([_phase(0, 1)], 2.0, None)  # type: ignore[arg-type]
    assert reason(excinfo) == "not_an_object"


# ------------------------------------------------------------------------------------- end to end


def test_messy_reply_becomes_a_valid_annotation():
    doc = toy_clip(0, seconds=4.0, width=32, height=32)["json"]
    words = doc["transcript"]["words"]  # "there" 0.1-1.98 s, "hello" 2.0-3.88 s
    raw = (
        "Here is the JSON describing the clip:\n```json\n"
        '{"base": "A woman\\nspeaks to the camera.", "phases": ['
        '{"start_s": "0", "end_s": 2.13, "text": "raises her right hand", "action": "raise hand"},'
        '{"start_s": 2.1, "end_s": "4.2s", "text": "nods twice"},'
        '{"start_s": 3.9, "end_s": 3.95, "text": "blinks"}]}\n```'
    )
    caption, notes = caption_from_raw(raw, doc["video"]["duration_s"], words)
    # Overlap 2.1-2.13 s meets at 2.115 -> frame 2.12 s, inside "hello" -> the gap at 2.0 s.
    # "blinks" lies inside "nods twice": they split at 3.925 s -> 3.92 s, then "blinks" is too short.
    assert caption == {"base": "A woman speaks to the camera.", "phases": [
        {"start_s": 0.0, "end_s": 2.0, "text": "raises her right hand", "label": "raise_hand"},
        {"start_s": 2.0, "end_s": 3.92, "text": "nods twice"},
    ]}
    assert notes
    doc["caption"] = caption
    assert validate_annotation(doc) == []
    assert_idempotent(caption, 4.0, words)


def test_repair_is_idempotent_on_repaired_output():
    cases = [
        ([_phase(-1, 3.3, "a", action="Wave"), _phase(2.0, 2.9, "b"), _phase(9, 2.5, "c")], 7.3, WORDS),
        ([_phase(0.013, 1.987, "a"), _phase(1.5, 6.0, "b")], 6.01, None),
        ([_phase(i * 0.77, i * 0.77 + 1.3, f"p{i}") for i in range(20)], 16.0, WORDS),
    ]
    for phases, duration, words in cases:
        caption, notes = _repair(phases, duration=duration, words=words, base="  a \n b ")
        assert notes
        assert_valid(caption, duration)
        assert_idempotent(caption, duration, words)


# --------------------------------------------------------------------------------------- property

_TEXTS = ["raises hand", "", "   ", "\x00\x07", "点头微笑", "hebt die Hand", "👩\u200d💻 types", "x" * 300,
          "a\nb\tc", None, 5, "word " * 40]
_BAD_TIMES = [float("nan"), float("inf"), -float("inf"), True, False, None, "1.5", "2.25s", " 3 s", "abc", "nan",
              [], {}, 10 ** 400, "1e999", -0.0, 0, "-2"]


def _garbage_time(rng: random.Random):
    if rng.random() < 0.75:
        return round(rng.uniform(-3.0, 14.0), rng.choice([0, 1, 2, 3, 6]))
    return rng.choice(_BAD_TIMES)


def _garbage_phase(rng: random.Random):
    if rng.random() < 0.07:
        return rng.choice([1, "phase", None, [], 2.5])
    item = {}
    for key in ("start_s", "end_s"):
        roll = rng.random()
        if roll < 0.9:
            item[key] = _garbage_time(rng)
        elif roll < 0.95:
            item[key[:-2]] = _garbage_time(rng)
    if rng.random() < 0.95:
        item["text"] = rng.choice(_TEXTS)
    if rng.random() < 0.3:
        item["action"] = rng.choice(["Raise Hand", "", "nod", 3, None, "  Big   Wave "])
    return item


def _garbage_words(rng: random.Random, duration: float):
    if rng.random() < 0.3:
        return None
    words, t = [], rng.uniform(-0.5, 0.5)
    for _ in range(rng.randint(0, 30)):
        start = t + rng.uniform(-0.05, 0.3)  # sometimes overlapping the previous word
        end = start + rng.uniform(-0.02, 0.8)
        word = {"word": "w", "start_s": round(start, 3), "end_s": round(end, 3)}
        if rng.random() < 0.1:
            word["aligned"] = False
        if rng.random() < 0.05:
            word["start_s"] = rng.choice(_BAD_TIMES)
        words.append(word if rng.random() < 0.97 else "junk")
        t = end
    return words


def _garbage_rules(rng: random.Random) -> RepairRules:
    if rng.random() < 0.5:
        return DEFAULT
    return RepairRules(
        min_phase_s=rng.choice([0.0, 0.04, 0.5, 1.3]), max_phases=rng.choice([1, 3, 8]),
        fps=rng.choice([24.0, 25.0, 29.97, 30.0, 60.0, 1000.0]), word_snap_s=rng.choice([0.0, 0.01, 0.2, 0.5]),
        max_base_chars=rng.choice([5, 300]), max_text_chars=rng.choice([3, 120]),
    )


def test_random_garbage_always_yields_a_valid_caption_or_a_known_error():
    rng = random.Random(20240531)
    outcomes = {"ok": 0}
    for case in range(500):
        duration = round(rng.uniform(0.3, 12.0), rng.choice([1, 2, 3, 6]))
        n = rng.choice([0, 1, 2, 3, 5, 8, 12, 50])
        phases = [_garbage_phase(rng) for _ in range(n)] if rng.random() < 0.95 else rng.choice([None, "x", {}])
        obj = {"base": rng.choice(["A person talks.", "Eine Frau\x07 spricht " * 20] * 4 + ["  ", None])}
        if phases is not None:
            obj["phases"] = phases
        words, rules = _garbage_words(rng, duration), _garbage_rules(rng)
        try:
            caption, notes = repair_caption(copy.deepcopy(obj), duration, words, rules)
        except CaptionError as err:
            assert err.reason in CAPTION_ERROR_REASONS, (case, err)
            outcomes[err.reason] = outcomes.get(err.reason, 0) + 1
            continue
        outcomes["ok"] += 1
        assert all(isinstance(n, str) and n for n in notes)
        assert_valid(caption, duration, rules)
        assert_idempotent(caption, duration, words, rules)
        assert repair_caption(copy.deepcopy(obj), duration, words, rules) == (caption, notes)  # deterministic
    # The generator exercises both outcomes substantially.
    assert outcomes["ok"] > 200 and outcomes.get("no_phases", 0) > 20 and outcomes.get("no_base", 0) > 20, outcomes


def test_random_replies_parse_or_fail_with_a_known_reason():
    rng = random.Random(5)
    pieces = ['{"base": "x", "phases": [', '{"start_s": 0, "end_s": 1, "text": "a"}', "]}", ",", "```json\n", "```",
              "Sure!", "[", "]", "{", "}", '"', "\n", "null", "1.5"]
    for _ in range(500):
        raw = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        try:
            caption, _ = caption_from_raw(raw, 3.0)
        except CaptionError as err:
            assert err.reason in CAPTION_ERROR_REASONS, (raw, err)
        else:
            assert_valid(caption, 3.0)


def _dense_words(rng: random.Random) -> list[dict]:
    """Back-to-back words, some touching, some a sub-frame gap apart, times at ms or µs precision."""
    words, t = [], rng.uniform(0.0, 0.3)
    while t < 12.0:
        start = t + rng.choice([0.0, 0.0, rng.uniform(0.0, 0.03), rng.uniform(0.03, 0.3)])
        end = start + rng.choice([rng.uniform(0.002, 0.05), rng.uniform(0.05, 0.7)])
        words.append({"word": "w", "start_s": round(start, rng.choice([2, 3, 6])), "end_s": round(end, rng.choice([2, 3, 6]))})
        t = end
    return words


def test_random_touching_phases_over_dense_words_stay_valid_and_in_place():
    # Touching phases share every inner boundary, so any non-monotone snapping would show up as an
    # overlap or a reversed phase. A boundary moves at most half a frame (to its frame), then the
    # word snap, then one frame (to the frame just outside the word).
    rng = random.Random(11)
    for _ in range(500):
        rules = RepairRules(fps=rng.choice([12.5, 24.0, 25.0, 29.97, 30.0, 60.0]), word_snap_s=rng.choice([0.0, 0.05, 0.2, 0.5]),
                            min_phase_s=rng.choice([0.0, 0.1, 0.5]), max_phases=50)
        duration = round(rng.uniform(1.0, 12.0), rng.choice([2, 3, 6]))
        cuts = sorted(rng.uniform(0.0, duration) for _ in range(rng.randint(1, 30)))
        bounds = [0.0, *cuts, duration]
        phases = [_phase(a, b, f"p{i}") for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
        words = _dense_words(rng)
        try:
            caption, _ = _repair(phases, duration=duration, words=words, rules=rules)
        except CaptionError as err:
            assert err.reason == "no_phases"
            continue
        assert_valid(caption, duration, rules)
        assert_idempotent(caption, duration, words, rules)
        reach = rules.word_snap_s + 1.5 / rules.fps + 1e-3
        for p in caption["phases"]:
            i = int(p["text"][1:])
            assert abs(p["start_s"] - bounds[i]) <= reach and abs(p["end_s"] - bounds[i + 1]) <= reach
