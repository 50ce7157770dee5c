"""Face landmarks (MediaPipe face mesh, 468 points) and how the model is obtained.

mediapipe >= 0.10.30 ships no model files and no `face_landmarker.task` is on the package index,
but the mediapipe 0.10.21 wheel (already fetched for the face detector) holds the legacy graph's
`face_landmark.tflite`. The Tasks API of mediapipe 1.2 runs it when it is packed, with the
short-range BlazeFace detector, into a task bundle (a zip holding `face_detector.tflite` and
`face_landmarks_detector.tflite`, the layout of Google's `face_landmarker.task`), after one edit:
the Tasks graph takes the landmark count to be 478 (the mesh plus 10 iris points, which Google's
current model outputs) and the values per landmark to be the tensor size // 478, so it reads the
legacy model's 468 x 3 = 1404 values as 478 (x, y) pairs: points out of order, z = 0.
`with_padded_landmarks` extends that output by 10 copied landmarks (one GATHER op with constant
indices, written with the flatbuffer schema mediapipe ships; the weights are untouched), so the
graph reads 478 x 3 and the first 468 are the canonical mesh; `FaceLandmarker` returns those. The
attention variant in the same wheel does not fit the Tasks graph (its outputs are ordered
differently), so this is the mesh without attention refinement. `ensure_landmarker_bundle()`
builds the bundle once into the cache, next to the detector:

    ~/.cache/actavatar/models/face_landmarker_v2.task   ($ACTAVATAR_CACHE/models/ when set)

(`face_landmarker_v1.task`, built before the edit, gives the scrambled points; it is not used.)

Uses: confirming BlazeFace detections in the face filter (the mesh's face-presence score rejects
object close-ups that BlazeFace alone accepts), and the lips of real footage in `pose.npy`
(`annotate.pose`; `INNER_LIPS`). On the synthetic puppets' drawn mouths the mesh's lips do not
follow the drawing, so the AV-sync measure does not use them (`annotate.av_sync`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.face_detector import (MODEL_SHA256, WHEEL_MEMBER, FaceModelError, MediapipeTask, default_model_path,
                                    ensure_wheel_bundle, zip_task_bundle)

BUNDLE_NAME = "face_landmarker_v2.task"
LANDMARK_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
LANDMARK_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"
MESH_POINTS = 468
GRAPH_POINTS = 478  # what the Tasks graph reads (mesh + iris)
# landmarks copied into the iris slots 468..477 (right eye: lid, corners, lids; left eye likewise)
IRIS_STAND_INS = (159, 33, 159, 133, 145, 386, 362, 386, 263, 374)
INNER_LIPS = (13, 14)  # canonical mesh: the upper and lower inner-lip midpoints (their gap = mouth opening)


def default_bundle_path() -> Path:
    return default_model_path().parent / BUNDLE_NAME


def landmark_values(model: bytes) -> int:
    """How many values the landmark model's first output (the landmark tensor) holds."""
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    graph = tfl.Model.GetRootAs(model, 0).Subgraphs(0)
    return int(np.prod(graph.Tensors(graph.Outputs(0)).ShapeAsNumpy()))


def with_padded_landmarks(model: bytes) -> bytes:
    """The legacy 468-point mesh model with its landmark output extended to 478 x 3 values, so the
    Tasks graph reads whole (x, y, z) triples. The 10 added landmarks (where Google's model has the
    irises) are copies of eye-contour landmarks (`IRIS_STAND_INS`): the graph tracks the face from
    the box of all 478 points, so they must lie on the face (zeros would drag the box to a corner
    and lose the face in video mode). One GATHER op with constant indices and a new output tensor;
    the other outputs, the weights and the graph are unchanged."""
    import flatbuffers

    from mediapipe.tasks.metadata import schema_py_generated as tfl

    graph = tfl.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sub = graph.subgraphs[0]
    source = sub.tensors[sub.outputs[0]]
    values = int(np.prod(source.shape))
    if values != MESH_POINTS * 3:
        raise FaceModelError(f"face landmark model: expected {MESH_POINTS * 3} landmark values, got {values}")
    index = np.concatenate([np.arange(values), (3 * np.array(IRIS_STAND_INS)[:, None] + np.arange(3)).ravel()]).astype(np.int32)

    def tensor(name: str, kind: int, size: int, data: bytes | None) -> int:
        """A new tensor: a 1-D constant holding `data`, or (data None) an activation shaped like the
        landmark output, (1, 1, 1, size)."""
        buffer = tfl.BufferT()
        buffer.data = np.frombuffer(data, np.uint8) if data else None
        graph.buffers.append(buffer)
        out = tfl.TensorT()
        out.name, out.type, out.buffer = name.encode(), kind, len(graph.buffers) - 1
        out.shape = np.array([size] if data else [1, 1, 1, size], np.int32)
        sub.tensors.append(out)
        return len(sub.tensors) - 1

    indices = tensor("landmark_index", tfl.TensorType.INT32, len(index), index.tobytes())
    padded = tensor("landmarks_478", tfl.TensorType.FLOAT32, len(index), None)
    code = tfl.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tfl.BuiltinOperator.GATHER
    code.version = 1
    graph.operatorCodes.append(code)
    gather = tfl.OperatorT()
    gather.opcodeIndex = len(graph.operatorCodes) - 1
    gather.inputs, gather.outputs = np.array([sub.outputs[0], indices], np.int32), np.array([padded], np.int32)
    gather.builtinOptionsType = tfl.BuiltinOptions.GatherOptions
    gather.builtinOptions = tfl.GatherOptionsT()
    gather.builtinOptions.axis = 3
    sub.operators.append(gather)
    sub.outputs = np.array([padded, *list(sub.outputs[1:])], np.int32)
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_bundle(detector: bytes, landmarks: bytes) -> bytes:
    """The task bundle's bytes (Google's face_landmarker.task layout); `landmarks` as the Tasks graph
    reads it (`with_padded_landmarks`)."""
    return zip_task_bundle([("face_detector.tflite", detector), ("face_landmarks_detector.tflite", landmarks)])


