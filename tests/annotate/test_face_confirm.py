"""The face filter's confirmation by the face mesh: object close-ups that BlazeFace alone takes for
faces are not kept; a real face (the scikit-image astronaut) and the synthetic puppets are."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from annotate.analyse import AnalyseStage
from annotate.config import FaceConfig, ShotConfig
from annotate.face_landmarks import FaceMesh, build_bundle, confirmed
from annotate.plan import plan_source
from annotate.probe import probe
from dataset.media import encode_mp4

# (scikit-image image, zoom, vertical and horizontal position of the crop): close-ups on which
# BlazeFace (score >= 0.5) finds a "face" in a 320x180 frame: a cat, star fields, a colour wheel,
# cells, a coffee cup. Of 11 such close-ups, BlazeFace alone kept 6 as face clips; with the mesh, 0.
OBJECTS = [("chelsea", 0.5, 0.5, 0.2), ("hubble_deep_field", 0.35, 0.5, 0.5), ("hubble_deep_field", 0.35, 0.5, 0.8),
           ("colorwheel", 0.7, 0.5, 0.5), ("cell", 0.35, 0.5, 0.8), ("coffee", 0.7, 0.5, 0.5)]
FACE = ("astronaut", 0.7, 0.5, 0.5)


def _close_up(name: str, zoom: float, oy: float, ox: float, seconds: float = 3.0) -> np.ndarray:
    """A 25 fps close-up of a scikit-image picture, the crop drifting by a few pixels (a handheld camera)."""
    import cv2
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
    img = img if img.dtype == np.uint8 else (255 * (img - img.min()) / (np.ptp(img) + 1e-9)).astype(np.uint8)
    h, w = img.shape[:2]
    ch = int(h * zoom)
    cw = min(w, int(ch * 16 / 9))
    frames = []
    for t in range(int(seconds * 25)):
        dy, dx = int(round(3 * np.sin(t / 9))), int(round(3 * np.cos(t / 7)))
        y0 = int(np.clip((h - ch) * oy + dy, 0, h - ch))
        x0 = int(np.clip((w - cw) * ox + dx, 0, w - cw))
        frames.append(cv2.resize(np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw]), (320, 180), interpolation=cv2.INTER_AREA))
    return np.stack(frames)


@pytest.fixture(scope="module")
def close_ups(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("close_ups")
    t = np.arange(48000) / 16000
    tone = (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    paths = {}
    for i, (name, *where) in enumerate([*OBJECTS, FACE]):
        path = folder / f"{i}_{name}.mp4"
        path.write_bytes(encode_mp4(_close_up(name, *where), tone, crf=18))
        paths[name if i == len(OBJECTS) else f"{i}_{name}"] = str(path)
    return paths


def _kept(path: str, face: FaceConfig) -> tuple[int, int]:
    """(clips kept by the face filter, detections the mesh did not confirm) for one source."""
    info = probe(path).to_dict()
    analysis = AnalyseStage(ShotConfig(min_clip_s=1.5), face)(path, info)
    clips = plan_source(analysis, ShotConfig(min_clip_s=1.5), face)
    return sum(c["status"] == "ok" for c in clips), analysis["unconfirmed"]


def test_object_close_ups_are_rejected_and_faces_kept(close_ups):
    plain, meshed = FaceConfig(sample_fps=5.0, confirm="none"), FaceConfig(sample_fps=5.0)
    objects = [key for key in close_ups if key != "astronaut"]
    fooled = {key: _kept(close_ups[key], plain)[0] for key in objects}
    assert sum(fooled.values()) >= 4, fooled  # BlazeFace alone keeps most of these clips as face clips (5 here)
    for key in objects:
        kept, dropped = _kept(close_ups[key], meshed)
        assert kept == 0 and dropped >= 5, (key, kept, dropped)
    assert _kept(close_ups["astronaut"], plain)[0] == 1
    assert _kept(close_ups["astronaut"], meshed) == (1, 0)


def test_confirmation_needs_the_mesh_centre_inside_the_box():
    points = np.zeros((478, 3), np.float32)
    points[:468, 0] = np.linspace(0.4, 0.6, 468)
    points[:468, 1] = np.linspace(0.2, 0.5, 468)
    mesh = FaceMesh(points)
    assert mesh.box == pytest.approx((0.4, 0.2, 0.6, 0.5))
    assert confirmed((0.35, 0.15, 0.65, 0.55), [mesh])
    assert not confirmed((0.0, 0.6, 0.3, 0.9), [mesh]) and not confirmed((0.35, 0.15, 0.65, 0.55), [])


def test_bundle_layout_is_deterministic():
    data = build_bundle(b"detector", b"mesh")
    assert data == build_bundle(b"detector", b"mesh")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["face_detector.tflite", "face_landmarks_detector.tflite"]
        assert zf.read("face_landmarks_detector.tflite") == b"mesh"


def test_face_config_errors_name_the_key():
    from dataset.errors import UserError

    with pytest.raises(UserError, match="face.confirm must be 'landmarks' or 'none'"):
        FaceConfig(confirm="maybe")
    with pytest.raises(UserError, match=r"face.min_presence must be in \(0, 1\)"):
        FaceConfig(min_presence=1.0)
