"""Pose backends: the puppet reader returns the drawn keypoints; motion follows the drawn action."""

from __future__ import annotations

import numpy as np
import pytest

from annotate.pose import PoseEstimator, reader_pose
from dataset.pose import BODY, FACE, KEYPOINTS, motion_intensity
from dataset.synth import rig
from dataset.synth.avatar import PuppetRenderer


def render(label: str, times: np.ndarray, duration: float, h: int = 360, w: int = 360) -> tuple[np.ndarray, tuple, float]:
    renderer = PuppetRenderer()
    scale = h / 2.66
    anchor = (w / 2, 0.015 * h + rig.TOP_EXTENT * scale)
    frames = []
    for t in times:
        frame = np.full((h, w, 3), 150, np.uint8)
        renderer.draw(frame, anchor, scale, rig.pose_at(label, float(t), duration))
        frames.append(frame)
    return np.stack(frames), anchor, scale


def test_reader_finds_the_drawn_keypoints():
    frames, (ax, ay), s = render("raise_right_hand", np.array([1.0]), 2.0)
    h, w = frames.shape[1:3]
    pose = reader_pose(frames)[0]
    k = {name: pose[i] for i, name in enumerate(KEYPOINTS)}
    expect = {  # normalised positions from the rig
        "neck": (ax / w, ay / h),
        "right_wrist": ((ax + s * rig.RAISED[1][0]) / w, (ay + s * rig.RAISED[1][1]) / h),
        "left_wrist": ((ax - s * rig.REST[1][0]) / w, (ay + s * rig.REST[1][1]) / h),
        "right_shoulder": ((ax + s * rig.SHOULDER[0]) / w, (ay + s * rig.SHOULDER[1]) / h),
        "nose": (ax / w, (ay + s * (rig.HEAD_CENTER[1] + rig.CUP_OFFSET[1])) / h),  # the head centre
        "right_ear": ((ax - s * rig.CUP_OFFSET[0]) / w, (ay + s * (rig.HEAD_CENTER[1] + rig.CUP_OFFSET[1])) / h),
        "left_ear": ((ax + s * rig.CUP_OFFSET[0]) / w, (ay + s * (rig.HEAD_CENTER[1] + rig.CUP_OFFSET[1])) / h),
    }
    for name, (x, y) in expect.items():
        assert k[name][2] == 1.0, name
        assert abs(k[name][0] - x) < 0.02 and abs(k[name][1] - y) < 0.02, (name, k[name], (x, y))
    for name in ("right_eye", "upper_lip", "right_elbow"):  # the reader does not measure these
        assert k[name][2] == 0.0 and np.isnan(k[name][0])


@pytest.mark.parametrize("label", ["tilt_head", "nod"])
def test_reader_mouth_lies_in_the_drawn_mouth(label):
    """The mouth keypoint (placed from the read head by the rig geometry) falls inside the dark
    cavity drawn when the mouth is wide open, also with the head tilted or nodding."""
    renderer = PuppetRenderer()
    h = w = 360
    scale = h / 2.66
    anchor = (w / 2, 0.015 * h + rig.TOP_EXTENT * scale)
    pose = rig.pose_at(label, 1.0, 2.0, mouth=1.0)
    frames = []
    for mouth in (1.0, 0.0):  # open, then closed: the cavity is where the two differ
        frame = np.full((h, w, 3), 150, np.uint8)
        renderer.draw(frame, anchor, scale, rig.pose_at(label, 1.0, 2.0, mouth=mouth))
        frames.append(frame)
    diff = np.abs(frames[0].astype(int) - frames[1].astype(int)).sum(-1) > 60
    ys, xs = np.nonzero(diff)
    k = reader_pose(np.stack(frames[:1]))[0, KEYPOINTS.index("mouth")]
    assert k[2] == 1.0 and pose.mouth == 1.0
    cx, cy = xs.mean() / w, ys.mean() / h  # centre of the drawn mouth
    assert abs(k[0] - cx) < 0.006 and abs(k[1] - cy) < 0.006, (k, (cx, cy))  # 2 px at 360 px


