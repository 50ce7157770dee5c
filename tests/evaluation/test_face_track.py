"""Face tracks as syncnet_python's pipeline builds them, 25 fps resampling, and both in `evaluate_folders`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dataset.media import encode_mp4, encode_wav
from evaluation.config import EvalConfig
from evaluation.face_crops import FaceTrackConfig, FaceTracker, NoFaceTrack, face_tracks
from evaluation.suite import evaluate_folders
from evaluation.sync import sync_scores
from evaluation.video_folder import read_audio, read_video, resample_fps


def _box(x, y, side=120.0):
    return np.array([x, y, x + side, y + side])


def test_tracks_bridge_short_gaps_by_interpolation_and_split_at_long_ones():
    cfg = FaceTrackConfig(min_track=5, num_failed_det=3, min_face_size=50)
    dets = [[_box(10 + i, 20)] for i in range(10)]
    dets[4] = dets[5] = []  # a 3-frame gap (frames 3 -> 6): bridged
    dets += [[] for _ in range(4)]  # frames 10-13: a 5-frame gap, the track ends
    dets += [[_box(200, 20)] for _ in range(8)]  # frames 14-21: elsewhere, a second track
    tracks = face_tracks(dets, cfg)
    assert [(start, len(boxes)) for start, boxes in tracks] == [(0, 10), (14, 8)]
    np.testing.assert_allclose(tracks[0][1][4], _box(14, 20))  # linear interpolation over the gap
    np.testing.assert_allclose(tracks[0][1][5], _box(15, 20))


def test_tracks_follow_iou_drop_short_and_small_tracks():
    cfg = FaceTrackConfig(min_track=5, min_face_size=50)
    # Two faces per frame: two tracks. A jump (IoU 0) starts a new track instead of joining.
    dets = [[_box(0, 0), _box(300, 0)] for _ in range(8)] + [[_box(150, 150)] for _ in range(3)]
    tracks = face_tracks(dets, cfg)
    assert sorted((s, len(b), b[0][0]) for s, b in tracks) == [(0, 8, 0.0), (0, 8, 300.0)]  # 3-detection track dropped
    assert face_tracks([[_box(0, 0, side=30.0)] for _ in range(8)], cfg) == []  # faces smaller than min_face_size
    assert face_tracks([[_box(0, 0)] for _ in range(5)], cfg) == []  # needs MORE than min_track detections


def test_tracker_takes_the_longest_track_crops_it_and_says_why_when_none():
    frames = np.zeros((30, 240, 320, 3), np.uint8)
    boxes = {i: [(0.1, 0.1, 0.5, 0.6)] * (i >= 5) + [(0.6, 0.1, 0.9, 0.5)] * (i < 12) for i in range(30)}

    def detect(frame):
        index = int(frame[0, 0, 0])
        return [SimpleNamespace(box=b) for b in boxes.get(index, [])]

    for i in range(30):
        frames[i, 0, 0, 0] = i
    tracker = FaceTracker(detect, FaceTrackConfig(min_track=10, min_face_size=50))
    track = tracker.track(frames)
    assert (track.start, track.stop) == (5, 30) and track.crops.shape == (25, 224, 224, 3)
    np.testing.assert_allclose(track.boxes[0], (32, 24, 160, 144))
    with pytest.raises(NoFaceTrack, match=r"faces detected in 12 of 12 frames; a track needs more than 100 detections \(faces.min_track\)"):
        FaceTracker(detect, FaceTrackConfig()).track(frames[:12])
    with pytest.raises(NoFaceTrack, match="no face detected in the reference image"):
        tracker.crop_image(np.full((240, 320, 3), 200, np.uint8))
    with pytest.raises(ValueError, match="faces.crop must be one of"):
        FaceTrackConfig(crop="face")


def test_resample_fps_picks_the_nearest_frame_in_time():
    frames = np.arange(30, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    from evaluation.video_folder import Video

    at30 = Video(frames, np.arange(30) / 30.0, 30.0)
    out = resample_fps(at30, 25.0)
    assert len(out) == 25  # one second stays one second
    assert list(out[:7, 0, 0, 0]) == [0, 1, 2, 4, 5, 6, 7]  # i/25 s -> frame round(1.2 i)
    at20 = Video(frames[:20], np.arange(20) / 20.0, 20.0)
    assert len(resample_fps(at20, 25.0)) == 25 and list(resample_fps(at20, 25.0)[:5, 0, 0, 0]) == [0, 1, 2, 2, 3]


class LevelNet(nn.Module):
    """Stand-in SyncNet that really measures sync of a level signal: lip embedding = the 5 frame
    brightnesses of a window, audio embedding = the 5 per-frame log energies (MFCC c0, 4 columns per
    frame); both standardised, so the distance is small only where the two sequences line up."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    @staticmethod
    def _standardise(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 5, H, W)
        return self._standardise(x.mean(dim=(1, 3, 4)))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 13, 20)
        return self._standardise(x[:, 0, 0].reshape(len(x), 5, 4).mean(-1))


