"""Word post-processing (annotate.words) on hand-made whisperx-shaped inputs."""

from __future__ import annotations

import math

from annotate.words import clip_words, merge_punctuation, segment_words, speech_ratio, transcript_block
from dataset.annotation import validate_annotation


def _doc(transcript: dict, duration: float = 2.0) -> dict:
    frames = int(round(duration * 25))
    return {
        "schema_version": 1, "key": "0123456789abcdef_0000",
        "source": {"uri": "x.mp4", "sha256": "0" * 64, "start_s": 0.0, "end_s": duration},
        "video": {"fps": 25.0, "num_frames": frames, "width": 64, "height": 64, "duration_s": duration},
        "audio": {"sample_rate": 16000, "num_samples": frames * 640, "speech_ratio": 0.5},
        "face": None, "transcript": transcript, "caption": None,
        "provenance": {"pipeline_version": "t", "config_hash": "h", "models": {}},
    }


def _w(word, start=None, end=None, score=None):
    out = {"word": word}
    out.update({k: v for k, v in (("start", start), ("end", end), ("score", score)) if v is not None})
    return out


def test_aligned_words_are_rounded_and_kept():
    seg = {"start": 0.1, "end": 1.0, "text": " hello there", "words": [_w("hello", 0.12345, 0.4, 0.91), _w("there", 0.5, 0.9, 0.8)]}
    block = transcript_block([seg], "en", 2.0)
    assert block["text"] == "hello there"
    assert block["words"] == [
        {"word": "hello", "start_s": 0.123, "end_s": 0.4, "score": 0.91, "aligned": True},
        {"word": "there", "start_s": 0.5, "end_s": 0.9, "score": 0.8, "aligned": True},
    ]
    assert validate_annotation(_doc(block)) == []


def test_unaligned_words_keep_their_segment_timing():
    seg = {"start": 0.5, "end": 1.5, "text": "a 42 b", "words": [_w("a", 0.5, 0.6, 0.9), _w("42"), _w("b", 1.0, 1.2, float("nan"))]}
    words = transcript_block([seg], "en", 2.0)["words"]
    assert [(w["word"], w["aligned"]) for w in words] == [("a", True), ("42", False), ("b", True)]
    assert (words[1]["start_s"], words[1]["end_s"], words[1]["score"]) == (0.5, 1.5, None)
    assert words[2]["score"] is None  # NaN score: unknown, not a number
    assert validate_annotation(_doc({"language": "en", "text": "a 42 b", "words": words})) == []


def test_segment_the_aligner_gave_up_on_is_split_from_its_text():
    # whisperx returns `words: []` for a segment it cannot align ("backtrack failed")
    words = segment_words({"start": 1.0, "end": 2.0, "text": " foo bar ", "words": []})
    assert [(w["word"], w["start"], w["end"], w["aligned"]) for w in words] == [
        ("foo", 1.0, 2.0, False), ("bar", 1.0, 2.0, False)]
    assert [w["word"] for w in segment_words({"start": 0, "end": 1, "text": "你好", "words": []}, "zh")] == ["你", "好"]


def test_clamping_into_the_clip_and_monotonic_order():
    raw = [
        {"word": "early", "start": -0.3, "end": 0.2, "score": 1.4, "aligned": True},
        {"word": "overlap", "start": 0.1, "end": 0.5, "score": 0.5, "aligned": True},  # starts before "early" ends
        {"word": "back", "start": 0.4, "end": 0.3, "score": 0.5, "aligned": True},  # reversed times
    ]
    words = clip_words(raw, duration=2.0)
    assert [w["start_s"] for w in words] == [0.0, 0.2, 0.5]
    assert all(w["end_s"] >= w["start_s"] for w in words)
    assert words[0]["score"] == 1.0
    assert validate_annotation(_doc({"language": "en", "text": "", "words": words})) == []


def test_words_crossing_the_clip_end():
    raw = [
        {"word": "inside", "start": 1.0, "end": 1.5, "score": 0.9, "aligned": True},
        {"word": "crossing", "start": 1.8, "end": 2.4, "score": 0.9, "aligned": True},
        {"word": "after", "start": 2.5, "end": 2.9, "score": 0.9, "aligned": True},
        {"word": "seg", "start": 1.9, "end": 3.0, "score": None, "aligned": False},
    ]
    words = clip_words(raw, duration=2.0)
    assert [(w["word"], w["start_s"], w["end_s"]) for w in words] == [
        ("inside", 1.0, 1.5), ("crossing", 1.8, 2.0), ("seg", 1.9, 2.0)]
    block = transcript_block([{"start": 1.0, "end": 3.0, "text": "x", "words": [_w("inside", 1.0, 1.5, 0.9), _w("after", 2.2, 2.5, 0.9)]}], "en", 2.0)
    assert block["text"] == "inside"  # the text never names a word the clip lost


def test_offset_makes_times_clip_relative():
    words = clip_words([{"word": "w", "start": 10.5, "end": 10.8, "score": 0.5, "aligned": True}], duration=2.0, offset=10.0)
    assert (words[0]["start_s"], words[0]["end_s"]) == (0.5, 0.8)


def test_merging_punctuation_tokens():
    raw = [
        {"word": "-", "start": 0.0, "end": 0.1, "score": None, "aligned": False},
        {"word": "hello", "start": 0.1, "end": 0.4, "score": 0.9, "aligned": True},
        {"word": "...", "start": 0.4, "end": 0.6, "score": 0.9, "aligned": True},
        {"word": "♪", "start": 0.0, "end": 2.0, "score": None, "aligned": False},
        {"word": "world", "start": 0.7, "end": 0.9, "score": 0.9, "aligned": True},
    ]
    merged = merge_punctuation(raw)
    assert [w["word"] for w in merged] == ["-hello...♪", "world"]
    assert merged[0]["end"] == 0.6  # aligned punctuation extends the aligned word; unaligned does not


def test_empty_transcripts():
    assert transcript_block([], "en", 2.0) == {"language": "en", "text": "", "words": []}
    assert transcript_block([{"start": 0.0, "end": 1.0, "text": "  ", "words": []}], "en", 2.0)["words"] == []
    assert merge_punctuation([]) == [] and clip_words([], 2.0) == []
    assert validate_annotation(_doc(transcript_block([], "en", 2.0))) == []


def test_words_without_any_time_are_dropped_not_invented():
    seg = {"start": float("nan"), "end": None, "text": "x", "words": [_w("x")]}
    assert segment_words(seg) == []


def test_speech_ratio_is_the_clamped_union():
    assert speech_ratio([], 4.0) == 0.0
    assert speech_ratio([(0.0, 1.0), (0.5, 2.0)], 4.0) == 0.5  # overlaps count once
    assert speech_ratio([(-1.0, 1.0), (3.0, 9.0)], 4.0) == 0.5  # clamped to the clip
    assert speech_ratio([(0.0, 1.0)], 0.0) == 0.0
    assert math.isclose(speech_ratio([(0.0, 10.0)], 4.0), 1.0)
