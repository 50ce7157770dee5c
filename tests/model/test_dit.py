"""The whole DiT: shapes, PACA through the model, mixed phase counts, gradients, determinism."""

import dataclasses

import pytest
import torch

from model.alignment import AlignmentConfig
from model.audio_windows import batch_audio_windows
from model.dit import DiTConfig
from model.phase_layout import collate_text_blocks, layout_from_annotation
from model.registry import FLAVORS, build_model

# debug flavour, 17 video frames -> 5 latent frames of 4x4 latents -> 2x2 = 4 tokens per frame
N_LAT, H, W, TOK = 5, 4, 4, 4


def _model(**overrides):
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(FLAVORS["debug"](), **overrides))  # Wan's init
    with torch.no_grad():  # move off Wan's zero head / zero audio outputs, as after some training
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _inputs(model, phase_sets, *, audio=True):
    cfg = model.config
    layouts = [layout_from_annotation(_ann(ph)) for ph in phase_sets]
    blocks = [[torch.randn(2 + i, cfg.text_dim) for i in range(len(lay.texts))] for lay in layouts]
    text = collate_text_blocks(blocks, [lay.frame_phases for lay in layouts])
    b = len(phase_sets)
    kw = dict(block_ids=text.block_ids, frame_phases=text.frame_phases)
    if audio:
        feats = torch.randn(b, 34, cfg.audio.audio_dim)
        index, mask = batch_audio_windows(N_LAT, [25.0] * b, [34] * b)
        kw.update(audio=feats, audio_index=index, audio_mask=mask)
    x = torch.randn(b, cfg.in_channels, N_LAT, H, W)
    return x, torch.rand(b) * 1000, text.tokens, kw


def _ann(phases):
    return {
        "caption": {"base": "base", "phases": [{"start_s": s, "end_s": e, "text": f"p{i}"} for i, (s, e) in enumerate(phases)]},
        "video": {"fps": 25.0, "num_frames": 17},
    }


FIVE = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.36), (0.36, 0.5), (0.52, 0.68)]


def test_forward_shape_and_determinism():
    model = _model()
    x, t, text, kw = _inputs(model, [FIVE])
    with torch.no_grad():
        a, b = model(x, t, text, **kw), model(x, t, text, **kw)
    assert a.shape == x.shape[:1] + (model.config.out_channels,) + x.shape[2:]
    assert torch.equal(a, b)


