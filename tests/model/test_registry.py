"""Flavours: real Wan numbers, and the same parameter count as diffusers' model for each backbone."""

import pytest
import torch

from model.registry import FLAVORS, build_model, get_config, plain_wan_config

EXPECTED = {
    # dim, layers, heads, ffn, in, out, image_dim, vae_stride
    "wan2.1-t2v-1.3b": (1536, 30, 12, 8960, 16, 16, None, (4, 8, 8)),
    "wan2.1-i2v-14b": (5120, 40, 40, 13824, 36, 16, 1280, (4, 8, 8)),
    "wan2.2-ti2v-5b": (3072, 30, 24, 14336, 48, 48, None, (4, 16, 16)),
}


@pytest.mark.parametrize("flavor", sorted(EXPECTED))
def test_wan_flavours(flavor):
    cfg = FLAVORS[flavor]()
    got = (cfg.dim, cfg.num_layers, cfg.num_heads, cfg.ffn_dim, cfg.in_channels, cfg.out_channels, cfg.image_dim, cfg.vae_stride)
    assert got == EXPECTED[flavor]
    assert (cfg.head_dim, cfg.text_dim, cfg.freq_dim, cfg.patch_size, cfg.eps) == (128, 4096, 256, (1, 2, 2), 1e-6)


@pytest.mark.parametrize("flavor", sorted(EXPECTED))
def test_parameter_count_equals_diffusers(flavor):
    diffusers = pytest.importorskip("diffusers")
    from model.wan_import import diffusers_config

    cfg = plain_wan_config(FLAVORS[flavor]())
    with torch.device("meta"):
        ref = diffusers.WanTransformer3DModel(**diffusers_config(cfg))
    ours = build_model(cfg, device="meta")
    n_ref = sum(p.numel() for p in ref.parameters())
    assert sum(p.numel() for p in ours.parameters()) == n_ref
    if flavor == "wan2.1-t2v-1.3b":
        assert 1.2e9 < n_ref < 1.5e9


def test_debug_flavour_runs_and_overrides():
    model = build_model(FLAVORS["debug"]())
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert get_config("debug", num_layers=3).num_layers == 3
    with pytest.raises(ValueError, match="model.flavor.*'huge'"):
        get_config("huge")


def test_build_model_applies_wan_init_unless_meta():
    torch.manual_seed(3)
    model = build_model(FLAVORS["debug"]())
    # Wan's init, not PyTorch's default: zero head, zero audio outputs, unit norms, zero biases
    assert not model.proj_out.weight.any() and not model.blocks[0].audio_attn.to_out.weight.any()
    assert not model.blocks[0].ffn.proj_in.bias.any()  # PyTorch's default would be uniform, not zero
    assert model.patch_embed.weight.abs().sum() > 0
    # the same seed gives the same weights as building on meta and initialising by hand (no hidden second init)
    torch.manual_seed(3)
    by_hand = build_model(FLAVORS["debug"](), device="meta").to_empty(device="cpu")
    by_hand.init_weights()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), by_hand.state_dict().values(), strict=True))
    meta = build_model(FLAVORS["debug"](), device="meta")
    assert all(p.is_meta for p in meta.parameters())


def test_init_weights_sets_every_value_of_a_materialised_model():
    import dataclasses

    from model.alignment import AlignmentConfig

    cfg = dataclasses.replace(FLAVORS["debug"](), image_dim=16, image_pos_embed_len=4, alignment=AlignmentConfig(schedule="learned"))
    model = build_model(cfg, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.fill_(float("nan"))
    model.init_weights()
    assert [n for n, t in (*model.named_parameters(), *model.named_buffers()) if torch.isnan(t).any()] == []
