"""mp4 writing: audio and video stay in sync for every decoder (AAC priming is marked, not played);
the colour conversion before x264 matches swscale's and gives the same planes on every call."""

import shutil
import subprocess

import av
import numpy as np
import pytest

from dataset.media import MediaError, decode_audio, decode_mp4, encode_mp4, rgb_to_i420


def _onset(audio: np.ndarray) -> int:
    return int(np.argmax(np.abs(audio) > 0.05))


def test_audio_starts_with_the_video_for_pyav_and_ffmpeg(tmp_path):
    t = np.arange(32000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (t >= 0.5)).astype(np.float32)  # silent, then a tone at 0.5 s
    data = encode_mp4(np.zeros((50, 32, 32, 3), np.uint8), audio)
    decoded, start = decode_audio(data)
    # before the fix: onset at sample 9026 (the encoder's 1024 priming samples played first) and 1024 extra samples
    assert start == 0.0 and abs(_onset(decoded) - 8000) <= 4 and abs(decoded.size - audio.size) < 1024
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    (tmp_path / "a.mp4").write_bytes(data)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "a.mp4"), "-f", "f32le", "-ac", "1", "-ar", "16000", "-"],
                         check=True, capture_output=True).stdout
    assert abs(_onset(np.frombuffer(raw, np.float32)) - 8000) <= 4
    assert encode_mp4(np.zeros((50, 32, 32, 3), np.uint8), audio) == data  # still byte-identical for equal input


def test_rgb_to_i420_matches_swscale_and_repeats():
    y, x = np.mgrid[0:48, 0:64]
    smooth = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for frame, chroma_tol in ((smooth, 0.5), (noise, 8.0)):  # swscale filters chroma over more rows than 2
        ours = rgb_to_i420(frame)
        theirs = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p").to_ndarray()
        assert ours.shape == theirs.shape == (72, 64)
        diff = np.abs(ours.astype(int) - theirs)
        assert diff[:48].mean() < 0.1 and diff[48:].mean() < chroma_tol
        assert np.array_equal(rgb_to_i420(frame), ours)
    # a flat colour: Y (red is 81.5; OpenCV rounds up), then Cb, then Cr, each a quarter of the luma size
    red = rgb_to_i420(np.broadcast_to(np.array([255, 0, 0], np.uint8), (4, 6, 3)).copy())
    assert (red[:4] == 82).all() and (red[4:5] == 90).all() and (red[5:6] == 240).all()
    with pytest.raises(MediaError, match="even size, got uint8 \\(5, 6, 3\\)"):
        rgb_to_i420(np.zeros((5, 6, 3), np.uint8))
    video = np.stack([smooth] * 3)
    assert np.abs(decode_mp4(encode_mp4(video)).astype(int) - video).mean() < 3
