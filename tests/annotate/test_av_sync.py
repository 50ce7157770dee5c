"""The AV-sync filter: offset measures on constructed signals and on synthetic talking videos with
injected offsets, realignment, and the stage's verdicts inside `data run`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annotate.av_sync import (SAMPLES_PER_FRAME, AvSyncStage, audio_envelope, correlate_offset, realign,
                              square_crops)
from annotate.config import AvSyncConfig
from dataset.schema import AUDIO_SAMPLE_RATE

OFFSETS = (-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6)


def test_realign_delays_or_advances_by_whole_frames_and_keeps_the_length():
    audio = np.arange(10 * SAMPLES_PER_FRAME, dtype=np.float32)
    late = realign(audio, 2)  # offset > 0: the sound came first, so it is delayed
    assert late.shape == audio.shape and not late[: 2 * SAMPLES_PER_FRAME].any()
    assert np.array_equal(late[2 * SAMPLES_PER_FRAME:], audio[: 8 * SAMPLES_PER_FRAME])
    early = realign(audio, -3)
    assert np.array_equal(early[: 7 * SAMPLES_PER_FRAME], audio[3 * SAMPLES_PER_FRAME:]) and not early[7 * SAMPLES_PER_FRAME:].any()
    assert np.array_equal(realign(audio, 0), audio) and not realign(audio, 99).any()


def test_audio_envelope_is_log_rms_per_frame():
    frames = np.repeat([0.5, 0.1, 0.0], SAMPLES_PER_FRAME).astype(np.float32)
    env = audio_envelope(frames * np.sign(np.sin(np.arange(frames.size) + 0.1)), 4)  # +-level square wave
    assert env == pytest.approx(np.log([0.5 + 1e-4, 0.1 + 1e-4, 1e-4, 1e-4]), abs=1e-6)


@pytest.mark.parametrize("lag", OFFSETS)
def test_correlation_recovers_a_known_lag_with_syncnet_sign(lag):
    rng = np.random.default_rng(lag + 10)
    levels = rng.normal(size=200)
    video = levels[20:120]
    audio = levels[20 - lag:120 - lag]  # audio[t] = video[t - lag]: the audio is `lag` frames late
    found = correlate_offset(video, audio, max_lag=15)
    assert found.offset_frames == -lag  # syncnet_python: negative when the sound comes after the picture
    assert found.confidence > 0.8


@pytest.fixture(scope="module")
def talking_videos(tmp_path_factory) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two 9 s synthetic talking videos (mechanism profile: 25 fps, 16 kHz, one speaking puppet),
    decoded: (frames, audio) with audio and mouth exactly in sync by construction."""
    from dataset.media import decode_audio, decode_mp4
    from dataset.synth.corpus import SynthConfig, generate_corpus

    out = tmp_path_factory.mktemp("sync_synth")
    generate_corpus(SynthConfig(out=str(out), videos=2, seed=3, min_duration=9, max_duration=9, resolutions="320x180",
                                workers=1, profile="mechanism"), progress=False)
    videos = []
    for path in sorted((out / "raw").glob("*.mp4")):
        data = path.read_bytes()
        audio, _ = decode_audio(data, AUDIO_SAMPLE_RATE)
        videos.append((decode_mp4(data), audio.reshape(-1)))
    return videos


@pytest.fixture(scope="module")
def mouth_stage():
    stage = AvSyncStage(AvSyncConfig(action="measure"))
    yield stage
    stage.close()


def test_injected_offsets_are_found_within_one_frame(talking_videos, mouth_stage):
    from annotate.av_sync import mouth_openness

    # video 0 shows the face photo as it is, video 1 the dark identity (rig.FACE_TINTS[1]), where the
    # teeth are brighter than the skin: the contrast measure finds its offsets too, with less confidence
    for (frames, audio), least_confidence in zip(talking_videos, (mouth_stage.threshold, 0.45), strict=True):
        base, _ = mouth_stage.measure(frames, audio, None)
        assert base is not None and abs(base.offset_frames) <= 1, base
        mouth = mouth_openness(frames, mouth_stage.detector)  # what `measure` computes, once per video
        for lag in OFFSETS:
            # Audio delayed by `lag` frames reads -lag.
            found = correlate_offset(mouth, audio_envelope(realign(audio, lag), len(frames)), mouth_stage.cfg.max_lag_frames)
            assert abs(found.offset_frames + lag - base.offset_frames) <= 1, (lag, found.offset_frames)
            assert found.confidence >= least_confidence, (lag, found.confidence)


def test_another_clips_audio_is_inconclusive(talking_videos, mouth_stage):
    (frames_a, _), (_, audio_b) = talking_videos
    verdict = mouth_stage.check(frames_a, audio_b[: len(frames_a) * SAMPLES_PER_FRAME], None)
    assert verdict["status"] == "ok" and verdict["shifted_frames"] == 0 and verdict["audio"] is None
    assert verdict["confidence"] < mouth_stage.threshold and verdict["detail"].startswith("inconclusive")


