"""Benchmark Phase-Aware Cross-Attention against plain cross-attention and a naive dense mask.

    .venv/bin/python bench/bench_paca_attention.py --threads 1           # CPU, scaled 1.3B-like shapes
    .venv/bin/python bench/bench_paca_attention.py --device cuda          # real Wan2.1-1.3B shapes, bf16, + block MFU
    .venv/bin/python bench/bench_paca_attention.py --shape wan1.3b --device cuda --dtype bfloat16

Implementations of the same text cross-attention layer (one `PhaseCrossAttention`'s weights):
  trim   every query sees the real text tokens only, padding trimmed (one call, no mask): the fair
         baseline the ratios are taken against
  plain  every query sees all text tokens, padding included (Wan; one attention call, no mask)
  paca   queries grouped per latent frame, each frame gathers its visible keys (model/phase_attention.py)
  dense  naive: a (B, Lq, Lk) mask expanded from the same rule, one masked attention call
Reports forward and forward+backward time (best of --repeats, variants interleaved) and peak
memory, with ratios to plain measured in the same run; then forward+backward throughput of the `debug` DiT flavour, and on CUDA the MFU of one
Wan2.1-1.3B block (81 frames, 480x832 -> 21 x 30 x 52 tokens). CPU peak memory is the peak of live
tensor storage bytes seen by a dispatch-mode tracker; CUDA uses torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from model.attention import attention
from model.phase_attention import PhaseCrossAttention, PhaseKeys, phase_key_mask
from model.phase_layout import block_ids_from_lengths, frame_phase_map


@dataclass(frozen=True)
class Shape:
    frames: int  # latent frames F
    grid: tuple[int, int]  # latent tokens per frame after 2x2 patches
    dim: int
    heads: int
    text_len: int  # padded text budget
    base_tokens: int
    phase_tokens: int
    fps: float = 25.0


SHAPES = {
    # 81 frames at 480x832: latent 21 x 60 x 104 -> 21 x 30 x 52 tokens; dim 1536, 12 heads of 128
    "wan1.3b": Shape(frames=21, grid=(30, 52), dim=1536, heads=12, text_len=512, base_tokens=120, phase_tokens=24),
    # CPU: 33 frames at 240x416 (9 x 15 x 26 tokens), half the width; same head size and text budget.
    # Tokens per frame stay in the hundreds: PACA's per-frame key cost scales with Lk / tokens-per-frame.
    "cpu": Shape(frames=9, grid=(15, 26), dim=768, heads=6, text_len=512, base_tokens=120, phase_tokens=24),
}


class LiveBytes(TorchDispatchMode):
    """Peak bytes of live tensor storages created while active (CPU stand-in for max_memory_allocated)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, n: int) -> None:
        self.live -= n
        self._seen.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key in self._seen or storage.nbytes() == 0:
                    continue  # a view of a storage already counted
                self._seen.add(key)
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key, storage.nbytes())
        return out


