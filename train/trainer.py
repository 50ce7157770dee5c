"""`Stage1Trainer`: rectified-flow training of the PACA DiT on bucketed clip windows.

    trainer = build_trainer(load_config(TrainConfig, "configs/train/stage1_debug.yaml"))
    trainer.train()

Stage 1 learns audio-visual correspondence from base captions (by default only the audio
modules train). `train.stage2.Stage2Trainer` overrides the freezing, the parameter groups and
the loss; nothing else branches on the stage. Every step applies guidance dropout (`guidance.*`);
the exports carry conditioning.json (`train.contract`) so sampling builds the inputs training saw.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dataset.errors import UserError
from dataset.reader import list_shards
from model.alignment import ProgressiveAlignment
from model.dit import DiTConfig, zero_init_prefixes
from model.registry import build_model
from model.reference import i2v_input, ti2v_inject, ti2v_timesteps
from train.buckets import parse_buckets
from train.checkpoint import Checkpointer, check_shared_output, ema_full_state, export_dit, full_state_dict, step_dir_name
from train.conditioning import Conditioner, ModelInputs
from train.config import TrainConfig
from train.contract import ConditioningContract, training_contract
from train.data import ClipStream, build_loader, check_shards, first_window
from train.ema import EMA, clean_name
from train.guidance_dropout import draw_drops
from train.lora import adapters_from_state, add_lora, freeze_outside_lora, merge_lora_state, save_diffusers_lora
from train.metrics import MetricLogger, memory_gb
from train.model_init import build_dit, dit_config, is_diffusers_import
from train.objective import (
    add_noise,
    flow_loss,
    lip_region,
    lip_tracing_weight,
    motion_weight,
    region_weight,
    sample_sigmas,
    timesteps_from_sigmas,
    velocity_target,
)
from train.optim import ParamGroup, build_optimizer, build_scheduler
from train.parallelize import autocast, default_device, init_distributed, parallelize, use_fsdp

log = logging.getLogger(__name__)

Reporter = Callable[[dict[str, Any]], None]


def native_reference(arch: DiTConfig) -> str:
    """The reference conditioning an architecture was built for: Wan2.1 I2V's input holds
    [noisy | mask (stride channels) | condition latents]; Wan2.2 (48-channel latents, TI2V-5B) keeps
    the first latent frame clean; Wan2.1 T2V has none."""
    z, stride = arch.out_channels, arch.vae_stride[0]
    if arch.in_channels == 2 * z + stride:
        return "i2v"
    return "first_frame" if z == 48 and arch.in_channels == z else "none"


def resolve_reference(cfg: TrainConfig, arch: DiTConfig) -> str:
    """`stage.reference`, with "auto" = the architecture's own (`native_reference`). An I2V model
    cannot train without its condition channels, nor another model with them (an error); a pretrained
    base forced to another mode gets a warning naming both."""
    native, asked = native_reference(arch), cfg.stage.reference
    if asked == "auto":
        return native
    if (asked == "i2v") != (native == "i2v"):
        raise UserError(f"stage.reference={asked!r} does not fit the model: in_channels={arch.in_channels} with "
                         f"{arch.out_channels}-channel latents is {'Wan2.1 I2V (i2v)' if native == 'i2v' else 'not an I2V input'}; "
                         "use stage.reference=auto")
    if asked != native and cfg.model.init_from:
        log.warning("stage.reference=%s, but %s was trained with %s (stage.reference=auto uses that)", asked,
                    cfg.model.init_from, native)
    return asked


def check_config(cfg: TrainConfig, arch: DiTConfig) -> None:
    """Fail at start on settings the model cannot train with (named key and value)."""
    spatial = arch.vae_stride[1] * arch.patch_size[1]
    for bucket in parse_buckets(cfg.data.buckets):
        bucket.check(arch.vae_stride[0], spatial)
    if arch.audio is None:
        raise UserError(f"model {cfg.model.origin!r} has no audio branch (model.audio is null)")
    budget = cfg.encoders.max_base_tokens + (cfg.data.max_phases * cfg.encoders.max_phase_tokens if cfg.data.phase_prob > 0 else 0)
    if budget > arch.text_len:
        raise UserError(
            f"encoders.max_base_tokens + data.max_phases * encoders.max_phase_tokens = {budget} exceeds the model's "
            f"text_len {arch.text_len}"
        )
    if cfg.stage.reference == "first_frame" and arch.in_channels != arch.out_channels:
        raise UserError(f"stage.reference='first_frame' needs in_channels == out_channels, got {arch.in_channels} != {arch.out_channels}")
    if (cfg.stage.reference == "first_frame" and cfg.stage.name == "stage1" and cfg.stage.trainable == "audio"
            and is_diffusers_import(cfg.model) and arch.out_channels == 16):
        raise UserError(
            f"model.init_from={cfg.model.init_from!r} is a Wan2.1 text-to-video backbone, never trained with a clean first-frame "
            "latent, and stage.trainable='audio' keeps it frozen, so it cannot learn stage.reference='first_frame': "
            "set stage.trainable=full, or stage.reference=none")
    if cfg.data.kind == "media":
        check_encoder_widths(cfg.encoders, arch)


def check_encoder_widths(encoders: Any, arch: DiTConfig) -> None:
    """Encoder feature widths against the DiT, from the encoders' config files (before anything loads)."""
    from train.pretrained import encoder_widths, image_encoder_width

    widths = encoder_widths(encoders.text, encoders.audio, local_files_only=encoders.local_files_only)
    if "text" in widths and widths["text"] != arch.text_dim:
        raise UserError(f"encoders.text={encoders.text!r} gives {widths['text']}-d features; the model's text_dim is {arch.text_dim}")
    if "audio" in widths and arch.audio is not None and widths["audio"] != arch.audio.audio_dim:
        raise UserError(f"encoders.audio={encoders.audio!r} gives {widths['audio']}-d features; the model's audio.audio_dim is "
                         f"{arch.audio.audio_dim} (set model.audio.audio_dim={widths['audio']} for a new audio branch)")
    if arch.image_dim is not None:
        if not encoders.image:
            raise UserError(f"the model takes {arch.image_dim}-d CLIP image tokens (Wan2.1 I2V): set encoders.image to a CLIP "
                             "vision folder or a Wan2.1-I2V pipeline")
        width = image_encoder_width(encoders.image, local_files_only=encoders.local_files_only)
        if width != arch.image_dim:
            raise UserError(f"encoders.image={encoders.image!r} gives {width}-d tokens; the model's image_dim is {arch.image_dim}")