def test_verdicts_shift_reject_or_measure(talking_videos):
    frames, audio = talking_videos[0]
    late = realign(audio, 4)  # the audio arrives 4 frames after the picture
    with AvSyncStage(AvSyncConfig()) as stage:
        shifted = stage.check(frames, late, None)
        assert shifted["status"] == "ok" and shifted["offset_frames"] in (-5, -4, -3)
        assert shifted["shifted_frames"] == shifted["offset_frames"] and "audio realigned" in shifted["detail"]
        again, _ = stage.measure(frames, shifted["audio"], None)
        assert abs(again.offset_frames) <= 1
    with AvSyncStage(AvSyncConfig(action="reject")) as stage:
        rejected = stage.check(frames, late, None)
        assert rejected["status"] == "rejected" and rejected["reason"] == "av_offset"
        assert "exceeds sync.max_offset_frames 1" in rejected["detail"] and rejected["audio"] is None
    with AvSyncStage(AvSyncConfig(action="measure")) as stage:
        measured = stage.check(frames, late, None)
        assert measured["status"] == "ok" and measured["shifted_frames"] == 0 and measured["offset_frames"] <= -3
    with AvSyncStage(AvSyncConfig()) as stage:
        blank = stage.check(np.full((60, 64, 64, 3), 90, np.uint8), audio[: 60 * SAMPLES_PER_FRAME], None)
        assert blank["offset_frames"] is None and blank["detail"] == "not measured: no face in any frame"


@pytest.fixture(scope="module")
def syncnet_file(tmp_path_factory) -> Path:
    from evaluation.tiny_weights import write_tiny_eval_weights

    folder = tmp_path_factory.mktemp("eval_weights")
    write_tiny_eval_weights(folder, seed=0)
    return folder / "syncnet.model"


@pytest.mark.parametrize("lag", [0, 3, -2])
def test_syncnet_backend_uses_the_metric_algorithm(syncnet_file, lag):
    """With weights, the stage runs syncnet_python's algorithm (here on a stand-in network that
    really measures sync: brightness against loudness) on crops around the face box."""
    from tests.evaluation.test_face_track import LevelNet

    stage = AvSyncStage(AvSyncConfig(syncnet=str(syncnet_file), max_offset_frames=1))
    assert stage.method == "syncnet" and stage.threshold == 3.0
    stage.syncnet = LevelNet()
    rng = np.random.default_rng(0)
    levels = rng.uniform(0, 1, 240)
    frames = np.broadcast_to((40 + 170 * levels[20:220])[:, None, None, None], (200, 48, 48, 3)).astype(np.uint8)
    t = np.arange(200 * SAMPLES_PER_FRAME) / AUDIO_SAMPLE_RATE
    amp = 0.02 + 0.4 * levels[20 - lag + (t * 25).astype(int)]
    audio = (amp * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    found, _ = stage.measure(frames, audio, (0.25, 0.25, 0.75, 0.75))
    assert found.method == "syncnet" and found.offset_frames == -lag
    none, why = stage.measure(frames, audio, None)
    assert none is None and why == "not measured: the clip has no face box"


def test_square_crops_are_centred_and_padded():
    frames = np.zeros((1, 40, 60, 3), np.uint8)
    frames[0, 10:30, 20:40] = 255  # the box (20..40, 10..30) of a 60x40 frame
    crops = square_crops(frames, (20 / 60, 10 / 40, 40 / 60, 30 / 40), scale=1.0)
    assert crops.shape == (1, 20, 20, 3) and crops.min() == 255
    edge = square_crops(frames, (0.0, 0.0, 0.5, 1.0), scale=1.4)  # runs past the frame: edge-padded
    assert edge.shape == (1, 56, 56, 3)


def test_config_errors_name_the_key():
    from dataset.errors import UserError

    with pytest.raises(UserError, match="sync.method=syncnet needs sync.syncnet"):
        AvSyncConfig(method="syncnet")
    with pytest.raises(UserError, match="sync.action must be one of shift, reject, measure"):
        AvSyncConfig(action="drop")
    with pytest.raises(UserError, match="sync.max_offset_frames"):
        AvSyncConfig(max_offset_frames=15)


def test_data_run_realigns_a_late_source_and_records_the_offset(late_sources, late_sources_run):
    """One source's audio re-muxed 4 frames late, one untouched: the late one's clips are measured
    at about -4, realigned (synced wav and mp4 in the shard) and re-measure in sync; the offsets and
    confidences are in the annotations and the manifest. (The run is shared with the Ray-cluster
    test: `tests/annotate/conftest.py`.)"""
    from dataset.manifest import read_manifest
    from dataset.reader import shard_pipeline
    from dataset.validate import validate_corpus

    late_uri, out = late_sources[1], late_sources_run
    report = validate_corpus(out)
    assert report.ok, report.problems
    manifest = read_manifest(out / "manifest.parquet").to_pylist()
    kept = [r for r in manifest if r["status"] == "ok"]
    assert kept and all(r["av_offset_frames"] is not None for r in kept)
    samples = list(shard_pipeline(out))
    late = [s for s in samples if s["annotation"]["source"]["uri"] == late_uri]
    on_time = [s for s in samples if s["annotation"]["source"]["uri"] != late_uri]
    assert late and on_time
    with AvSyncStage(AvSyncConfig(action="measure")) as stage:
        for sample in late:
            block = sample["annotation"]["audio"]["av_sync"]
            assert block["method"] == "mouth" and -5 <= block["offset_frames"] <= -3, block
            assert block["shifted_frames"] == block["offset_frames"]
            assert sample["annotation"]["provenance"]["models"]["av_sync"] == "blazeface-mouth-envelope"
            again, _ = stage.measure(sample["frames"], sample["audio"].reshape(-1), None)  # the shard's audio
            assert abs(again.offset_frames) <= 1
        for sample in on_time:
            block = sample["annotation"]["audio"]["av_sync"]
            assert abs(block["offset_frames"]) <= 1 and block["shifted_frames"] == 0
    rows = {r["key"]: r for r in manifest}
    for sample in samples:
        block = sample["annotation"]["audio"]["av_sync"]
        assert rows[sample["__key__"]]["av_offset_frames"] == block["offset_frames"]
        assert rows[sample["__key__"]]["av_sync_confidence"] == pytest.approx(block["confidence"])
