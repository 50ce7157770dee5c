"""Plan one raw video before drawing anything: format, frame timestamps, shots and action phases.

A plan is a pure function of (corpus seed, video index, config), so videos can be rendered in any
order or in parallel and still come out identical. All boundaries are frame indices; seconds are
derived from the frame timestamps, which makes shots and phases line up with frames exactly (also
in the variable-frame-rate file).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from dataset.synth import rig

AVATAR_KINDS = ("talk", "two_avatars", "silent", "music")
NEGATIVE_KINDS = ("scene", "two_avatars", "silent", "music")
SHOT_KINDS = ("talk", "scene", "two_avatars", "silent", "music")
# Frame-rate kinds in the order videos cycle through them: 25, VFR, 29.97 (NTSC) and 30 fps.
RATE_KINDS = ("25", "vfr", "29.97", "30")
SAMPLE_RATES = (16000, 44100, 48000)
_VFR_TIME_BASE = Fraction(1, 600)
_VFR_TICKS = (20, 24, 30)  # frame durations of 1/30, 1/25 and 1/20 s
MIN_SHOT_S = 2.5
MIN_PHASE_S = 0.5
FADE_S = 0.4  # each side of a fade through black
PROFILES = ("default", "mechanism")
# The mechanism profile (the `actavatar bench mechanism` corpus): timing control, not visual variety.
MECHANISM_ACTION_S = (1.0, 2.0)  # each arm action
MECHANISM_IDLE_S = (0.6, 1.2)  # idle gaps between actions
MECHANISM_IDLE_PROB = 0.5  # chance of an idle gap after an action (else the next action follows)
MECHANISM_SHOT_S = 8.0  # mean shot length: long shots keep more frames after trimming
MECHANISM_GREYS = (80, 104, 128, 152)  # plain backgrounds, darker than the light sleeves; consecutive shots differ
# Per-shot gesture vigour (0..1, see rig.beat_offset) and per-sentence speech gain: drawn from their
# own random streams, independently of the actions, so that how much the puppet moves varies apart
# from what it does (and the phase schedule of a seed is the same as without them).
MECHANISM_VIGOUR = (0.0, 1.0)
MECHANISM_SPEECH_GAIN = (0.3, 1.0)


@dataclass(frozen=True, slots=True)
class Phase:
    start_frame: int  # inclusive, video frame index
    end_frame: int  # exclusive
    label: str
    tilt_sign: float = 1.0


@dataclass(frozen=True, slots=True)
class ShotPlan:
    kind: str
    start_frame: int
    end_frame: int
    transition: str  # how the shot begins: "start", "cut" or "fade"
    fade_in: int  # frames brightening from black at the start
    fade_out: int  # frames darkening to black at the end
    seed: int
    phases: tuple[Phase, ...]
    scene_image: str | None = None
    plain_grey: int | None = None  # a uniform background of this grey level instead of the studio wall
    vigour: float = 0.0  # beat gestures on arm actions (0: none; mechanism profile only)
    speech_gain: tuple[float, float] | None = None  # per-sentence loudness range (None: every sentence at full level)

    @property
    def num_avatars(self) -> int:
        return {"scene": 0, "two_avatars": 2}.get(self.kind, 1)


@dataclass(frozen=True, slots=True)
class VideoPlan:
    index: int
    video_id: str
    width: int
    height: int
    rate: Fraction  # nominal (average for VFR) frame rate
    time_base: Fraction
    pts: np.ndarray  # (T + 1,) int64 frame start times in time_base units; the last is the end
    vfr: bool
    sample_rate: int
    shots: tuple[ShotPlan, ...]
    profile: str = "default"  # see PROFILES
    identity: int | None = None  # index into rig.FACE_TINTS (mechanism profile); None = the photo as it is

    @property
    def num_frames(self) -> int:
        return int(self.pts.size - 1)

    @property
    def times_s(self) -> np.ndarray:
        """(T + 1,) float64 frame start times in seconds, plus the end of the video."""
        return self.pts.astype(np.float64) * float(self.time_base)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])


def _timeline(kind: str, duration_s: float, rng: np.random.Generator) -> tuple[Fraction, Fraction, np.ndarray]:
    if kind == "vfr":
        ticks = rng.choice(_VFR_TICKS, size=int(duration_s * 50) + 2)
        pts = np.concatenate([[0], np.cumsum(ticks)]).astype(np.int64)
        pts = pts[: int(np.searchsorted(pts, duration_s / _VFR_TIME_BASE)) + 1]
        rate = Fraction(pts.size - 1) / (Fraction(int(pts[-1])) * _VFR_TIME_BASE)
        return rate.limit_denominator(1001), _VFR_TIME_BASE, pts
    rate = {"25": Fraction(25), "29.97": Fraction(30000, 1001), "30": Fraction(30)}[kind]
    n = int(round(duration_s * rate))
    return rate, 1 / rate, np.arange(n + 1, dtype=np.int64)


def _shot_kinds(index: int, count: int) -> list[str]:
    """Talking shots alternate with negatives; which negatives a video gets rotates over the corpus."""
    n_neg = min(len(NEGATIVE_KINDS), (count + 1) // 2) if count > 1 else 0
    negatives = [NEGATIVE_KINDS[(index * n_neg + j) % len(NEGATIVE_KINDS)] for j in range(n_neg)]
    kinds = ["talk"] * count
    slots = list(range(1, count, 2)) + list(range(2, count, 2))
    for slot, kind in zip(slots, negatives):
        kinds[slot] = kind
    return kinds


def schedule_phases(rng: np.random.Generator, times_s: np.ndarray, start: int, end: int) -> tuple[Phase, ...]:
    """Cover frames [start, end) with idle and action phases; every phase lasts >= MIN_PHASE_S.

    Arm actions get 1.8-3 s (raise, hold, lower), head actions 1.4-2.4 s, idle gaps 0.5-1.5 s.
    """
    t0, t_end = times_s[start], times_s[end]
    actions = [a for a in rig.ACTIONS if a != "idle"]
    cuts: list[tuple[float, str]] = [(t0, "idle")]
    t = t0 + rng.uniform(0.5, 1.2)
    previous = "idle"
    while True:
        label = str(rng.choice([a for a in actions if a != previous]))
        length = rng.uniform(1.8, 3.0) if label in rig.ARM_ACTIONS else rng.uniform(1.4, 2.4)
        if t + length > t_end - MIN_PHASE_S:
            break
        cuts.append((t, label))
        t += length
        previous = label
        if rng.random() < 0.75:
            cuts.append((t, "idle"))
            t += rng.uniform(MIN_PHASE_S, 1.5)
            previous = "idle"
    cuts.append((t, "idle"))
    phases: list[Phase] = []
    bounds = [int(np.searchsorted(times_s, c, side="left")) for c, _ in cuts] + [end]
    for (_, label), a, b in zip(cuts, bounds[:-1], bounds[1:]):
        b = min(b, end)
        if b <= a:
            continue
        if phases and phases[-1].label == label:  # two idles in a row (dropped action) merge
            phases[-1] = Phase(phases[-1].start_frame, b, label)
            continue
        phases.append(Phase(a, b, label, float(rng.choice([-1.0, 1.0]))))
    # Snapping to frames can leave a tail shorter than MIN_PHASE_S: give it to its predecessor.
    if len(phases) > 1 and times_s[phases[-1].end_frame] - times_s[phases[-1].start_frame] < MIN_PHASE_S:
        last = phases.pop()
        phases[-1] = Phase(phases[-1].start_frame, last.end_frame, phases[-1].label, phases[-1].tilt_sign)
    return tuple(phases)


class ActionBag:
    """Draws arm actions so that each appears equally often: a shuffled round of all of them, then
    the next round, never the same action twice in a row (balance across a corpus without counting)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.pending, self.last = rng, [], None

    def draw(self) -> str:
        if not self.pending:
            self.pending = [str(a) for a in self.rng.permutation(rig.ARM_ACTIONS)]
            if self.pending[0] == self.last:  # rounds join without a repeat
                self.pending.append(self.pending.pop(0))
        self.last = self.pending.pop(0)
        return self.last


