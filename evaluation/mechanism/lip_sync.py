"""Do the lips follow the speech? (arms (i) `paca_lip` and (j) `paca_av`; FantasyTalking, ApoAvatar)

Run on face close-ups (`corpus.crop_scale=1.8`: at 64 px the whole-body clips draw the mouth a
pixel or two tall, below what an 8x8 latent grid can hold). Every video of a test window is
measured the same way: per frame, the mouth's **openness** (the pipeline's AV-sync measure,
`annotate.av_sync.openness_at`: the contrast of a region round the mouth over the face's), placed
by the exact puppet reader (mouth keypoint, face size from the ear cups; a frame it cannot read
keeps the real window's placement). Per window, against the real frames and the window's audio:

    mouth r        Pearson correlation of the high-passed openness with the real window's (lag 0,
                   frames after the reference): the drawn mouth is exactly what the audio says
    AV confidence  the pipeline's weight-free lip-sync score on the window's own audio: best
                   minus median correlation over lags of openness against loudness (Sync-C's
                   analogue); `in sync`: share of windows whose best lag is within one frame of 0
                   (a still mouth, confidence 0, never is)

    latent R²      the same question in the latent space the DiT works in, before decoding: the
                   share of the mouth's latent motion (the VAE latent averaged over the lip-box
                   cells per latent frame, centred per window) that the loudness explains, held
                   out across windows (`latent_loudness_r2`)

Rows: the real frames (and the same frames against another window's audio: the mismatched
floor; and their openness averaged over each latent frame's 4 frames: the most a latent that keeps
one mouth state per latent frame could give back), their VAE reconstructions (what the latents
keep), and the unguided samples of every trained arm; the model without either part is (a). Then
each arm against (a), window by window (`paired_differences`: the mean difference with a paired
bootstrap 95 % interval, so a gap between two arms reads with its noise), and each arm's audio swap
Δ (`text_use.audio_denoising_errors`): does it use its audio at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dataset.pose import KEYPOINTS
from evaluation.mechanism.config import ARM_TITLES, MechanismConfig

LIP_ARMS = ("paca_lip", "paca_av")
LATENT_FRAMES = 4  # video frames per latent frame after the first (the Wan VAE's temporal stride)
MAX_LAG = 8  # frames searched either way (65-frame windows: a +-15 search leaves short overlaps)
IN_SYNC_FRAMES = 1
WINDOW_FIGURES = ("mouth_r", "confidence", "in_sync")  # the per-window figures, in `window_values`' column order
PAIRED_BASE = "paca"  # (a): the model without either part, the one every other arm is compared with
BOOTSTRAP_RESAMPLES = 4000
RIDGE = 10.0  # ridge strength of the latent loudness regression (latents are normalised to about unit variance)
MOUTH, RIGHT_EAR, LEFT_EAR = (KEYPOINTS.index(k) for k in ("mouth", "right_ear", "left_ear"))


def placements(keypoints: np.ndarray, size: tuple[int, int],
               fallback: list[tuple[float, ...] | None] | None = None) -> list[tuple[float, ...] | None]:
    """Per frame (face x, y, width, height, mouth x, y) in pixels from (F, K, 3) keypoints: the face
    is a square as wide as the ear cups are apart, centred between them; frames without a mouth and
    both ears take `fallback`'s placement (None without one)."""
    width, height = size
    out: list[tuple[float, ...] | None] = []
    for t, kp in enumerate(keypoints):
        if kp[MOUTH, 2] > 0 and kp[RIGHT_EAR, 2] > 0 and kp[LEFT_EAR, 2] > 0:
            (rx, ry), (lx, ly) = kp[RIGHT_EAR, :2] * (width, height), kp[LEFT_EAR, :2] * (width, height)
            side = float(np.hypot(lx - rx, ly - ry))
            cx, cy = (rx + lx) / 2, (ry + ly) / 2
            out.append((cx - side / 2, cy - side / 2, side, side, float(kp[MOUTH, 0] * width), float(kp[MOUTH, 1] * height)))
        else:
            out.append(fallback[t] if fallback is not None and t < len(fallback) else None)
    return out


