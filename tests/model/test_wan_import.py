"""Equivalence with diffusers' WanTransformer3DModel (T2V, Wan2.1 I2V image tokens, Wan2.2 per-token t)."""

import dataclasses

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from model.registry import plain_wan_config  # noqa: E402
from model.wan_import import (  # noqa: E402
    config_from_diffusers,
    convert_diffusers_state_dict,
    diffusers_config,
    import_diffusers_wan,
)

TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=32,
    ffn_dim=32,
    num_layers=2,
    rope_max_seq_len=32,
)


def _reference(**overrides):
    torch.manual_seed(0)
    ref = diffusers.WanTransformer3DModel(**{**TINY, **overrides}).eval()
    with torch.no_grad():  # random everything (norm weights, zero-init heads included)
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return ref


def _compare(ref, ours, x, t, text, image=None):
    with torch.no_grad():
        expected = ref(x, t, text, encoder_hidden_states_image=image, return_dict=False)[0]
        got = ours(x, t, text, image=image)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_t2v_import_is_exactly_wan_with_no_override():
    ref = _reference()
    ours = import_diffusers_wan(ref)  # no override: neutral alignment, padding visible, audio branch silent
    assert ours.config.phase.pad_visible and ours.config.alignment.schedule == "constant"
    assert any(b.audio_attn is not None for b in ours.blocks)
    x, t, text = torch.randn(2, 4, 3, 4, 6), torch.tensor([10.0, 700.0]), torch.randn(2, 9, 16)
    _compare(ref, ours, x, t, text)
    # the audio branch exists but is silent at import, even when audio is given
    from model.audio_windows import batch_audio_windows

    index, mask = batch_audio_windows(3, [25.0, 25.0], [20, 20])
    with torch.no_grad():
        with_audio = ours(x, t, text, audio=torch.randn(2, 20, 768), audio_index=index, audio_mask=mask)
        expected = ref(x, t, text, return_dict=False)[0]
    torch.testing.assert_close(with_audio, expected, atol=1e-5, rtol=1e-5)


def test_i2v_image_tokens_match_diffusers():
    # diffusers hard-codes 512 text tokens when image tokens are concatenated in front
    ref = _reference(in_channels=8, image_dim=8, added_kv_proj_dim=24)
    ours = import_diffusers_wan(ref, config=plain_wan_config(config_from_diffusers(ref.config)))
    _compare(ref, ours, torch.randn(1, 8, 2, 4, 4), torch.tensor([300.0]), torch.randn(1, 512, 16), torch.randn(1, 5, 8))


def test_ti2v_per_token_timesteps_match_diffusers():
    from model.reference import ti2v_timesteps

    ref = _reference()
    ours = import_diffusers_wan(ref, config=plain_wan_config(config_from_diffusers(ref.config)))
    t = ti2v_timesteps(torch.tensor([999.0, 250.0]), (3, 4, 6))
    assert t.shape == (2, 3 * 2 * 3) and t[:, :6].eq(0).all()
    _compare(ref, ours, torch.randn(2, 4, 3, 4, 6), t, torch.randn(2, 9, 16))


def test_fused_projections_and_bad_keys():
    ref = _reference()
    plain = convert_diffusers_state_dict(ref.state_dict())
    ref.fuse_qkv_projections()
    dropped = (".attn1.to_q.", ".attn1.to_k.", ".attn1.to_v.", ".attn2.to_k.", ".attn2.to_v.")
    fused = {k: v for k, v in ref.state_dict().items() if not any(d in k for d in dropped)}
    assert any("to_qkv" in k for k in fused)
    converted = convert_diffusers_state_dict(fused)
    assert converted.keys() == plain.keys()
    for k in plain:
        torch.testing.assert_close(converted[k], plain[k])
    with pytest.raises(ValueError, match="unknown keys"):
        convert_diffusers_state_dict({"foo.weight": torch.zeros(1)})


def test_config_round_trip_and_mismatch():
    cfg = config_from_diffusers(_reference().config)
    assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim, cfg.text_dim) == (24, 2, 2, 32, 16)
    assert config_from_diffusers(diffusers_config(cfg)) == cfg
    ref = _reference()
    with pytest.raises(ValueError, match="missing"):
        import_diffusers_wan(ref.state_dict(), config=dataclasses.replace(cfg, num_layers=3))


# config.json of the real diffusers checkpoints (Wan-AI/*-Diffusers, transformer/config.json), shape fields.
REAL_CONFIGS = {
    "wan2.1-t2v-1.3b": dict(num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16, ffn_dim=8960,
                            num_layers=30, image_dim=None, added_kv_proj_dim=None),
    "wan2.1-i2v-14b": dict(num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16, ffn_dim=13824,
                           num_layers=40, image_dim=1280, added_kv_proj_dim=5120),
    "wan2.2-ti2v-5b": dict(num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48, ffn_dim=14336,
                           num_layers=30, image_dim=None, added_kv_proj_dim=None),
}


@pytest.mark.parametrize("flavor", sorted(REAL_CONFIGS))
def test_every_flavour_imports_from_its_diffusers_config(flavor):
    from model.registry import FLAVORS

    real = {"patch_size": [1, 2, 2], "text_dim": 4096, "freq_dim": 256, "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024, **REAL_CONFIGS[flavor]}
    imported, expected = config_from_diffusers(real), FLAVORS[flavor]()
    shape = ("dim", "num_layers", "num_heads", "ffn_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
             "patch_size", "eps", "qk_norm", "cross_attn_norm", "image_dim", "vae_stride")
    assert {k: getattr(imported, k) for k in shape} == {k: getattr(expected, k) for k in shape}
    assert imported.vae_stride == ((4, 16, 16) if flavor == "wan2.2-ti2v-5b" else (4, 8, 8))  # Wan2.2's VAE is 16x


def test_alignment_warms_up_from_neutral_to_the_schedule():
    from model.alignment import AlignmentConfig

    ref = _reference()
    neutral = import_diffusers_wan(ref)
    linear = AlignmentConfig(schedule="linear", text_start=1.0, text_end=0.5, audio_start=0.25, audio_end=1.0)
    warm = import_diffusers_wan(ref, alignment=dataclasses.replace(linear, warmup_steps=10))
    full = import_diffusers_wan(ref, alignment=linear)
    x, t, text = torch.randn(1, 4, 3, 4, 6), torch.tensor([500.0]), torch.randn(1, 9, 16)
    with torch.no_grad():
        warm.alignment.set_step(0)  # the first step sees exactly the imported model
        assert torch.equal(warm(x, t, text), neutral(x, t, text))
        warm.alignment.set_step(5)
        text_w, _ = warm.alignment()
        torch.testing.assert_close(text_w, 1.0 + 0.5 * (full.alignment()[0] - 1.0))
        warm.alignment.set_step(25)  # ramped: the schedule itself
        assert torch.equal(warm(x, t, text), full(x, t, text))
    with pytest.raises(ValueError, match="alignment.warmup_steps must be >= 0"):
        AlignmentConfig(warmup_steps=-1)
