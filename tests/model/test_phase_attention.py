"""PACA at the layer level: invariance to other phases' tokens, neutral mode, dense-mask equivalence."""

import pytest
import torch

from model.attention import attention
from model.phase_attention import PhaseCrossAttention, PhaseKeys, phase_key_mask

D, HEADS, S = 16, 2, 6  # width, heads, tokens per latent frame
# text: base 3 tokens, phase 1 four, phase 2 two, padding three
BLOCK_IDS = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2, 2, -1, -1, -1]])
# latent frames: 0,1 inside phase 1; 2 on the 1|2 boundary; 3 inside phase 2; 4 uncovered
FRAME_PHASES = torch.tensor([[[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1], [1, 0, 0]]], dtype=torch.bool)
N_FRAMES = FRAME_PHASES.shape[1]


def _layer() -> PhaseCrossAttention:
    torch.manual_seed(1)
    return PhaseCrossAttention(D, HEADS).eval()


def _per_frame_change(layer, x, text, new_text) -> torch.Tensor:
    with torch.no_grad():
        a = layer(x, text, block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES)
        b = layer(x, new_text, block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES)
    return (a - b).abs().view(1, N_FRAMES, S, D).amax(dim=(0, 2, 3))  # (F,)


def _perturb(text: torch.Tensor, block: int) -> torch.Tensor:
    out = text.clone()
    sel = BLOCK_IDS[0] == block
    out[:, sel] = torch.randn_like(out[:, sel]) * 3
    return out


def test_mask_is_per_frame_not_dense():
    mask = phase_key_mask(BLOCK_IDS, FRAME_PHASES)
    assert mask.shape == (1, N_FRAMES, BLOCK_IDS.shape[1])
    assert mask[0, 0].tolist() == [True] * 7 + [False] * 5
    assert mask[0, 4].tolist() == [True] * 3 + [False] * 9
    assert phase_key_mask(BLOCK_IDS, FRAME_PHASES, pad_visible=True)[0, 4, -3:].all()


@pytest.mark.parametrize(
    ("block", "changed", "unchanged"),
    [
        (1, [0, 1, 2], [3, 4]),  # phase 1 tokens reach frames overlapping phase 1 only
        (2, [2, 3], [0, 1, 4]),  # phase 2 tokens: not frames inside phase 1, not the uncovered frame
        (0, [0, 1, 2, 3, 4], []),  # base caption: every frame
        (-1, [], [0, 1, 2, 3, 4]),  # padding: nobody
    ],
)
def test_frames_only_see_their_phases(block, changed, unchanged):
    layer = _layer()
    x, text = torch.randn(1, N_FRAMES * S, D), torch.randn(1, BLOCK_IDS.shape[1], D)
    delta = _per_frame_change(layer, x, text, _perturb(text, block))
    assert (delta[unchanged] == 0).all(), delta
    assert (delta[changed] > 1e-3).all(), delta


