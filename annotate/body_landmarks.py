"""Body landmarks (MediaPipe BlazePose, 33 points) and how the model is obtained.

mediapipe >= 0.10.30 ships no model files and no `pose_landmarker.task` is on the package index,
but the mediapipe 0.10.21 wheel (already fetched for the face detector) holds the legacy graph's
BlazePose pair: `pose_detection.tflite` (the person detector) and `pose_landmark_full.tflite`.
The Tasks API of the mediapipe we install runs them once they are packed as Google's
`pose_landmarker.task` is (a zip of `pose_detector.tflite` and `pose_landmarks_detector.tflite`)
and each carries TFLite metadata saying how to normalise its input image: the Tasks graph reads
that from the model, the legacy graph hard-coded it (detector [-1, 1], landmarks [0, 1]), so the
legacy files have none and the Tasks API refuses them. mediapipe's own metadata writer needs a
compiled module the wheel we install lacks, so `with_normalization` writes the few metadata tables
itself with the flatbuffer schemas mediapipe ships (`mediapipe.tasks.metadata`). The weights are
untouched. `ensure_pose_bundle()` builds the bundle once into the cache, next to the face models:

    ~/.cache/actavatar/models/pose_landmarker_v1.task   ($ACTAVATAR_CACHE/models/ when set)

Checked on real photographs (scikit-image's astronaut portrait: eyes, nose, mouth corners, ears
and both shoulders where they are) and on the synthetic puppets (shoulders within a few pixels of
the rig's). The wheel's hand models (palm detector + hand landmarks) pack the same way
(`annotate.hand_landmarks`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotate.face_detector import FaceModelError, MediapipeTask, default_model_path, ensure_wheel_bundle, zip_task_bundle

BUNDLE_NAME = "pose_landmarker_v1.task"
DETECTOR_MEMBER = "mediapipe/modules/pose_detection/pose_detection.tflite"
DETECTOR_SHA256 = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
LANDMARK_MEMBER = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
LANDMARK_SHA256 = "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"
# input ranges of the legacy graph (pose_detection_cpu / pose_landmark_by_roi_cpu): value = (pixel - mean) / std
DETECTOR_NORM = (127.5, 127.5)  # [-1, 1]
LANDMARK_NORM = (0.0, 255.0)  # [0, 1]
NUM_LANDMARKS = 33


def default_bundle_path() -> Path:
    return default_model_path().parent / BUNDLE_NAME


def with_normalization(model: bytes, mean: float, std: float) -> bytes:
    """A .tflite model with TFLite metadata that declares its input an RGB image normalised as
    (pixel - mean) / std and names its outputs; everything else (weights, graph) is unchanged."""
    import flatbuffers

    from mediapipe.tasks.metadata import metadata_schema_py_generated as md
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    graph = tfl.ModelT.InitFromPackedBuf(bytearray(model), 0)
    norm = md.NormalizationOptionsT()
    norm.mean, norm.std = [float(mean)], [float(std)]
    unit = md.ProcessUnitT()
    unit.optionsType, unit.options = md.ProcessUnitOptions.NormalizationOptions, norm
    props = md.ImagePropertiesT()
    props.colorSpace = md.ColorSpaceType.RGB
    content = md.ContentT()
    content.contentPropertiesType, content.contentProperties = md.ContentProperties.ImageProperties, props
    image = md.TensorMetadataT()
    image.name, image.content, image.processUnits = "image", content, [unit]
    outputs = []
    for i in range(len(graph.subgraphs[0].outputs)):
        out = md.TensorMetadataT()
        out.name = f"output_{i}"
        outputs.append(out)
    subgraph = md.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [image], outputs
    meta = md.ModelMetadataT()
    meta.name, meta.subgraphMetadata, meta.minParserVersion = "mediapipe 0.10.21 legacy model", [subgraph], "1.0.0"
    builder = flatbuffers.Builder(1024)
    builder.Finish(meta.Pack(builder), file_identifier=b"M001")
    buffer = tfl.BufferT()
    buffer.data = np.frombuffer(bytes(builder.Output()), np.uint8)
    graph.buffers.append(buffer)
    entry = tfl.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(graph.buffers) - 1
    graph.metadata = [m for m in (graph.metadata or []) if m.name not in (b"TFLITE_METADATA", "TFLITE_METADATA")] + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_bundle(detector: bytes, landmarks: bytes) -> bytes:
    """The task bundle's bytes (Google's pose_landmarker.task layout, normalisation metadata added)."""
    return zip_task_bundle([("pose_detector.tflite", with_normalization(detector, *DETECTOR_NORM)),
                            ("pose_landmarks_detector.tflite", with_normalization(landmarks, *LANDMARK_NORM))])


def ensure_pose_bundle(path: str | Path | None = None) -> Path:
    """Return a path to the pose landmarker task bundle, building it once from the 0.10.21 wheel.

    Raises:
        FaceModelError: the bundle is missing and the wheel could not be fetched or checked.
    """
    return ensure_wheel_bundle(
        Path(path).expanduser() if path is not None else default_bundle_path(),
        {DETECTOR_MEMBER: DETECTOR_SHA256, LANDMARK_MEMBER: LANDMARK_SHA256},
        lambda m: build_bundle(m[DETECTOR_MEMBER], m[LANDMARK_MEMBER]), "pose landmark bundle",
        f"annotate.body_landmarks.build_bundle on {DETECTOR_MEMBER} and {LANDMARK_MEMBER}")


class BodyLandmarker(MediapipeTask):
    """MediaPipe pose landmarker (Tasks API) on the bundle above, for one clip: video mode, so the
    person found in one frame is tracked into the next (the detector reruns only when tracking is
    lost), which is why one instance serves one clip's frames in order.

    Args:
        bundle: the .task file (see `ensure_pose_bundle`).
        fps: the clip's frame rate (the frames' timestamps).
        min_score: detection, presence and tracking thresholds (MediaPipe's default 0.5).
    """

    def __init__(self, bundle: str | Path, *, fps: float = 25.0, min_score: float = 0.5) -> None:
        bundle = Path(bundle)
        if not bundle.is_file():
            raise FaceModelError(f"pose landmark bundle not found: {bundle} (see annotate.body_landmarks.ensure_pose_bundle)")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        from mediapipe.tasks.python import BaseOptions, vision

        # one person: with more, video mode reruns the detector on every frame (twice the cost)
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(bundle)), running_mode=vision.RunningMode.VIDEO, num_poses=1,
            min_pose_detection_confidence=min_score, min_pose_presence_confidence=min_score, min_tracking_confidence=min_score)
        self._task = vision.PoseLandmarker.create_from_options(options)
        self._fps = fps

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """The next frame of the clip, uint8 (H, W, 3) RGB -> (33, 3) BlazePose landmarks (x and y
        normalised to the frame, the landmark's visibility), or None when nobody is found."""
        image = self._image(frame)
        result = self._task.detect_for_video(image, self._next_stamp_ms())
        if not result.pose_landmarks:
            return None
        return np.array([[p.x, p.y, p.visibility if p.visibility is not None else 0.0] for p in result.pose_landmarks[0]],
                        np.float32)
