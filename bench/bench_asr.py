"""ASR stage benchmark: real-time factor with the tiny models, and our wrapper's overhead.

    .venv/bin/python bench/bench_asr.py [--clips 8] [--seconds 5] [--repeats 3] [--models DIR]

Builds the tiny offline models (`actavatar models tiny --only whisper,aligner`) unless --models
points at them, renders `--clips` espeak-ng speech clips, then times on the same audio, in the
same process, alternating:

  stage    AsrStage.__call__ (wav decode, VAD, transcribe, align, word post-processing, filters)
  direct   whisperx alone: load_model(...).transcribe(audio) + whisperx.align(...) per clip

Prints the real-time factor (processing seconds per audio second) of each and their ratio
(stage / direct; the aim is <= 1.1). Random weights: the text is nonsense, the work is real.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")


def speech_clips(count: int, seconds: float) -> list[np.ndarray]:
    from dataset.synth.speech import WordSynth, build_speech

    synth = WordSynth()
    try:
        return [build_speech(synth, np.random.default_rng(i), seconds, 16000).samples for i in range(count)]
    finally:
        synth.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=None, help="folder from `actavatar models tiny --only whisper,aligner`")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="bench-asr-")
    models = Path(args.models) if args.models else Path(tmp.name)
    if not args.models:
        from actavatar.models_cli import main as models_main

        models_main(["tiny", "--out", str(models), "--only", "whisper,aligner"])
    from annotate.asr import AsrStage
    from annotate.config import AsrConfig
    from dataset.media import encode_wav

    cfg = AsrConfig(model=str(models / "whisper"), align_models={"en": str(models / "aligner")},
                    nltk_data=str(models / "nltk_data"), language="en", languages=["en"],
                    max_new_tokens=24, min_speech_ratio=0.0, min_words=0)
    started = time.perf_counter()
    stage = AsrStage(cfg)
    load_s = time.perf_counter() - started
    import whisperx

    direct = whisperx.load_model(str(models / "whisper"), "cpu", compute_type="default", language="en",
                                 asr_options={"beam_size": 5, "best_of": 5}, vad_method="pyannote",
                                 local_files_only=True, threads=1)
    direct.model.max_length = stage.pipe.model.max_length  # the same decoding budget
    align_model, metadata = whisperx.load_align_model("en", "cpu", model_name=str(models / "aligner"))

    clips = speech_clips(args.clips, args.seconds)
    wavs = [encode_wav(c) for c in clips]
    audio_s = sum(len(c) for c in clips) / 16000

    def run_stage() -> float:
        t = time.perf_counter()
        stage({"key": [f"k{i}" for i in range(len(wavs))], "wav": wavs})
        return time.perf_counter() - t

    def run_direct() -> float:
        t = time.perf_counter()
        for audio in clips:
            result = direct.transcribe(audio, batch_size=cfg.batch_size, language="en")
            whisperx.align(result["segments"], align_model, metadata, audio, "cpu")
        return time.perf_counter() - t

    run_stage(), run_direct()  # warm-up (lazy imports, allocator)
    stage_s, direct_s = [], []
    for _ in range(args.repeats):
        stage_s.append(run_stage())
        direct_s.append(run_direct())
    s, d = statistics.median(stage_s), statistics.median(direct_s)
    print(f"audio: {args.clips} clips x {args.seconds:g} s = {audio_s:.1f} s; stage load {load_s:.1f} s; "
          f"torch threads {__import__('torch').get_num_threads()}")
    print(f"stage   {s:7.3f} s  RTF {s / audio_s:.4f}  ({audio_s / s:.1f}x real time)   runs {[round(x, 3) for x in stage_s]}")
    print(f"direct  {d:7.3f} s  RTF {d / audio_s:.4f}  ({audio_s / d:.1f}x real time)   runs {[round(x, 3) for x in direct_s]}")
    print(f"overhead stage/direct = {s / d:.3f}x (aim <= 1.1)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
