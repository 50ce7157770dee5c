"""The mediapipe face detector wrapper and how its model file is obtained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotate import face_detector
from annotate.face_detector import FaceDetector, FaceModelError, default_model_path, ensure_face_model


def _model() -> Path:
    try:
        return ensure_face_model()
    except FaceModelError as err:  # offline without a cached copy: the message says how to provide it
        pytest.skip(str(err))


def test_default_path_honours_cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACTAVATAR_CACHE", str(tmp_path))
    assert default_model_path() == tmp_path / "models" / face_detector.MODEL_NAME
    monkeypatch.delenv("ACTAVATAR_CACHE")
    assert default_model_path() == Path.home() / ".cache" / "actavatar" / "models" / face_detector.MODEL_NAME


def test_existing_file_is_reused_without_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_download(dest: Path) -> Path:
        raise AssertionError("must not download when the file exists")

    monkeypatch.setattr(face_detector, "_download_wheel", no_download)
    path = tmp_path / "model.tflite"
    path.write_bytes(b"x")
    assert ensure_face_model(path) == path
    monkeypatch.setenv("ACTAVATAR_CACHE", str(tmp_path / "cache"))
    default_model_path().parent.mkdir(parents=True)
    default_model_path().write_bytes(b"x")
    assert ensure_face_model() == default_model_path()


def test_failed_download_names_file_and_remedy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing(dest: Path) -> Path:
        raise FaceModelError("pip download mediapipe==0.10.21 failed: no network")

    monkeypatch.setattr(face_detector, "_download_wheel", failing)
    target = tmp_path / "sub" / "m.tflite"
    with pytest.raises(FaceModelError) as info:
        ensure_face_model(target)
    message = str(info.value)
    assert str(target) in message and "mediapipe==0.10.21" in message and "ACTAVATAR_CACHE" in message
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing partial left behind


def test_extracts_member_from_wheel_atomically(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import hashlib
    import zipfile

    payload = b"tflite-bytes"

    def fake_download(dest: Path) -> Path:
        wheel = dest / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(face_detector.WHEEL_MEMBER, payload)
            zf.writestr("mediapipe/other.txt", b"ignored")
        return wheel

    monkeypatch.setattr(face_detector, "_download_wheel", fake_download)
    monkeypatch.setattr(face_detector, "MODEL_SHA256", hashlib.sha256(payload).hexdigest())
    target = tmp_path / "models" / face_detector.MODEL_NAME
    assert ensure_face_model(target) == target
    assert target.read_bytes() == payload
    assert sorted(p.name for p in target.parent.iterdir()) == [face_detector.MODEL_NAME]


def test_detects_the_astronaut_and_nothing_in_coffee() -> None:
    from skimage import data

    with FaceDetector(_model()) as detector:
        faces = detector.detect(data.astronaut())
        assert len(faces) == 1 and faces[0].score > 0.7
        x0, y0, x1, y1 = faces[0].box
        assert 0.3 < x0 < x1 < 0.6 and 0.1 < y0 < y1 < 0.4  # her face, upper middle of the photo
        assert detector.detect(data.coffee()) == []
        with pytest.raises(ValueError, match="uint8"):
            detector.detect(np.zeros((8, 8), np.uint8))


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FaceModelError, match="not found"):
        FaceDetector(tmp_path / "absent.tflite")
