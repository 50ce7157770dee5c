"""The mechanism benchmark's audio-use check (`text_use.audio_denoising_errors`): exactly no change for
a model that ignores the audio, a change for one that uses it, measured over the frame and at the
mouth cells the puppet reader places."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dataset.media import encode_mp4
from dataset.synth import rig
from evaluation.mechanism.text_use import audio_denoising_errors
from tests.annotate.test_pose import render

FRAMES, SIZE = 9, 64


def _close_up() -> np.ndarray:
    """(FRAMES, 64, 64, 3) a puppet's face close-up (as `corpus.crop_scale=1.8` frames it)."""
    import cv2

    from annotate.pose import reader_pose

    frames, _, scale = render("idle", np.arange(FRAMES) / 25.0, 2.0, 360, 360)
    frames = np.pad(frames, ((0, 0), (150, 150), (150, 150), (0, 0)), constant_values=150)
    hx, hy = reader_pose(frames[:1])[0, 0, :2] * frames.shape[1]
    half = int(0.9 * rig.HEAD_SIZE * scale)
    return np.stack([cv2.resize(f[int(hy) - half:int(hy) + half, int(hx) - half:int(hx) + half], (SIZE, SIZE),
                                interpolation=cv2.INTER_AREA) for f in frames])


class _Vae:
    temporal_stride = 4

    def encode(self, video: torch.Tensor) -> torch.Tensor:  # (1, 3, F, H, W) -> (1, 3, T, 8, 8)
        return F.adaptive_avg_pool3d(video[:, :, ::4], (3, 8, 8))


class _Dit:
    config = SimpleNamespace(patch_size=(1, 2, 2))

    def __init__(self, uses_audio: bool) -> None:
        self.uses_audio = uses_audio

    def __call__(self, x_t, t, tokens, block_ids=None, frame_phases=None, audio=None):
        return x_t * 0.5 + (audio.abs().mean() if self.uses_audio else 0.0)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("windows")
    frames = _close_up()
    out = []
    for i, level in enumerate((0.05, 0.4)):  # two windows: quiet and loud speech
        t = np.arange(FRAMES * 640) / 16000
        (folder / f"w{i}.mp4").write_bytes(encode_mp4(frames, (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)))
        out.append(SimpleNamespace(audio=str(folder / f"w{i}.wav"), caption={"base": "a person", "phases": []}))
    return out


def _sampler(uses_audio: bool):
    def conditions(caption, audio, num_frames):
        return {"full": (SimpleNamespace(tokens=None, block_ids=None, frame_phases=None),
                         {"audio": torch.from_numpy(np.asarray(audio, np.float32))})}

    return SimpleNamespace(cfg=SimpleNamespace(device="cpu", height=SIZE, width=SIZE, fps=25.0), dit=_Dit(uses_audio),
                           vae=_Vae(), conditions=conditions)


def test_a_model_that_ignores_the_audio_is_not_hurt_by_the_swap(jobs):
    out = audio_denoising_errors(_sampler(False), jobs, FRAMES, (0.2, 0.6, 0.8, 1.0))
    assert out["windows"] == 2 and out["sigmas"] == [0.25, 0.5, 0.75]
    for where in ("all", "mouth"):
        assert out[where]["right"] > 0 and out[where]["relative_increase"] == 0.0


def test_a_model_that_uses_the_audio_is(jobs):
    out = audio_denoising_errors(_sampler(True), jobs, FRAMES, (0.2, 0.6, 0.8, 1.0))
    for where in ("all", "mouth"):
        assert out[where]["swapped"] != pytest.approx(out[where]["right"], rel=1e-3)
    with pytest.raises(ValueError, match="at least 2 test windows"):
        audio_denoising_errors(_sampler(True), jobs[:1], FRAMES, (0.2, 0.6, 0.8, 1.0))


def test_heldout_r2_finds_a_linear_relation_and_not_noise():
    from evaluation.mechanism.lip_sync import heldout_r2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    groups = np.repeat(np.arange(6), 20)
    linear = x @ rng.normal(size=6) + 0.05 * rng.normal(size=120)
    assert heldout_r2(x, linear, groups, ridge=0.1) > 0.95
    assert heldout_r2(x, rng.normal(size=120), groups) < 0.1  # unrelated: nothing held out is explained
    assert heldout_r2(x, linear, np.zeros(120, int)) is None  # one window: no held-out fold
