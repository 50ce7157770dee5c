"""Trainer on cached latents (fast) and on media shards (one smoke run): overfit, exact resume,
stage-2 freezing and parameter groups, start-up validation."""

import json
from pathlib import Path

import pytest
import torch

from dataset.config_loader import ConfigError, load_config
from tests.train.conftest import encoder_overrides, fast_overrides
from train.config import TrainConfig
from train.trainer import Stage1Trainer, build_trainer

STAGE1 = "configs/train/stage1_debug.yaml"
STAGE2 = "configs/train/stage2_debug.yaml"


def _latent_cfg(latents: Path, out: Path, steps: int, *extra: str, config: str = STAGE1) -> TrainConfig:
    return load_config(TrainConfig, config, [f"data.shards={latents}", "data.kind=latents", *fast_overrides(out, steps), *extra])


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_on_tiny_overfit(latents, tmp_path):
    # one fixed batch: no random window, fixed noise level range, high LR
    cfg = _latent_cfg(latents, tmp_path, 30, "data.batch_size=2", "data.shuffle_buffer=0", "optim.lr=3e-3",
                      "optim.warmup_steps=0", "optim.schedule=constant", "flow.shift=1.0", "checkpoint.every=0",
                      "checkpoint.export_final=false", "ema.decay=0.0")
    trainer = build_trainer(cfg)
    batch = next(trainer.batches_from(0))
    losses = [trainer.train_step(batch)["loss"] for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses


def test_resume_is_exact(latents, tmp_path):
    extra = ("checkpoint.every=0", "ema.decay=0.9", "checkpoint.export_final=true")
    build_trainer(_latent_cfg(latents, tmp_path / "once", 6, *extra)).train()
    build_trainer(_latent_cfg(latents, tmp_path / "twice", 6, *extra)).train(stop_at=3)
    assert (tmp_path / "twice/checkpoints/latest").read_text().strip() == "step-000003"
    build_trainer(_latent_cfg(latents, tmp_path / "twice", 6, *extra)).train()
    assert _losses(tmp_path / "once") == _losses(tmp_path / "twice")
    from safetensors.torch import load_file

    for name in ("final", "ema"):
        a = load_file(str(tmp_path / "once" / name / "model.safetensors"))
        b = load_file(str(tmp_path / "twice" / name / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_export_loads_with_load_dit(latents, tmp_path):
    from train.pretrained import load_dit

    trainer = build_trainer(_latent_cfg(latents, tmp_path, 2, "ema.decay=0.5"))
    trainer.train()
    model = load_dit(tmp_path / "ema")
    ema = trainer.ema.shadow
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ema.items())
    assert (tmp_path / "tensorboard").exists() is False  # log.tensorboard=false


def test_stage1_trains_audio_modules_only_by_default(latents, tmp_path):
    trainer = build_trainer(_latent_cfg(latents, tmp_path, 1, "stage.trainable=audio"))
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(trainer.audio_prefixes) for n in trainable)


def test_stage2_freezes_and_groups(latents, tmp_path):
    stage1 = tmp_path / "s1"
    build_trainer(_latent_cfg(latents, stage1, 2, "ema.decay=0.5")).train()
    cfg = _latent_cfg(latents, tmp_path / "s2", 3, f"model.init_from={stage1}/ema", "stage.text_lr=1e-3",
                      "stage.other_lr=0", "checkpoint.export_final=false", config=STAGE2)
    trainer = build_trainer(cfg)
    assert type(trainer).__name__ == "Stage2Trainer" and isinstance(trainer, Stage1Trainer)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert set(groups) == {"text"} and groups["text"]["initial_lr"] == 1e-3  # audio frozen, other lr 0 = frozen
    names = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert names and all(".cross_attn." in n or ".norm2." in n or n.startswith("text_embed.") for n in names)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    metrics = trainer.train()
    assert "phase_fraction" in metrics
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, before[n]) != (n in names), n  # exactly the trainable ones moved
    # stage 2 started from stage 1's EMA export
    from train.pretrained import load_dit

    init = load_dit(stage1 / "ema").state_dict()
    assert torch.equal(before["blocks.0.audio_attn.to_out.weight"], init["blocks.0.audio_attn.to_out.weight"])


def test_media_shards_smoke(corpus, tiny_encoders, tmp_path):
    cfg = load_config(TrainConfig, STAGE2, [f"data.shards={corpus}", "data.buckets=[9x32x32]", "data.batch_size=1",
                                            "model.init_from=''", *encoder_overrides(tiny_encoders), *fast_overrides(tmp_path, 2),
                                            "log.tensorboard=true"])
    metrics = build_trainer(cfg).train()
    assert metrics["loss"] > 0 and metrics["samples_per_s"] > 0
    assert (tmp_path / "final/model.safetensors").is_file() and list((tmp_path / "tensorboard").iterdir())