def ensure_landmarker_bundle(path: str | Path | None = None) -> Path:
    """Return a path to the face landmarker task bundle, building it once from the 0.10.21 wheel.

    Raises:
        FaceModelError: the bundle is missing and the wheel could not be fetched or checked.
    """
    return ensure_wheel_bundle(
        Path(path).expanduser() if path is not None else default_bundle_path(),
        {WHEEL_MEMBER: MODEL_SHA256, LANDMARK_MEMBER: LANDMARK_SHA256},
        lambda m: build_bundle(m[WHEEL_MEMBER], with_padded_landmarks(m[LANDMARK_MEMBER])), "face landmark bundle",
        f"annotate.face_landmarks.build_bundle on {WHEEL_MEMBER} and with_padded_landmarks({LANDMARK_MEMBER})")


@dataclass(frozen=True, slots=True)
class FaceMesh:
    """One face: `points` (468, 3) in the canonical mesh order, x and y normalised to the frame, z
    relative depth; and the landmark box."""

    points: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        x, y = self.points[:, 0], self.points[:, 1]
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())

    @property
    def inner_lips(self) -> np.ndarray:
        """(2, 2) x, y of the upper and lower inner-lip midpoints."""
        return self.points[list(INNER_LIPS), :2]


class FaceLandmarker(MediapipeTask):
    """MediaPipe face landmarker (Tasks API) on the bundle above.

    Args:
        bundle: the .task file (see `ensure_landmarker_bundle`).
        min_presence: the mesh's face-presence threshold (MediaPipe's default 0.5).
        max_faces: faces returned per frame.
        fps: None = image mode (independent frames); a frame rate = video mode for one clip's frames
            in order: a face found in one frame is tracked into the next and the detector reruns only
            when tracking is lost (with `max_faces` 1; more faces rerun it on every frame).
    """

    def __init__(self, bundle: str | Path, *, min_presence: float = 0.5, max_faces: int = 2, fps: float | None = None) -> None:
        bundle = Path(bundle)
        if not bundle.is_file():
            raise FaceModelError(f"face landmark bundle not found: {bundle} (see annotate.face_landmarks.ensure_landmarker_bundle)")
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        try:
            with zipfile.ZipFile(bundle) as zf:
                values = landmark_values(zf.read("face_landmarks_detector.tflite"))
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            raise FaceModelError(f"face landmark bundle {bundle} is not a face landmarker task bundle ({err})") from None
        if values != GRAPH_POINTS * 3:
            raise FaceModelError(
                f"face landmark bundle {bundle}: its landmark model outputs {values} values, the Tasks graph reads "
                f"{GRAPH_POINTS} x 3 = {GRAPH_POINTS * 3} (a bundle built before the padding fix scrambles the points); "
                f"rebuild it with annotate.face_landmarks.ensure_landmarker_bundle")
        from mediapipe.tasks.python import BaseOptions, vision

        mode = vision.RunningMode.IMAGE if fps is None else vision.RunningMode.VIDEO
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(bundle)), running_mode=mode, num_faces=max_faces,
            min_face_detection_confidence=0.5, min_face_presence_confidence=min_presence, min_tracking_confidence=0.5)
        self._task = vision.FaceLandmarker.create_from_options(options)
        self._fps = fps

    def detect(self, frame: np.ndarray) -> list[FaceMesh]:
        """A uint8 (H, W, 3) RGB frame (in video mode: the clip's next frame) -> the faces' meshes."""
        image = self._image(frame)
        result = self._task.detect(image) if self._fps is None else self._task.detect_for_video(image, self._next_stamp_ms())
        return [FaceMesh(np.array([[p.x, p.y, p.z] for p in face[:MESH_POINTS]], np.float32)) for face in result.face_landmarks]


def confirmed(box: tuple[float, float, float, float], meshes: list[FaceMesh]) -> bool:
    """Whether a detector box holds the centre of some face mesh (the mesh found a face there)."""
    x0, y0, x1, y1 = box
    for mesh in meshes:
        mx0, my0, mx1, my1 = mesh.box
        cx, cy = (mx0 + mx1) / 2, (my0 + my1) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return True
    return False
