"""Loaders (train/pretrained.py) on the tiny folders written by `actavatar models tiny`, offline."""

import dataclasses

import pytest
import torch

pytest.importorskip("diffusers")

from model.alignment import AlignmentConfig  # noqa: E402
from model.audio_attention import AudioAttentionConfig  # noqa: E402
from model.registry import FLAVORS, build_model  # noqa: E402
from train.pretrained import (  # noqa: E402
    dit_config_from_dict,
    dit_config_to_dict,
    import_wan,
    load_audio_encoder,
    load_dit,
    load_text_encoder,
    load_vae,
    save_dit,
)


def test_dit_config_round_trip():
    cfg = dataclasses.replace(
        FLAVORS["debug"](), audio=AudioAttentionConfig(audio_dim=32, layers=(1,)), alignment=AlignmentConfig(schedule="cosine")
    )
    assert dit_config_from_dict(dit_config_to_dict(cfg)) == cfg
    with pytest.raises(TypeError):
        dit_config_from_dict({**dit_config_to_dict(cfg), "bogus": 1})


def test_save_and_load_dit(tmp_path):
    model = build_model(dataclasses.replace(FLAVORS["debug"](), alignment=AlignmentConfig(schedule="learned")))
    save_dit(model, tmp_path / "dit")
    loaded = load_dit(tmp_path / "dit")
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(FileNotFoundError):
        load_dit(tmp_path / "nothing")


def test_import_wan_from_diffusers_folder_matches_module(tiny_dir):
    from diffusers import WanTransformer3DModel

    ref = WanTransformer3DModel.from_pretrained(tiny_dir / "wan_dit").eval()
    ours = import_wan(
        tiny_dir / "wan_dit", local_files_only=True, alignment=AlignmentConfig(schedule="constant", text_start=1.0)
    ).eval()
    x, t, text = torch.randn(1, 4, 2, 4, 4), torch.tensor([500.0]), torch.randn(1, 6, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, t, text), ref(x, t, text, return_dict=False)[0], atol=1e-5, rtol=1e-5)
    # a pipeline-style folder (transformer/ inside) works too
    pipe = tiny_dir.parent / "pipe"
    (pipe / "transformer").mkdir(parents=True, exist_ok=True)
    ref.save_pretrained(pipe / "transformer")
    assert import_wan(pipe, local_files_only=True).config.dim == 64


def test_encoder_loaders_offline(tiny_dir):
    text = load_text_encoder(tiny_dir / "umt5", local_files_only=True, max_length=64)
    assert text.encode(["hello"])[0].shape[-1] == 32
    vae = load_vae(tiny_dir / "vae", local_files_only=True)
    assert vae.latent_channels == 4
    audio = load_audio_encoder(tiny_dir / "wav2vec2", local_files_only=True)
    assert audio(torch.randn(1, 8000)).shape == (1, 24, 32)
    assert load_dit(tiny_dir / "dit").config == FLAVORS["debug"]()