def test_bad_configs_fail_at_start(latents, tmp_path, corpus):
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        build_trainer(_latent_cfg(latents, tmp_path, 1, "data.buckets=[16x32x32]"))
    with pytest.raises(ConfigError, match="unknown config key"):
        _latent_cfg(latents, tmp_path, 1, "optim.learning_rate=1")
    with pytest.raises(ConfigError, match="optim.lr must be > 0"):
        _latent_cfg(latents, tmp_path, 1, "optim.lr=0")
    with pytest.raises(FileNotFoundError, match="no shard"):
        build_trainer(_latent_cfg(tmp_path / "nothing", tmp_path, 1)).train()
    empty = tmp_path / "empty"
    (empty / "shards").mkdir(parents=True)
    (empty / "shards" / "shard-000000.tar").write_bytes(b"\0" * 1024)
    with pytest.raises(ValueError, match="empty"):
        build_trainer(_latent_cfg(empty, tmp_path, 1)).train()
    with pytest.raises(ValueError, match="readers"):
        build_trainer(_latent_cfg(latents, tmp_path, 1, "data.num_workers=8")).train()


def test_snapshots_hold_the_ema_at_their_step(latents, tmp_path):
    from train.pretrained import load_dit

    trainer = build_trainer(_latent_cfg(latents, tmp_path, 4, "ema.decay=0.5", "checkpoint.snapshot_every=2"))
    trainer.train()
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["step-000002", "step-000004"]
    final = load_dit(tmp_path / "snapshots" / "step-000004").state_dict()
    early = load_dit(tmp_path / "snapshots" / "step-000002").state_dict()
    assert all(torch.equal(final[k], v) for k, v in trainer.ema.shadow.items())  # the last snapshot is the EMA export
    assert any(not torch.equal(early[k], final[k]) for k in final)
    assert (tmp_path / "snapshots" / "step-000002" / "conditioning.json").is_file()


def test_motion_weight_changes_the_loss(latents, tmp_path):
    def first_loss(*extra):
        cfg = _latent_cfg(latents, tmp_path, 1, "data.shuffle_buffer=0", "checkpoint.export_final=false", *extra)
        trainer = build_trainer(cfg)
        return trainer.train_step(next(trainer.batches_from(0)))["loss"]

    assert first_loss() == first_loss()  # same seed, same batch, same noise
    assert first_loss() != first_loss("flow.motion_weight=8")


def test_encoder_widths_are_checked_before_any_data_or_model_loads(tiny_encoders, tmp_path):
    # the shards path does not exist: the width error must come first (a 1024-d wav2vec2-large on a
    # 768-d model used to fail at step 1, after everything had loaded)
    base = [f"data.shards={tmp_path / 'nothing'}", "model.init_from=''", *encoder_overrides(tiny_encoders), *fast_overrides(tmp_path, 1)]
    with pytest.raises(ValueError, match=r"encoders.audio=.* gives 32-d features; the model's audio.audio_dim is 48 "
                                         r"\(set model.audio.audio_dim=32"):
        build_trainer(load_config(TrainConfig, STAGE2, [*base, "model.audio.audio_dim=48"]))
    with pytest.raises(ValueError, match=r"encoders.text=.* gives 32-d features; the model's text_dim is 16"):
        build_trainer(load_config(TrainConfig, STAGE2, [*base, "model.text_dim=16"]))


def test_trainer_sets_the_alignment_warmup_each_step(latents, tmp_path):
    trainer = build_trainer(_latent_cfg(latents, tmp_path, 3, "model.alignment.warmup_steps=4"))
    trainer.train()
    progress = [float(m.progress) for m in trainer.model.modules() if type(m).__name__ == "ProgressiveAlignment"]
    assert progress == [0.5]  # the third step (step index 2) ran at 2 / 4


def test_frozen_t2v_import_cannot_learn_a_first_frame_reference(tmp_path):
    pytest.importorskip("diffusers")
    from model.tiny import tiny_diffusers_wan
    from train.trainer import check_config

    wan = tiny_diffusers_wan()
    wan.register_to_config(in_channels=16, out_channels=16)  # a Wan2.1 T2V-shaped config (16 latent channels)
    (tmp_path / "wan").mkdir()
    (tmp_path / "wan" / "config.json").write_text(json.dumps(dict(wan.config)))
    from train.model_init import dit_config

    cfg = load_config(TrainConfig, STAGE1, [f"data.shards={tmp_path}", "model.flavor=''", f"model.init_from={tmp_path / 'wan'}",
                                            "stage.reference=first_frame", "stage.trainable=audio", "data.kind=latents"])
    with pytest.raises(ValueError, match="never trained with a clean first-frame latent.*stage.trainable=full"):
        check_config(cfg, dit_config(cfg.model))
    check_config(load_config(TrainConfig, STAGE1, [f"data.shards={tmp_path}", "model.flavor=''", f"model.init_from={tmp_path / 'wan'}",
                                                   "stage.reference=first_frame", "stage.trainable=full", "data.kind=latents"]),
                 dit_config(cfg.model))
