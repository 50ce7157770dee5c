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
# Identities (mechanism profile): RGB gains on the face photo, hair included, one per video (video
# index modulo their count, so the last videos of a corpus, the benchmark's test split, differ). Gains
# only scale the photo's own colours: its hues stay far from the gloves' and ear cups' (the reader's).
FACE_TINTS = (
    (1.00, 1.00, 1.00),  # the photo as it is
    (0.55, 0.50, 0.48),  # dark
    (1.18, 1.00, 0.80),  # warm, light
    (0.82, 0.92, 1.12),  # cool
    (0.80, 0.62, 0.46),  # tan
    (1.25, 1.22, 1.20),  # pale
)


# Beat gestures (mechanism profile): a pump `beat` in 0..1 (the shot's vigour times the speech
# loudness times a (1 - cos) cycle, see `beat_offset`). While an arm action holds, the working arm
# pumps back towards rest by up to HOLD_PUMP of its reach and out again: each cycle's top frames
# stay in the action's reader zone and its bottom frames stay off rest, so the reader still labels
# every frame with the action. In idle both hands lift from rest by up to IDLE_LIFT (W units),
# clear of the phase's edges (IDLE_CLEAR_S still, then IDLE_RAMP_S to full): an action always
# starts and ends at rest, so the reader never merges an idle beat into the action next to it.
HOLD_PUMP = 0.45
IDLE_LIFT = 0.44
IDLE_CLEAR_S = 0.16
IDLE_RAMP_S = 0.2
# Beat rate at vigour 0 and 1: slow enough for the video VAE's 4-frame latents (6.25 per second)
# to carry the pumping (their Nyquist rate is 3.1 Hz).
BEAT_HZ = (1.5, 2.5)


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


def beat_hz(vigour: float) -> float:
    """Beat rate of a shot with this vigour (0..1): vigorous speakers pump faster as well as further."""
    return BEAT_HZ[0] + vigour * (BEAT_HZ[1] - BEAT_HZ[0])


def beat_offset(vigour: float, loudness: float, t: float) -> float:
    """The beat pump (0..1) at shot time `t` of a shot with this vigour, at this loudness (both 0..1)."""
    return vigour * loudness * 0.5 * (1.0 - math.cos(2 * math.pi * beat_hz(vigour) * t))


def pose_at(label: str, t: float, duration: float, *, tilt_sign: float = 1.0, mouth: float = 0.0,
            beat: float = 0.0) -> Pose:
    """Pose `t` seconds into a phase of `duration` seconds with action `label`.

    `beat` (0..1, see `beat_offset`) pulls the working arm of an arm action back towards rest by
    HOLD_PUMP * beat of its reach; in idle it lifts both hands by IDLE_LIFT * beat (elbows half),
    away from the phase's edges; head actions ignore it.
    Every phase starts and ends in the rest pose, so consecutive phases join continuously.
    Render at the middle of a frame's display interval, so a frame inside a phase always shows
    a pose that departs from rest (that is what makes per-frame truth readable).
    """
    if label not in ACTIONS:
        raise ValueError(f"unknown action label {label!r}; known: {sorted(ACTIONS)}")
    rest = Pose(mouth=mouth)
    if label == "idle":
        if beat == 0.0:
            return rest
        edge = min(t, duration - t) - IDLE_CLEAR_S
        lift = IDLE_LIFT * beat * min(1.0, max(0.0, edge / IDLE_RAMP_S))
        up = lambda p, d: (p[0], p[1] - d)  # noqa: E731
        return Pose(right_elbow=up(rest.right_elbow, 0.5 * lift), right_hand=up(rest.right_hand, lift),
                    left_elbow=up(rest.left_elbow, 0.5 * lift), left_hand=up(rest.left_hand, lift), mouth=mouth)
    if label in ARM_ACTIONS:
        w = _ease_envelope(t, duration, ARM_RAMP_S)
        reach = w if beat == 0.0 else w * (1.0 - HOLD_PUMP * beat)

        def arm(rest_pose: tuple[tuple[float, float], tuple[float, float]],
                target: tuple[tuple[float, float], tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
            return _lerp(rest_pose[0], target[0], reach), _lerp(rest_pose[1], target[1], reach)

        left_rest = (rest.left_elbow, rest.left_hand)
        if label == "raise_left_hand":
            le, lh = arm(left_rest, (_mirror(RAISED[0]), _mirror(RAISED[1])))
            return Pose(left_elbow=le, left_hand=lh, mouth=mouth)
        if label == "both_hands_up":
            re, rh = arm(REST, BOTH_UP)
            le, lh = arm(left_rest, (_mirror(BOTH_UP[0]), _mirror(BOTH_UP[1])))
            return Pose(right_elbow=re, right_hand=rh, left_elbow=le, left_hand=lh, mouth=mouth)
        target, pointing = {"raise_right_hand": (RAISED, False), "wave_right_hand": (WAVE, False),
                            "point_forward": (POINT, True)}[label]
        elbow, hand = arm(REST, target)
        if label == "wave_right_hand":
            hand = (hand[0] + w * WAVE_AMPLITUDE * math.sin(2 * math.pi * WAVE_HZ * t), hand[1])
        # The pointing forearm is drawn in front of the torso once the hand has left its side.
        return Pose(right_elbow=elbow, right_hand=hand, pointing=pointing and w > 0.05, mouth=mouth)
    if label == "tilt_head":
        return Pose(head_angle=tilt_sign * TILT_DEG * _ease_envelope(t, duration, TILT_RAMP_S), mouth=mouth)
    if label == "nod":
        phase = 2 * math.pi * oscillation_hz(NOD_HZ, duration) * t
        return Pose(head_dy=NOD_AMPLITUDE * math.sin(phase), mouth=mouth)
    phase = 2 * math.pi * oscillation_hz(SHAKE_HZ, duration) * t
    return Pose(head_dx=SHAKE_AMPLITUDE * math.sin(phase), mouth=mouth)
