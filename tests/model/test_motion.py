"""Motion-intensity modulation (model.motion): exactly neutral when off or untrained, a real condition
once trained, NaN rows unconditioned per sample, saved and loaded with the checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.motion import MotionConfig, MotionEmbedding, motion_tensor
from model.registry import FLAVORS, build_model
from tests.model.branches import grown_from, paired_models, saved_and_loaded
from tests.model.test_dit import FIVE, _inputs


def _pair():
    """The debug DiT without and with the motion branch (a "trained" one), from the same seed."""
    return paired_models("motion_embed", motion=MotionConfig())


def test_registered_last_so_every_other_weight_is_the_same():
    torch.manual_seed(0)
    fresh = build_model(dataclasses.replace(FLAVORS["debug"](), motion=MotionConfig()))
    torch.manual_seed(0)
    plain = build_model(FLAVORS["debug"]())
    theirs = dict(fresh.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, theirs.pop(key)), key
    assert not fresh.motion_embed.linear_2.weight.any()  # zero output until trained
    assert sorted(theirs) == ["motion_embed.linear_1.bias", "motion_embed.linear_1.weight",
                              "motion_embed.linear_2.bias", "motion_embed.linear_2.weight"]


def test_neutral_when_off_and_when_untrained():
    base, with_motion = _pair()
    with torch.no_grad():
        with_motion.motion_embed.reset_parameters()  # as initialised: zero output
        x, t, text, kw = _inputs(base, [FIVE, FIVE[:2]])
        today = base(x, t, text, **kw)
        torch.testing.assert_close(with_motion(x, t, text, **kw), today, atol=1e-6, rtol=0)
        motion = motion_tensor([(0.9, 0.1), (0.0, 1.0)])
        torch.testing.assert_close(with_motion(x, t, text, motion=motion, **kw), today, atol=1e-6, rtol=0)


def test_trained_branch_conditions_and_nan_rows_stay_unconditioned():
    _, model = _pair()  # _pair's noise moved linear_2 off zero: a "trained" branch
    x, t, text, kw = _inputs(model, [FIVE, FIVE])
    with torch.no_grad():
        plain = model(x, t, text, **kw)
        low = model(x, t, text, motion=motion_tensor([(0.1, 0.1), None]), **kw)
        high = model(x, t, text, motion=motion_tensor([(0.9, 0.9), None]), **kw)
    assert (low[0] - high[0]).abs().max() > 1e-3  # the intensity changes the prediction
    torch.testing.assert_close(low[1], plain[1], atol=1e-6, rtol=0)  # a NaN row: as without motion
    torch.testing.assert_close(high[1], plain[1], atol=1e-6, rtol=0)


def test_a_missing_signal_contributes_nothing():
    from model.embeddings import timestep_sinusoid

    emb = MotionEmbedding(MotionConfig(freq_dim=8), 16)
    torch.nn.init.normal_(emb.linear_2.weight)
    face_only = torch.cat([timestep_sinusoid(torch.tensor([300.0]), 8), torch.zeros(1, 8)], dim=1)
    expected = emb.linear_2(torch.nn.functional.silu(emb.linear_1(face_only)))
    torch.testing.assert_close(emb(motion_tensor([(0.3, None)])), expected)
    assert not torch.allclose(emb(motion_tensor([(0.3, None)])), emb(motion_tensor([(0.3, 0.0)])))
    assert torch.equal(emb(motion_tensor([None])), torch.zeros(1, 16))
    assert motion_tensor([(0.3, None)]).isnan().tolist() == [[False, True]]


def test_errors_name_the_problem():
    base, with_motion = _pair()
    x, t, text, kw = _inputs(base, [FIVE])
    with pytest.raises(ValueError, match="model.motion is None"):
        base(x, t, text, motion=torch.zeros(1, 2), **kw)
    with pytest.raises(ValueError, match=r"motion must be \(B, 2\)"):
        with_motion(x, t, text, motion=torch.zeros(1, 3), **kw)
    with pytest.raises(ValueError, match="freq_dim must be an even integer"):
        MotionConfig(freq_dim=3)


def test_kept_in_fp32_and_counted_as_new():
    _, model = _pair()
    assert "motion_embed" in model.fp32_modules()
    assert "motion_embed." in model.new_parameter_prefixes()


def test_checkpoint_round_trip_and_adding_the_branch_to_an_old_checkpoint(tmp_path):
    from dataset.errors import UserError
    from train.model_init import ModelConfig, build_dit

    base, with_motion = _pair()
    loaded = saved_and_loaded(with_motion, tmp_path / "with")
    assert loaded.config.motion == MotionConfig()
    x, t, text, kw = _inputs(base, [FIVE])
    motion = motion_tensor([(0.5, 0.2)])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, text, motion=motion, **kw), with_motion(x, t, text, motion=motion, **kw))

    grown = grown_from(base, tmp_path / "without", motion=True)  # e.g. a stage-1 export: stage 2 adds the branch
    assert grown.config.motion is not None
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, motion=motion, **kw), base(x, t, text, **kw), atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="model.motion=false removes the trained motion-intensity weights"):
        build_dit(ModelConfig(init_from=str(tmp_path / "with"), motion=False), seed=0)
