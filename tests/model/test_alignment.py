import math

import pytest
import torch

from model.alignment import AlignmentConfig, ProgressiveAlignment, schedule_weights


def test_linear_and_cosine_go_from_start_to_end():
    lin = schedule_weights("linear", 1.0, 0.5, 5)
    torch.testing.assert_close(lin, torch.tensor([1.0, 0.875, 0.75, 0.625, 0.5]))
    cos = schedule_weights("cosine", 0.0, 1.0, 3)
    torch.testing.assert_close(cos, torch.tensor([0.0, 0.5, 1.0]))
    assert schedule_weights("constant", 0.7, 0.1, 4).eq(0.7).all()


def test_default_is_text_early_audio_late():
    text, audio = ProgressiveAlignment(30, AlignmentConfig())()
    assert text.shape == audio.shape == (30,)
    assert text[0] > text[-1] and audio[0] < audio[-1]
    assert (text.diff() <= 0).all() and (audio.diff() >= 0).all()


def test_learned_starts_from_schedule_and_trains():
    cfg = AlignmentConfig(schedule="learned", learned_init="cosine")
    module = ProgressiveAlignment(6, cfg)
    assert {n for n, _ in module.named_parameters()} == {"text_weight", "audio_weight"}
    torch.testing.assert_close(module()[0], schedule_weights("cosine", cfg.text_start, cfg.text_end, 6))
    # fixed schedules are buffers that are not saved
    fixed = ProgressiveAlignment(6, AlignmentConfig())
    assert list(fixed.parameters()) == [] and fixed.state_dict() == {}


def test_validation_names_key_and_value():
    with pytest.raises(ValueError, match="alignment.schedule.*'zigzag'"):
        AlignmentConfig(schedule="zigzag")
    with pytest.raises(ValueError, match="alignment.audio_end.*-1"):
        AlignmentConfig(audio_end=-1.0)
    with pytest.raises(ValueError, match="text_start"):
        AlignmentConfig(text_start=math.nan)
