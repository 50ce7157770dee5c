"""Analysis pass: one streaming decode per source feeds shot detection and face sampling.

PySceneDetect's detectors are fed frames of the 25 fps timeline scaled to `shots.analysis_width`
(its own video backends would decode the file again at full size); every `25 / face.sample_fps`-th
frame also goes, at `face.analysis_width`, to the mediapipe face detector. The result is plain
data: the cut frames and the faces seen on the sampled frames.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, closing
from typing import Any

import av
from scenedetect import FrameTimecode
from scenedetect.detectors import AdaptiveDetector, ContentDetector, ThresholdDetector

from annotate.config import FaceConfig, ShotConfig
from annotate.face_detector import FaceDetector, ensure_face_model
from annotate.face_landmarks import FaceLandmarker, confirmed, ensure_landmarker_bundle
from annotate.probe import SourceError
from annotate.sources import open_source
from annotate.timeline import Scaler, scaled_size, timeline_frames
from dataset.schema import VIDEO_FPS


def make_detectors(cfg: ShotConfig) -> list[Any]:
    min_len = 8  # frames; clips are planned from the shots afterwards, this only debounces
    detectors: list[Any] = []
    if cfg.detector == "adaptive":
        detectors.append(
            AdaptiveDetector(
                adaptive_threshold=cfg.adaptive_threshold,
                window_width=cfg.adaptive_window,
                min_content_val=cfg.min_content_val,
                min_scene_len=min_len,
            )
        )
    else:
        detectors.append(ContentDetector(threshold=cfg.content_threshold, min_scene_len=min_len))
    if cfg.fade_threshold > 0:
        detectors.append(ThresholdDetector(threshold=cfg.fade_threshold, min_scene_len=min_len))
    return detectors


def merge_cuts(cuts: list[int], tolerance: int = 3) -> list[int]:
    """Sorted cut frames with near-duplicates (several detectors, same transition) merged."""
    merged: list[int] = []
    for cut in sorted(set(cuts)):
        if merged and cut - merged[-1] <= tolerance:
            continue
        merged.append(cut)
    return merged


def analyse_source(uri: str, probe: dict[str, Any], shots: ShotConfig, face: FaceConfig | None, detector: FaceDetector | None,
                   landmarker: Any = None) -> dict[str, Any]:
    """Cut frames (and, with a detector, faces on sampled frames) of one source, one decode.

    With a `landmarker` (`annotate.face_landmarks.FaceLandmarker`), a detection counts only where
    the face mesh confirms a face; `unconfirmed` counts the detections it dropped.
    """
    rotation = probe["rotation"]
    shot_size = scaled_size(probe["width"], probe["height"], shots.analysis_width, rotation)
    if face is not None:
        face_size = scaled_size(probe["width"], probe["height"], min(face.analysis_width, probe["width"]), rotation)
        every = max(1, round(VIDEO_FPS / face.sample_fps))
    detectors = make_detectors(shots)
    shot_scaler, face_scaler = Scaler("AREA"), Scaler("AREA")
    cuts: list[int] = []
    faces: list[list[Any]] = []
    unconfirmed = 0
    n = -1
    try:
        with ExitStack() as stack:
            container = stack.enter_context(av.open(stack.enter_context(open_source(uri))))
            # closing(): stop the decode-ahead thread before the container closes, also on errors.
            for n, frame in stack.enter_context(closing(timeline_frames(container))):
                small = shot_scaler(frame, width=shot_size[0], height=shot_size[1], fmt="bgr24", rotation=rotation)
                timecode = FrameTimecode(n, fps=VIDEO_FPS)
                for det in detectors:
                    cuts += [c.frame_num for c in det.process_frame(timecode, small)]
                if detector is not None and n % every == 0:
                    image = face_scaler(frame, width=face_size[0], height=face_size[1], rotation=rotation)
                    found = detector.detect(image)
                    if landmarker is not None and found:
                        meshes = landmarker.detect(image)
                        kept = [f for f in found if confirmed(f.box, meshes)]
                        unconfirmed += len(found) - len(kept)
                        found = kept
                    faces.append([n, [[*f.box, f.score] for f in found]])
    except av.error.FFmpegError as err:
        raise SourceError("decode_error", f"decoding stopped at output frame {n + 1}: {err}") from None
    num_frames = n + 1
    expected = math.floor(probe["duration_s"] * VIDEO_FPS)
    if num_frames < 0.9 * expected - 1:
        raise SourceError("truncated", f"decoded {num_frames} of {expected} frames the container announces")
    if num_frames > 0:
        end = FrameTimecode(num_frames - 1, fps=VIDEO_FPS)
        for det in detectors:
            cuts += [c.frame_num for c in det.post_process(end)]
    return {"num_frames": num_frames, "cuts": merge_cuts([c for c in cuts if 0 < c < num_frames]), "faces": faces,
            "unconfirmed": unconfirmed}


class AnalyseStage:
    """`__call__(uri, probe) -> {"num_frames", "cuts", "faces"}`.

    The face model file is resolved once; the detector is opened per source and closed when the
    source is done (mediapipe's own finaliser fails when Ray ends an actor at interpreter exit).

    Args:
        shots: detector settings.
        face: sampling rate and detector settings.
    """

    def __init__(self, shots: ShotConfig, face: FaceConfig) -> None:
        self.shots, self.face = shots, face
        self.model_path = ensure_face_model(face.model_path or None)
        self.bundle = ensure_landmarker_bundle(face.landmark_bundle or None) if face.confirm == "landmarks" else None

    def __call__(self, uri: str, probe: dict[str, Any]) -> dict[str, Any]:
        with ExitStack() as stack:
            detector = stack.enter_context(FaceDetector(self.model_path, min_score=self.face.min_score))
            landmarker = None
            if self.bundle is not None:
                landmarker = stack.enter_context(FaceLandmarker(self.bundle, min_presence=self.face.min_presence))
            return analyse_source(uri, probe, self.shots, self.face, detector, landmarker)