class DenseMaskProcessor:
    """The naive reference: one (B, 1, Lq, Lk) mask, F*S rows per sample."""

    def __call__(self, attn, x, text, *, block_ids, frame_phases, phase_keys=None, image=None):
        q = attn.norm_q(attn.to_q(x)).unflatten(-1, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(text)).unflatten(-1, (attn.heads, -1))
        v = attn.to_v(text).unflatten(-1, (attn.heads, -1))
        per_frame = phase_key_mask(block_ids, frame_phases)  # (B, F, Lk)
        dense = per_frame.repeat_interleave(x.shape[1] // per_frame.shape[1], dim=1)  # (B, Lq, Lk)
        out = attention(q, k, v, dense[:, None], backend=attn.backend)
        return attn.to_out(out.flatten(2).type_as(q))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Best of `repeats` (the min resists other processes sharing the machine better than the median)."""
    return _time_interleaved({"_": fn}, device, warmup, repeats)["_"]


CLOCK: Callable[[], float] = time.perf_counter  # main() switches to process CPU time on CPU


def _time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` seconds per function, timed round-robin so load drift hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = CLOCK()
            fn()
            _sync(device)
            best[name] = min(best[name], CLOCK() - t0)
    return best


def _peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    with LiveBytes() as tracker:
        fn()
    return tracker.peak


def _inputs(shape: Shape, batch: int, phases: int, device, dtype):
    n_video = 4 * (shape.frames - 1) + 1
    dur = n_video / shape.fps
    bounds = torch.linspace(0, dur, phases + 1).tolist()
    spans = [(bounds[i], bounds[i + 1]) for i in range(phases)]
    fmap = frame_phase_map(spans, shape.frames, shape.fps)  # (F, 1 + P)
    ids = block_ids_from_lengths([shape.base_tokens] + [shape.phase_tokens] * phases, shape.text_len)
    lq = shape.frames * shape.grid[0] * shape.grid[1]
    x = torch.randn(batch, lq, shape.dim, device=device, dtype=dtype, requires_grad=True)
    text = torch.randn(batch, shape.text_len, shape.dim, device=device, dtype=dtype)
    return x, text, ids.expand(batch, -1).to(device), fmap.expand(batch, -1, -1).to(device)


def bench_attention(args, device, dtype) -> None:
    shape = SHAPES[args.shape]
    layer = PhaseCrossAttention(shape.dim, shape.heads).to(device, dtype)
    dense_layer = PhaseCrossAttention(shape.dim, shape.heads).to(device, dtype)
    dense_layer.load_state_dict(layer.state_dict())
    dense_layer.set_processor(DenseMaskProcessor())
    x, text, ids, fmap = _inputs(shape, args.batch, args.phases, device, dtype)
    keys = PhaseKeys.build(ids, fmap)  # what VideoDiT does once per forward for all its layers
    real = shape.base_tokens + args.phases * shape.phase_tokens  # text tokens without padding
    trimmed = text[:, :real]
    variants = {
        "trim": lambda: layer(x, trimmed),
        "plain": lambda: layer(x, text),
        "paca": lambda: layer(x, text, phase_keys=keys),
        "paca*": lambda: layer(x, text, block_ids=ids, frame_phases=fmap),
        "dense": lambda: dense_layer(x, text, block_ids=ids, frame_phases=fmap),
    }
    with torch.no_grad():
        diff = (variants["paca"]() - variants["dense"]()).abs().max().item()
    visible = phase_key_mask(ids, fmap).float().mean().item()
    print(
        f"\n## Cross-attention layer: B={args.batch}, F={shape.frames}, tokens/frame={shape.grid[0] * shape.grid[1]}, "
        f"Lq={x.shape[1]}, Lk={shape.text_len}, dim={shape.dim}, heads={shape.heads}, phases={args.phases}, "
        f"{dtype}, {device}; keys visible per frame {visible:.0%} (K={keys.index.shape[-1]} of {shape.text_len}); "
        f"|paca - dense| max {diff:.2e}\n"
        "paca = key selection shared by all layers (as in VideoDiT); paca* = rebuilt inside the layer each call"
    )

    def fwd(fn):
        with torch.no_grad():
            return fn()

    def fwd_bwd(fn):
        fn().float().square().mean().backward()
        x.grad = None
        for p in (*layer.parameters(), *dense_layer.parameters()):
            p.grad = None

    t_f = _time_interleaved({n: (lambda fn=fn: fwd(fn)) for n, fn in variants.items()}, device, args.warmup, args.repeats)
    t_fb = _time_interleaved({n: (lambda fn=fn: fwd_bwd(fn)) for n, fn in variants.items()}, device, args.warmup, args.repeats)
    rows = {
        name: (t_f[name], t_fb[name], _peak_bytes(lambda: fwd(fn), device), _peak_bytes(lambda: fwd_bwd(fn), device))
        for name, fn in variants.items()
    }
    ref = rows["trim"]  # ratios against plain attention over the real tokens only
    print("| impl  | fwd ms | fwd+bwd ms | fwd peak MiB | fwd+bwd peak MiB | fwd time x | fwd+bwd time x | fwd mem x | fwd+bwd mem x |")
    print("|-------|-------:|-----------:|-------------:|-----------------:|-----------:|---------------:|----------:|--------------:|")
    for name, (t_f, t_fb, m_f, m_fb) in rows.items():
        print(
            f"| {name:5s} | {t_f * 1e3:6.1f} | {t_fb * 1e3:10.1f} | {m_f / 2**20:12.1f} | {m_fb / 2**20:16.1f} | "
            f"{t_f / ref[0]:10.2f} | {t_fb / ref[1]:14.2f} | {m_f / ref[2]:9.2f} | {m_fb / ref[3]:13.2f} |"
        )


def bench_debug_flavour(args, device, dtype) -> None:
    from model.audio_windows import batch_audio_windows
    from model.registry import FLAVORS, build_model

    model = build_model(FLAVORS["debug"]()).to(device, dtype)
    model.init_weights()
    cfg, b = model.config, args.batch_debug
    n_lat, h, w = 21, 16, 16  # 81 frames of 128x128 video through a 4x8x8 VAE
    x = torch.randn(b, cfg.in_channels, n_lat, h, w, device=device, dtype=dtype)
    t = torch.rand(b, device=device) * 1000
    fmap = frame_phase_map([(0.0, 1.0), (1.0, 2.2), (2.4, 3.24)], n_lat, 25.0).expand(b, -1, -1).to(device)
    ids = block_ids_from_lengths([24, 8, 8, 8], cfg.text_len).expand(b, -1).to(device)
    text = torch.randn(b, cfg.text_len, cfg.text_dim, device=device, dtype=dtype)
    audio = torch.randn(b, 163, cfg.audio.audio_dim, device=device, dtype=dtype)
    index, mask = batch_audio_windows(n_lat, [25.0] * b, [163] * b)
    kw = dict(block_ids=ids, frame_phases=fmap, audio=audio, audio_index=index.to(device), audio_mask=mask.to(device))

    def step():
        model(x, t, text, **kw).float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    sec = _time(step, device, args.warmup, args.repeats)
    tokens = b * n_lat * (h // 2) * (w // 2)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"\n## debug flavour forward+backward ({n_params / 1e6:.2f} M params, B={b}, {tokens // b} tokens/sample, "
        f"PACA 3 phases + audio, {dtype}, {device}): {sec * 1e3:.1f} ms/step, {b / sec:.2f} samples/s, "
        f"{tokens / sec:,.0f} tokens/s"
    )


def bench_block_mfu(args, device, dtype) -> None:
    """MFU of one Wan2.1-1.3B block (PACA + audio) at 81x480x832, forward+backward."""
    from model.block import DiTBlock
    from model.embeddings import RotaryEmbedding3D
    from model.registry import FLAVORS

    cfg = FLAVORS["wan2.1-t2v-1.3b"]()
    shape = SHAPES["wan1.3b"]
    block = DiTBlock(cfg, audio=True).to(device, dtype)
    d, f_ = cfg.dim, cfg.ffn_dim
    gh, gw = shape.grid
    lq, lk, n_win = shape.frames * gh * gw, shape.text_len, 12
    x = torch.randn(1, lq, d, device=device, dtype=dtype, requires_grad=True)
    temb = torch.randn(1, 1, 6, d, device=device, dtype=dtype)
    rope = RotaryEmbedding3D(cfg.head_dim)(shape.frames, gh, gw, device)
    text = torch.randn(1, lk, d, device=device, dtype=dtype)
    _, _, ids, fmap = _inputs(shape, 1, args.phases, device, dtype)
    keys = PhaseKeys.build(ids, fmap)
    audio = torch.randn(1, shape.frames, n_win, d, device=device, dtype=dtype)
    amask = torch.ones(1, shape.frames, n_win, dtype=torch.bool, device=device)
    one = torch.ones((), device=device)

    def step():
        out = block(x, temb, rope, text, text_weight=one, audio_weight=one, phase_keys=keys, audio=audio, audio_mask=amask)
        out.float().square().mean().backward()
        x.grad = None
        block.zero_grad(set_to_none=True)

    sec = _time(step, device, args.warmup, args.repeats)
    # forward matmul FLOPs (2 per MAC): self-attn qkvo, cross q/o + text k/v, audio q/o + window k/v, FFN,
    # and the attention products (QK^T and AV); backward = 2x forward.
    linear = 2 * lq * (4 * d * d + 2 * d * d + 2 * d * d + 2 * d * f_) + 2 * (lk + shape.frames * n_win) * 2 * d * d
    attn = 4 * lq * lq * d + 4 * lq * lk * d + 4 * lq * n_win * d
    flops = 3 * (linear + attn)
    tflops = flops / sec / 1e12
    print(
        f"\n## Wan2.1-1.3B block (PACA + audio) forward+backward, L={lq}, {dtype}: {sec * 1e3:.1f} ms, "
        f"{tflops:.1f} TFLOP/s, MFU {tflops / args.peak_tflops:.1%} of {args.peak_tflops:g} TFLOP/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--shape", default=None, choices=sorted(SHAPES), help="default: cpu on CPU, wan1.3b on CUDA")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--batch-debug", type=int, default=2)
    parser.add_argument("--phases", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM: 989)")
    parser.add_argument("--skip-debug", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--clock",
        default=None,
        choices=["wall", "cpu"],
        help="wall = perf_counter; cpu = process CPU time, robust when other jobs share the CPU "
        "(use with --threads 1). Default: cpu on CPU, wall on CUDA",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    clock = args.clock or ("wall" if args.device == "cuda" else "cpu")
    CLOCK = time.process_time if clock == "cpu" else time.perf_counter
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    args.shape = args.shape or ("wan1.3b" if device.type == "cuda" else "cpu")
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# PACA benchmark - torch {torch.__version__}, {name}; {clock} clock, best of {args.repeats}")
    bench_attention(args, device, dtype)
    if not args.skip_debug:
        bench_debug_flavour(args, device, dtype)
    if device.type == "cuda":
        bench_block_mfu(args, device, dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
