"""Long videos: windows, phases and audio over the whole timeline, motion-frame continuity without seams."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import UserError
from dataset.media import decode_mp4, encode_wav, probe_mp4
from evaluation.long_video import Window, cross_fade, plan_windows, window_caption
from evaluation.sample import AvatarSampler, SampleConfig, frame_count, resolve_checkpoint
from evaluation.sampler import GuidanceConfig, SamplerConfig
from model.phase_layout import layout_from_annotation

W, M, N = 17, 5, 49  # a 49-frame video is 3 windows of 17 frames with 5 motion frames, and a short last one
PHASES = {"base": "A puppet talks.", "phases": [  # every boundary crosses a window edge (12, 24, 36 frames = 0.48, 0.96, 1.44 s)
    {"start_s": 0.0, "end_s": 0.6, "text": "waves"}, {"start_s": 0.6, "end_s": 1.1, "text": "nods"},
    {"start_s": 1.3, "end_s": 1.96, "text": "raises the right hand"}]}


def test_windows_cover_the_video_on_latent_boundaries():
    windows = plan_windows(N, W, M)
    assert windows == [Window(0, 17, 0), Window(12, 17, 5), Window(24, 17, 5), Window(36, 13, 5)]
    for n in (5, 17, 21, 49, 81, 301):
        ws = plan_windows(n, W, M)
        assert ws[0].start == 0 and ws[-1].end == n
        for prev, cur in zip(ws, ws[1:]):
            assert cur.start == prev.end - cur.motion and cur.start % 4 == 0  # overlap = motion frames
            assert cur.frames > cur.motion and (cur.frames - 1) % 4 == 0
    assert plan_windows(17, W, M) == [Window(0, 17, 0)]  # fits: one window, as before long videos existed


@pytest.mark.parametrize(("window", "motion", "needle"), [
    (16, 5, "sample.window_frames must be 1 + 4k"), (17, 4, "sample.motion_frames must be 1 + 4k"),
    (17, 9, "sample.motion_frames=9 must be at most half of sample.window_frames=17")])
def test_window_settings_are_checked(window, motion, needle):
    with pytest.raises(UserError, match=re.escape(needle)):
        SampleConfig(window_frames=window, motion_frames=motion)


def test_a_hard_limit_is_an_error_not_a_trim():
    cfg = SampleConfig(max_frames=33)
    assert frame_count(cfg, 16000) == 25  # 1 s of audio: 25 frames, within the limit
    with pytest.raises(UserError, match=r"audio of 2.00 s needs 49 frames at 25 fps, more than sample.max_frames=33"):
        frame_count(cfg, 32000)
    assert frame_count(SampleConfig(), 16000 * 60) == 1497  # no limit by default: a minute is 1497 frames (1 + 4k)


def test_every_window_sees_the_phases_of_its_own_time_span():
    """Per latent frame, the phases a window routes equal those of the whole video's layout."""
    fps = 25.0
    whole = layout_from_annotation({"caption": PHASES, "video": {"fps": fps, "num_frames": N}})
    seen_whole = [{whole.texts[k] for k in range(1, len(whole.texts)) if whole.frame_phases[f, k]}
                  for f in range(whole.frame_phases.shape[0])]
    crossing = 0
    for window in plan_windows(N, W, M):
        local = window_caption(PHASES, window.start / fps, window.end / fps)
        layout = layout_from_annotation({"caption": local, "video": {"fps": fps, "num_frames": window.frames}})
        for f in range(1, layout.frame_phases.shape[0]):  # latent frame 0 holds one video frame, see below
            seen = {layout.texts[k] for k in range(1, len(layout.texts)) if layout.frame_phases[f, k]}
            assert seen == seen_whole[window.start // 4 + f], (window, f)
        first = {p["text"] for p in local["phases"] if p["start_s"] < 1 / fps}
        crossing += bool(window.start) and bool(first)
    assert crossing == 3  # phases did run across each window start
    assert window_caption(PHASES, 0.96, 1.64)["phases"] == [
        {"start_s": 0.0, "end_s": 0.14, "text": "nods"}, {"start_s": 0.34, "end_s": 0.68, "text": "raises the right hand"}]


class RampAudio(nn.Module):
    """A stand-in audio encoder whose feature i is the mean of samples [320 i, 320 i + 320): with a ramp
    as the audio, each feature says which time it was taken from."""

    feature_hz, output_dim = 50.0, 32

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        n = wave.shape[1] // 320
        return wave[:, : n * 320].view(1, n, 320).mean(-1, keepdim=True).expand(-1, -1, self.output_dim)


@pytest.fixture(scope="module")
def sampler(tiny_models):
    cfg = SampleConfig(width=32, height=32, window_frames=W, motion_frames=M, threads=1,
                       sampler=SamplerConfig(steps=2, solver="euler", text=GuidanceConfig(scale=1.0), audio=GuidanceConfig(scale=2.0)))
    return AvatarSampler(resolve_checkpoint(cfg, tiny_models))


def test_every_window_hears_the_audio_of_its_own_time_span(sampler, monkeypatch):
    monkeypatch.setattr(sampler, "audio", RampAudio())
    seconds = np.arange(N * 640, dtype=np.float32) / 16000  # the audio's value is its time
    for window in plan_windows(N, W, M):
        feats = sampler.window_features(seconds, window)[0, :, 0].numpy()
        span = (window.frames / 25.0) * 50  # feature frames in the window
        assert feats.size >= min(span, seconds.size / 320 - window.start * 2)
        expected = window.start / 25.0 + (np.arange(feats.size) + 0.5) / 50
        assert np.abs(feats - expected).max() < 1e-4, window  # feature 0 is the window's first frame
        _, kw = sampler.window_conditions(PHASES, seconds, window)["full"]
        assert kw["audio_index"].shape[1] == (window.frames - 1) // 4 + 1


def test_long_video_from_the_cli(tiny_models, tmp_path, capsys):
    """`actavatar sample` on audio 3x the window: the whole length, audio muxed in full, the windows recorded."""
    from evaluation.sample_cli import main

    t = np.arange(N * 640) / 16000
    (tmp_path / "speech.wav").write_bytes(encode_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)))
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    prompt = "A puppet talks. | 0-0.6: waves | 0.6-1.1: nods | 1.3-1.96: raises the right hand"
    args = ["--checkpoint", str(tiny_models), "--image", str(tmp_path / "ref.png"), "--audio", str(tmp_path / "speech.wav"),
            "--prompt", prompt, "--out", str(tmp_path / "out"), "--no-progress", "width=32", "height=32",
            f"window_frames={W}", f"motion_frames={M}", "sampler.steps=2", "sampler.solver=euler", "threads=1"]
    assert main(args) == 0
    data = (tmp_path / "out" / "sample.mp4").read_bytes()
    from evaluation.video_folder import decode_mp4_audio

    assert decode_mp4(data).shape == (N, 32, 32, 3) and probe_mp4(data).has_audio
    assert abs(decode_mp4_audio(data).size / 16000 - N / 25) < 0.1  # all of the audio (AAC pads to 64 ms frames)
    meta = json.loads((tmp_path / "out" / "sample.json").read_text())
    assert meta["video"]["num_frames"] == N and meta["sample"]["windows"] == [[0, 17], [12, 29], [24, 41], [36, 49]]
    assert main([*args, "max_frames=33"]) == 2
    assert "more than sample.max_frames=33" in capsys.readouterr().err


