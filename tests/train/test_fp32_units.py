"""bf16 training and loading keep Wan's fp32 modules (time embedding and projection, adaLN tables, norms) in fp32."""

from __future__ import annotations

import copy
import socket

import pytest
import torch
import torch.distributed as dist

from model.dit import cast_keeping_fp32
from model.registry import FLAVORS, build_model


def _model():
    torch.manual_seed(0)
    model = build_model(FLAVORS["debug"]())
    with torch.no_grad():  # off Wan's zero head, so outputs are not all zero
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def _inputs(model):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 3, 4, 4, generator=g)
    text = torch.randn(1, 8, model.config.text_dim, generator=g)
    return x, torch.tensor([997.3]), text


def _time_outputs(model):
    """Capture the time embedding and its projection on the next forward."""
    seen = {}
    model.time_embed.register_forward_hook(lambda m, a, out: seen.__setitem__("embedding", out.detach().float()))
    model.time_proj.register_forward_hook(lambda m, a, out: seen.__setitem__("projection", out.detach().float()))
    return seen


def test_fp32_modules_are_wans():
    model = build_model(FLAVORS["debug"]())
    names = model.fp32_modules()
    assert names[:2] == ["time_embed", "time_proj"] and names[-1] == "head_modulation"
    assert {"blocks.0.modulation", "blocks.0.norm2", "blocks.1.modulation"} <= set(names)
    assert not any(n.startswith("time_embed.") for n in names)  # outermost modules only


def test_bf16_loading_keeps_the_time_embedding_exact():
    ref = _model()
    bf16 = cast_keeping_fp32(copy.deepcopy(ref), torch.bfloat16)  # before any hook: deepcopy would copy hooks
    kept = {n for m in bf16.fp32_modules() for n, _ in bf16.get_submodule(m).named_parameters(prefix=m)}
    assert all((p.dtype == torch.float32) == (n in kept) for n, p in bf16.named_parameters())
    assert bf16.patch_embed.weight.dtype == torch.bfloat16
    want, got = _time_outputs(ref), _time_outputs(bf16)
    ref(*_inputs(ref))
    out = bf16(*_inputs(bf16))
    assert out.dtype == torch.bfloat16
    assert torch.equal(got["embedding"], want["embedding"]) and torch.equal(got["projection"], want["projection"])


def test_old_checkpoints_with_bare_modulation_parameters_load():
    model = _model()
    old = {k.removesuffix(".table"): v for k, v in model.state_dict().items()}
    assert "head_modulation" in old and "blocks.0.modulation" in old
    fresh = build_model(FLAVORS["debug"]())
    fresh.load_state_dict(old)  # strict
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True))


@pytest.fixture
def process_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp2_bf16_gathers_the_fp32_modules_in_fp32(process_group):
    """FSDP2 with bf16 parameters (run on CPU here): the time embedding equals fp32's exactly; plain
    bf16 sharding (every parameter bf16, as before) rounds it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from train.parallelize import fsdp_policy, shard_model

    mesh = init_device_mesh("cpu", (1,))
    ref = _model()
    kept, plain = copy.deepcopy(ref), copy.deepcopy(ref)  # before any hook: deepcopy would copy hooks
    want = _time_outputs(ref)
    expected = ref(*_inputs(ref))

    got = _time_outputs(kept)
    shard_model(kept, kept.fsdp_units(), mesh, bf16=True)
    out = kept(*_inputs(kept))
    assert out.dtype == torch.bfloat16
    assert torch.equal(got["embedding"], want["embedding"]) and torch.equal(got["projection"], want["projection"])
    assert torch.allclose(out.float(), expected, atol=0.05 * expected.abs().max().item())  # the rest is bf16
    out.float().square().mean().backward()
    table = kept.blocks[0].modulation.table
    assert table.grad is not None and table.grad.full_tensor().abs().sum() > 0 and table.dtype == torch.float32

    rounded = _time_outputs(plain)
    for unit in plain.fsdp_units():
        fully_shard(plain.get_submodule(unit), mesh=mesh, mp_policy=fsdp_policy(True))
    fully_shard(plain, mesh=mesh, mp_policy=fsdp_policy(True))
    plain(*_inputs(plain))
    assert (rounded["projection"] - want["projection"]).abs().max() > 1e-6