def openness(frames: np.ndarray, where: list[tuple[float, ...] | None]) -> np.ndarray:
    """(F,) mouth openness of (F, H, W, 3) frames at per-frame placements (NaN where there is none)."""
    from annotate.av_sync import openness_at

    gray = np.asarray(frames).astype(np.float32).mean(axis=-1)
    return np.array([openness_at(gray[t], p) if p is not None else np.nan for t, p in enumerate(where[: len(gray)])])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two high-passed signals where both are finite (NaN when either is flat)."""
    from annotate.av_sync import highpass

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    x, y = highpass(a[ok]), highpass(b[ok])
    if x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def latent_frame_means(signal: np.ndarray, stride: int = LATENT_FRAMES) -> np.ndarray:
    """The signal with frame 0 kept and each following group of `stride` frames replaced by its
    mean: what a latent that holds one mouth state per latent frame could give back at best."""
    out = np.asarray(signal, np.float64).copy()
    for start in range(1, len(out), stride):
        out[start:start + stride] = out[start:start + stride].mean()
    return out


def window_scores(signal: np.ndarray, real_signal: np.ndarray, audio: np.ndarray) -> dict[str, float]:
    """One video's figures: mouth r against the real openness (frames 1..), AV offset and confidence."""
    from annotate.av_sync import audio_envelope, correlate_offset

    n = min(len(signal), len(real_signal))
    filled = np.where(np.isfinite(signal), signal, np.nanmean(signal) if np.isfinite(signal).any() else 0.0)
    av = correlate_offset(filled[:n], audio_envelope(audio, n), MAX_LAG)
    return {"mouth_r": pearson(signal[1:n], real_signal[1:n]), "offset": av.offset_frames, "confidence": av.confidence}


def window_values(rows: list[dict[str, float]]) -> np.ndarray:
    """(windows, 3): mouth r, AV confidence, in sync (0/1) per window. A still mouth's NaN mouth r
    counts as 0 and it is never in sync: it follows nothing."""
    return np.array([[0.0 if not np.isfinite(row["mouth_r"]) else row["mouth_r"], row["confidence"],
                      float(abs(row["offset"]) <= IN_SYNC_FRAMES and row["confidence"] > 0)] for row in rows], float).reshape(-1, 3)


