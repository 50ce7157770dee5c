"""Long videos from a fixed-length video model: successive windows, motion frames, overlap blending.

A DiT generates at most `window` frames per call (Wan: 81 frames, 3.24 s). A longer video is cut
into windows that overlap by `motion` frames:

    window 0: frames [0, W)
    window k: frames [s_k, s_k + W) with s_k = k·(W − M); the last window ends at the video's end.

Window k ≥ 1 is generated *conditioned* on the previous window's last M frames (the motion frames;
how they enter the model depends on its reference mode, see `evaluation/sample.py`), with the
phase schedule and the audio of its own time span, cut out of the whole timeline
(`window_caption`; the audio in the sampler). In the M overlapping frames the output cross-fades
from the previous window to the new one (`blend_weights`). The same method as InfiniteTalk /
MultiTalk's streaming generation (motion frames re-encoded by the VAE), with a linear cross-fade
as in StableAvatar-style overlap sampling.

Frame arithmetic: W and M are 1 + stride·k, so every window starts on a latent frame boundary
(s_k is a multiple of the stride) and every window length is 1 + stride·k again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from dataset.errors import UserError


@dataclass(frozen=True, slots=True)
class Window:
    """One generation window: video frames [start, start + frames); its first `motion` frames repeat
    the previous window's last frames (0 for the first window)."""

    start: int
    frames: int
    motion: int

    @property
    def end(self) -> int:
        return self.start + self.frames


def check_window(window: int, motion: int, stride: int = 4) -> None:
    """Window and motion lengths the VAE and the cross-fade can use; errors name the settings."""
    if window < 1 + stride or (window - 1) % stride:
        raise UserError(f"sample.window_frames must be 1 + {stride}k and >= {1 + stride}, got {window}")
    if motion < 1 or (motion - 1) % stride:
        raise UserError(f"sample.motion_frames must be 1 + {stride}k, got {motion}")
    if 2 * motion > window:
        raise UserError(f"sample.motion_frames={motion} must be at most half of sample.window_frames={window} "
                        "(a window's head and tail overlaps must not meet)")


def plan_windows(num_frames: int, window: int, motion: int, stride: int = 4) -> list[Window]:
    """The windows covering `num_frames` (1 + stride·k) frames; one window when it fits."""
    check_window(window, motion, stride)
    if num_frames < 1 or (num_frames - 1) % stride:
        raise ValueError(f"num_frames must be 1 + {stride}k, got {num_frames}")
    if num_frames <= window:
        return [Window(0, num_frames, 0)]
    step = window - motion
    windows = [Window(0, window, 0)]
    start = step
    while start + window < num_frames:
        windows.append(Window(start, window, motion))
        start += step
    # the previous window ends at start + motion < num_frames, so the last one has new frames
    windows.append(Window(start, num_frames - start, motion))
    return windows


def window_caption(caption: Mapping[str, Any], start_s: float, end_s: float) -> dict[str, Any]:
    """The caption as seen from a window covering [start_s, end_s) of the whole video: phases that
    overlap it, clipped to it, in window time (0 = the window's first frame)."""
    phases = []
    for phase in caption.get("phases") or []:
        a, b = max(float(phase["start_s"]), start_s), min(float(phase["end_s"]), end_s)
        if b > a + 1e-9:
            phases.append({**phase, "start_s": round(a - start_s, 9), "end_s": round(b - start_s, 9)})
    return {**caption, "phases": phases}


def blend_weights(motion: int) -> torch.Tensor:
    """(motion,) weights of the new window in the overlap: a linear ramp strictly inside (0, 1)."""
    return torch.arange(1, motion + 1, dtype=torch.float32) / (motion + 1)


def cross_fade(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """(3, M, H, W) previous window's last M frames and (3, M, H, W) the new window's first M frames
    -> the overlap shown in the output, fading from the previous window to the new one."""
    w = blend_weights(previous.shape[1]).to(current.device).view(1, -1, 1, 1)
    return previous.to(current.dtype) * (1 - w) + current * w