def _level_clip(folder, fps: float, lag: int, seconds: float = 8.0, seed: int = 0):
    """A video whose brightness and an audio tone's loudness follow the same random levels, one per
    25 fps frame; the audio lags the video by `lag` frames. A frame at time t shows the level of the
    25 fps frame nearest to t (how a 30 fps camera sees a 25 fps-timed signal)."""
    rng = np.random.default_rng(seed)
    n25 = int(seconds * 25)
    levels = rng.uniform(0, 1, n25 + 40)
    times = np.arange(int(seconds * fps)) / fps
    shown = levels[20 + np.round(times * 25).astype(int)]
    video = np.broadcast_to((40 + 170 * shown)[:, None, None, None], (len(times), 32, 32, 3)).astype(np.uint8)
    t = np.arange(n25 * 640) / 16000
    amp = 0.02 + 0.4 * levels[20 - lag + (t * 25).astype(int)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clip.mp4").write_bytes(encode_mp4(video, fps=fps))
    (folder / "clip.wav").write_bytes(encode_wav((amp * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000))
    return folder / "clip.mp4"


@pytest.mark.parametrize("lag", [0, 3])
def test_a_30_fps_video_is_resampled_to_25_and_its_offset_is_found(tmp_path, lag):
    path = _level_clip(tmp_path, 30.0, lag)
    video, (audio, rate) = read_video(path), read_audio(path)
    assert video.fps == pytest.approx(30.0) and len(video.frames) == 240 and rate == 16000
    resampled = sync_scores(LevelNet(), resample_fps(video, 25.0), audio, rate)
    assert resampled.offset == -lag
    naive = sync_scores(LevelNet(), video.frames, audio, rate)  # 30 fps frames read as 25 fps: drifts 40 frames
    assert naive.offset != -lag and naive.min_dist > resampled.min_dist + 0.5


@pytest.fixture(scope="module")
def face_clips(tmp_path_factory):
    """`face`: the astronaut's face (scikit-image) for 4.2 s at 30 fps, moving a little; `noface`: noise."""
    from PIL import Image
    from skimage.data import astronaut

    root = tmp_path_factory.mktemp("faces")
    face = np.asarray(Image.fromarray(astronaut()[20:260, 110:350]).resize((320, 320)))
    frames = np.stack([np.roll(face, (i % 6, i % 4), axis=(0, 1)) for i in range(126)])
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (60, 64, 64, 3), dtype=np.uint8)
    tone = lambda n: (0.2 * np.sin(2 * np.pi * 200 * np.arange(n) / 16000)).astype(np.float32)  # noqa: E731
    for folder in ("ref", "gen"):
        (root / folder).mkdir()
        (root / folder / "face.mp4").write_bytes(encode_mp4(frames, tone(int(4.2 * 16000)), fps=30.0))
        (root / folder / "noface.mp4").write_bytes(encode_mp4(noise, tone(60 * 640)))
    return root


def test_eval_default_scores_sync_and_identity_on_the_face_track(face_clips, tiny_weights):
    cfg = EvalConfig(metrics=("sync", "identity"), syncnet=str(tiny_weights["syncnet"]),
                     face_embedder=str(tiny_weights["face_embedder"]))
    assert cfg.faces.crop == "face_track"
    report = evaluate_folders(cfg, {"gen": face_clips / "gen"}, face_clips / "ref")
    clip = report["per_clip"]["gen"]["face"]
    assert clip["face_track"] == [0, 105]  # 126 frames at 30 fps -> 105 at 25 fps, a face in every one
    assert np.isfinite([clip["sync_c"], clip["sync_d"]]).all() and -15 <= clip["av_offset"] <= 15
    assert clip["identity"] > 0.9  # the reference's face crop against crops of the same face
    note = report["per_clip"]["gen"]["noface"]
    assert note["sync"].startswith("no face track: faces detected in 0 of 60 frames")
    assert note["identity"].startswith("no face track") and "sync_c" not in note
    assert report["details"]["gen"]["sync"] == {"num_clips": 1, "offsets": [clip["av_offset"]]}
    assert report["protocol"]["faces"]["crop"] == "face_track" and "BlazeFace" in report["protocol"]["faces"]["detector"]
    assert report["protocol"]["sync"]["faces"] == "face_track" and "resampled" in report["protocol"]["sync"]["fps"]

    whole = evaluate_folders(EvalConfig(metrics=("sync",), syncnet=str(tiny_weights["syncnet"]),
                                        faces=FaceTrackConfig(crop="whole_frame")), {"gen": face_clips / "gen"}, face_clips / "ref")
    assert set(whole["per_clip"]["gen"]["noface"]) >= {"sync_c", "av_offset"}  # scored, and the protocol says how
    assert whole["protocol"]["faces"]["crop"] == "whole_frame" and "not the published" in whole["protocol"]["faces"]["note"]
    assert whole["per_clip"]["gen"]["face"]["sync_d"] != clip["sync_d"]
