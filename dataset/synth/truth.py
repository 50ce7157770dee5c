"""Ground truth of a synthetic corpus: `truth.jsonl`, one JSON object per raw video.

All times are seconds from the start of the raw video (not of the shot), rounded to 6 decimals;
all frame ranges are `[start_frame, end_frame)` in decoded-frame order. Seconds are the
timestamps of those frames, so frames and seconds always agree (also in the VFR file).

    {"video_id": "synth_00000", "file": "raw/synth_00000.mp4", "seed": 0, "index": 0,
     "width": 640, "height": 360, "fps": 25.0, "fps_rational": "25", "vfr": false,
     "num_frames": 784, "duration_s": 31.36, "sample_rate": 16000, "num_samples": 501760,
     "frame_times_s": [...],            # only when "vfr" is true: start time of every frame
     "boundaries": [{"frame": 134, "time_s": 5.36, "type": "cut"},
                    {"frame": 659, "time_s": 26.36, "type": "fade",
                     "fade_start_frame": 649, "fade_end_frame": 669}],
     "shots": [{"index": 0, "kind": "talk", "transition": "start",
                "start_frame": 0, "end_frame": 134, "start_s": 0.0, "end_s": 5.36,
                "avatar_present": true, "face_count": 1, "audio": "speech",
                "speech": {"voice": "en-us", "rate_wpm": 150, "text": "Hello and welcome ...",
                           "words": [{"word": "hello", "start_s": 0.61, "end_s": 0.98}, ...]},
                "phases": [{"start_frame": 0, "end_frame": 26, "start_s": 0.0, "end_s": 1.04,
                            "label": "idle", "text": "stands still, hands down"}, ...]}, ...]}

Mechanism-profile shots also carry `"gesture": {"vigour": 0.42, "beat_hz": 1.92, "hold_pump": 0.45,
"idle_lift_w": 0.44, "speech_gain": [0.3, 1.0]}`: beat gestures at beat_hz whose size is vigour *
loudness (the speech envelope over 0.36 s, full at 0.6): while an arm action holds, the working arm
pumps back towards rest by up to hold_pump of its reach; in idle both hands lift by up to
idle_lift_w shoulder widths. Each sentence is spoken at its own level drawn from speech_gain.

Mechanism-profile records also carry the video's `"identity": {"index": 2, "face_tint": [1.18, 1.0,
0.8]}`: the RGB gains on the face photo, hair included (`rig.FACE_TINTS`).

Shot kinds: `talk` (one avatar speaking), `two_avatars` (two avatars, the left one speaks; both
perform the phases), `silent` (avatar, no sound), `music` (avatar, tones and no speech) and
`scene` (a panning photo without a person; no phases). Avatar shots are covered completely by
phases (`idle` between actions); `audio` is one of speech, silence, music, ambience. A `fade`
boundary darkens the previous shot to black over `[fade_start_frame, frame)` and brightens the
next one over `[frame, fade_end_frame)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataset.synth import rig
from dataset.synth.plan import VideoPlan
from dataset.synth.render import ShotAudio


def _r(x: float) -> float:
    return round(float(x), 6)


def build_record(plan: VideoPlan, audios: list[ShotAudio], *, seed: int, file: str) -> dict[str, Any]:
    """The truth.jsonl object of one rendered video."""
    times = plan.times_s
    record: dict[str, Any] = {
        "video_id": plan.video_id, "file": file, "seed": seed, "index": plan.index,
        "width": plan.width, "height": plan.height, "fps": _r(float(plan.rate)), "fps_rational": str(plan.rate),
        "vfr": plan.vfr, "num_frames": plan.num_frames, "duration_s": _r(plan.duration_s),
        "sample_rate": plan.sample_rate, "num_samples": int(sum(a.samples.size for a in audios)),
    }
    if plan.vfr:
        record["frame_times_s"] = [_r(t) for t in times[:-1]]
    boundaries = []
    shots = []
    for k, (shot, audio) in enumerate(zip(plan.shots, audios)):
        t0 = times[shot.start_frame]
        if k > 0:
            b: dict[str, Any] = {"frame": shot.start_frame, "time_s": _r(t0), "type": shot.transition}
            if shot.transition == "fade":
                b["fade_start_frame"] = shot.start_frame - plan.shots[k - 1].fade_out
                b["fade_end_frame"] = shot.start_frame + shot.fade_in
            boundaries.append(b)
        speech = None
        if audio.speech is not None:
            s = audio.speech
            speech = {"voice": s.voice, "rate_wpm": s.rate_wpm, "text": s.text,
                      "words": [{"word": w.word, "start_s": _r(t0 + w.start_s), "end_s": _r(t0 + w.end_s)}
                                for w in s.words]}
        shots.append({
            "index": k, "kind": shot.kind, "transition": shot.transition,
            "start_frame": shot.start_frame, "end_frame": shot.end_frame,
            "start_s": _r(t0), "end_s": _r(times[shot.end_frame]),
            "avatar_present": shot.num_avatars > 0, "face_count": shot.num_avatars, "audio": audio.kind,
            "speech": speech,
            **({"gesture": {"vigour": shot.vigour, "beat_hz": _r(rig.beat_hz(shot.vigour)),
                            "hold_pump": rig.HOLD_PUMP, "idle_lift_w": rig.IDLE_LIFT,
                            "speech_gain": list(shot.speech_gain) if shot.speech_gain else None}}
               if plan.profile == "mechanism" else {}),
            "phases": [{"start_frame": p.start_frame, "end_frame": p.end_frame,
                        "start_s": _r(times[p.start_frame]), "end_s": _r(times[p.end_frame]),
                        "label": p.label, "text": rig.ACTIONS[p.label]} for p in shot.phases],
        })
    if plan.identity is not None:
        record["identity"] = {"index": plan.identity, "face_tint": list(rig.FACE_TINTS[plan.identity])}
    record["boundaries"] = boundaries
    record["shots"] = shots
    return record


def read_truth(path: str | Path) -> list[dict[str, Any]]:
    """All records of a truth.jsonl file (or of the corpus folder holding one), in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.jsonl"
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def frame_labels(record: dict[str, Any]) -> list[str]:
    """Per-frame action label of one video's truth: a phase label, or `none` outside avatars."""
    labels = [rig.NO_AVATAR] * record["num_frames"]
    for shot in record["shots"]:
        for phase in shot["phases"]:
            labels[phase["start_frame"]:phase["end_frame"]] = [phase["label"]] * (phase["end_frame"] - phase["start_frame"])
    return labels


def fade_frames(record: dict[str, Any]) -> set[int]:
    """Frames inside fades (dimmed towards black), for scores that leave them out."""
    out: set[int] = set()
    for b in record["boundaries"]:
        if b["type"] == "fade":
            out.update(range(b["fade_start_frame"], b["fade_end_frame"]))
    return out
