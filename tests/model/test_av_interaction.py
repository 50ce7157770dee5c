"""Frame-wise audio–video interaction (model.av_interaction, ApoAvatar): exactly neutral when off or
untrained, a real condition once trained, strictly per latent frame, saved with the checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.av_interaction import AudioVideoInteraction
from model.registry import FLAVORS, build_model
from tests.model.branches import paired_models
from tests.model.test_dit import FIVE, _inputs


def _pair():
    """The debug DiT without and with the (untrained) interaction modules, from the same seed."""
    return paired_models(av_interaction=True)


def test_registered_last_and_neutral_until_trained():
    base, with_av = _pair()
    torch.manual_seed(0)
    fresh_base = build_model(FLAVORS["debug"]()).state_dict()
    torch.manual_seed(0)
    fresh = dict(build_model(dataclasses.replace(FLAVORS["debug"](), av_interaction=True)).state_dict())
    for key, value in fresh_base.items():
        assert torch.equal(value, fresh.pop(key)), key
    assert fresh and all(".av_interaction." in key for key in fresh)
    assert not any(v.any() for k, v in fresh.items() if ".to_out." in k)  # zero output
    x, t, text, kw = _inputs(base, [FIVE, FIVE[:2]])
    with torch.no_grad():
        torch.testing.assert_close(with_av(x, t, text, **kw), base(x, t, text, **kw), atol=1e-6, rtol=0)
        for block in with_av.blocks:  # a "trained" module changes the prediction
            torch.nn.init.normal_(block.av_interaction.to_out.weight, std=0.2)
        assert (with_av(x, t, text, **kw) - base(x, t, text, **kw)).abs().max() > 1e-3
        # without audio the module has nothing to update: the prediction is the audio-free one
        no_audio = {k: v for k, v in kw.items() if not k.startswith("audio")}
        torch.testing.assert_close(with_av(x, t, text, **no_audio), base(x, t, text, **no_audio), atol=1e-6, rtol=0)
    assert "blocks.0.av_interaction." in with_av.new_parameter_prefixes()


def test_each_window_reads_only_its_own_frame():
    torch.manual_seed(0)
    module = AudioVideoInteraction(16, 2)
    torch.nn.init.normal_(module.to_out.weight)
    audio = torch.randn(2, 3, 5, 16)  # (B, F, W, D)
    video = torch.randn(2, 3 * 4, 16)  # (B, F*S, D), S = 4 tokens per latent frame
    before = module(audio, video)
    changed = video.clone()
    changed[:, 4:8] += 1.0  # latent frame 1's tokens
    after = module(audio, changed)
    assert (after[:, 1] - before[:, 1]).abs().max() > 1e-3
    torch.testing.assert_close(after[:, [0, 2]], before[:, [0, 2]])
    with pytest.raises(ValueError, match="cannot be split into 3 latent frames"):
        module(audio, video[:, :11])


def test_checkpoint_rules(tmp_path):
    from dataset.errors import UserError
    from train.model_init import ModelConfig, build_dit
    from train.pretrained import load_dit, save_dit

    base, with_av = _pair()
    save_dit(with_av, tmp_path / "with")
    assert load_dit(tmp_path / "with").config.av_interaction is True
    save_dit(base, tmp_path / "without")
    grown = build_dit(ModelConfig(init_from=str(tmp_path / "without"), av_interaction=True), seed=0).eval()
    x, t, text, kw = _inputs(base, [FIVE])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, **kw), base(x, t, text, **kw), atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="model.av_interaction=false removes"):
        build_dit(ModelConfig(init_from=str(tmp_path / "with"), av_interaction=False), seed=0)
    with pytest.raises(ValueError, match="av_interaction needs the audio branch"):
        dataclasses.replace(FLAVORS["debug"](), audio=None, av_interaction=True)
