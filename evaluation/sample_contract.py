"""Sampling settings from a checkpoint's conditioning.json (`train.contract`): fill what the user left
"from the checkpoint", warn where an explicit setting contradicts training, warn about guidance the
checkpoint was never trained for.

Without a conditioning.json (older exports, `actavatar models tiny`) the unset settings take the
values the trainer has always used by default (`NO_CONTRACT`), and nothing is checked.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluation.sample import SampleConfig
    from train.contract import ConditioningContract

log = logging.getLogger(__name__)

# SampleConfig field -> ConditioningContract field, for the settings None means "from the checkpoint"
FROM_CONTRACT = {
    "max_base_tokens": "max_base_tokens",
    "max_phase_tokens": "max_phase_tokens",
    "audio_context_s": "audio_context_s",
    "negative_prompt": "negative_prompt",
    "phase_routing": "phase_routing",
}
# settings with a concrete default that training also fixed: a different value is worth a warning
CHECKED = {"fps": "fps", "audio_uncond": "audio_uncond"}
NO_CONTRACT: dict[str, Any] = {
    "max_base_tokens": 256, "max_phase_tokens": 32, "audio_context_s": 0.04, "negative_prompt": "", "phase_routing": "per_frame",
}


def source_resolves(source: str) -> bool:
    """A recorded encoder source is usable offline: an existing folder, or a Hugging Face id already
    in the local cache."""
    if not source:
        return False
    if Path(source).exists():
        return True
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        return False  # a path that is gone, not a repo id
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(source, local_files_only=True)
    except (ImportError, OSError, ValueError):  # not cached (LocalEntryNotFoundError), no hub library, bad id
        return False
    return True


def settings_from_contract(cfg: SampleConfig, contract: ConditioningContract | None, where: str) -> SampleConfig:
    """`cfg` with every "from the checkpoint" setting filled; logs a warning per explicit setting
    that differs from what the checkpoint was trained with (`where` names the checkpoint)."""
    changes: dict[str, Any] = {}
    for key, ckey in FROM_CONTRACT.items():
        value = getattr(cfg, key)
        recorded = NO_CONTRACT[key] if contract is None else getattr(contract, ckey)
        if value is None:
            changes[key] = recorded
        elif contract is not None and value != recorded:
            _contradiction(where, key, value, recorded)
    if contract is not None:
        for key, ckey in CHECKED.items():
            if getattr(cfg, key) != getattr(contract, ckey):
                _contradiction(where, key, getattr(cfg, key), getattr(contract, ckey))
        from model.resize import PREPROCESSING

        if contract.image_preprocessing != PREPROCESSING:
            log.warning("%s was trained with image preprocessing %r, this toolkit prepares the reference with %r",
                        where, contract.image_preprocessing, PREPROCESSING)
        if cfg.reference == "auto":
            changes["reference"] = contract.reference
        elif cfg.reference != contract.reference:
            _contradiction(where, "reference", cfg.reference, contract.reference)
    return dataclasses.replace(cfg, **changes)


def _contradiction(where: str, key: str, value: Any, recorded: Any) -> None:
    log.warning("sample.%s=%r differs from %r that %s was trained with (conditioning.json)", key, value, recorded, where)


def warn_untrained_guidance(cfg: SampleConfig, contract: ConditioningContract | None, where: str) -> None:
    """Guidance needs branches the checkpoint learned in training: v(T) (text, no audio) from audio
    dropout and v(∅) (negative prompt, no audio) from dropping both. Unknown without a contract."""
    if contract is None:
        return
    s = cfg.sampler
    text_on = s.text.scale != 1.0 and s.text.start < s.text.end
    audio_on = s.audio.scale != 1.0 and s.audio.start < s.audio.end
    if text_on and contract.both_drop == 0:
        log.warning("%s was trained without dropping text and audio together (guidance.both_drop=0): its unconditional "
                    "branch is untrained, yet sampler.text.scale=%g; sample with scale 1 or train with guidance dropout",
                    where, s.text.scale)
    if (text_on or audio_on) and contract.audio_drop == 0:
        log.warning("%s was trained without audio dropout (guidance.audio_drop=0): its text-only branch is untrained, yet "
                    "sampler.text.scale=%g / sampler.audio.scale=%g; sample with scales 1 or train with guidance dropout",
                    where, s.text.scale, s.audio.scale)
