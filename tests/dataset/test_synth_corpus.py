"""End-to-end: `actavatar synth` writes decodable raw videos whose truth.jsonl is exact.

One small corpus (2 videos of ~15 s at 384x216 / 320x180, one of them variable-frame-rate) is
generated once per module; the tests read it back with PyAV, the face detector and detect_actions.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from dataset.media import encode_mp4
from dataset.synth import detect_actions, rig
from dataset.synth.cli import main
from dataset.synth.truth import fade_frames, frame_labels, read_truth

ARGS = ["--videos", "2", "--seed", "11", "--min-duration", "15", "--max-duration", "16",
        "--resolutions", "384x216,320x180", "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["--out", str(out), "--workers", "2", *ARGS]) == 0
    return out


@pytest.fixture(scope="module")
def decoded(corpus: Path) -> dict[str, tuple[np.ndarray, list[float], np.ndarray, int]]:
    """video_id -> (frames, frame times, audio samples, audio rate)."""
    out = {}
    for record in read_truth(corpus):
        with av.open(str(corpus / record["file"])) as container:
            frames, times = [], []
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time))
            container.seek(0)
            audio = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
            rate = container.streams.audio[0].sample_rate
        out[record["video_id"]] = (np.stack(frames), times, np.concatenate(audio), rate)
    return out


def test_summary_and_layout(corpus: Path) -> None:
    records = read_truth(corpus)
    assert [r["video_id"] for r in records] == ["synth_00000", "synth_00001"]
    assert sorted(p.name for p in (corpus / "raw").iterdir()) == ["synth_00000.mp4", "synth_00001.mp4"]
    assert [(r["width"], r["height"]) for r in records] == [(384, 216), (320, 180)]
    assert [r["vfr"] for r in records] == [False, True] and records[1]["sample_rate"] == 44100


def test_every_file_decodes_with_the_recorded_format(corpus: Path, decoded: dict) -> None:
    for record in read_truth(corpus):
        frames, times, audio, rate = decoded[record["video_id"]]
        assert frames.shape == (record["num_frames"], record["height"], record["width"], 3)
        assert rate == record["sample_rate"]
        # AAC pads its last frame (1024 samples); nothing else may differ.
        assert 0 <= audio.size - record["num_samples"] < 2048
        expected = record.get("frame_times_s") or [i / record["fps"] for i in range(record["num_frames"])]
        assert np.allclose(times, expected, atol=1e-3)
        if record["vfr"]:
            assert len(np.unique(np.round(np.diff(times), 4))) > 1


def test_shots_add_up_and_phases_lie_inside(corpus: Path) -> None:
    kinds, transitions = set(), set()
    for record in read_truth(corpus):
        shots = record["shots"]
        assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == record["num_frames"]
        assert shots[-1]["end_s"] == pytest.approx(record["duration_s"], abs=1e-6)
        assert sum(s["end_s"] - s["start_s"] for s in shots) == pytest.approx(record["duration_s"], abs=1e-5)
        for a, b in zip(shots, shots[1:]):
            assert a["end_frame"] == b["start_frame"] and a["end_s"] == b["start_s"]
        assert [(b["frame"], b["type"]) for b in record["boundaries"]] == [(s["start_frame"], s["transition"]) for s in shots[1:]]
        for shot in shots:
            kinds.add(shot["kind"])
            transitions.add(shot["transition"])
            assert shot["avatar_present"] == (shot["kind"] != "scene")
            assert shot["face_count"] == {"scene": 0, "two_avatars": 2}.get(shot["kind"], 1)
            for phase in shot["phases"]:
                assert shot["start_frame"] <= phase["start_frame"] < phase["end_frame"] <= shot["end_frame"]
                assert shot["start_s"] <= phase["start_s"] < phase["end_s"] <= shot["end_s"]
                assert phase["end_s"] - phase["start_s"] >= 0.5 - 1e-6
                assert phase["text"] == rig.ACTIONS[phase["label"]]
            if shot["speech"] is not None:
                words = shot["speech"]["words"]
                assert words and shot["speech"]["text"]
                assert all(shot["start_s"] < w["start_s"] < w["end_s"] < shot["end_s"] for w in words)
                assert all(a["end_s"] < b["start_s"] for a, b in zip(words, words[1:]))
    assert kinds == {"talk", "scene", "two_avatars", "silent", "music"}
    assert {"cut", "fade"} <= transitions


def test_audio_matches_the_truth(corpus: Path, decoded: dict) -> None:
    for record in read_truth(corpus):
        audio, rate = decoded[record["video_id"]][2:]

        def rms(a: float, b: float) -> float:
            seg = audio[int(a * rate):int(b * rate)]
            return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))

        for shot in record["shots"]:
            inner = (shot["start_s"] + 0.5, shot["end_s"] - 0.5)
            if shot["audio"] == "silence":
                assert rms(*inner) < 1e-3
            if shot["audio"] == "music":
                assert rms(*inner) > 0.05
            if shot["speech"] is not None:
                words = shot["speech"]["words"]
                inside = np.mean([rms(w["start_s"], w["end_s"]) for w in words])
                gaps = [rms(a["end_s"] + 0.01, b["start_s"] - 0.01) for a, b in zip(words, words[1:])
                        if b["start_s"] - a["end_s"] > 0.05]
                assert inside > 0.03 and max(gaps) < 0.25 * inside  # words where the truth says, pauses between


def test_same_seed_gives_identical_files(corpus: Path, tmp_path: Path) -> None:
    # Fewer videos and one worker: each video depends only on (seed, index), not on the run.
    assert main(["--out", str(tmp_path), "--workers", "1", *ARGS[2:], "--videos", "1"]) == 0
    assert (tmp_path / "raw" / "synth_00000.mp4").read_bytes() == (corpus / "raw" / "synth_00000.mp4").read_bytes()
    first_line = (corpus / "truth.jsonl").read_text().splitlines()[0]
    assert (tmp_path / "truth.jsonl").read_text() == first_line + "\n"


def test_faces_found_where_the_truth_says(corpus: Path, decoded: dict) -> None:
    from annotate.face_detector import FaceDetector, FaceModelError, ensure_face_model

    try:
        model = ensure_face_model()
    except FaceModelError as err:
        pytest.skip(str(err))
    with FaceDetector(model) as detector:
        for record in read_truth(corpus):
            frames = decoded[record["video_id"]][0]
            faded = fade_frames(record)
            for shot in record["shots"]:
                picks = [i for i in np.linspace(shot["start_frame"], shot["end_frame"] - 1, 8).astype(int) if i not in faded]
                counts = [len(detector.detect(frames[i])) for i in picks]
                assert counts == [shot["face_count"]] * len(picks), (record["video_id"], shot["kind"], counts)


def _accuracy(pred: list[str], truth: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))


def test_detect_actions_agrees_with_truth(corpus: Path, decoded: dict) -> None:
    for record in read_truth(corpus):
        frames = decoded[record["video_id"]][0]
        truth = frame_labels(record)
        assert _accuracy(detect_actions(frames, fps=record["fps"]), truth) >= 0.95
        # Re-encoded at two thirds of the size with stronger compression: still readable.
        h, w = record["height"] * 2 // 3 // 2 * 2, record["width"] * 2 // 3 // 2 * 2
        small = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        with av.open(io.BytesIO(encode_mp4(small, fps=25, crf=30))) as container:
            again = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        assert again.shape[:3] == (record["num_frames"], h, w)
        assert _accuracy(detect_actions(again, fps=record["fps"]), truth) >= 0.95


def test_cli_errors(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(corpus), "--videos", "1", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--videos", "-1"]) == 2
    assert "videos must be >= 1, got -1" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--resolutions", "640by360"]) == 2
    assert "640by360" in capsys.readouterr().err
    assert main(["--videos", "1"]) == 2
    assert "--out" in capsys.readouterr().err


def test_truth_lines_are_plain_json(corpus: Path) -> None:
    for line in (corpus / "truth.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert set(record) >= {"video_id", "file", "fps", "num_frames", "shots", "boundaries", "duration_s"}
        assert set(frame_labels(record)) <= set(rig.ACTIONS) | {rig.NO_AVATAR}