# --- seams: an ideal model of a known video distribution stands in for a trained DiT + VAE ---------

class GaussianProcessDiT(nn.Module):
    """The exact velocity for latents drawn from a temporal Gaussian process (RBF kernel over latent
    frames, independent per channel and pixel): what a perfectly trained DiT predicts for such data.
    It reads per-token timesteps (TI2V: known frames at t = 0) and the I2V mask (known frames = the
    condition latents), as the real DiT does; it ignores text and audio."""

    def __init__(self, config, z: int = 4, stride: int = 4, length: float = 2.0, std: float = 0.4) -> None:
        super().__init__()
        self.config, self.z, self.stride, self.length, self.std = config, z, stride, length, std

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, **_: object) -> torch.Tensor:
        z, f = self.z, x.shape[2]
        noisy = x[:, :z].double()
        level = (t.double() / 1000).view(1, f, -1)[0, :, 0] if t.dim() == 2 else (t.double() / 1000).expand(f)
        observed, sigma = noisy[0], level.clone()
        if x.shape[1] > z:  # I2V: frames the mask marks are known exactly (the condition latents)
            known = x[0, z:z + self.stride].amin(dim=(0, 2, 3)) > 0.5
            observed = torch.where(known[None, :, None, None], x[0, z + self.stride:].double(), observed)
            sigma = torch.where(known, torch.zeros_like(sigma), sigma)
        i = torch.arange(f, dtype=torch.float64)
        prior = self.std ** 2 * torch.exp(-0.5 * ((i[:, None] - i[None]) / self.length) ** 2)
        a = 1 - sigma  # observed = a * x0 + sigma * noise, per frame
        gain = prior * a[None] @ torch.linalg.inv(a[:, None] * prior * a[None] + torch.diag(sigma ** 2 + 1e-6))
        x0 = torch.einsum("fg,cghw->cfhw", gain, observed)  # posterior mean of the clean latents
        v = (noisy[0] - x0) / level.clamp(min=1e-6).view(1, f, 1, 1)
        return torch.where(level.view(1, f, 1, 1) > 0, v, torch.zeros_like(v))[None].float()


