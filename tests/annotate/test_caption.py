"""The caption stage: prompt + frames in, schema-valid repaired captions out, retries, failure rows."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from annotate.caption import CaptionStage, clip_seed
from annotate.caption_schema import CaptionLimits, caption_schema, token_budget
from annotate.config import CaptionConfig
from annotate.vlm_config import VlmConfig
from annotate.frames import sample_frames, sample_times
from annotate.prompts import PromptTemplate, format_words
from dataset.annotation import validate_annotation

from .conftest import assert_follows_schema, write_toy_clips

SMALL = dict(max_phases=4, max_base_chars=80, max_text_chars=40, max_frames=6, frame_size=96)


def with_caption(doc, caption):
    return {**doc, "caption": caption}


def test_frames_are_sampled_at_the_rate_with_their_times(tmp_path):
    batch = write_toy_clips(tmp_path, 1, seconds=3.0)
    frames = sample_frames(batch["mp4"][0], sample_fps=2.0, max_frames=16, max_side=48)
    assert [round(t, 2) for t, _ in frames] == [0.24, 0.76, 1.24, 1.76, 2.24, 2.76]  # interval middles, on frames
    assert all(image.shape == (48, 48, 3) and image.dtype == np.uint8 for _, image in frames)
    assert sample_times(75, 25.0, 2.0, 3) == [12, 38, 62]  # capped: spread evenly
    assert sample_times(0, 25.0, 2.0, 3) == []


def test_prompt_has_frame_times_words_face_and_is_versioned():
    prompt = PromptTemplate.load("configs/annotate/prompts/phase_caption_v1.yaml")
    image = np.zeros((8, 8, 3), np.uint8)
    messages = prompt.messages(frames=[(0.28, image), (0.76, image)], duration_s=3.0, sample_fps=2.0,
                               words=[{"word": "hello", "start_s": 0.1, "end_s": 0.4}], face_bbox=[0.3, 0.2, 0.7, 0.6],
                               min_phase_s=0.5, max_phases=4, actions=("nod", "wave"))
    system, user = messages
    assert system["role"] == "system" and "JSON" in system["content"][0]["text"]
    kinds = [item["type"] for item in user["content"]]
    assert kinds == ["text", "text", "image", "text", "image", "text"]
    texts = [item["text"] for item in user["content"] if item["type"] == "text"]
    assert texts[1] == "t=0.28s" and texts[2] == "t=0.76s"
    assert "3.00 seconds" in texts[0] and "hello [0.10-0.40]" in texts[-1]
    assert "(0.30, 0.20, 0.70, 0.60)" in texts[-1] and "nod, wave" in texts[-1] and "at most 4 phases" in texts[-1]
    assert prompt.provenance["name"] == "phase_caption" and prompt.provenance["version"] == 1
    assert len(prompt.provenance["sha256"]) == 64
    assert format_words([]) == "(no speech)"


def test_broken_prompt_templates_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="caption.prompt: nope.yaml not found"):
        PromptTemplate.load("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\nsystem: s\n")
    with pytest.raises(ValueError, match="missing fields \\['before_frames', 'frame', 'after_frames'\\]"):
        PromptTemplate.load(str(bad))
    bad.write_text("name: x\nversion: 1\nsystem: s\nbefore_frames: '{nope}'\nframe: f\nafter_frames: a\n")
    with pytest.raises(ValueError, match="unknown placeholder 'nope'"):
        PromptTemplate.load(str(bad)).messages(frames=[], duration_s=1, sample_fps=1, words=[], face_bbox=None,
                                               min_phase_s=0.5, max_phases=2)


def _maximal_caption(limits: CaptionLimits, duration: float) -> str:
    """The longest JSON the schema admits: every string at its limit in 4-byte characters."""
    longest_time = float(f"{int(duration)}.999999") if duration >= 1 else 0.999999
    phase = {"start_s": longest_time, "end_s": longest_time, "text": "😀" * limits.max_text_chars,
             "action": "a" * limits.max_label_chars}
    doc = {"base": "😀" * limits.max_base_chars, "phases": [phase] * limits.max_phases}
    return json.dumps(doc, ensure_ascii=False, separators=(", ", ": "))


@pytest.mark.parametrize("limits", [CaptionLimits(), CaptionLimits(max_phases=2, max_base_chars=10, max_text_chars=5)])
def test_token_budget_covers_the_longest_schema_valid_answer(limits):
    duration = 9999.5
    text = _maximal_caption(limits, duration)
    jsonschema.validate(json.loads(text), caption_schema(duration, limits))
    assert len(text.encode()) < token_budget(limits)  # every token emits at least one byte


def test_schema_bounds_times_phases_and_labels():
    schema = caption_schema(3.04, CaptionLimits(max_phases=2, actions=("nod", "wave")))
    phase = schema["properties"]["phases"]["items"]["properties"]
    assert phase["start_s"]["maximum"] == 4 and schema["properties"]["phases"]["maxItems"] == 2
    assert phase["action"]["enum"] == ["nod", "wave"]
    with pytest.raises(ValueError, match="caption.actions must be lowercase snake_case"):
        CaptionLimits(actions=("Raise Hand",))
    with pytest.raises(ValueError, match="clip duration must be in"):
        caption_schema(0.0, CaptionLimits())


def test_local_backend_captions_every_clip_schema_valid(tiny_vlm_dir, tmp_path):
    """The tiny random VLM through the real path: every clip ends with a valid caption and provenance."""
    batch = write_toy_clips(tmp_path, 6)
    vlm = VlmConfig(model=str(tiny_vlm_dir), batch_size=4)
    stage = CaptionStage(CaptionConfig(backend="local", vlm=vlm, temperature=1.0, **SMALL))
    out = stage(batch)
    assert out["key"] == batch["key"]
    assert out["status"] == ["ok"] * 6, list(zip(out["reason"], out["detail"]))
    for doc, caption, attempts in zip(batch["annotation"], out["caption"], out["attempts"]):
        assert validate_annotation(with_caption(doc, caption)) == []
        assert 1 <= len(caption["phases"]) <= 4 and len(caption["base"]) <= 80
        for attempt in attempts:  # constrained decoding: every raw answer follows the schema
            assert_follows_schema(attempt["raw"], caption_schema(doc["video"]["duration_s"], stage.limits))
    provenance = stage.provenance
    assert provenance["model"] == str(tiny_vlm_dir) and provenance["prompt"]["version"] == 1
    assert provenance["sampling"]["max_new_tokens"] == token_budget(stage.limits)
    again = CaptionStage(CaptionConfig(backend="local", vlm=vlm, temperature=1.0, **SMALL))(batch)
    assert again["caption"] == out["caption"]  # seeded per clip batch and attempt: reruns are identical


class ScriptedBackend:
    """Answers from a script per clip key (to drive the stage's retry and failure logic)."""

    model_id = "scripted"

    def __init__(self, script: dict[str, list]) -> None:
        self.script, self.calls = script, []

    def generate(self, requests, schemas, sampling, request_ids=None, seeds=None):
        self.calls.append((list(request_ids), list(seeds)))
        out = []
        for key in request_ids:
            answer = self.script[key].pop(0)
            out.append(answer)
        return out


def test_retries_repair_and_failure_rows(tmp_path):
    batch = write_toy_clips(tmp_path, 3)
    k0, k1, k2 = batch["key"]
    good = json.dumps({"base": "A person talks.", "phases": [{"start_s": 2.0, "end_s": 0.4, "text": "nods", "action": "nod"}]})
    from annotate.vlm_server import VlmRequestError

    backend = ScriptedBackend({
        k0: ["not json at all", good],  # malformed first, then valid (times swapped: repaired)
        k1: [good],
        k2: [VlmRequestError("vlm_http_error", "http://x/v1: HTTP 500: boom"), '{"base": "x", "phases": []}',
             '{"base": "", "phases": []}'],
    })
    stage = CaptionStage(CaptionConfig(backend="server", **SMALL), backend=backend)
    out = stage(batch)
    assert out["status"] == ["ok", "ok", "failed"]
    words = batch["annotation"][0]["transcript"]["words"]
    inside = next(w for w in words if w["start_s"] < 2.0 < w["end_s"])  # 2.0 s falls inside a word: moved to its edge
    end = min((inside["start_s"], inside["end_s"]), key=lambda edge: abs(edge - 2.0))
    assert out["caption"][0]["phases"] == [{"start_s": 0.4, "end_s": round(round(end * 25) / 25, 3), "text": "nods", "label": "nod"}]
    assert any("swapped" in note for note in out["repairs"][0])
    assert [list(a) for a in out["attempts"][0]] == [["raw"], ["raw"]]
    assert out["reason"][2] == "caption_no_base" and out["detail"][2].startswith("after 3 attempt(s): ")
    assert out["attempts"][2][0] == {"error": "vlm_http_error"} and out["attempts"][2][1]["raw"] == '{"base": "x", "phases": []}'
    # Retries carry only the clips still pending, each with a fresh seed.
    assert [ids for ids, _ in backend.calls] == [[k0, k1, k2], [k0, k2], [k2]]
    assert backend.calls[1][1] == [clip_seed(0, k0, 1), clip_seed(0, k2, 1)]
    assert clip_seed(0, k0, 1) != clip_seed(0, k0, 0)


def test_unreadable_clip_is_a_failed_row_and_the_rest_go_on(tmp_path):
    batch = write_toy_clips(tmp_path, 2)
    (tmp_path / f"{batch['key'][0]}.mp4").write_bytes(b"not a video")
    backend = ScriptedBackend({batch["key"][1]: [json.dumps({"base": "A person.", "phases": [{"start_s": 0, "end_s": 1, "text": "waves"}]})]})
    out = CaptionStage(CaptionConfig(backend="server", **SMALL), backend=backend)(batch)
    assert out["status"] == ["failed", "ok"]
    assert out["reason"][0] == "caption_input_error" and batch["mp4"][0] in out["detail"][0]


def test_caption_config_errors_name_the_key():
    with pytest.raises(ValueError, match="caption.backend must be one of none, truth, local, server, got 'vllm'"):
        CaptionConfig(backend="vllm")
    with pytest.raises(ValueError, match="add caption.backend=truth"):
        CaptionConfig(truth="x.jsonl")
    with pytest.raises(ValueError, match="caption.max_phases must be in \\[1, 8\\]"):
        CaptionConfig(max_phases=9)
    with pytest.raises(ValueError, match="vlm.guided must be one of response_format, guided_json, none, got 'xml'"):
        VlmConfig(guided="xml")


@pytest.mark.parametrize("limits", [CaptionLimits(), CaptionLimits(max_base_chars=1000, max_text_chars=129)])
def test_default_and_long_limits_compile_in_xgrammar(limits):
    """Long string bounds are split into repeats of <= 128 (xgrammar 0.2.8 rejects larger ones)."""
    xgr = pytest.importorskip("xgrammar")
    schema = caption_schema(12.0, limits)
    info = xgr.TokenizerInfo([chr(c) for c in range(32, 127)] + ["</s>"], stop_token_ids=[95])
    compiled = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)
    matcher = xgr.GrammarMatcher(compiled)
    text = json.dumps({"base": "b" * limits.max_base_chars, "phases": [{"start_s": 0, "end_s": 1.5, "text": "t" * limits.max_text_chars}]},
                      separators=(", ", ": "))
    assert matcher.accept_string(text)  # the longest strings are accepted ...
    assert matcher.accept_token(95) and matcher.is_terminated()  # ... and the JSON is complete
    too_long = xgr.GrammarMatcher(compiled)
    assert not too_long.accept_string('{"base": "' + "b" * (limits.max_base_chars + 1))


def test_caption_setup_is_checked_before_a_run(tmp_path):
    from annotate.caption import check_caption_setup

    check_caption_setup(CaptionConfig())  # no captioner: nothing to check
    check_caption_setup(CaptionConfig(backend="local"))  # hub ids (the default) resolve later
    with pytest.raises(FileNotFoundError, match=f"caption.vlm.model: {tmp_path}/nope is not a model folder"):
        check_caption_setup(CaptionConfig(backend="local", vlm=VlmConfig(model=str(tmp_path / "nope"))))
    with pytest.raises(FileNotFoundError, match="caption.prompt: missing.yaml not found"):
        check_caption_setup(CaptionConfig(backend="server", prompt="missing.yaml"))