def test_batch_mixing_0_1_5_phases_matches_single_samples():
    model = _model()
    x, t, text, kw = _inputs(model, [[], [(0.0, 0.3)], FIVE])
    with torch.no_grad():
        batch = model(x, t, text, **kw)
        for i in range(3):
            n_cols = 1 + [0, 1, 5][i]
            n_tok = int((kw["block_ids"][i] >= 0).sum())
            single = model(
                x[i : i + 1],
                t[i : i + 1],
                text[i : i + 1, :n_tok],
                block_ids=kw["block_ids"][i : i + 1, :n_tok],
                frame_phases=kw["frame_phases"][i : i + 1, :, :n_cols],
                audio=kw["audio"][i : i + 1],
                audio_index=kw["audio_index"][i : i + 1],
                audio_mask=kw["audio_mask"][i : i + 1],
            )
            torch.testing.assert_close(batch[i : i + 1], single, atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_trainable_parameter():
    model = _model(alignment=AlignmentConfig(schedule="learned")).train()
    x, t, text, kw = _inputs(model, [[], [(0.0, 0.3)], FIVE])
    model(x, t, text, **kw).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_first_block_cross_attention_follows_phases_through_the_model():
    """Block 0's text cross-attention sees latent frames' hidden states that do not depend on text,
    so its output for a frame inside phase j must not move when phase k's tokens change."""
    model = _model()
    # phases: [0, 0.2) covers latents 0-1; [0.36, 0.68) covers latents 3-4; latent 2 is uncovered
    lay = layout_from_annotation(_ann([(0.0, 0.2), (0.36, 0.68)]))
    assert lay.frame_phases.tolist() == [[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 1]]
    blocks = [torch.randn(3, model.config.text_dim), torch.randn(4, model.config.text_dim), torch.randn(2, model.config.text_dim)]
    x, t = torch.randn(1, model.config.in_channels, N_LAT, H, W), torch.tensor([500.0])
    captured = []
    handle = model.blocks[0].cross_attn.register_forward_hook(lambda m, i, o: captured.append(o.detach()))

    def block0_out(blks):
        text = collate_text_blocks([blks], [lay.frame_phases])
        with torch.no_grad():
            model(x, t, text.tokens, block_ids=text.block_ids, frame_phases=text.frame_phases)
        return captured[-1].view(N_LAT, TOK, -1)

    base = block0_out(blocks)
    for k, changed in ((1, [0, 1]), (2, [3, 4])):
        moved = list(blocks)
        moved[k] = moved[k] + torch.randn_like(moved[k])
        delta = (block0_out(moved) - base).abs().amax(dim=(1, 2))
        unchanged = [f for f in range(N_LAT) if f not in changed]
        assert (delta[unchanged] == 0).all(), (k, delta)
        assert (delta[changed] > 1e-4).all(), (k, delta)
    handle.remove()


def test_fsdp_units_meta_build_and_hints():
    cfg = FLAVORS["wan2.1-t2v-1.3b"]()
    model = build_model(cfg, device="meta")
    assert model.fsdp_units() == [f"blocks.{i}" for i in range(30)]
    assert all(dict(model.named_modules())[u].__class__.__name__ in model._no_split_modules for u in model.fsdp_units())
    assert next(model.parameters()).is_meta


def test_config_validation_names_key_and_value():
    with pytest.raises(ValueError, match="model.dim / model.num_heads.*30 / 4"):
        DiTConfig(dim=30, num_layers=1, num_heads=4, ffn_dim=8)
    with pytest.raises(ValueError, match="model.num_layers must be > 0, got 0"):
        DiTConfig(dim=32, num_layers=0, num_heads=4, ffn_dim=8)
    with pytest.raises(ValueError, match="attention_backend"):
        DiTConfig(dim=32, num_layers=1, num_heads=4, ffn_dim=8, attention_backend="xformers")


def test_audio_needs_windows_and_model_audio():
    model = _model()
    x, t, text, kw = _inputs(model, [[]])
    with pytest.raises(ValueError, match="audio_index"):
        model(x, t, text, audio=kw["audio"])
    no_audio = _model(audio=None)
    with pytest.raises(ValueError, match="model.audio is None"):
        no_audio(x, t, text, **kw)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_cuda_forward_close_to_fp32():
    model = _model().cuda()
    x, t, text, kw = _inputs(model, [[(0.0, 0.3)], FIVE])
    kw = {k: v.cuda() for k, v in kw.items()}
    with torch.no_grad():
        ref = model(x.cuda(), t.cuda(), text.cuda(), **kw)
        out = model.to(torch.bfloat16)(x.cuda().bfloat16(), t.cuda(), text.cuda().bfloat16(), **kw)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().mean() < 0.05 * ref.abs().mean() + 1e-3


def test_bf16_weights_take_fp32_inputs_and_keep_the_timestep_fp32():
    # What FSDP2 mixed precision gives the model (bf16 parameters, inputs not cast by FSDP: see
    # train.parallelize.fsdp_policy): the inputs are cast at the boundary, the timestep is not.
    from model.embeddings import timestep_sinusoid
    from train.parallelize import fsdp_policy

    assert fsdp_policy(True).cast_forward_inputs is False and fsdp_policy(True).param_dtype == torch.bfloat16
    model = _model().to(torch.bfloat16)
    x, _, text, kw = _inputs(model, [FIVE])
    t = torch.tensor([997.3])
    seen = []
    model.time_embed.linear_1.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        out = model(x, t, text, **kw)  # fp32 latents, text and audio into bf16 weights
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    fp32_path = timestep_sinusoid(t, model.config.freq_dim).to(torch.bfloat16)
    rounded_t = timestep_sinusoid(t.to(torch.bfloat16), model.config.freq_dim).to(torch.bfloat16)  # t became 996
    assert torch.equal(seen[0], fp32_path) and not torch.equal(seen[0], rounded_t)
