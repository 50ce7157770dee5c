"""mp4 writing: audio and video stay in sync for every decoder (AAC priming is marked, not played)."""

import shutil
import subprocess

import numpy as np
import pytest

from dataset.media import decode_audio, encode_mp4


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
