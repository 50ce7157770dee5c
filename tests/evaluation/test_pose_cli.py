"""`actavatar pose`: a driving video's keypoints at 25 fps, mapped into the sampler's output frame."""

from __future__ import annotations

import numpy as np
import pytest

from actavatar.cli import main as actavatar
from annotate.pose import reader_pose
from dataset.errors import UserError
from dataset.media import encode_mp4
from dataset.pose import KEYPOINTS, decode_pose
from dataset.synth import rig
from dataset.synth.avatar import PuppetRenderer


def _puppet_video(tmp_path, width: int, height: int, frames: int = 12, fps: float = 25.0):
    renderer = PuppetRenderer()
    scale = height / 2.66
    anchor = (width / 2, 0.015 * height + rig.TOP_EXTENT * scale)
    video = []
    for i in range(frames):
        frame = np.full((height, width, 3), 150, np.uint8)
        renderer.draw(frame, anchor, scale, rig.pose_at("wave_right_hand", 0.3 + i / fps, 2.0))
        video.append(frame)
    path = tmp_path / "driving.mp4"
    path.write_bytes(encode_mp4(np.stack(video), np.zeros(int(frames / fps * 16000), np.float32), fps=fps))
    return path, np.stack(video)


def test_reader_keypoints_of_a_driving_video_and_the_output_crop(tmp_path, capsys):
    path, frames = _puppet_video(tmp_path, 360, 180)
    out = tmp_path / "p.npy"
    assert actavatar(["pose", "--input", str(path), "--output", str(out), "--backend", "reader", "--no-progress"]) == 0
    pose = decode_pose(out.read_bytes())
    truth = reader_pose(frames)
    assert pose.shape == (12, 57, 3)
    assert "12 frames at 25 fps; face keypoints in 100% of frames, body keypoints in 100%, hands in 0%" in capsys.readouterr().out
    neck, wrist = KEYPOINTS.index("neck"), KEYPOINTS.index("right_wrist")
    np.testing.assert_allclose(pose[:, [neck, wrist], :2], truth[:, [neck, wrist], :2], atol=0.01)  # H.264 round trip
    # into a square 90 px output: the 360x180 frame is scaled by 0.5 and 45 px are cut on each side
    assert actavatar(["pose", "--input", str(path), "--output", str(out), "--backend", "reader", "--size", "90x90",
                      "--no-progress"]) == 0
    square = decode_pose(out.read_bytes())
    np.testing.assert_allclose(square[:, neck, 0], (pose[:, neck, 0] * 180 - 45) / 90, atol=1e-3)
    np.testing.assert_allclose(square[:, neck, 1], pose[:, neck, 1], atol=1e-3)


def test_errors_name_the_problem(tmp_path, capsys):
    from evaluation.pose_cli import parse_size, video_keypoints

    with pytest.raises(FileNotFoundError, match="--input: file not found"):
        video_keypoints(tmp_path / "none.mp4")
    with pytest.raises(UserError, match="--size must be WIDTHxHEIGHT"):
        parse_size("wide")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert actavatar(["pose", "--input", str(tmp_path / "bad.mp4"), "--output", str(tmp_path / "p.npy"), "--no-progress"]) != 0
    assert "bad.mp4" in capsys.readouterr().err and not (tmp_path / "p.npy").exists()