class SubsampleVAE(nn.Module):
    """A VAE whose round trip is exact on its own videos: latent f = video frame 4f (8x8 mean-pooled,
    + a 4th channel), decoded by linear interpolation in time. Keeps the VAE out of the seam measure."""

    latent_channels, temporal_stride, spatial_stride = 4, 4, 8

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(video[:, :, ::4], (1, 8, 8))
        return torch.cat([x, x.mean(1, keepdim=True)], 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        x, f = latents[:, :3], latents.shape[2]
        pos = torch.arange(1 + 4 * (f - 1), dtype=torch.float32) / 4
        lo = pos.floor().long()
        hi, a = (lo + 1).clamp(max=f - 1), (pos - lo).view(1, 1, -1, 1, 1)
        return F.interpolate(x[:, :, lo] * (1 - a) + x[:, :, hi] * a, scale_factor=(1, 8, 8), mode="nearest")

    def encode_reference(self, image: torch.Tensor, num_frames: int) -> torch.Tensor:
        video = torch.zeros(image.shape[0], 3, num_frames, *image.shape[2:])
        video[:, :, 0] = image
        return self.encode(video)


def _frame_steps(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float32)
    return np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))  # step t: frame t -> t + 1


@pytest.mark.parametrize("mode", ["ti2v", "i2v", "none"])
def test_long_videos_have_no_seams(sampler, monkeypatch, mode):
    """Frame-to-frame change around window starts vs inside windows; independent windows as the baseline."""
    monkeypatch.setattr(sampler, "dit", GaussianProcessDiT(sampler.dit.config))
    monkeypatch.setattr(sampler, "vae", SubsampleVAE())
    monkeypatch.setattr(sampler, "mode", mode)
    monkeypatch.setattr(sampler, "cfg", __import__("dataclasses").replace(
        sampler.cfg, sampler=SamplerConfig(steps=12, solver="euler", shift=1.0, text=GuidanceConfig(scale=1.0),
                                           audio=GuidanceConfig(scale=1.0))))
    image, audio, caption = np.full((32, 32, 3), 128, np.uint8), np.zeros(N * 640, np.float32), {"base": "x", "phases": []}
    seams = set()
    for w in plan_windows(N, W, M)[1:]:  # the overlap and the first new latent frame after it
        seams |= set(range(w.start - 1, w.start + w.motion + 4))
    at_seams, inside = [], []
    for seed in range(4):
        steps = _frame_steps(sampler(caption, image, audio, seed=seed)[0])
        at_seams += [steps[i] for i in seams]
        inside += [steps[i] for i in range(len(steps)) if i not in seams]
    ratio, peak = np.mean(at_seams) / np.mean(inside), np.max(at_seams) / np.max(inside)
    if mode == "none":  # a T2V model continues by inpainting (RePaint-style replacement): approximate
        assert ratio < 1.5 and peak < 2.0, (ratio, peak)
    else:  # TI2V / I2V condition on the motion frames exactly: the seams are like any other frame
        assert ratio < 1.1 and peak < 1.1, (ratio, peak)
    if mode == "ti2v":  # baseline: three independent windows glued together
        glued = np.concatenate([sampler(caption, image, audio, seed=9 + i, num_frames=W)[0] for i in range(3)])
        steps = _frame_steps(glued)
        jumps = [steps[W - 1], steps[2 * W - 1]]
        assert np.mean(jumps) > 5 * np.mean(np.delete(steps, [W - 1, 2 * W - 1]))


def test_cross_fade_goes_from_the_old_window_to_the_new():
    old, new = torch.zeros(3, 5, 2, 2), torch.ones(3, 5, 2, 2)
    out = cross_fade(old, new)[0, :, 0, 0]
    assert torch.allclose(out, torch.tensor([1, 2, 3, 4, 5]) / 6) and torch.equal(cross_fade(new, new), new)