def schedule_arm_phases(rng: np.random.Generator, times_s: np.ndarray, start: int, end: int,
                        bag: ActionBag) -> tuple[Phase, ...]:
    """Mechanism profile: cover frames [start, end) with arm actions of MECHANISM_ACTION_S seconds,
    sometimes separated by idle gaps of MECHANISM_IDLE_S; the shot opens and closes with idle."""
    t0, t_end = times_s[start], times_s[end]
    cuts: list[tuple[float, str]] = [(t0, "idle")]
    t = t0 + rng.uniform(*MECHANISM_IDLE_S)
    while True:
        length = rng.uniform(*MECHANISM_ACTION_S)
        if t + length > t_end - MIN_PHASE_S:
            break
        cuts.append((t, bag.draw()))
        t += length
        if rng.random() < MECHANISM_IDLE_PROB:
            gap = rng.uniform(*MECHANISM_IDLE_S)
            if t + gap > t_end - MIN_PHASE_S:
                break  # the closing idle covers the rest (at least MIN_PHASE_S)
            cuts.append((t, "idle"))
            t += gap
    cuts.append((t, "idle"))
    bounds = [int(np.searchsorted(times_s, c, side="left")) for c, _ in cuts] + [end]
    phases: list[Phase] = []
    for (_, label), a, b in zip(cuts, bounds[:-1], bounds[1:]):
        b = min(b, end)
        if b <= a:
            continue
        if phases and phases[-1].label == label:  # idle after a closing gap: merge
            phases[-1] = Phase(phases[-1].start_frame, b, label)
            continue
        phases.append(Phase(a, b, label))
    return tuple(phases)


