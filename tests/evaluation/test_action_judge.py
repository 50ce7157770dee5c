"""The VLM judge of phase-level action accuracy: scoring math, prompts, the tiny VLM end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.action_judge import (JUDGE_SCHEMA, ActionJudge, JudgeConfig, judged_timeline, parse_judgement,
                                     score_judgements, span_frames)
from evaluation.cli import main

FPS = 25.0
PHASES = [{"start_s": 0.0, "end_s": 1.0, "label": "raise_hand", "text": "raises the right hand"},
          {"start_s": 1.0, "end_s": 1.6, "label": "nod", "text": "nods"},
          {"start_s": 2.0, "end_s": 3.0, "label": "raise_hand", "text": "raises the right hand again"}]
SIZES = [25, 15, 25]


def test_scores_follow_the_answer_matrix():
    yes = np.array([[1, 0, 1],   # raise_hand seen in its span and in phase 3's (same label: no leak)
                    [1, 0, 0],   # nod not seen in its span, seen in phase 1's span (leak, wrong place)
                    [0, 0, 1]], dtype=bool)
    clip = score_judgements(yes, PHASES, SIZES)
    assert [p.performed for p in clip.phases] == [True, False, True]
    assert [p.leaked for p in clip.phases] == [False, True, False]
    assert clip.phase_accuracy == pytest.approx(2 / 3)
    # spans with a yes: 1 (own label + nod), 3 (own label) -> all frames precise: 50 / 50
    assert (clip.precise_frames, clip.labelled_frames) == (50, 50)
    wrong_place = np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=bool)  # raise_hand only in the nod span
    clip = score_judgements(wrong_place, PHASES, SIZES)
    assert clip.phase_accuracy == 0.0 and (clip.precise_frames, clip.labelled_frames) == (0, 15)
    assert score_judgements(np.zeros((3, 3), bool), PHASES, SIZES).temporal_precision != 0.5  # nan: nothing seen


def test_timeline_and_answer_parsing():
    yes = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    timeline = judged_timeline(yes, PHASES, 80, FPS)
    assert timeline[:25] == ["raise_hand"] * 25 and timeline[25:40] == ["nod"] * 15
    assert timeline[40:50] == ["none"] * 10 and timeline[50:75] == ["none"] * 25  # gap, then a "no" span
    assert parse_judgement('{"performed": true}') is True and parse_judgement('{"performed": false}') is False
    for bad in ('{"performed": "yes"}', "yes", '{"other": true}', "[]"):
        with pytest.raises(ValueError, match="judge answer is not"):
            parse_judgement(bad)


def test_span_frames_stay_inside_the_span_and_are_downscaled():
    frames = np.zeros((100, 64, 96, 3), np.uint8)
    cfg = JudgeConfig(sample_fps=4.0, max_frames=3, frame_size=48)
    picked = span_frames(frames, FPS, 1.0, 2.0, cfg)
    assert len(picked) == 3 and all(1.0 <= t < 2.0 for t, _ in picked)
    assert picked[0][1].shape == (32, 48, 3)
    assert span_frames(frames, FPS, 5.0, 6.0, cfg) == []  # beyond the video


class ScriptedBackend:
    model_id = "scripted"

    def __init__(self, answers):
        self.answers, self.requests = answers, []

    def generate(self, requests, schemas, sampling, request_ids=None, seeds=None):
        assert all(s == JUDGE_SCHEMA for s in schemas)
        self.requests += list(zip(request_ids, requests))
        return [self.answers(rid) for rid in request_ids]


def test_judge_asks_every_action_in_every_span():
    backend = ScriptedBackend(lambda rid: json.dumps({"performed": rid in ("judge-0-0", "judge-1-1", "judge-2-0")}))
    judge = ActionJudge(JudgeConfig(max_frames=2), backend=backend)
    clip, timeline = judge(np.zeros((80, 32, 32, 3), np.uint8), FPS, PHASES)
    assert len(backend.requests) == 9
    assert [p.performed for p in clip.phases] == [True, True, False]
    assert [p.leaked for p in clip.phases] == [False, False, False]  # phase 3 seen in phase 1's span: same label
    rid, messages = next(r for r in backend.requests if r[0] == "judge-1-2")
    text = " ".join(item["text"] for item in messages[1]["content"] if item["type"] == "text")
    assert '"nods"' in text and "from 2.00 s to 3.00 s" in text and "t=2." in text
    assert judge.protocol["prompt"]["name"] == "action_judge" and "P x P" in judge.protocol["questions"]
    failing = ActionJudge(JudgeConfig(), backend=ScriptedBackend(lambda rid: RuntimeError("down")))
    with pytest.raises(ValueError, match="judge request failed: down"):
        failing(np.zeros((80, 32, 32, 3), np.uint8), FPS, PHASES)


def test_judge_config_errors():
    with pytest.raises(ValueError, match="judge.backend must be local or server"):
        JudgeConfig(backend="vllm")
    with pytest.raises(ValueError, match="judge.temperature must be >= 0"):
        JudgeConfig(temperature=-1)


@pytest.fixture(scope="module")
def bench(synth_corpus, tmp_path_factory):
    """Two clips of the synthetic benchmark (<key>.mp4 + <key>.json with truth phases)."""
    import shutil

    from evaluation.benchmark import synth_to_benchmark

    full = synth_to_benchmark(synth_corpus, tmp_path_factory.mktemp("bench"))
    small = tmp_path_factory.mktemp("bench2")
    for ann in sorted(full.glob("*.json"))[:2]:
        for path in full.glob(f"{ann.stem}.*"):
            shutil.copy(path, small / path.name)
    return small


def test_eval_cli_with_the_tiny_vlm_judge(bench, tiny_vlm_dir, tmp_path):
    """`actavatar eval --actions vlm` end to end: real frames, prompt, constrained yes/no, report."""
    out = tmp_path / "report"
    assert main(["--generated", f"run={bench}", "--reference", str(bench), "--out", str(out), "--metrics", "actions",
                 "--actions", "vlm", f"judge.vlm.model={tiny_vlm_dir}", "judge.max_frames=2", "judge.frame_size=56"]) == 0
    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]["run"]
    assert 0.0 <= metrics["phase_accuracy"] <= 1.0 and 0.0 <= metrics["exclusive_accuracy"] <= metrics["phase_accuracy"]
    assert report["details"]["run"]["actions"]["num_phases"] >= 2
    protocol = report["protocol"]["actions"]
    assert protocol["detector"] == f"VLM judge (local: {tiny_vlm_dir})" and protocol["prompt"]["version"] == 1
    assert len(list((out / "plots").glob("timeline_run_*.png"))) == 2  # judged per-phase timelines
