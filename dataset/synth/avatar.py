"""Draw the puppet: a real face photo (scikit-image's astronaut) on a rendered body with two arms.

The face sprite is cut out of `skimage.data.astronaut()` with a soft elliptical mask; its mouth
is redrawn every frame with an opening that follows the speech envelope. Body, arms, gloves and
headphones are flat shapes in the colours of `rig.py`, drawn with OpenCV at sub-pixel precision
(`shift`), so slow motions move smoothly instead of in whole-pixel steps.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from dataset.synth import rig

# Face crop in the 512x512 astronaut photo (x0, y0, side) and the mouth centre inside that crop.
_CROP = (153, 20, 146)
_MOUTH = (72.0, 126.0)
_MOUTH_HALF_WIDTH = 14.0
# The mouth centre relative to the head centre, in rig units before the head's tilt (the sprite is
# HEAD_SIZE wide and drawn centred on the head): what the pose reader places the mouth keypoint with.
MOUTH_OFFSET = tuple((m - (_CROP[2] - 1) / 2.0) / _CROP[2] * rig.HEAD_SIZE for m in _MOUTH)
_SHIFT = 4  # OpenCV fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT


def _load_face_sprite() -> np.ndarray:
    """(S, S, 4) float32 premultiplied RGBA of the face with hair, soft elliptical edge."""
    from skimage import data

    x0, y0, side = _CROP
    rgb = data.astronaut()[y0:y0 + side, x0:x0 + side].astype(np.float32)
    alpha = np.zeros((side, side), np.float32)
    c = side // 2
    cv2.ellipse(alpha, (c, c), (c - 3, c - 1), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    return np.dstack([rgb * alpha[..., None], alpha]).astype(np.float32)


def _fx(value: float) -> int:
    return int(round(value * _ONE))


class PuppetRenderer:
    """Draws puppets into RGB uint8 canvases, in place.

    One instance per process: the face sprite is built once and reused for every frame.
    """

    def __init__(self) -> None:
        self._base_sprite = self._sprite = _load_face_sprite()
        self._tint: tuple[float, float, float] | None = None

    def set_identity(self, tint: tuple[float, float, float] | None) -> None:
        """Scale the face photo's RGB (hair included) by `tint` for the next draws; None = as it is.
        Premultiplied colours scale linearly, so the soft edge keeps its shape."""
        if tint == self._tint:
            return
        self._tint = tint
        self._sprite = self._base_sprite
        if tint is not None:
            sprite = self._base_sprite.copy()
            sprite[..., :3] = np.minimum(sprite[..., :3] * np.asarray(tint, np.float32), 255.0 * sprite[..., 3:4])
            self._sprite = sprite

    def draw(self, canvas: np.ndarray, anchor: tuple[float, float], scale: float, pose: rig.Pose, *,
             glove_scale: float = 1.0, point_glove_scale: float = rig.POINT_GLOVE_SCALE, arm_scale: float = 1.0,
             sleeve_rgb: tuple[int, int, int] = rig.SLEEVE_RGB) -> None:
        """Draw one puppet.

        Args:
            canvas: uint8 (H, W, 3) RGB frame, modified in place.
            anchor: pixel position of the neck base (middle of the shoulder line).
            scale: shoulder width in pixels (the rig's unit W).
            pose: what the puppet does in this frame.
            glove_scale: glove radius relative to `rig.GLOVE_RADIUS` (bigger gloves keep their colour
                through 4:2:0 chroma in very small clips).
            point_glove_scale: extra factor on the pointing hand (it is nearer the camera).
            arm_scale: arm thickness relative to `rig.ARM_THICKNESS`.
            sleeve_rgb: sleeve colour (keep it desaturated: the reader's colour masks must not see it).
        """
        ax, ay = anchor

        def px(p: tuple[float, float]) -> tuple[int, int]:
            return _fx(ax + scale * p[0]), _fx(ay + scale * p[1])

        thick = max(1, int(round(rig.ARM_THICKNESS * arm_scale * scale)))
        arms = (
            (rig.SHOULDER, pose.right_elbow, pose.right_hand),
            ((-rig.SHOULDER[0], rig.SHOULDER[1]), pose.left_elbow, pose.left_hand),
        )
        # 1. Arms behind the torso: their roots disappear under the shoulders like real arms.
        for shoulder, elbow, hand in arms:
            self._line(canvas, px(shoulder), px(elbow), sleeve_rgb, thick)
            self._line(canvas, px(elbow), px(hand), sleeve_rgb, thick)
        # 2. Torso, neckline and neck.
        cv2.fillPoly(canvas, [np.array([px(p) for p in rig.TORSO], np.int32)], rig.SHIRT_RGB, cv2.LINE_AA, _SHIFT)
        neckline = np.array([px((-0.10, -0.01)), px((0.10, -0.01)), px((0.0, 0.14))], np.int32)
        cv2.fillPoly(canvas, [neckline], rig.SKIN_RGB, cv2.LINE_AA, _SHIFT)
        (nx0, ny0), (nx1, ny1) = rig.NECK
        neck = np.array([px((nx0, ny0)), px((nx1, ny0)), px((nx1, ny1)), px((nx0, ny1))], np.int32)
        cv2.fillPoly(canvas, [neck], rig.SKIN_RGB, cv2.LINE_AA, _SHIFT)
        # 3. Head: the face photo with the mouth redrawn, then headphones that move with it.
        head = (ax + scale * (rig.HEAD_CENTER[0] + pose.head_dx), ay + scale * (rig.HEAD_CENTER[1] + pose.head_dy))
        self._draw_head(canvas, head, scale, pose.head_angle, pose.mouth)
        self._draw_headphones(canvas, head, scale, pose.head_angle)
        # 4. A pointing forearm comes towards the camera, in front of the torso.
        if pose.pointing:
            self._line(canvas, px(pose.right_elbow), px(pose.right_hand), sleeve_rgb, thick)
        # 5. Gloves last: nothing ever covers a hand, so the reader always sees both.
        glove_r = rig.GLOVE_RADIUS * scale * glove_scale
        right_r = glove_r * (point_glove_scale if pose.pointing else 1.0)
        cv2.circle(canvas, px(pose.right_hand), _fx(right_r), rig.RIGHT_GLOVE_RGB, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas, px(pose.left_hand), _fx(glove_r), rig.LEFT_GLOVE_RGB, -1, cv2.LINE_AA, _SHIFT)

    @staticmethod
    def _line(canvas: np.ndarray, a: tuple[int, int], b: tuple[int, int], color: tuple[int, int, int], thick: int) -> None:
        cv2.line(canvas, a, b, color, thick, cv2.LINE_AA, _SHIFT)

    def _draw_head(self, canvas: np.ndarray, center: tuple[float, float], scale: float, angle: float, mouth: float) -> None:
        sprite = self._sprite
        if mouth > 0.02:
            sprite = sprite.copy()
            half_h = 1.0 + 8.0 * float(np.clip(mouth, 0.0, 1.0))
            mx, my = _MOUTH
            # Premultiplied colour (alpha is 1 at the mouth): dark mouth cavity, teeth above it.
            cv2.ellipse(sprite, (_fx(mx), _fx(my)), (_fx(_MOUTH_HALF_WIDTH), _fx(half_h)), 0, 0, 360,
                        (70.0, 25.0, 30.0, 1.0), -1, cv2.LINE_AA, _SHIFT)
            cv2.ellipse(sprite, (_fx(mx), _fx(my - half_h * 0.55)), (_fx(_MOUTH_HALF_WIDTH * 0.7), _fx(half_h * 0.3)),
                        0, 0, 360, (235.0, 230.0, 220.0, 1.0), -1, cv2.LINE_AA, _SHIFT)
        side = sprite.shape[0]
        s = rig.HEAD_SIZE * scale / side
        cos, sin = s * math.cos(math.radians(angle)), s * math.sin(math.radians(angle))
        half = 0.75 * rig.HEAD_SIZE * scale  # covers the rotated square
        h, w = canvas.shape[:2]
        x0, y0 = max(0, int(center[0] - half)), max(0, int(center[1] - half))
        x1, y1 = min(w, int(center[0] + half) + 2), min(h, int(center[1] + half) + 2)
        if x1 <= x0 or y1 <= y0:
            return
        c = (side - 1) / 2.0
        # Sprite centre -> head centre, rotated and scaled; translated into the ROI's frame.
        m = np.array([[cos, -sin, center[0] - x0 - (cos * c - sin * c)],
                      [sin, cos, center[1] - y0 - (sin * c + cos * c)]], np.float64)
        warped = cv2.warpAffine(sprite, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        roi = canvas[y0:y1, x0:x1].astype(np.float32)
        out = roi * (1.0 - warped[..., 3:4]) + warped[..., :3]
        canvas[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _draw_headphones(canvas: np.ndarray, center: tuple[float, float], scale: float, angle: float) -> None:
        rad = math.radians(angle)
        cos, sin = math.cos(rad), math.sin(rad)
        band_axes = (_fx(rig.BAND_AXES[0] * scale), _fx(rig.BAND_AXES[1] * scale))
        cv2.ellipse(canvas, (_fx(center[0]), _fx(center[1])), band_axes, angle, 180, 360, rig.BAND_RGB,
                    max(1, int(round(0.045 * scale))), cv2.LINE_AA, _SHIFT)
        for sign, color in ((-1.0, rig.RIGHT_CUP_RGB), (1.0, rig.LEFT_CUP_RGB)):
            ox, oy = sign * rig.CUP_OFFSET[0] * scale, rig.CUP_OFFSET[1] * scale
            cx, cy = center[0] + cos * ox - sin * oy, center[1] + sin * ox + cos * oy
            cv2.circle(canvas, (_fx(cx), _fx(cy)), _fx(rig.CUP_RADIUS * scale), color, -1, cv2.LINE_AA, _SHIFT)

