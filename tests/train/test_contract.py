"""conditioning.json: written beside every export, read back exactly, strict about its format."""

import json

import pytest

from dataset.config_loader import load_config
from model.resize import PREPROCESSING
from tests.train.conftest import fast_overrides
from train.config import TrainConfig
from train.contract import CONDITIONING_FILE, ConditioningContract, read_contract
from train.trainer import build_trainer


def test_exports_carry_the_conditioning_contract(latents, tiny_encoders, tmp_path):
    cfg = load_config(TrainConfig, "configs/train/stage1_debug.yaml", [
        f"data.shards={latents}", "data.kind=latents", *fast_overrides(tmp_path, 1), "data.phase_routing=global",
        "guidance.text_drop=0.2", "guidance.audio_drop=0.05", "guidance.both_drop=0", "encoders.max_base_tokens=20",
        "data.buckets=[9x32x32]"])
    trainer = build_trainer(cfg)
    trainer.train()
    for name in ("final", "ema"):
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["conditioning.json", "config.json", "model.safetensors"]
        data = json.loads((tmp_path / name / CONDITIONING_FILE).read_text())
        assert read_contract(tmp_path / name) == trainer.contract
    assert data == {
        "version": 1,
        # latent shards: no encoders in the config, the sources `actavatar encode` recorded
        "text_encoder": f"{tiny_encoders}/umt5", "text_dim": 32, "text_len": 64, "max_base_tokens": 20, "max_phase_tokens": 8,
        "phase_routing": "global", "vae": f"{tiny_encoders}/vae", "vae_z_dim": 4, "vae_stride": [4, 8, 8],
        "audio_encoder": f"{tiny_encoders}/wav2vec2", "audio_dim": 32, "audio_feature_hz": 50.0, "audio_context_s": 0.04,
        "fps": 25.0, "reference": "ti2v", "image_preprocessing": PREPROCESSING,
        "text_drop": 0.2, "audio_drop": 0.05, "both_drop": 0.0, "negative_prompt": "", "audio_uncond": "zeros",
        "buckets": ["9x32x32"], "image_encoder": "",  # only Wan2.1-I2V runs name a CLIP tower
    }


def _contract(**changes) -> dict:
    base = dict(text_encoder="t", text_dim=4, text_len=8, max_base_tokens=4, max_phase_tokens=2, phase_routing="per_frame",
                vae="v", vae_z_dim=4, vae_stride=[4, 8, 8], audio_encoder="a", audio_dim=4, audio_feature_hz=50.0,
                audio_context_s=0.04, fps=25.0, reference="none", image_preprocessing=PREPROCESSING, text_drop=0.1,
                audio_drop=0.1, both_drop=0.1, negative_prompt="", audio_uncond="zeros", buckets=["9x32x32"])
    return {"version": 1, **base, **changes}


def test_round_trip_and_format_errors(tmp_path):
    from train.contract import write_contract

    contract = ConditioningContract.from_dict(_contract())  # a file from before image_encoder existed
    assert contract.vae_stride == (4, 8, 8) and contract.to_dict() == {**_contract(), "image_encoder": ""}
    write_contract(tmp_path, contract)
    assert read_contract(tmp_path) == contract and not list(tmp_path.glob(".*.tmp"))
    assert read_contract(tmp_path / "elsewhere") is None  # no file: an older export or a tiny model
    (tmp_path / CONDITIONING_FILE).write_text(json.dumps(_contract(version=2)))
    with pytest.raises(ValueError, match="conditioning.version 2 is newer"):
        read_contract(tmp_path)
    (tmp_path / CONDITIONING_FILE).write_text(json.dumps({**_contract(), "extra": 1}))
    with pytest.raises(ValueError, match=r"conditioning.json: conditioning: unknown keys \['extra'\]"):
        read_contract(tmp_path)
    with pytest.raises(ValueError, match="conditioning.phase_routing must be one of"):
        ConditioningContract.from_dict(_contract(phase_routing="sideways"))