@pytest.mark.parametrize("label", ["idle", "tilt_head"])
def test_reader_reads_the_head_of_a_face_close_up(label):
    """Cropped to the face (`clip.crop_scale` about 1.8) the torso is out of view: the head, ears and
    mouth come from the ear cups alone, where the full frame puts them; the body stays unmeasured."""
    renderer = PuppetRenderer()
    h = w = 360
    scale = h / 3.5
    anchor = (w / 2, 0.5 * h)  # room above the head for the crop
    frame = np.full((h, w, 3), 150, np.uint8)
    renderer.draw(frame, anchor, scale, rig.pose_at(label, 1.0, 2.0, mouth=1.0))
    full = reader_pose(frame[None])[0]
    cy = anchor[1] + scale * rig.HEAD_CENTER[1]
    side = int(1.3 * rig.HEAD_SIZE * scale)  # a square a little larger than the face
    x0, y0 = int(anchor[0] - side / 2), int(cy - side / 2)
    crop = np.ascontiguousarray(frame[y0:y0 + side, x0:x0 + side])
    close = reader_pose(crop[None])[0]
    for name in ("nose", "mouth", "right_ear", "left_ear"):
        i = KEYPOINTS.index(name)
        assert close[i, 2] == 1.0, name
        x, y = (full[i, 0] * w - x0) / side, (full[i, 1] * h - y0) / side  # the full frame's reading, in the crop
        assert abs(close[i, 0] - x) < 0.01 and abs(close[i, 1] - y) < 0.01, (name, close[i], (x, y))
    for name in ("neck", "right_shoulder", "right_wrist"):
        assert close[KEYPOINTS.index(name), 2] == 0.0


def test_reader_motion_follows_the_action():
    times = np.arange(50) / 25.0
    idle = motion_intensity(reader_pose(render("idle", times, 2.0, 180, 180)[0]))
    wave = motion_intensity(reader_pose(render("wave_right_hand", times, 2.0, 180, 180)[0]))
    nod = motion_intensity(reader_pose(render("nod", times, 2.0, 180, 180)[0]))
    assert idle["body_intensity"] < 0.02 and idle["face_intensity"] < 0.05
    assert wave["body_intensity"] > 5 * max(idle["body_intensity"], 0.01)
    assert nod["face_intensity"] > 3 * max(idle["face_intensity"], 0.01)
    assert nod["body_intensity"] < wave["body_intensity"] / 3


def test_reader_without_a_puppet_measures_nothing():
    pose = reader_pose(np.full((3, 64, 64, 3), 90, np.uint8))
    assert (pose[..., 2] == 0).all()
    assert motion_intensity(pose) == {"face_speed": None, "face_intensity": None, "body_speed": None, "body_intensity": None}


def test_unknown_backend():
    with pytest.raises(ValueError, match="pose backend must be one of"):
        PoseEstimator("openpose")


def test_mediapipe_backend_gives_face_and_body_keypoints_of_the_puppet():
    """The real BlazeFace, BlazePose and face mesh models (fetched from the mediapipe 0.10.21 wheel
    like the face filter's): face keypoints and lips on the puppet's photographed face, its shoulders
    and neck where the rig draws them."""
    frames, (ax, ay), s = render("idle", np.arange(3) / 25.0, 2.0, 256, 256)
    estimator = PoseEstimator("mediapipe")
    try:
        pose = estimator(frames, [0.3, 0.05, 0.7, 0.45])
    finally:
        estimator.close()
    k = {name: pose[:, i] for i, name in enumerate(KEYPOINTS)}
    for name in ("nose", "right_eye", "left_eye", "mouth", "right_ear", "left_ear", "upper_lip", "lower_lip"):
        assert (k[name][:, 2] > 0.5).all(), name  # the detection score
    h, w = frames.shape[1:3]
    head_x, head_y = ax / w, (ay + s * rig.HEAD_CENTER[1]) / h
    half = rig.HEAD_SIZE * s / 2 / h  # the face sprite's half size
    for name in ("nose", "right_eye", "left_eye", "mouth"):
        assert np.abs(k[name][:, 0] - head_x).max() < half and np.abs(k[name][:, 1] - head_y).max() < half, name
    # geometry of a face: eyes above the nose above the mouth; the person's right eye on the image left
    assert (k["right_eye"][:, 1] < k["nose"][:, 1]).all() and (k["nose"][:, 1] < k["mouth"][:, 1]).all()
    assert (k["right_eye"][:, 0] < k["left_eye"][:, 0]).all()
    # the mesh's inner lips straddle BlazeFace's mouth centre, a few pixels apart
    assert (k["upper_lip"][:, 1] < k["mouth"][:, 1]).all() and (k["mouth"][:, 1] < k["lower_lip"][:, 1]).all()
    np.testing.assert_allclose(k["upper_lip"][:, 0], k["mouth"][:, 0], atol=0.02)
    assert ((k["lower_lip"][:, 1] - k["upper_lip"][:, 1]) * h < 10).all()

    # the body: BlazePose's shoulders within 3 % of the frame of the rig's, the neck between them
    for name, side in (("right_shoulder", 1.0), ("left_shoulder", -1.0)):
        assert (k[name][:, 2] > 0.5).all(), name
        np.testing.assert_allclose(k[name][:, 0], (ax + side * s * rig.SHOULDER[0]) / w, atol=0.03)
        np.testing.assert_allclose(k[name][:, 1], (ay + s * rig.SHOULDER[1]) / h, atol=0.03)
    np.testing.assert_allclose(k["neck"][:, :2], (k["right_shoulder"][:, :2] + k["left_shoulder"][:, :2]) / 2, atol=1e-6)
    assert np.isnan(pose[pose[..., 2] == 0][:, :2]).all()  # unmeasured: NaN positions