def test_neutral_is_plain_cross_attention_and_all_visible_paca_equals_it():
    layer = _layer()
    x, text = torch.randn(2, N_FRAMES * S, D), torch.randn(2, 12, D)
    with torch.no_grad():
        plain = layer(x, text)
        q = layer.norm_q(layer.to_q(x)).unflatten(-1, (HEADS, -1))
        k = layer.norm_k(layer.to_k(text)).unflatten(-1, (HEADS, -1))
        v = layer.to_v(text).unflatten(-1, (HEADS, -1))
        manual = layer.to_out(attention(q, k, v, backend="math").flatten(2))
        all_visible = layer(
            x, text, block_ids=torch.zeros(2, 12, dtype=torch.long), frame_phases=torch.ones(2, N_FRAMES, 1, dtype=torch.bool)
        )
    torch.testing.assert_close(plain, manual, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(all_visible, plain, atol=1e-5, rtol=1e-5)


def test_grouped_equals_naive_dense_mask():
    layer = _layer()
    x, text = torch.randn(1, N_FRAMES * S, D), torch.randn(1, 12, D)
    with torch.no_grad():
        paca = layer(x, text, block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES)
        dense = phase_key_mask(BLOCK_IDS, FRAME_PHASES).repeat_interleave(S, dim=1)  # (B, Lq, Lk), reference only
        q = layer.norm_q(layer.to_q(x)).unflatten(-1, (HEADS, -1))
        k = layer.norm_k(layer.to_k(text)).unflatten(-1, (HEADS, -1))
        v = layer.to_v(text).unflatten(-1, (HEADS, -1))
        ref = layer.to_out(attention(q, k, v, dense[:, None], backend="math").flatten(2))
    torch.testing.assert_close(paca, ref, atol=1e-5, rtol=1e-5)


def test_batch_with_different_phase_counts_matches_single_samples():
    layer = _layer()
    # sample 0: no phases (base 4 tokens); sample 1: the 2-phase layout above
    ids = torch.stack([torch.tensor([0, 0, 0, 0] + [-1] * 8), BLOCK_IDS[0]])
    fmap = torch.zeros(2, N_FRAMES, 3, dtype=torch.bool)
    fmap[0, :, 0] = True
    fmap[1] = FRAME_PHASES[0]
    x, text = torch.randn(2, N_FRAMES * S, D), torch.randn(2, 12, D)
    with torch.no_grad():
        both = layer(x, text, block_ids=ids, frame_phases=fmap)
        first = layer(x[:1], text[:1, :4], block_ids=ids[:1, :4], frame_phases=fmap[:1, :, :1])
        second = layer(x[1:], text[1:], block_ids=ids[1:], frame_phases=fmap[1:])
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=1e-5)


def test_image_tokens_need_image_kv_and_are_seen_by_every_frame():
    layer = PhaseCrossAttention(D, HEADS, image_kv=True).eval()
    x, text, image = torch.randn(1, N_FRAMES * S, D), torch.randn(1, 12, D), torch.randn(1, 5, D)
    with torch.no_grad():
        a = layer(x, text, block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES, image=image)
        b = layer(x, text, block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES, image=image + 1)
    assert ((a - b).abs().view(N_FRAMES, S, D).amax(dim=(1, 2)) > 1e-4).all()
    with pytest.raises(ValueError, match="image_kv"):
        _layer()(x, text, image=image)


def test_queries_must_split_into_frames():
    with pytest.raises(ValueError, match="latent frames"):
        _layer()(torch.randn(1, 7, D), torch.randn(1, 12, D), block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES)


def test_phase_keys_compact_visible_keys_in_text_order():
    keys = PhaseKeys.build(BLOCK_IDS, FRAME_PHASES)
    assert keys.index.shape == (1, N_FRAMES, 9)  # frame 2 sees base + both phases = 9 keys
    assert keys.index[0, 0, :7].tolist() == list(range(7)) and keys.mask[0, 0].tolist() == [True] * 7 + [False] * 2
    assert keys.index[0, 3][keys.mask[0, 3]].tolist() == [0, 1, 2, 7, 8]
    full = PhaseKeys.build(BLOCK_IDS, FRAME_PHASES, compact=False)
    assert full.index.shape[-1] == BLOCK_IDS.shape[1]
    layer = _layer()
    x, text = torch.randn(1, N_FRAMES * S, D), torch.randn(1, 12, D)
    with torch.no_grad():
        a = layer(x, text, phase_keys=keys)
        b = layer(x, text, phase_keys=full)
        c = layer(x, text, block_ids=BLOCK_IDS, frame_phases=FRAME_PHASES)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(a, c, atol=0, rtol=0)


def test_frame_with_no_visible_key_gets_zero_text_update():
    ids = torch.tensor([[1, 1, 2, -1]])  # no base tokens (e.g. an empty base caption)
    fmap = torch.tensor([[[1, 1, 0], [1, 0, 0]]], dtype=torch.bool)  # frame 1 sees nothing
    keys = PhaseKeys.build(ids, fmap)
    assert not keys.every_frame_sees_a_key
    assert PhaseKeys.build(BLOCK_IDS, FRAME_PHASES).every_frame_sees_a_key
    layer = _layer()
    with torch.no_grad():
        out = layer(torch.randn(1, 2 * S, D), torch.randn(1, 4, D), phase_keys=keys)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, S:], layer.to_out.bias.expand(S, D))
