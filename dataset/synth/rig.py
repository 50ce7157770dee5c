"""The puppet's rig: action vocabulary, colours, geometry and the pose at any time of a phase.

Shared by the renderer (`avatar.py`) and the reader (`actions.py`): the reader finds the puppet by
the colours below and interprets positions in the same units, so both must agree.

Units: `W` = shoulder width in pixels. Puppet coordinates are relative to the neck base (the
middle of the shoulder line), x to the image right, y down. "Right hand" is the puppet's right,
i.e. on the image left (the puppet faces the camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# label -> short natural-language description of a phase (the caption a VLM should produce).
ACTIONS: dict[str, str] = {
    "idle": "stands still, hands down",
    "raise_right_hand": "raises the right hand",
    "raise_left_hand": "raises the left hand",
    "wave_right_hand": "waves with the right hand",
    "both_hands_up": "raises both hands",
    "point_forward": "points forward with the right hand",
    "nod": "nods",
    "shake_head": "shakes the head",
    "tilt_head": "tilts the head to the side",
}
# Per-frame label of frames that show no avatar (negative shots).
NO_AVATAR = "none"
ARM_ACTIONS = ("raise_right_hand", "raise_left_hand", "wave_right_hand", "both_hands_up", "point_forward")
HEAD_ACTIONS = ("nod", "shake_head", "tilt_head")

# Saturated, distinct hues, far from skin, hair and the desaturated backgrounds (RGB).
SHIRT_RGB = (35, 65, 185)
SLEEVE_RGB = (74, 76, 84)
RIGHT_GLOVE_RGB = (40, 185, 60)
LEFT_GLOVE_RGB = (200, 40, 185)
RIGHT_CUP_RGB = (205, 230, 25)  # lime: plain yellow is too close to blond hair
LEFT_CUP_RGB = (20, 195, 215)
BAND_RGB = (60, 60, 66)
SKIN_RGB = (222, 170, 140)

# Geometry in W units (see module docstring).
HEAD_CENTER = (0.0, -0.80)
HEAD_SIZE = 1.05  # side of the square face sprite (a big head: the face detector needs it)
CUP_OFFSET = (0.53, 0.04)  # ear cups relative to the head centre (x mirrored)
CUP_RADIUS = 0.11
BAND_AXES = (0.53, 0.57)  # headband arc over the hair
GLOVE_RADIUS = 0.11  # big enough to keep its colour through 4:2:0 chroma at 120p
ARM_THICKNESS = 0.13
SHOULDER = (-0.40, 0.10)  # right shoulder joint; left is mirrored
TORSO = ((-0.42, 0.0), (0.42, 0.0), (0.50, 0.12), (0.47, 1.8), (-0.47, 1.8), (-0.50, 0.12))
NECK = ((-0.12, -0.36), (0.12, 0.04))
# Vertical extent the frame must show: raised glove top to resting glove bottom.
TOP_EXTENT = 1.42
BOTTOM_EXTENT = 1.14

# Right-arm key poses as (elbow, hand); the left arm mirrors x.
REST = ((-0.56, 0.55), (-0.60, 1.02))
RAISED = ((-0.95, -0.42), (-0.86, -1.30))
BOTH_UP = ((-1.00, -0.40), (-0.96, -1.25))
WAVE = ((-1.05, 0.0), (-1.20, -0.62))
POINT = ((-0.50, 0.42), (-0.12, 0.28))
POINT_GLOVE_SCALE = 1.35  # the pointing hand is nearer the camera

WAVE_AMPLITUDE, WAVE_HZ = 0.16, 2.5
NOD_AMPLITUDE, NOD_HZ = 0.08, 1.8
SHAKE_AMPLITUDE, SHAKE_HZ = 0.09, 2.2
TILT_DEG = 16.0
ARM_RAMP_S = 0.30  # time to raise (and to lower) an arm inside its phase
TILT_RAMP_S = 0.12


@dataclass(frozen=True, slots=True)
class Pose:
    """Everything the renderer needs for one puppet in one frame (W units, degrees)."""

    right_elbow: tuple[float, float] = REST[0]
    right_hand: tuple[float, float] = REST[1]
    left_elbow: tuple[float, float] = (-REST[0][0], REST[0][1])
    left_hand: tuple[float, float] = (-REST[1][0], REST[1][1])
    pointing: bool = False
    head_dx: float = 0.0
    head_dy: float = 0.0
    head_angle: float = 0.0  # positive: the head turns clockwise in the image
    mouth: float = 0.0  # 0 closed .. 1 wide open


def _ease_envelope(t: float, duration: float, ramp: float) -> float:
    """0 -> 1 -> 0 over a phase: fast departure (cubic ease-out) and fast arrival back (ease-in).

    Fast at the phase edges so the first and last frame of a phase already differ visibly from rest.
    """
    ramp = min(ramp, duration / 3.0)
    if t < ramp:
        return 1.0 - (1.0 - t / ramp) ** 3
    if t > duration - ramp:
        return 1.0 - (1.0 - max(0.0, (duration - t) / ramp)) ** 3
    return 1.0


def _lerp(a: tuple[float, float], b: tuple[float, float], w: float) -> tuple[float, float]:
    return (a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1]))


def _mirror(p: tuple[float, float]) -> tuple[float, float]:
    return (-p[0], p[1])


def oscillation_hz(base_hz: float, duration: float) -> float:
    """A whole number of cycles per phase, so head motions end back at neutral."""
    return max(1, round(base_hz * duration)) / duration


def pose_at(label: str, t: float, duration: float, *, tilt_sign: float = 1.0, mouth: float = 0.0) -> Pose:
    """Pose `t` seconds into a phase of `duration` seconds with action `label`.

    Every phase starts and ends in the rest pose, so consecutive phases join continuously.
    Render at the middle of a frame's display interval, so a frame inside a phase always shows
    a pose that departs from rest (that is what makes per-frame truth readable).
    """
    if label not in ACTIONS:
        raise ValueError(f"unknown action label {label!r}; known: {sorted(ACTIONS)}")
    rest = Pose(mouth=mouth)
    if label == "idle":
        return rest
    if label in ARM_ACTIONS:
        w = _ease_envelope(t, duration, ARM_RAMP_S)
        if label == "raise_left_hand":
            return Pose(left_elbow=_lerp(rest.left_elbow, _mirror(RAISED[0]), w),
                        left_hand=_lerp(rest.left_hand, _mirror(RAISED[1]), w), mouth=mouth)
        if label == "both_hands_up":
            return Pose(right_elbow=_lerp(REST[0], BOTH_UP[0], w), right_hand=_lerp(REST[1], BOTH_UP[1], w),
                        left_elbow=_lerp(rest.left_elbow, _mirror(BOTH_UP[0]), w),
                        left_hand=_lerp(rest.left_hand, _mirror(BOTH_UP[1]), w), mouth=mouth)
        target, pointing = {"raise_right_hand": (RAISED, False), "wave_right_hand": (WAVE, False),
                            "point_forward": (POINT, True)}[label]
        hand = _lerp(REST[1], target[1], w)
        if label == "wave_right_hand":
            hand = (hand[0] + w * WAVE_AMPLITUDE * math.sin(2 * math.pi * WAVE_HZ * t), hand[1])
        # The pointing forearm is drawn in front of the torso once the hand has left its side.
        return Pose(right_elbow=_lerp(REST[0], target[0], w), right_hand=hand,
                    pointing=pointing and w > 0.05, mouth=mouth)
    if label == "tilt_head":
        return Pose(head_angle=tilt_sign * TILT_DEG * _ease_envelope(t, duration, TILT_RAMP_S), mouth=mouth)
    if label == "nod":
        phase = 2 * math.pi * oscillation_hz(NOD_HZ, duration) * t
        return Pose(head_dy=NOD_AMPLITUDE * math.sin(phase), mouth=mouth)
    phase = 2 * math.pi * oscillation_hz(SHAKE_HZ, duration) * t
    return Pose(head_dx=SHAKE_AMPLITUDE * math.sin(phase), mouth=mouth)