def check_latent_window(cfg: TrainConfig, window: dict[str, Any] | None) -> None:
    """Latent shards must carry the negative prompt text dropout trains with (checked on the first
    sample at start; every batch is checked again in `Conditioner`), and the I2V inputs an I2V run needs."""
    if window is None:
        return
    if cfg.stage.reference == "i2v" and not window.get("i2v"):
        raise UserError("data.shards: these latent shards hold no I2V condition latents / CLIP tokens (encoded for another "
                         "model); re-run `actavatar encode` with this training config (Wan2.1-I2V model, encoders.image)")
    if not cfg.guidance.drops_text:
        return
    if "negative_prompt" not in window:
        raise UserError("data.shards: these latent shards hold no negative prompt features (written by an older "
                         "`actavatar encode`); re-encode them, or train without text dropout: guidance.text_drop=0 guidance.both_drop=0")
    if window["negative_prompt"] != cfg.guidance.negative_prompt:
        raise UserError(f"data.shards: latent shards were encoded with negative prompt {window['negative_prompt']!r}, "
                         f"guidance.negative_prompt is {cfg.guidance.negative_prompt!r}: set guidance.negative_prompt to the "
                         "shards' value or re-run `actavatar encode` with it")


def audio_prefixes(arch: DiTConfig) -> tuple[str, ...]:
    """State-dict prefixes of the audio modules (ActAvatar's additions to Wan)."""
    blocks = range(arch.num_layers) if arch.audio.layers is None else arch.audio.layers
    return ("alignment.", "audio_proj.", *(f"blocks.{i}.audio_attn." for i in blocks))


