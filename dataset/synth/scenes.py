"""Pictures behind and instead of the puppet: studio backgrounds and panning scenes without people.

Everything comes from images packaged with scikit-image (no downloads). Studio backgrounds are
kept desaturated so that no background pixel can pass for one of the puppet's marker colours.
Scene shots (negatives: no person, no face) pan slowly across a packaged photo.
"""

from __future__ import annotations

import cv2
import numpy as np

# Packaged images without people or faces (checked with the face detector in the tests).
# (hubble_deep_field is left out: the face detector sees a face in one of its galaxies.)
SCENE_IMAGES = ("coffee", "rocket", "coins", "brick", "gravel", "grass", "moon",
                "immunohistochemistry", "retina", "clock")
_TEXTURES = ("brick", "gravel", "grass", "moon")


def load_image(name: str) -> np.ndarray:
    """A packaged scikit-image picture as uint8 (H, W, 3) RGB."""
    from skimage import data

    if name not in SCENE_IMAGES:
        raise ValueError(f"unknown scene image {name!r}; known: {', '.join(SCENE_IMAGES)}")
    img = np.asarray(getattr(data, name)())
    if img.dtype != np.uint8:
        img = (img > 0).astype(np.uint8) * 255 if img.dtype == bool else img.astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def studio_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A soft wall: a blurred packaged texture, faintly tinted, with a gradient and a vignette."""
    texture = load_image(str(rng.choice(_TEXTURES)))[..., 0].astype(np.float32)
    texture = cv2.resize(texture, (width, height), interpolation=cv2.INTER_AREA)
    texture = cv2.GaussianBlur(texture, (0, 0), max(1.0, height / 120.0))
    texture = (texture - texture.mean()) / (texture.std() + 1e-6)
    base = rng.uniform(110, 200)
    # Low saturation by construction: channel offsets of at most ±18 around a grey level.
    tint = rng.uniform(-18, 18, size=3).astype(np.float32)
    yy = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    gradient = rng.uniform(-25, 25) * yy
    vignette = -30.0 * (xx ** 2 + yy ** 2) / 2.0
    grey = base + gradient + vignette + 10.0 * texture
    img = grey[..., None] + tint[None, None, :]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


class PanningScene:
    """A packaged photo, scaled to cover the frame with room to move, panned across a shot.

    Args:
        name: one of `SCENE_IMAGES`.
        height, width: frame size.
        rng: picks the pan direction and zoom.
    """

    def __init__(self, name: str, height: int, width: int, rng: np.random.Generator) -> None:
        img = load_image(name)
        zoom = rng.uniform(1.25, 1.5)
        scale = zoom * max(height / img.shape[0], width / img.shape[1])
        self._img = cv2.resize(img, (int(img.shape[1] * scale) + 1, int(img.shape[0] * scale) + 1),
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        self._size = (width, height)
        room = np.array([self._img.shape[1] - width, self._img.shape[0] - height], np.float64)
        start = rng.uniform(0.0, 0.2, size=2) * room
        end = rng.uniform(0.8, 1.0, size=2) * room
        if rng.random() < 0.5:
            start[0], end[0] = end[0], start[0]
        self._start, self._end = start, end

    def frame(self, progress: float) -> np.ndarray:
        """The view at `progress` in [0, 1] of the shot (sub-pixel translation, smooth pan)."""
        ox, oy = self._start + (self._end - self._start) * float(np.clip(progress, 0.0, 1.0))
        m = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy]], np.float64)
        return cv2.warpAffine(self._img, m, self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
