"""AsrStage with the tiny random models on a few synthetic clips, and its offline failures."""

from __future__ import annotations

import numpy as np
import pytest

from pathlib import Path

from annotate.asr_models import AsrModelError, check_asr_models
from annotate.config import AsrConfig
from dataset.media import encode_wav
from dataset.schema import AUDIO_SAMPLE_RATE

RATE = AUDIO_SAMPLE_RATE
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "annotate" / "demo.yaml"


def _cfg(models, **kw) -> AsrConfig:
    base = dict(model=str(models / "whisper"), align_models={"en": str(models / "aligner")},
                nltk_data=str(models / "nltk_data"), language="en", languages=["en"], max_new_tokens=16)
    return AsrConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """4 s each: espeak-ng speech, a tone sequence (the synth corpus' music), room ambience, zeros."""
    from dataset.synth.sounds import ambience, music
    from dataset.synth.speech import WordSynth, build_speech

    synth = WordSynth()
    try:
        speech = build_speech(synth, np.random.default_rng(0), 4.0, RATE).samples
    finally:
        synth.close()
    rng = np.random.default_rng(1)
    return {"speech": speech, "music": music(rng, 4.0, RATE), "ambience": ambience(rng, 4.0, RATE),
            "silence": np.zeros(4 * RATE, np.float32)}


@pytest.fixture(scope="module")
def results(tiny_asr_dir, clips):
    from annotate.asr import AsrStage

    stage = AsrStage(_cfg(tiny_asr_dir))
    out = stage({"key": [*clips, "broken"], "wav": [*(encode_wav(a) for a in clips.values()), b"not a wav"]})
    return {key: {name: out[name][i] for name in out} for i, key in enumerate(out["key"])}


def test_speech_is_transcribed_and_aligned(results):
    from dataset.annotation import _word_problems

    row = results["speech"]
    assert row["status"] == "ok", row
    assert row["speech_ratio"] >= 0.5 and row["language"] == "en"
    words = row["transcript"]["words"]
    assert words and row["num_words"] == len(words)
    assert any(w["aligned"] for w in words)
    assert _word_problems(words, 4.0, 1e-3) == []  # monotonic, inside the clip, no aligned overlap


@pytest.mark.parametrize("name", ["music", "ambience", "silence"])
def test_non_speech_is_rejected_by_the_real_vad(results, name):
    row = results[name]
    assert (row["status"], row["reason"]) == ("rejected", "low_speech_ratio"), row
    assert row["speech_ratio"] < 0.3 and row["transcript"] is None


def test_a_broken_clip_fails_alone(results):
    assert results["broken"]["status"] == "failed" and results["broken"]["reason"] == "asr_error"


def test_missing_models_fail_fast_naming_the_fix(tiny_asr_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))  # no cached resources at all
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    with pytest.raises(AsrModelError) as err:
        check_asr_models(AsrConfig(model="large-v3", language="en", nltk_data=str(tmp_path)))
    text = str(err.value)
    assert "asr.model='large-v3'" in text and "actavatar models tiny" in text
    assert "WAV2VEC2_ASR_BASE_960H" in text and "punkt_tab/english" in text
    with pytest.raises(AsrModelError, match="asr.align_models.de"):
        check_asr_models(_cfg(tiny_asr_dir, language="de", languages=["de"]))


def test_data_run_without_models_is_one_line_error(tmp_path, capsys, monkeypatch):
    from actavatar.cli import main

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.mp4").write_bytes(b"x")
    code = main(["data", "run", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out"),
                 "--config", str(CONFIG), f"asr.model={tmp_path / 'no-such-model'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no-such-model" in err and "actavatar models tiny" in err
