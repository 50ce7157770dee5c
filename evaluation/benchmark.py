"""Benchmarks for `actavatar eval --checkpoint`: a folder of prompts + references, or a synthetic corpus.

A benchmark folder holds, per clip `<key>`:
    <key>.json  annotation (DESIGN §3; needs caption.base and caption.phases[{start_s, end_s, text}],
                an optional phase `label` is what the synthetic action reader reports)
    <key>.mp4   the reference video (FID/FVD/identity reference; its audio drives sampling without a wav)
    <key>.wav   optional driving audio (16 kHz mono); else the mp4's audio
    <key>.png   optional identity/reference image (.jpg too); else the mp4's first frame
A synthetic corpus (`actavatar synth --out D`: D/truth.jsonl + D/raw/*.mp4) is converted into such a
folder by `synth_to_benchmark`: one clip per avatar shot (or per window of `max_frames` frames),
phase times relative to the clip, labels kept, frames re-encoded at the corpus' nominal fps.
A corpus of WebDataset shards (`actavatar data run` output, a shards folder, a tar, a text file of
shard URLs or a brace pattern) is unpacked by `shards_to_benchmark`: every clip whose caption has
phases, its annotation, mp4 and wav as they are in the shards (with `max_frames`: consecutive
windows of that many frames, keys `<clip key>_wNNNN`, phases and words moved to window time).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataset.errors import UserError
from evaluation.prompt import caption_from_mapping
from evaluation.sample_jobs import SampleJob, parse_face_box
from dataset.schema import AUDIO_SAMPLE_RATE

log = logging.getLogger(__name__)

MARKER = ".synth_benchmark"  # written into a converted benchmark folder (safe to rebuild)
_BASE = {  # base captions of the synthetic shot kinds (the corpus has no free-text description)
    "talk": "A cartoon puppet talks to the camera.",
    "two_avatars": "Two cartoon puppets stand side by side; the left one talks to the camera.",
    "silent": "A cartoon puppet stands silently in front of the camera.",
    "music": "A cartoon puppet stands in front of the camera while music plays.",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchmarkConfig:
    """Args:
        max_frames: cut each avatar shot (synthetic corpora) or each clip (shard corpora) into
            windows of this many frames (1 + 4k; 0 = one clip per whole shot / clip).
        max_clips: keep at most this many clips (0 = all), in corpus order.
    """

    max_frames: int = 0
    max_clips: int = 0

    def __post_init__(self) -> None:
        if self.max_frames < 0 or (self.max_frames and (self.max_frames - 1) % 4):
            raise UserError(f"benchmark.max_frames must be 0 or 1 + 4k, got {self.max_frames}")
        if self.max_clips < 0:
            raise UserError(f"benchmark.max_clips must be >= 0, got {self.max_clips}")


def is_synth_corpus(path: str | Path) -> bool:
    return "://" not in str(path) and (Path(path) / "truth.jsonl").is_file()


def jobs_from_benchmark(folder: str | Path, max_clips: int = 0) -> list[SampleJob]:
    """One SampleJob per `<key>.json` that has a reference video (or wav) beside it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"benchmark folder not found: {folder}")
    jobs = []
    for ann in sorted(folder.glob("*.json")):
        key = ann.stem
        video, wav = folder / f"{key}.mp4", folder / f"{key}.wav"
        image = next((folder / f"{key}{s}" for s in (".png", ".jpg", ".jpeg") if (folder / f"{key}{s}").is_file()), None)
        if not video.is_file() and not wav.is_file():
            raise FileNotFoundError(f"benchmark {folder}: {ann.name} has neither {key}.wav nor {key}.mp4 (driving audio)")
        try:
            doc = json.loads(ann.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{ann}: invalid JSON ({err})") from None
        box = (doc.get("face") or {}).get("bbox")  # normalised to the clip's frames, as the reference image
        jobs.append(SampleJob(key=key, caption=caption_from_mapping(doc, str(ann)),
                              image=image or (video if video.is_file() else None), audio=wav if wav.is_file() else video,
                              face_box=parse_face_box([min(max(float(v), 0.0), 1.0) for v in box], str(ann)) if box else None))
    if not jobs:
        raise FileNotFoundError(f"benchmark {folder}: no <key>.json annotations")
    return jobs[:max_clips] if max_clips else jobs


def _windows(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) windows of `size` frames in [start, stop); a shot shorter than `size` is one window."""
    if not size or stop - start <= size:
        return [(start, stop)]
    return [(a, a + size) for a in range(start, stop - size + 1, size)]


def clip_annotation(record: dict[str, Any], shot: dict[str, Any], key: str, a: int, b: int, fps: float) -> dict[str, Any]:
    """Annotation of frames [a, b) of a synthetic video: phases clipped to the window, times = frames / fps."""
    phases = []
    for p in shot["phases"]:
        s, e = max(p["start_frame"], a), min(p["end_frame"], b)
        if e > s:
            phases.append({"start_s": round((s - a) / fps, 6), "end_s": round((e - a) / fps, 6),
                           "text": p["text"], "label": p["label"]})
    n = b - a
    return {"schema_version": 1, "key": key,
            "source": {"uri": record["file"], "video_id": record["video_id"], "start_frame": a, "end_frame": b},
            "video": {"fps": fps, "num_frames": n, "width": record["width"], "height": record["height"],
                      "duration_s": round(n / fps, 6)},
            "audio": {"sample_rate": AUDIO_SAMPLE_RATE, "num_samples": int(round(n / fps * AUDIO_SAMPLE_RATE))},
            "caption": {"base": _BASE.get(shot["kind"], _BASE["talk"]), "phases": phases}}


def window_files(frames: np.ndarray, audio: np.ndarray, a: int, b: int, first_sample: int, ann: dict[str, Any]) -> dict[str, bytes]:
    """The files of one benchmark clip, frames [a, b) of a video: {"mp4" (audio muxed in), "wav"
    (the audio from `first_sample`, zero-padded to the annotation's length), "png" (the first frame,
    the reference image), "json" (`ann`)}."""
    import io

    from PIL import Image

    from dataset.media import encode_mp4, encode_wav

    wav = np.zeros(ann["audio"]["num_samples"], np.float32)
    seg = audio[first_sample : first_sample + wav.size]
    wav[: seg.size] = seg
    png = io.BytesIO()
    Image.fromarray(frames[a]).save(png, format="PNG")
    return {"mp4": encode_mp4(frames[a:b], wav, fps=float(ann["video"]["fps"])), "wav": encode_wav(wav), "png": png.getvalue(),
            "json": (json.dumps(ann, indent=2) + "\n").encode()}


def synth_to_benchmark(corpus: str | Path, out: str | Path, cfg: BenchmarkConfig = BenchmarkConfig()) -> Path:
    """Write a benchmark folder (mp4 + wav + png + json per clip) from a synthetic corpus; returns `out`."""
    from dataset.atomic import atomic_write_bytes
    from evaluation.video_folder import decode_mp4_audio, read_frames

    corpus, out = Path(corpus), Path(out)
    truth = corpus / "truth.jsonl"
    if not truth.is_file():
        raise FileNotFoundError(f"{corpus}: no truth.jsonl (not a synthetic corpus from `actavatar synth`)")
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for number, line in enumerate(truth.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        shots = [s for s in record["shots"] if s.get("avatar_present") and s.get("phases")]
        if not shots:
            continue
        raw = corpus / record["file"]
        if not raw.is_file():
            raise FileNotFoundError(f"{truth}:{number}: video {raw} is missing")
        frames = read_frames(raw)
        audio = decode_mp4_audio(raw.read_bytes())
        audio = np.zeros(0, np.float32) if audio is None else audio
        fps = float(record["fps"])
        times = record.get("frame_times_s") or [i / fps for i in range(record["num_frames"])]
        for shot in shots:
            for a, b in _windows(shot["start_frame"], min(shot["end_frame"], len(frames)), cfg.max_frames):
                key = f"{record['video_id']}_{count:04d}"
                ann = clip_annotation(record, shot, key, a, b, fps)
                t0 = int(round(times[a] * AUDIO_SAMPLE_RATE)) if a < len(times) else int(round(a / fps * AUDIO_SAMPLE_RATE))
                for ext, data in window_files(frames, audio, a, b, t0, ann).items():
                    atomic_write_bytes(out / f"{key}.{ext}", data)
                count += 1
                if cfg.max_clips and count >= cfg.max_clips:
                    log.info("benchmark: %d clip(s) from %s -> %s", count, corpus, out)
                    return out
    if not count:
        raise UserError(f"{truth}: no avatar shot with phases to turn into a benchmark clip")
    log.info("benchmark: %d clip(s) from %s -> %s", count, corpus, out)
    return out


def is_shard_corpus(path: str | Path) -> bool:
    """A `data run` output folder, a folder of shard-NNNNNN.tar, a .tar, a .txt list, a URL pattern
    or any URL (`s3://bucket/corpus`: shards on object storage)."""
    text = str(path)
    if "://" in text or "{" in text or text.endswith((".tar", ".txt")):
        return True
    p = Path(path)
    return p.is_dir() and not any(p.glob("*.mp4")) and any((p / "shards").glob("shard-*.tar") if (p / "shards").is_dir()
                                                           else p.glob("shard-*.tar"))


def shards_to_benchmark(shards: str | Path, out: str | Path, cfg: BenchmarkConfig = BenchmarkConfig()) -> Path:
    """Unpack the captioned clips of a shard corpus (local or object storage) into a benchmark folder
    (key order, `max_clips`)."""
    from webdataset.handlers import reraise_exception

    from dataset.annotation import parse_annotation
    from dataset.atomic import atomic_write_bytes
    from dataset.reader import shard_pipeline
    from dataset.schema import SAMPLE_KEY_RE

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kept = 0
    # raw members; any broken shard (or one that cannot be opened) stops the conversion with its error
    for sample in shard_pipeline(shards, decode="none", handler=reraise_exception):
        key = sample["__key__"]
        if not SAMPLE_KEY_RE.match(key):  # keys become file names: never trust a path from an archive
            raise UserError(f"{sample.get('__url__', shards)}: sample key {key!r} is not <source_id>_<clip>")
        if not {"json", "mp4"} <= set(sample):
            raise UserError(f"{sample.get('__url__', shards)}: sample {key} lacks json or mp4")
        doc = parse_annotation(sample["json"])
        if not (doc.get("caption") or {}).get("phases"):
            log.info("benchmark: %s has no phase captions; skipped", key)
            continue
        if cfg.max_frames:
            for window_key, files in clip_windows(doc, sample, cfg.max_frames):
                for ext, data in files.items():
                    atomic_write_bytes(out / f"{window_key}.{ext}", data)
                kept += 1
                if cfg.max_clips and kept >= cfg.max_clips:
                    break
        else:
            for ext in ("json", "mp4", "wav"):
                if ext in sample:
                    atomic_write_bytes(out / f"{key}.{ext}", sample[ext])
            kept += 1
        if cfg.max_clips and kept >= cfg.max_clips:
            break
    if not kept:
        raise UserError(f"{shards}: no clip with phase captions in these shards (a benchmark needs prompts)")
    return out


def window_annotation(doc: dict[str, Any], key: str, a: int, b: int) -> dict[str, Any]:
    """The annotation of frames [a, b) of a clip: phases clipped to the window and moved to its time
    (a phase keeps its `label`), words likewise; the rest as in the clip."""
    fps = float(doc["video"]["fps"])
    t0, t1 = a / fps, b / fps
    out = json.loads(json.dumps(doc))
    phases = []
    for p in (doc.get("caption") or {}).get("phases") or []:
        s, e = max(float(p["start_s"]), t0), min(float(p["end_s"]), t1)
        if e > s + 1e-6:
            phases.append({**p, "start_s": round(s - t0, 6), "end_s": round(e - t0, 6)})
    out["caption"]["phases"] = phases
    out["key"] = key
    out["video"].update(num_frames=b - a, duration_s=round((b - a) / fps, 6))
    out["audio"]["num_samples"] = int(round((b - a) / fps * AUDIO_SAMPLE_RATE))
    out["source"] = {**doc.get("source", {}), "clip_key": doc.get("key"), "start_frame": a, "end_frame": b}
    transcript = out.get("transcript")
    if transcript and transcript.get("words"):
        transcript["words"] = [{**w, "start_s": round(float(w["start_s"]) - t0, 6), "end_s": round(float(w["end_s"]) - t0, 6)}
                               for w in transcript["words"] if t0 <= float(w["start_s"]) and float(w["end_s"]) <= t1]
    return out


def clip_windows(doc: dict[str, Any], sample: dict[str, bytes], size: int) -> list[tuple[str, dict[str, bytes]]]:
    """Consecutive windows of `size` frames of one shard sample (a clip shorter than `size` is skipped):
    [(window key, {"json", "mp4", "wav", "png": bytes})], keys `<clip key>_wNNNN` (NNNN = first frame)."""
    from dataset.media import decode_mp4, decode_wav

    frames = decode_mp4(sample["mp4"])
    fps = float(doc["video"]["fps"])
    audio = decode_wav(sample["wav"])[0] if "wav" in sample else np.zeros(0, np.float32)
    out = []
    for a in range(0, len(frames) - size + 1, size):
        key = f"{doc['key']}_w{a:04d}"
        ann = window_annotation(doc, key, a, a + size)
        out.append((key, window_files(frames, audio, a, a + size, int(round(a / fps * AUDIO_SAMPLE_RATE)), ann)))
    return out


def prepare_benchmark(path: str | Path, work_dir: str | Path, cfg: BenchmarkConfig = BenchmarkConfig()) -> Path:
    """The benchmark folder to sample and score: `path` itself, or its conversion (synthetic corpus,
    WebDataset shards) under work_dir/benchmark."""
    convert = synth_to_benchmark if is_synth_corpus(path) else shards_to_benchmark if is_shard_corpus(path) else None
    if convert is not None:
        target = Path(work_dir) / "benchmark"
        marker = target / MARKER
        if target.exists() and any(target.iterdir()):
            if not marker.is_file():
                raise FileExistsError(f"{target} exists and was not written by a benchmark conversion; choose another --out")
            shutil.rmtree(target)  # ours (marker present): rebuild, so no stale clip from an earlier run stays
        convert(path, target, cfg)
        marker.write_text(json.dumps({"corpus": str(path), "max_frames": cfg.max_frames, "max_clips": cfg.max_clips}) + "\n")
        return target
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"benchmark not found: {path}")
    if not any(path.glob("*.mp4")):
        raise FileNotFoundError(f"benchmark {path}: no reference videos <key>.mp4 (needed to score against); "
                                "a synthetic corpus needs its truth.jsonl")
    return path
