import pytest
import torch

from model.attention import Attention, apply_rope, attention, guarded_attention
from model.embeddings import RotaryEmbedding3D


def test_sdpa_matches_math_reference_with_mask():
    q, k, v = torch.randn(2, 5, 2, 8), torch.randn(2, 7, 2, 8), torch.randn(2, 7, 2, 8)
    mask = torch.rand(2, 1, 5, 7) > 0.3
    mask[..., 0] = True
    torch.testing.assert_close(attention(q, k, v, mask), attention(q, k, v, mask, backend="math"), atol=1e-5, rtol=1e-5)


def test_unknown_backend_raises():
    t = torch.randn(1, 2, 1, 4)
    with pytest.raises(ValueError, match="backend"):
        attention(t, t, t, backend="magic")


def test_guarded_rows_without_keys_are_zero_not_nan():
    q, k, v = torch.randn(3, 4, 2, 8), torch.randn(3, 6, 2, 8), torch.randn(3, 6, 2, 8)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1] = False
    out = guarded_attention(q, k, v, mask)
    assert torch.isfinite(out).all()
    assert out[1].abs().max() == 0
    torch.testing.assert_close(out[0], attention(q[:1], k[:1], v[:1])[0])


def test_rope_is_a_rotation_and_relative():
    rope = RotaryEmbedding3D(head_dim=12)
    cos, sin = rope(3, 2, 2, torch.device("cpu"))
    assert cos.shape == (1, 12, 1, 12)
    x = torch.randn(1, 12, 2, 12)
    y = apply_rope(x, cos, sin)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # norm preserved
    # position 0 is the identity
    torch.testing.assert_close(y[:, 0], x[:, 0])


def test_attention_module_shapes_and_zero_init():
    attn = Attention(16, 4, zero_init_out=True)
    cos, sin = RotaryEmbedding3D(4)(1, 2, 3, torch.device("cpu"))
    out = attn(torch.randn(2, 6, 16), (cos, sin))
    assert out.shape == (2, 6, 16) and out.abs().max() == 0
    with pytest.raises(ValueError, match="divisible"):
        Attention(10, 4)


def test_masked_calls_never_reach_a_cuda_kernel_without_mask_support():
    from model.attention import kernel_for

    for backend in ("flash", "cudnn"):
        assert kernel_for(backend, masked=True, device_type="cuda") == "efficient"  # PACA / audio windows
        assert kernel_for(backend, masked=False, device_type="cuda") == backend  # self-attention keeps it
        assert kernel_for(backend, masked=True, device_type="cpu") == backend  # torch's CPU flash takes masks
    assert kernel_for("sdpa", masked=True, device_type="cuda") == "sdpa"


def test_compiled_paca_keeps_every_key_and_matches_eager():
    from model.phase_attention import PhaseKeys

    block_ids = torch.tensor([[0, 0, 1, 1, 2, -1, -1, -1]])
    frame_phases = torch.tensor([[[True, True, False], [True, False, True]]])
    eager = PhaseKeys.build(block_ids, frame_phases)
    assert eager.index.shape[-1] == 4  # compacted: base (2) + one phase (2) per frame

    def build(b, f):
        keys = PhaseKeys.build(b, f)
        return keys.index, keys.mask

    index, mask = torch.compile(build, backend="eager", fullgraph=True)(block_ids, frame_phases)  # no graph break
    assert index.shape[-1] == 8
    torch.testing.assert_close(index[..., :4][mask[..., :4]], eager.index[eager.mask])
