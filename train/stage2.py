"""`Stage2Trainer`: phase captions with PACA, mixed with stage-1-style samples (`data.phase_prob`),
separate learning rates for the audio modules, the text path and the rest, optional audio freezing.
Initialise it from a stage-1 export with `model.init_from=OUT1/ema` (or OUT1/final)."""

from __future__ import annotations

import torch
from torch import nn

from train.conditioning import ModelInputs
from train.ema import clean_name
from train.objective import flow_loss
from train.optim import ParamGroup
from train.trainer import Stage1Trainer

# the text path PACA changes: cross-attention, its norm, and the text projection
TEXT_MARKERS = (".cross_attn.", ".norm2.")
TEXT_PREFIXES = ("text_embed.",)


class Stage2Trainer(Stage1Trainer):
    """Stage 2; the loop is Stage1Trainer's. See `StageConfig` for the options used here."""

    def group_of(self, name: str) -> str:
        name = clean_name(name)
        if name.startswith(self.audio_prefixes):
            return "audio"
        if name.startswith(TEXT_PREFIXES) or any(m in name for m in TEXT_MARKERS):
            return "text"
        return "other"

    def group_lr(self, group: str) -> float:
        stage, base = self.config.stage, self.config.optim.lr
        if group == "audio" and stage.freeze_audio:
            return 0.0
        lr = {"audio": stage.audio_lr, "text": stage.text_lr, "other": stage.other_lr}[group]
        return base if lr is None else lr

    def configure_trainable(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            p.requires_grad_(self.group_lr(self.group_of(name)) > 0)

    def param_groups(self) -> list[ParamGroup]:
        groups: dict[str, list[nn.Parameter]] = {"audio": [], "text": [], "other": []}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                groups[self.group_of(name.removeprefix("module."))].append(p)
        return [ParamGroup(g, tuple(ps), self.group_lr(g)) for g, ps in groups.items()]

    def compute_loss(self, pred, target, inputs: ModelInputs, weight, frame_mask) -> tuple[torch.Tensor, dict[str, float]]:
        """The same flow loss; also reports it separately for phase and base-only samples
        (lip sync and text following must survive the mixture)."""
        loss = flow_loss(pred, target, weight, frame_mask)
        with torch.no_grad():
            uses_phases = inputs.frame_phases[:, :, 1:].flatten(1).any(dim=1)  # (B,)
            extras: dict[str, float] = {"phase_fraction": float(uses_phases.float().mean())}
            for key, rows in (("loss_phase", uses_phases), ("loss_base", ~uses_phases)):
                if bool(rows.any()):
                    m = None if frame_mask is None else frame_mask[rows]
                    w = None if weight is None else weight[rows]
                    extras[key] = float(flow_loss(pred[rows], target[rows], w, m))
        return loss, extras
