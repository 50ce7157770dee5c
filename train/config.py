"""`TrainConfig`: the trainer's root config, nesting each component's own config, plus the stage options.

Sections: stage, model (architecture, `train.model_init`), encoders, guidance (condition dropout),
lora (LoRA adapters, `train.lora`), data, flow, optim, ema, parallel, checkpoint, log.

    cfg = load_config(TrainConfig, "configs/train/stage1_debug.yaml", ["optim.lr=1e-4"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dataset.errors import UserError
from train.buckets import parse_buckets
from train.checkpoint import CheckpointConfig
from train.conditioning import EncodersConfig
from train.data import DataConfig
from train.ema import EMAConfig
from train.guidance_dropout import GuidanceDropoutConfig
from train.lora import LoraConfig
from train.metrics import LogConfig
from train.model_init import ModelConfig
from train.objective import FlowConfig
from train.optim import OptimConfig
from train.parallelize import ParallelConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class StageConfig:
    """What a stage trains. The trainer class is chosen by `name`; the options below feed its
    freezing and parameter-group methods (see `train.trainer` and `train.stage2`).

    Args:
        name: "stage1" (audio-visual, base captions) or "stage2" (phase captions with PACA).
        trainable: stage 1: "audio" (audio attention, projector, alignment weights) or "full" (whole DiT).
        reference: "first_frame" keeps latent frame 0 clean (timestep 0, no loss; Wan2.2 TI2V-style
            identity conditioning), "i2v" (Wan2.1 I2V: [noisy | mask | latents of [first frame, zeros…]]
            input channels and the first frame's CLIP tokens), "none", or "auto" = what the
            architecture was trained with (i2v when in_channels = 2z + stride, first_frame for
            Wan2.2's 48-channel latents, else none); see `train.trainer.resolve_reference`.
        freeze_audio: stage 2: keep the audio modules frozen.
        audio_lr / text_lr / other_lr: stage 2 learning rates of the audio modules, the text path
            (PACA cross-attention, text projection) and the rest; None = optim.lr, 0 = frozen.
    """

    name: Literal["stage1", "stage2"] = "stage1"
    trainable: Literal["audio", "full"] = "audio"
    reference: Literal["auto", "none", "first_frame", "i2v"] = "auto"
    freeze_audio: bool = False
    audio_lr: float | None = None
    text_lr: float | None = None
    other_lr: float | None = None

    def __post_init__(self) -> None:
        if self.name not in ("stage1", "stage2"):
            raise UserError(f"stage.name must be 'stage1' or 'stage2', got {self.name!r}")
        if self.trainable not in ("audio", "full"):
            raise UserError(f"stage.trainable must be 'audio' or 'full', got {self.trainable!r}")
        if self.reference not in ("auto", "none", "first_frame", "i2v"):
            raise UserError(f"stage.reference must be 'auto', 'none', 'first_frame' or 'i2v', got {self.reference!r}")
        for key in ("audio_lr", "text_lr", "other_lr"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise UserError(f"stage.{key} must be >= 0 or null, got {value}")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig:
    """Root config of `actavatar train`.

    Args:
        output_dir: run folder (checkpoints/, final/, ema/, metrics.jsonl, tensorboard/).
        steps: optimiser steps in total (a resumed run continues up to this).
        seed: model init and noise seed.
        use_gpu: train on CUDA when present.
        guidance: condition dropout for classifier-free guidance (see `train.guidance_dropout`).
        lora: LoRA adapters on the DiT's attention and FFN projections (see `train.lora`; rank 0 = off).
    """

    output_dir: str = "runs/train"
    steps: int = 100
    seed: int = 0
    use_gpu: bool = False
    stage: StageConfig = field(default_factory=StageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encoders: EncodersConfig = field(default_factory=EncodersConfig)
    guidance: GuidanceDropoutConfig = field(default_factory=GuidanceDropoutConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(shards="-"))
    flow: FlowConfig = field(default_factory=FlowConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UserError(f"steps must be >= 1, got {self.steps}")
        if not self.output_dir:
            raise UserError("output_dir must be a folder path, got ''")
        if self.data.shards == "-":
            raise UserError("data.shards must name a corpus folder, shard files or a URL pattern")
        parse_buckets(self.data.buckets)
        if self.stage.name == "stage1" and (self.stage.audio_lr, self.stage.text_lr, self.stage.other_lr) != (None, None, None):
            raise UserError("stage.audio_lr / text_lr / other_lr are stage-2 options; stage 1 uses optim.lr")
        if self.lora.enabled and self.stage.name == "stage1" and self.stage.trainable == "audio":
            raise UserError("lora.rank > 0 with stage.trainable=audio trains no adapter (only the audio modules train): "
                            "set stage.trainable=full to train adapters with the audio modules, or lora.rank=0")