def aggregate(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Means over windows of `window_values`."""
    if not rows:
        return {"windows": 0, "mouth_r": None, "confidence": None, "in_sync": None}
    means = window_values(rows).mean(axis=0)
    return {"windows": len(rows), **{name: round(float(m), 4) for name, m in zip(WINDOW_FIGURES, means)}}


def paired_differences(rows: dict[str, dict[str, float]], base: dict[str, dict[str, float]], seed: int = 0) -> dict[str, Any] | None:
    """An arm's per-window figures minus the base arm's on the same windows (keyed by window):
    mean, paired bootstrap 95 % interval (percentile) and how many windows got better / worse.
    None below two shared windows."""
    from scipy.stats import bootstrap

    keys = [key for key in base if key in rows]
    if len(keys) < 2:
        return None
    diff = window_values([rows[k] for k in keys]) - window_values([base[k] for k in keys])
    out: dict[str, Any] = {"windows": len(keys)}
    for name, col in zip(WINDOW_FIGURES, diff.T):
        if np.ptp(col) == 0:  # every window moved the same: no spread to resample
            low = high = float(col[0])
        else:
            ci = bootstrap((col,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                           rng=np.random.default_rng(seed)).confidence_interval
            low, high = float(ci.low), float(ci.high)
        out[name] = {"mean": round(float(col.mean()), 4), "low": round(low, 4), "high": round(high, 4),
                     "better": int((col > 0).sum()), "worse": int((col < 0).sum())}
    return out


def heldout_r2(x: np.ndarray, y: np.ndarray, groups: np.ndarray, ridge: float = RIDGE) -> float | None:
    """R² of a ridge regression y ~ x (with intercept) fitted on the even groups and scored on the
    odd ones, then the reverse, averaged (None when a fold is empty or flat)."""
    scores = []
    for fold in (0, 1):
        train, test = groups % 2 != fold, groups % 2 == fold
        if train.sum() < 2 or test.sum() < 2 or y[test].var() == 0:
            return None
        a = np.c_[x, np.ones(len(x))]
        w = np.linalg.solve(a[train].T @ a[train] + ridge * np.eye(a.shape[1]), a[train].T @ y[train])
        scores.append(1.0 - float(((a[test] @ w - y[test]) ** 2).mean() / y[test].var()))
    return round(float(np.mean(scores)), 4)


def mouth_latents(vae: Any, videos: dict[str, np.ndarray], keypoints: dict[str, np.ndarray]) -> dict[str, tuple]:
    """{key: (video frames, latent frames t >= 1 that show the mouth, (n, z) mean latent over their
    lip-box cells)}: each video encoded once, the cells placed by `keypoints` as the lip-tracing loss
    places them."""
    import torch

    from train.objective import FlowConfig, lip_tracing_weight

    out = {}
    for key, frames in videos.items():
        with torch.no_grad():
            x0 = vae.encode(torch.from_numpy(frames)[None].permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0)[0]  # (z, T, h, w)
        mouth = lip_tracing_weight(torch.from_numpy(keypoints[key])[None], torch.full((1, 4), float("nan")), FlowConfig().lip_box,
                                   tuple(x0.shape[1:]), LATENT_FRAMES, 2.0)[0, 0] > 1.5  # (T, h, w)
        frames_t = [t for t in range(1, x0.shape[1]) if mouth[t].any()]
        out[key] = (len(frames), np.array(frames_t, int), np.stack([x0[:, t][:, mouth[t]].mean(-1).numpy() for t in frames_t])
                    if frames_t else np.zeros((0, x0.shape[0]), np.float32))
    return out


def latent_loudness_r2(latents: dict[str, tuple], audio: dict[str, np.ndarray]) -> float | None:
    """How much of the mouth's latent motion (`mouth_latents`) the speech explains: per latent frame,
    the mouth latent against the loudness (dB) of the `LATENT_FRAMES` video frames it encodes, both
    centred per window (identity and level removed); `heldout_r2` across windows. Read in the latent
    space the DiT works in, before decoding."""
    from dataset.audio_intensity import loudness_db

    xs, ys, groups = [], [], []
    for g, (key, (num_frames, frames_t, x)) in enumerate(latents.items()):
        if len(frames_t) < 2:
            continue
        db = loudness_db(audio[key], num_frames)
        y = np.array([db[(t - 1) * LATENT_FRAMES + 1 : t * LATENT_FRAMES + 1].mean() for t in frames_t])
        xs.append(x - x.mean(0))
        ys.append(y - y.mean())
        groups.append(np.full(len(y), g))
    if not xs:
        return None
    return heldout_r2(np.concatenate(xs), np.concatenate(ys), np.concatenate(groups))


def lip_sync_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Score the real windows, their VAE reconstructions and every arm's unguided samples."""
    from annotate.pose import reader_pose
    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.mechanism.evaluate import reconstruct
    from evaluation.sample_jobs import read_audio_file
    from evaluation.video_folder import read_frames
    from train.pretrained import load_vae

    bench = paths["benchmark"]
    jobs = jobs_from_benchmark(bench, cfg.eval.max_windows)  # the windows every arm sampled, in order
    keys = [job.key for job in jobs]
    real = {key: read_frames(bench / f"{key}.mp4") for key in keys}
    audio = {job.key: read_audio_file(job.audio) for job in jobs}
    size = {key: (v.shape[2], v.shape[1]) for key, v in real.items()}
    real_keypoints = {key: reader_pose(v) for key, v in real.items()}
    real_where = {key: placements(real_keypoints[key], size[key]) for key, v in real.items()}
    real_signal = {key: openness(v, real_where[key]) for key, v in real.items()}
    vae = load_vae(str(paths["vae"]))

    def window_rows(videos: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """Each window's figures, keyed by window."""
        rows = {}
        for key, frames in videos.items():
            where = placements(reader_pose(frames), size[key], fallback=real_where[key])
            rows[key] = window_scores(openness(frames, where), real_signal[key], audio[key])
        return rows

    def summary(windows: dict[str, dict[str, float]], videos: dict[str, np.ndarray]) -> dict[str, Any]:
        return {**aggregate(list(windows.values())), "latent_r2": latent_r2(videos, audio)}

    def latent_r2(videos: dict[str, np.ndarray], sound: dict[str, np.ndarray], latents=None) -> float | None:
        return latent_loudness_r2(mouth_latents(vae, videos, real_keypoints) if latents is None else latents, sound)

    real_latents = mouth_latents(vae, real, real_keypoints)  # encoded once for the own-audio and floor rows
    rows = {"real frames": {**aggregate([window_scores(real_signal[key], real_signal[key], audio[key]) for key in keys]),
                            "latent_r2": latent_r2(real, audio, real_latents)}}
    if len(keys) > 1:  # each window's frames against the next window's audio: what chance gives
        shifted = [window_scores(real_signal[key], real_signal[key], audio[keys[(i + 1) % len(keys)]]) for i, key in enumerate(keys)]
        other = {key: audio[keys[(i + 1) % len(keys)]] for i, key in enumerate(keys)}
        rows["real frames, another window's audio"] = {**aggregate(shifted), "mouth_r": None,  # the frames are the real ones
                                                       "latent_r2": latent_r2(real, other, real_latents)}
    rows["real frames, one mouth state per latent frame"] = aggregate(
        [window_scores(latent_frame_means(real_signal[key]), real_signal[key], audio[key]) for key in keys])
    reconstructed = reconstruct(paths["vae"], real)
    rows["VAE reconstruction"] = summary(window_rows(reconstructed), reconstructed)
    per_window: dict[str, dict[str, dict[str, float]]] = {}  # arm -> window -> figures, for the paired comparison
    unguided = Path(cfg.out) / "samples" / "unguided"
    for arm in checkpoints:
        folder = unguided / arm
        videos = {key: read_frames(folder / f"{key}.mp4") for key in keys if (folder / f"{key}.mp4").is_file()}
        per_window[arm] = window_rows(videos)
        rows[ARM_TITLES[arm]] = summary(per_window[arm], videos)
    paired = {}
    if PAIRED_BASE in per_window:
        for arm, windows in per_window.items():
            if arm != PAIRED_BASE and (diff := paired_differences(windows, per_window[PAIRED_BASE], cfg.seed)):
                paired[ARM_TITLES[arm]] = {"against": ARM_TITLES[PAIRED_BASE], **diff}
    return {"rows": rows, "paired": paired, "max_lag": MAX_LAG, "crop_scale": cfg.corpus.crop_scale,
            "audio_use": audio_use(cfg, bench, checkpoints)}


def audio_use(cfg: MechanismConfig, bench: Path, checkpoints: dict[str, Path]) -> dict[str, Any]:
    """{arm title: denoising errors with the right and another window's audio} (`text_use`): whether
    the model uses the audio at all, over the frame and at the mouth."""
    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.mechanism.evaluate import sample_config
    from evaluation.mechanism.text_use import audio_denoising_errors
    from evaluation.sample import AvatarSampler, resolve_checkpoint
    from train.objective import FlowConfig

    jobs = jobs_from_benchmark(bench, max(2, cfg.eval.swap_windows))
    if len(jobs) < 2:
        return {}
    return {ARM_TITLES[arm]: audio_denoising_errors(AvatarSampler(resolve_checkpoint(sample_config(cfg, "unguided"), ckpt)), jobs,
                                                    cfg.window_frames, FlowConfig().lip_box, seed=cfg.seed)
            for arm, ckpt in checkpoints.items()}


def markdown_section(result: dict[str, Any]) -> list[str]:
    """Lines of the report's lip-sync section."""
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = ["", "## Lip sync (FantasyTalking's lip-tracing mask, ApoAvatar's audio–video interaction)", "",
             "| video | mouth r | AV confidence | in sync | latent R² | windows |", "|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {fmt(row['mouth_r'])} | {fmt(row['confidence'])} | {fmt(row['in_sync'])} "
                     f"| {fmt(row.get('latent_r2'))} | {row['windows']} |")
    lines += ["", "Mouth openness per frame (contrast round the reader's mouth keypoint). mouth r: correlation with the "
              "real window's openness (lag 0, frames after the reference; 1 for the real frames). AV confidence: best "
              f"minus median correlation with the audio's loudness over lags of ±{result['max_lag']} frames; in sync: "
              f"share of windows whose best lag is within {IN_SYNC_FRAMES} frame of 0. latent R²: the share of the "
              "mouth's latent motion (VAE latents of the video, mean over the lip-box cells per latent frame, centred per "
              "window) that the loudness explains, held out across windows (0: none). Unguided samples; higher is better."]
    if result.get("paired"):
        def change(d: dict[str, Any]) -> str:
            return f"{d['mean'] + 0.0:+.3f} [{d['low'] + 0.0:+.3f}, {d['high'] + 0.0:+.3f}] ({d['better']}↑ {d['worse']}↓)"

        lines += ["", "| arm − " + next(iter(result["paired"].values()))["against"] + " | mouth r | AV confidence | in sync | windows |",
                  "|---|---|---|---|---|"]
        for name, d in result["paired"].items():
            lines.append(f"| {name} | {change(d['mouth_r'])} | {change(d['confidence'])} | {change(d['in_sync'])} | {d['windows']} |")
        lines += ["", "Window by window against the model without either part: mean difference, paired bootstrap 95 % "
                  "interval (an interval that holds 0 is no measured difference), windows better ↑ and worse ↓."]
    if result.get("audio_use"):
        def delta(value: float | None) -> str:
            return "—" if value is None or not np.isfinite(value) else f"{round(100 * value, 1) + 0.0:+.1f} %"  # no "-0.0"

        lines += ["", "| model | audio swap Δ | audio swap Δ at the mouth | windows |", "|---|---|---|---|"]
        for name, use in result["audio_use"].items():
            lines.append(f"| {name} | {delta(use['all']['relative_increase'])} | {delta(use['mouth']['relative_increase'])} "
                         f"| {use['windows']} |")
        lines += ["", "Audio swap Δ: relative increase of the denoising error (noise levels "
                  f"{', '.join(f'{s:g}' for s in next(iter(result['audio_use'].values()))['sigmas'])}) when each window's "
                  "audio is replaced by the next window's; at the mouth: inside the lip box round the reader's mouth "
                  "keypoint. Near 0: the model does not use the audio."]
    if not result.get("crop_scale"):
        lines.append("These clips show the whole body, so the mouth is a pixel or two tall: run with `corpus.crop_scale=1.8`.")
    return lines