def _plan_mechanism(seed: int, index: int, *, min_duration: float, max_duration: float,
                    resolutions: tuple[tuple[int, int], ...]) -> VideoPlan:
    """Mechanism profile: talking shots only (one puppet, speech), plain grey backgrounds, hard cuts,
    25 fps and 16 kHz, arm actions only (balanced), 1-2 s each; each shot's own gesture vigour and
    each sentence's own loudness (see MECHANISM_VIGOUR); the video's identity (a face tint, see
    rig.FACE_TINTS) cycles with its index."""
    rng = np.random.default_rng([seed, index, 1])
    width, height = resolutions[index % len(resolutions)]
    rate, time_base, pts = _timeline("25", float(rng.uniform(min_duration, max_duration)), rng)
    times = pts.astype(np.float64) * float(time_base)
    count = max(1, min(int(round(times[-1] / MECHANISM_SHOT_S)), int(times[-1] // MIN_SHOT_S)))
    weights = rng.uniform(0.8, 1.2, size=count)
    spare = times[-1] - count * MIN_SHOT_S
    edges = np.concatenate([[0.0], np.cumsum(MIN_SHOT_S + spare * weights / weights.sum())])
    frame_edges = [int(np.searchsorted(times, e, side="left")) for e in edges[:-1]] + [pts.size - 1]
    bag = ActionBag(np.random.default_rng([seed, index, 2]))
    vigours = np.random.default_rng([seed, index, 3]).uniform(*MECHANISM_VIGOUR, size=count)
    shots, grey = [], None
    for i in range(count):
        start, end = frame_edges[i], frame_edges[i + 1]
        shot_seed = int(rng.integers(2**31))
        grey = int(rng.choice([g for g in MECHANISM_GREYS if g != grey]))
        shots.append(ShotPlan(
            kind="talk", start_frame=start, end_frame=end, transition="start" if i == 0 else "cut",
            fade_in=0, fade_out=0, seed=shot_seed,
            phases=schedule_arm_phases(np.random.default_rng(shot_seed), times, start, end, bag),
            plain_grey=grey, vigour=round(float(vigours[i]), 6), speech_gain=MECHANISM_SPEECH_GAIN,
        ))
    return VideoPlan(index=index, video_id=f"synth_{index:05d}", width=width, height=height, rate=rate,
                     time_base=time_base, pts=pts, vfr=False, sample_rate=16000, shots=tuple(shots),
                     profile="mechanism", identity=index % len(rig.FACE_TINTS))


def plan_video(seed: int, index: int, *, min_duration: float, max_duration: float,
               resolutions: tuple[tuple[int, int], ...], profile: str = "default") -> VideoPlan:
    """The complete plan of raw video `index` of the corpus with `seed` (and `profile`, see PROFILES)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "mechanism":
        return _plan_mechanism(seed, index, min_duration=min_duration, max_duration=max_duration,
                               resolutions=resolutions)
    rng = np.random.default_rng([seed, index])
    width, height = resolutions[index % len(resolutions)]
    duration = float(rng.uniform(min_duration, max_duration))
    rate_kind = RATE_KINDS[index % len(RATE_KINDS)]
    rate, time_base, pts = _timeline(rate_kind, duration, rng)
    times = pts.astype(np.float64) * float(time_base)
    count = max(1, min(int(round(times[-1] / 5.5)), int(times[-1] // MIN_SHOT_S)))
    kinds = _shot_kinds(index, count)
    # Shot lengths: random shares above the minimum; talking shots get more time.
    weights = np.array([1.4 if k == "talk" else 1.0 for k in kinds]) * rng.uniform(0.7, 1.3, size=count)
    spare = times[-1] - count * MIN_SHOT_S
    edges = np.concatenate([[0.0], np.cumsum(MIN_SHOT_S + spare * weights / weights.sum())])
    frame_edges = [int(np.searchsorted(times, e, side="left")) for e in edges[:-1]] + [pts.size - 1]
    fade_at = int(rng.integers(1, count)) if count > 1 else -1
    fade_frames = max(2, int(round(FADE_S * float(rate))))
    shots = []
    for i, kind in enumerate(kinds):
        start, end = frame_edges[i], frame_edges[i + 1]
        shot_seed = int(rng.integers(2**31))
        phases = schedule_phases(np.random.default_rng(shot_seed), times, start, end) if kind != "scene" else ()
        shots.append(ShotPlan(
            kind=kind, start_frame=start, end_frame=end,
            transition="start" if i == 0 else ("fade" if i == fade_at else "cut"),
            fade_in=fade_frames if i == fade_at else 0,
            fade_out=fade_frames if i + 1 == fade_at else 0,
            seed=shot_seed, phases=phases,
            scene_image=str(rng.choice(_scene_images())) if kind == "scene" else None,
        ))
    return VideoPlan(index=index, video_id=f"synth_{index:05d}", width=width, height=height, rate=rate,
                     time_base=time_base, pts=pts, vfr=rate_kind == "vfr",
                     sample_rate=SAMPLE_RATES[index % len(SAMPLE_RATES)], shots=tuple(shots))


def _scene_images() -> tuple[str, ...]:
    from dataset.synth.scenes import SCENE_IMAGES

    return SCENE_IMAGES
