"""Condition dropout for classifier-free guidance: the config, the per-sample draw, the trainer's
dropped inputs on latent shards and the negative-prompt contract of `actavatar encode`."""

from pathlib import Path

import pytest
import torch

from dataset.config_loader import ConfigError, load_config
from tests.train.conftest import fast_overrides
from train.config import TrainConfig
from train.guidance_dropout import GuidanceDropoutConfig, draw_drops
from train.trainer import build_trainer, check_latent_window

STAGE1 = "configs/train/stage1_debug.yaml"


def test_config_defaults_and_errors():
    cfg = load_config(TrainConfig, STAGE1)
    assert (cfg.guidance.text_drop, cfg.guidance.audio_drop, cfg.guidance.both_drop, cfg.guidance.negative_prompt) == (0.1, 0.1, 0.1, "")
    assert load_config(TrainConfig, "configs/train/stage2_1.3b.yaml").guidance == GuidanceDropoutConfig()
    with pytest.raises(ConfigError, match="guidance.text_drop \\+ audio_drop \\+ both_drop must be <= 1, got 1.2"):
        load_config(TrainConfig, STAGE1, ["guidance.text_drop=0.5", "guidance.audio_drop=0.5", "guidance.both_drop=0.2"])
    with pytest.raises(ConfigError, match="guidance.audio_drop must be in \\[0, 1\\], got -0.1"):
        load_config(TrainConfig, STAGE1, ["guidance.audio_drop=-0.1"])
    off = GuidanceDropoutConfig(text_drop=0, audio_drop=0, both_drop=0)
    assert not off.enabled and not off.drops_text


def test_one_draw_per_sample_splits_the_unit_interval():
    cfg = GuidanceDropoutConfig(text_drop=0.2, audio_drop=0.3, both_drop=0.1)
    text, audio = draw_drops(cfg, 40_000, torch.Generator().manual_seed(0))
    shares = [float(x.float().mean()) for x in (text & ~audio, audio & ~text, text & audio, ~text & ~audio)]
    assert shares == pytest.approx([0.2, 0.3, 0.1, 0.4], abs=0.01)
    again = draw_drops(cfg, 40_000, torch.Generator().manual_seed(0))
    assert torch.equal(text, again[0]) and torch.equal(audio, again[1])  # seeded: an exact resume replays it
    gen = torch.Generator().manual_seed(0)
    draw_drops(cfg, 3, gen)
    assert not torch.equal(gen.get_state(), torch.Generator().manual_seed(0).get_state())  # it consumes the stream


def _trainer(latents: Path, out: Path, *extra: str):
    cfg = load_config(TrainConfig, STAGE1, [f"data.shards={latents}", "data.kind=latents", "data.batch_size=2",
                                            *fast_overrides(out, 1), *extra])
    return build_trainer(cfg)


def test_trainer_drops_to_the_stored_negative_prompt_and_zero_audio(latents, tmp_path):
    trainer = _trainer(latents, tmp_path, "guidance.text_drop=0", "guidance.audio_drop=0", "guidance.both_drop=1")
    batch = next(trainer.batches_from(0))
    inputs = trainer.conditioner(batch)
    dropped = trainer.drop_conditions(inputs)
    negative = batch["negative"][0]  # the features `actavatar encode` stored (negative prompt "")
    n = negative.shape[0]
    assert torch.equal(dropped.tokens[:, :n], negative.expand(2, -1, -1)) and not dropped.tokens[:, n:].any()
    assert (dropped.block_ids[:, :n] == 0).all() and (dropped.block_ids[:, n:] == -1).all()
    assert not dropped.audio.any() and dropped.audio.shape == inputs.audio.shape
    assert torch.equal(dropped.latents, inputs.latents) and torch.equal(dropped.audio_index, inputs.audio_index)
    off = _trainer(latents, tmp_path / "off", "guidance.text_drop=0", "guidance.audio_drop=0", "guidance.both_drop=0")
    state = off.noise_rng.get_state()
    assert off.drop_conditions(inputs) is inputs and torch.equal(off.noise_rng.get_state(), state)  # no draw when off


def test_latent_shards_must_match_the_negative_prompt(latents, tmp_path):
    with pytest.raises(ValueError, match="encoded with negative prompt '', guidance.negative_prompt is 'blurry'"):
        _trainer(latents, tmp_path, "guidance.negative_prompt=blurry")
    _trainer(latents, tmp_path / "ok", "guidance.negative_prompt=blurry", "guidance.text_drop=0", "guidance.both_drop=0")
    cfg = load_config(TrainConfig, STAGE1, ["data.shards=x"])
    with pytest.raises(ValueError, match="hold no negative prompt features"):
        check_latent_window(cfg, {"bucket": "9x32x32", "start_frame": 0, "text_lengths": [3]})
    check_latent_window(cfg, None)  # remote shards: checked per batch by the Conditioner
