from __future__ import annotations

import av
import numpy as np
import pytest

from annotate.config import ClipConfig
from annotate.cut import CutStage, FrameShaper
from annotate.probe import ProbeStage, SourceError, probe
from annotate.config import ProbeConfig
from annotate.timeline import Scaler, timeline_frames
from dataset.media import decode_mp4, decode_wav
from tests.annotate.media_helpers import brightness, write_source


def frame_values(path):
    with av.open(str(path)) as container:
        scaler = Scaler()
        return [(n, float(scaler(f).mean())) for n, f in timeline_frames(container)]


def test_2997_fps_source_maps_to_nearest_frames(tmp_path):
    times = [k * 1001 / 30000 for k in range(90)]  # 3.003 s at 29.97 fps
    src = write_source(tmp_path / "ntsc.mp4", times)
    values = frame_values(src)
    assert len(values) == 75  # 3.0 s at 25 fps
    for n, value in values:
        k = int(np.argmin([abs(t - n / 25) for t in times]))  # nearest source frame
        assert abs(value - ((k * 7) % 200 + 20)) < 3, (n, k, value)


def test_variable_frame_rate_source(tmp_path):
    # 10 fps for 1 s, then 50 fps for 1 s: timestamps, not counts, must drive the mapping
    times = [k / 10 for k in range(10)] + [1 + k / 50 for k in range(50)]
    src = write_source(tmp_path / "vfr.mp4", times)
    values = dict(frame_values(src))
    assert len(values) == 50
    for n in (0, 3, 12, 24, 26, 40, 49):
        k = int(np.argmin([abs(t - n / 25) for t in times]))
        assert abs(values[n] - ((k * 7) % 200 + 20)) < 3, n
    assert probe(str(src)).variable_frame_rate


def test_cut_keeps_audio_and_video_in_sync(tmp_path):
    # A white frame and an audio click at the same instant, 2.002 s into a 29.97 fps source
    times = [k * 1001 / 30000 for k in range(150)]
    flash = times[60]
    src = write_source(tmp_path / "sync.mp4", times, flash_at=flash)
    info = probe(str(src)).to_dict()
    clip = {"index": 0, "start": 30, "stop": 80, "status": "ok", "face": None}  # 1.2 s .. 3.2 s
    cfg = ClipConfig(width=64, height=48, mode="pad")
    [(out_clip, mp4, wav, _)] = list(CutStage(cfg)(str(src), info, [clip]))
    frames = decode_mp4(mp4)
    audio, rate = decode_wav(wav)
    assert frames.shape == (50, 48, 64, 3) and rate == 16000 and len(audio) == 50 * 640
    white = int(np.argmax(brightness(frames)))
    click = int(np.argmax(np.abs(audio) > 0.3))
    offset_frames = (click - white * 640) / 640
    assert abs(offset_frames) <= 1.0, (white, click)
    assert abs((30 + white) / 25 - flash) <= 0.5 / 25 + 1e-9


def test_frame_shaper_crop_keeps_the_face_box_consistent():
    shaper = FrameShaper(ClipConfig(width=64, height=64, mode="crop", crop_scale=2.0), (320, 180), 0, [0.45, 0.3, 0.55, 0.6])
    x0, y0, x1, y1 = shaper.face_box
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert abs((y1 - y0) - 0.5) < 1e-6  # face height / crop height = 1 / crop_scale
    pad = FrameShaper(ClipConfig(width=64, height=64, mode="pad"), (320, 180), 0, None)
    assert pad.pad == (14, 0) and pad.scaled == (64, 36)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty_file"), (b"hello, not a video\n" * 10, "not_media")],
)
def test_probe_failures(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        probe(str(path))
    assert err.value.reason == reason and err.value.status == "failed"


def test_probe_truncated_and_audio_only(tmp_path):
    src = write_source(tmp_path / "ok.mp4", [k / 25 for k in range(50)])
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 2])
    with pytest.raises(SourceError) as err:
        probe(str(truncated))
    assert err.value.reason in ("not_media", "truncated")
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(SourceError) as err:
        probe(str(audio_only))
    assert err.value.reason == "no_video_stream"
    with pytest.raises(SourceError) as err:
        ProbeStage(ProbeConfig(min_duration_s=5.0))(str(src))
    assert err.value.reason == "too_short" and err.value.status == "rejected"