class Stage1Trainer:
    """Trains `config.model` on `config.data`; see the module docstring.

    Args:
        config: the run's root config.
        device: where to train (default: CUDA when `use_gpu` and present, else CPU).
        reporter: called on every rank with the metrics at each log step (Ray Train's `report`).
    """

    def __init__(self, config: TrainConfig, *, device: torch.device | None = None, reporter: Reporter | None = None) -> None:
        self.config = config
        self.device = device or default_device(config.use_gpu, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(self.device)
        self.reporter = reporter
        self.out = Path(config.output_dir)
        check_shared_output(self.out, self.dist.rank, self.dist.world_size)  # before anything loads
        self.arch = dit_config(config.model)
        # stage.reference=auto -> the architecture's own mode; everything below sees the resolved value
        config = self.config = dataclasses.replace(config, stage=dataclasses.replace(config.stage, reference=resolve_reference(config, self.arch)))
        check_config(config, self.arch)
        # shards are checked before any model loads: a wrong path fails in seconds
        shards = list_shards(config.data.shards)
        check_shards(shards, self.dist.world_size * max(config.data.num_workers, 1))
        window = first_window(shards) if config.data.kind == "latents" else None
        check_latent_window(config, window)
        # stage 1 with trainable=audio trains ActAvatar's audio additions and the optional branches
        # (motion, pose): they start at zero, so nothing else would move them
        self.audio_prefixes = audio_prefixes(self.arch) + zero_init_prefixes(self.arch)
        self.sharded = use_fsdp(config.parallel, self.dist.world_size)
        full_state = None
        if self.sharded:  # meta-device build; rank 0 alone reads (or initialises) the full weights
            full_state = self.with_lora(build_dit(config.model, config.seed)).state_dict() if self.dist.is_main else {}
            dit = self.with_lora(build_model(self.arch, device="meta"))
        else:
            dit = self.with_lora(build_dit(config.model, config.seed))
        self.configure_trainable(dit)
        if config.lora.enabled:  # adapters + the new ActAvatar parts train; the base weights stay frozen
            freeze_outside_lora(dit, dit.new_parameter_prefixes())
        self.model = parallelize(dit, config.parallel, self.device, self.dist.world_size, full_state)
        self.alignments = [m for m in self.model.modules() if isinstance(m, ProgressiveAlignment)]
        self.conditioner = Conditioner(
            config.encoders, text_len=self.arch.text_len, vae_stride=self.arch.vae_stride, device=self.device,
            need_media_encoders=config.data.kind == "media", phase_routing=config.data.phase_routing,
            negative_prompt=config.guidance.negative_prompt, i2v=config.stage.reference == "i2v",
            image_tokens=self.arch.image_dim is not None, motion=self.arch.motion is not None,
            pose=self.arch.pose is not None, refocus=self.arch.refocus is not None,
            face_identity=self.arch.face_identity is not None,
        )
        self.contract = self.conditioning_contract(window)
        self.optimizer = build_optimizer(self.param_groups(), config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.optim, config.steps)
        self.ema = EMA(self.model, config.ema) if config.ema.decay > 0 else None
        self.step = 0
        self.batches = 0  # batches this rank consumed (the data position)
        self.noise_rng = torch.Generator().manual_seed(config.seed * 100_003 + self.dist.rank)
        self.checkpointer = Checkpointer(self.out / "checkpoints", config.checkpoint, is_main=self.dist.is_main)

    def with_lora(self, model: nn.Module) -> nn.Module:
        """`model` with peft LoRA adapters on `lora.targets` when `lora.rank` > 0 (B = 0: output unchanged)."""
        if self.config.lora.enabled:
            add_lora(model, self.config.lora)
        return model

    # -- stage hooks (Stage2Trainer overrides these three) ----------------------------------

    def configure_trainable(self, model: nn.Module) -> None:
        """Stage 1: only the audio modules (and the optional motion / pose branches) train, or the whole DiT with stage.trainable='full'."""
        full = self.config.stage.trainable == "full"
        for name, p in model.named_parameters():
            p.requires_grad_(full or name.startswith(self.audio_prefixes))

    def param_groups(self) -> list[ParamGroup]:
        params = tuple(p for p in self.model.parameters() if p.requires_grad)
        return [ParamGroup("trainable", params, self.config.optim.lr)]

    def compute_loss(
        self, pred: torch.Tensor, target: torch.Tensor, inputs: ModelInputs, weight: torch.Tensor | None, frame_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return flow_loss(pred, target, weight, frame_mask), {}

    def conditioning_contract(self, window: dict[str, Any] | None) -> ConditioningContract:
        """What the exports record in conditioning.json (latent shards name the encoders they used)."""
        window = window or {}
        feature_hz = self.conditioner.feature_hz if self.conditioner.audio is not None else window.get("feature_hz", 50.0)
        return training_contract(self.config, self.arch, feature_hz=feature_hz, sources=window.get("encoders"))

    # -- one step --------------------------------------------------------------------------

    def drop_conditions(self, inputs: ModelInputs) -> ModelInputs:
        """Guidance dropout (`guidance.*`): one uniform draw per sample from the seeded noise generator,
        so an exact resume replays the same drops; off = no draw (the noise stream is unchanged)."""
        guidance = self.config.guidance
        if inputs.motion is not None and guidance.motion_drop > 0:  # models without model.motion draw nothing here
            inputs = inputs.with_motion_dropped(torch.rand(inputs.latents.shape[0], generator=self.noise_rng) < guidance.motion_drop)
        if inputs.pose is not None and guidance.pose_drop > 0:  # models without model.pose draw nothing here
            inputs = inputs.with_pose_dropped(torch.rand(inputs.latents.shape[0], generator=self.noise_rng) < guidance.pose_drop)
        if not guidance.enabled:
            return inputs
        drop_text, drop_audio = draw_drops(guidance, inputs.latents.shape[0], self.noise_rng)
        return inputs.with_dropped(drop_text.to(self.device), drop_audio.to(self.device))

    def forward_backward_step(self, inputs: ModelInputs) -> tuple[torch.Tensor, dict[str, float]]:
        """Noise the latents, predict the velocity, backpropagate the loss; returns (loss, extras)."""
        cfg, x0 = self.config, inputs.latents
        sigma = sample_sigmas(x0.shape[0], cfg.flow, self.noise_rng)
        noise = torch.randn(x0.shape, generator=self.noise_rng).to(self.device)
        x_t = add_noise(x0, noise, sigma.to(self.device))
        target = velocity_target(x0, noise)
        timestep = timesteps_from_sigmas(sigma).to(self.device)
        frame_mask = None
        if cfg.stage.reference == "first_frame":
            # the clean first latent frame is the identity reference: timestep 0, no loss
            x_t = ti2v_inject(x_t, x0[:, :, :1])
            timestep = ti2v_timesteps(timestep, tuple(x0.shape[2:]), self.arch.patch_size)
            frame_mask = torch.ones(x0.shape[0], x0.shape[2], dtype=torch.bool, device=self.device)
            frame_mask[:, 0] = False
        weight = None
        if cfg.flow.lip_weight > 1:
            if cfg.flow.lip_tracing and inputs.keypoints is not None:  # the box follows the mouth per frame
                weight = lip_tracing_weight(inputs.keypoints, inputs.face_box, cfg.flow.lip_box, tuple(x0.shape[2:]),
                                            self.arch.vae_stride[0], cfg.flow.lip_weight).to(self.device)
            else:
                boxes = lip_region(inputs.face_box, cfg.flow.lip_box)
                weight = region_weight(boxes, tuple(x0.shape[3:]), cfg.flow.lip_weight).to(self.device)
        if cfg.flow.motion_weight > 0:
            moving = motion_weight(x0, cfg.flow.motion_weight)
            weight = moving if weight is None else weight * moving
        if inputs.condition is not None:  # Wan2.1 I2V: [noisy | mask | condition latents] on channels
            x_t = i2v_input(x_t, inputs.condition)
        with autocast(self.device, cfg.parallel, self.sharded):
            pred = self.model(x_t, timestep, inputs.tokens, **inputs.dit_kwargs())
        loss, extras = self.compute_loss(pred, target, inputs, weight, frame_mask)
        loss.backward()
        return loss.detach(), extras

    def train_step(self, batch: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        inputs = self.drop_conditions(self.conditioner(batch))
        for alignment in self.alignments:  # warm-up from neutral (model.alignment.warmup_steps)
            alignment.set_step(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss, extras = self.forward_backward_step(inputs)
        grad_norm = self._clip_gradients()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        self.step += 1
        self.batches += 1
        elapsed = time.perf_counter() - start
        world = self.dist.world_size
        b, _, f, h, w = inputs.latents.shape
        tokens = b * (f // self.arch.patch_size[0]) * (h // self.arch.patch_size[1]) * (w // self.arch.patch_size[2])
        return {
            "loss": self._mean_across_ranks(loss),
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": grad_norm,
            "samples_per_s": b * world / elapsed,
            "tokens_per_s": tokens * world / elapsed,
            "step_time_s": elapsed,
            "memory_gb": memory_gb(self.device),
            **extras,
        }

    def _clip_gradients(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        clip = self.config.optim.grad_clip or float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=False)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def _mean_across_ranks(self, value: torch.Tensor) -> float:
        if self.dist.world_size > 1:
            value = value.clone().float()
            dist.all_reduce(value)
            value /= self.dist.world_size
        return float(value)

    # -- the loop --------------------------------------------------------------------------

    def batches_from(self, start_batch: int) -> Iterator[dict[str, Any]]:
        stream = ClipStream(
            self.config.data, parse_buckets(self.config.data.buckets), rank=self.dist.rank,
            world_size=self.dist.world_size, start_batch=start_batch,
        )
        return iter(build_loader(stream, self.config.data, pin_memory=self.device.type == "cuda"))

    def maybe_resume(self) -> bool:
        path = self.checkpointer.latest() if self.config.checkpoint.resume else None
        if path is None:
            return False
        state = self.state_dict()
        self.checkpointer.load(state, path)
        self.load_state_dict(state)
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def train(self, stop_at: int | None = None) -> dict[str, Any]:
        """Run up to `config.steps` (resuming from the latest checkpoint); returns the last metrics.

        `stop_at` ends the run early at that step with a checkpoint (the schedule still spans
        `config.steps`), as an interruption would.
        """
        cfg = self.config
        last = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        self.maybe_resume()
        logger = MetricLogger(self.out, cfg.log, total_steps=cfg.steps, start_step=self.step, enabled=self.dist.is_main)
        metrics: dict[str, Any] = {}
        try:
            batches = self.batches_from(self.batches)
            saved_at = self.step
            while self.step < last:
                metrics = self.train_step(next(batches))
                logger.advance()
                if self.step % cfg.log.every == 0 or self.step == cfg.steps:
                    logger.log(self.step, metrics)
                    if self.reporter is not None:  # every rank, same steps
                        self.reporter({"step": self.step, **metrics})
                if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0:
                    self.checkpointer.save(self.state_dict(), self.step)
                    saved_at = self.step
                if cfg.checkpoint.snapshot_every and self.step % cfg.checkpoint.snapshot_every == 0:
                    self.export_snapshot()
            if saved_at != self.step:
                self.checkpointer.save(self.state_dict(), self.step)
            if cfg.checkpoint.export_final and self.step == cfg.steps:
                self.export()
        finally:
            logger.close()
        return metrics

    def export(self) -> None:
        """OUT/final (and OUT/ema) as `save_dit` folders with conditioning.json (collective under FSDP);
        with LoRA the weights are merged and OUT/<name>/lora/ holds the adapters (diffusers format)."""
        state = full_state_dict(self.model)
        state = {clean_name(k.removeprefix("module.")): v for k, v in state.items()}
        self._export_state(state, self.out / "final")
        if self.ema is not None:
            self._export_state(ema_full_state(state, self.ema.shadow, is_main=self.dist.is_main), self.out / "ema")

    def export_snapshot(self) -> None:
        """OUT/snapshots/step-N: the weights sampling would use now (EMA when on), for learning curves."""
        state = full_state_dict(self.model)
        state = {clean_name(k.removeprefix("module.")): v for k, v in state.items()}
        if self.ema is not None:
            state = ema_full_state(state, self.ema.shadow, is_main=self.dist.is_main)
        self._export_state(state, self.out / "snapshots" / step_dir_name(self.step))

    def _export_state(self, state: dict[str, torch.Tensor], target: Path) -> None:
        lora = self.config.lora
        if lora.enabled and self.dist.is_main:
            save_diffusers_lora(target / "lora", adapters_from_state(state), scale=lora.scale)
            state = merge_lora_state(state, lora.scale)
        export_dit(self.arch, state, target, is_main=self.dist.is_main, contract=self.contract)

    # -- resumable state -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as a DCP-savable (sharded) dict."""
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        rank_state = {
            "batches": self.batches,
            "noise_rng": self.noise_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
        }
        if self.device.type == "cuda":
            rank_state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": model_sd,
            "optim": optim_sd,
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "scheduler": self.scheduler.state_dict(),
            "progress": {"step": self.step, "world_size": self.dist.world_size},
            f"rank{self.dist.rank}": rank_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_state_dict

        saved_world = int(state["progress"]["world_size"])
        if saved_world != self.dist.world_size:
            raise UserError(f"checkpoint was written by {saved_world} ranks; exact resume needs the same, got {self.dist.world_size}")
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["progress"]["step"])
        mine = state[f"rank{self.dist.rank}"]
        self.batches = int(mine["batches"])
        self.noise_rng.set_state(mine["noise_rng"])
        torch.set_rng_state(mine["torch_rng"])
        random.setstate(mine["python_rng"])
        np.random.set_state(mine["numpy_rng"])
        if "cuda_rng" in mine:
            torch.cuda.set_rng_state(mine["cuda_rng"], self.device)


def build_trainer(config: TrainConfig, *, device: torch.device | None = None, reporter: Reporter | None = None) -> Stage1Trainer:
    """The trainer class for `config.stage.name`."""
    from train.stage2 import Stage2Trainer

    trainers: dict[str, type[Stage1Trainer]] = {"stage1": Stage1Trainer, "stage2": Stage2Trainer}
    return trainers[config.stage.name](config, device=device, reporter=reporter)