def test_mediapipe_backend_on_a_real_photograph():
    """scikit-image's astronaut portrait (a real person, upper body): face and body keypoints where
    they are, the person's right on the image left."""
    from skimage import data

    photo = data.astronaut()
    frames = np.stack([photo, np.roll(photo, 4, axis=1)])  # the second frame: the person 4 px to the right
    estimator = PoseEstimator("mediapipe")
    try:
        pose = estimator(frames, [0.30, 0.04, 0.58, 0.32])
    finally:
        estimator.close()
    k = {name: pose[:, i] for i, name in enumerate(KEYPOINTS)}
    for name in ("nose", "right_eye", "left_eye", "mouth", "upper_lip", "lower_lip", "neck", "right_shoulder", "left_shoulder"):
        assert (k[name][:, 2] > 0.5).all(), name
    # the face photo's crop of the portrait (dataset.synth.avatar) holds the face keypoints
    assert ((k["nose"][:, 0] > 153 / 512) & (k["nose"][:, 0] < 299 / 512) & (k["nose"][:, 1] < 166 / 512)).all()
    assert (k["right_shoulder"][:, 0] < k["nose"][:, 0]).all() and (k["nose"][:, 0] < k["left_shoulder"][:, 0]).all()
    assert (k["neck"][:, 1] > k["mouth"][:, 1] + 0.1).all() and (k["right_shoulder"][:, 1] > 0.4).all()
    np.testing.assert_allclose(k["neck"][1, 0] - k["neck"][0, 0], 4 / 512, atol=0.01)  # follows the shift
    np.testing.assert_allclose(k["upper_lip"][1, 0] - k["upper_lip"][0, 0], 4 / 512, atol=0.005)
    assert (k["upper_lip"][:, 1] < k["lower_lip"][:, 1]).all() and (k["lower_lip"][:, 1] < k["neck"][:, 1]).all()
    assert motion_intensity(pose)["body_speed"] is not None


def test_pose_bundle_declares_the_legacy_input_ranges(tmp_path):
    """The bundle's models carry the normalisation metadata the Tasks API needs; the weights are the wheel's."""
    import zipfile

    from annotate.body_landmarks import DETECTOR_NORM, LANDMARK_NORM, ensure_pose_bundle

    bundle = ensure_pose_bundle()
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(zf.namelist()) == ["pose_detector.tflite", "pose_landmarks_detector.tflite"]
        for name, (mean, std) in (("pose_detector.tflite", DETECTOR_NORM), ("pose_landmarks_detector.tflite", LANDMARK_NORM)):
            norm, named_outputs, outputs = declared_metadata(zf.read(name))
            assert norm == ([mean], [std])
            assert named_outputs == outputs


def declared_metadata(model: bytes) -> tuple[tuple[list[float], list[float]], int, int]:
    """A .tflite model's declared input normalisation (mean, std), how many outputs its metadata
    names, and how many outputs its graph has."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as md
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    graph = tfl.ModelT.InitFromPackedBuf(bytearray(model), 0)
    entry = next(m for m in graph.metadata if m.name in (b"TFLITE_METADATA", "TFLITE_METADATA"))
    meta = md.ModelMetadataT.InitFromPackedBuf(bytearray(graph.buffers[entry.buffer].data.tobytes()), 0)
    norm = meta.subgraphMetadata[0].inputTensorMetadata[0].processUnits[0].options
    return (list(norm.mean), list(norm.std)), len(meta.subgraphMetadata[0].outputTensorMetadata), len(graph.subgraphs[0].outputs)
