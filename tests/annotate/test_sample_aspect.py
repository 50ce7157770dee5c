"""Non-square pixels: a source stored 220 wide with sample aspect ratio 16:11 displays 320 wide;
probe, analysis (face boxes) and cutting must work in display geometry, so its clips equal those
of the same video stored with square pixels."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from annotate.config import ClipConfig, FaceConfig, ShotConfig
from annotate.cut import CutStage
from annotate.probe import display_width, probe
from dataset.media import decode_mp4, encode_mp4

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI (apt-get install ffmpeg)")


def _anamorphic(src: Path, dst: Path) -> Path:
    """`ffmpeg setsar`: the same picture stored 11/16 as wide, with SAR 16:11 to display it as before."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", "scale=220:180,setsar=16/11",
           "-c:v", "libx264", "-crf", "12", "-preset", "veryfast", "-c:a", "copy", str(dst)]
    subprocess.run(cmd, check=True, capture_output=True)
    return dst


@pytest.fixture(scope="module")
def disc_sources(tmp_path_factory) -> tuple[Path, Path]:
    """A white disc (radius 40 px) on grey, 320x180 square pixels, 2 s with a tone; and its anamorphic copy."""
    folder = tmp_path_factory.mktemp("sar")
    yy, xx = np.mgrid[:180, :320]
    frame = np.full((180, 320, 3), 60, np.uint8)
    frame[(xx - 160) ** 2 + (yy - 90) ** 2 <= 40 ** 2] = 255
    t = np.arange(32000) / 16000
    square = folder / "square.mp4"
    square.write_bytes(encode_mp4(np.repeat(frame[None], 50, axis=0), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), crf=10))
    return square, _anamorphic(square, folder / "anamorphic.mp4")


def test_probe_reports_display_geometry(disc_sources):
    square, anamorphic = disc_sources
    info = probe(str(anamorphic))
    assert (info.width, info.height, info.coded_width, info.sample_aspect_ratio) == (320, 180, 220, "16:11")
    plain = probe(str(square))
    assert (plain.width, plain.coded_width, plain.sample_aspect_ratio) == (320, 320, "1:1")
    assert display_width(720, __import__("fractions").Fraction(16, 11)) == 1048  # PAL 16:9: 1047.3 -> even


def _disc_aspect(frames: np.ndarray) -> float:
    """Width / height of the bright disc in the first frame."""
    mask = frames[0].mean(-1) > 160
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)


def test_clips_of_non_square_pixels_are_not_squeezed(disc_sources):
    clip = {"index": 0, "start": 5, "stop": 45, "status": "ok", "face": None}
    cut = CutStage(ClipConfig(width=160, height=90, mode="pad"))
    outputs = []
    for source in disc_sources:
        [(_, mp4, _, _)] = list(cut(str(source), probe(str(source)).to_dict(), [clip]))
        outputs.append(decode_mp4(mp4))
    square, anamorphic = outputs
    assert _disc_aspect(square) == pytest.approx(1.0, abs=0.06)
    assert _disc_aspect(anamorphic) == pytest.approx(1.0, abs=0.06)  # read with the stored width: 0.69
    assert np.abs(square.astype(float) - anamorphic.astype(float)).mean() < 3.0


def test_face_boxes_of_non_square_pixels_match_the_square_source(tmp_path):
    """A synthetic talking video and its anamorphic copy: the face detector sees the same faces."""
    from annotate.analyse import AnalyseStage
    from dataset.synth.corpus import SynthConfig, generate_corpus

    generate_corpus(SynthConfig(out=str(tmp_path / "synth"), videos=1, seed=2, min_duration=6, max_duration=6,
                                resolutions="320x180", workers=1, profile="mechanism"), progress=False)
    square = next((tmp_path / "synth" / "raw").glob("*.mp4"))
    anamorphic = _anamorphic(square, tmp_path / "anamorphic.mp4")
    stage = AnalyseStage(ShotConfig(), FaceConfig(sample_fps=5.0))
    boxes = []
    for source in (square, anamorphic):
        faces = stage(str(source), probe(str(source)).to_dict())["faces"]
        boxes.append(np.array([dets[0][:4] for _, dets in faces if dets]))
    assert len(boxes[0]) == len(boxes[1]) >= 20
    assert np.abs(boxes[0] - boxes[1]).max() < 0.03
