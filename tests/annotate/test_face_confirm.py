"""The face filter's confirmation by the face mesh: object close-ups that BlazeFace alone takes for
faces are not kept; a real face (the scikit-image astronaut) and the synthetic puppets are. And the
mesh itself: the canonical point order on a real photograph, its lips following an opened mouth."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from annotate.analyse import AnalyseStage
from annotate.config import FaceConfig, ShotConfig
from annotate.face_detector import FaceModelError, zip_task_bundle
from annotate.face_landmarks import (GRAPH_POINTS, MESH_POINTS, FaceLandmarker, FaceMesh, build_bundle, confirmed,
                                     ensure_landmarker_bundle, landmark_values, with_padded_landmarks)
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
    points = np.zeros((468, 3), np.float32)
    points[:, 0] = np.linspace(0.4, 0.6, 468)
    points[:, 1] = np.linspace(0.2, 0.5, 468)
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


def _opened_mouth(photo: np.ndarray, gap: int) -> np.ndarray:
    """The astronaut with her mouth `gap` pixels more open: the column below the lips moved down, the
    gap filled with a dark mouth interior."""
    out = photo.copy()
    y, x0, x1 = int(0.285 * 512), int(0.40 * 512), int(0.475 * 512)
    out[y + gap:, x0:x1] = photo[y:512 - gap, x0:x1]
    out[y:y + gap, x0:x1] = (60, 20, 25)
    return out


def test_mesh_is_in_canonical_order_on_a_real_photograph():
    """The packed legacy mesh under the Tasks graph gives the canonical 468-point order (before the
    landmark output was padded to 478 x 3, the graph read it as scrambled (x, y) pairs)."""
    from skimage import data

    photo = data.astronaut()
    with FaceLandmarker(ensure_landmarker_bundle()) as landmarker:
        meshes = landmarker.detect(photo)
        gaps = [landmarker.detect(_opened_mouth(photo, gap))[0].inner_lips[:, 1] @ [-512, 512] for gap in (0, 8)]
    assert len(meshes) == 1 and meshes[0].points.shape == (MESH_POINTS, 3)
    p = meshes[0].points[:, :2]
    x0, y0, x1, y1 = meshes[0].box
    assert 0.33 < x0 < x1 < 0.55 and 0.12 < y0 < y1 < 0.36  # the face of the portrait
    # canonical indices: forehead 10 above the eyes' outer corners 33 (person's right, image left) and
    # 263, above the nose tip 1, the inner lips 13 / 14, the chin 152; mouth corners 61 and 291
    assert p[10, 1] < p[33, 1] < p[1, 1] < p[13, 1] < p[14, 1] < p[152, 1]
    assert p[33, 0] < p[1, 0] < p[263, 0] and p[61, 0] < p[13, 0] < p[291, 0]
    assert abs(p[33, 1] - p[263, 1]) < 0.02 and abs(p[61, 1] - p[291, 1]) < 0.02  # an upright face
    assert 0 < gaps[0] < 10 and gaps[1] > gaps[0] + 3  # the inner-lip gap (pixels) opens with the mouth


def test_padded_landmark_model_and_old_bundles(tmp_path):
    """The bundle's mesh model outputs 478 x 3 values (the wheel's 468 x 3 and 10 copies); a bundle
    with the wheel's model as it is (built before the fix) is refused with a clear error."""
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    bundle = ensure_landmarker_bundle()
    with zipfile.ZipFile(bundle) as zf:
        detector, padded = zf.read("face_detector.tflite"), zf.read("face_landmarks_detector.tflite")
    assert landmark_values(padded) == GRAPH_POINTS * 3
    graph = tfl.ModelT.InitFromPackedBuf(bytearray(padded), 0)
    sub = graph.subgraphs[0]
    gather = sub.operators[-1]
    assert list(gather.outputs) == [sub.outputs[0]] and len(sub.outputs) == 2  # the face flag is untouched
    sub.outputs = np.array([gather.inputs[0], sub.outputs[1]], np.int32)  # the wheel's output again
    import flatbuffers

    builder = flatbuffers.Builder(len(padded))
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    plain = bytes(builder.Output())
    assert landmark_values(plain) == MESH_POINTS * 3
    assert landmark_values(with_padded_landmarks(plain)) == GRAPH_POINTS * 3
    with pytest.raises(FaceModelError, match="expected 1404 landmark values, got 1434"):
        with_padded_landmarks(padded)
    old = tmp_path / "face_landmarker_v1.task"
    old.write_bytes(zip_task_bundle([("face_detector.tflite", detector), ("face_landmarks_detector.tflite", plain)]))
    with pytest.raises(FaceModelError, match="outputs 1404 values.*rebuild it"):
        FaceLandmarker(old)
    (tmp_path / "broken.task").write_bytes(b"not a zip")
    with pytest.raises(FaceModelError, match="is not a face landmarker task bundle"):
        FaceLandmarker(tmp_path / "broken.task")
