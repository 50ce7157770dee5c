"""Training-step throughput of a DiT flavour under FSDP2 (the trainer's sharding), random weights and inputs.

    torchrun --nproc-per-node 1 bench/bench_fsdp_step.py --flavor wan2.1-t2v-1.3b --frames 81 --height 480 --width 832
    torchrun --nproc-per-node 2 bench/bench_fsdp_step.py --flavor debug --frames 9 --height 64 --width 64   # CPU check (gloo)

Builds the flavour on the meta device, shards it with `train.parallelize.parallelize` (per-block
FSDP2 units, Wan's fp32 modules as fp32 units, activation checkpointing, bf16 on CUDA), then times
AdamW steps (forward + backward + step) on random latents with PACA phases and per-frame audio,
as the trainer feeds them. Reports step time, tokens/s and MFU: model FLOPs = 6 x params x tokens
(linear layers, forward + backward) + the attention products (12 x L^2 x dim per layer for
self-attention, 12 x L x Lk x dim for text), divided by the GPU's dense bf16 peak (`--peak-tflops`;
H100 SXM and H200: 989). No data loading or encoders: this is the DiT's ceiling.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", default="debug")
    parser.add_argument("--frames", type=int, default=81, help="video frames (1 + 4k)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--batch", type=int, default=1, help="per rank")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--no-checkpointing", action="store_true", help="no activation checkpointing")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100 SXM / H200: 989)")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    from model.audio_windows import batch_audio_windows
    from model.phase_layout import block_ids_from_lengths, frame_phase_map
    from model.registry import FLAVORS, build_model
    from train.parallelize import ParallelConfig, default_device, init_distributed, parallelize

    cuda = torch.cuda.is_available()
    device = default_device(cuda, int(os.environ.get("LOCAL_RANK", "0")))
    if "WORLD_SIZE" not in os.environ:
        os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    info = init_distributed(device)
    cfg = FLAVORS[args.flavor]()
    torch.manual_seed(0)
    full_state = build_model(cfg).state_dict() if info.is_main else {}
    model = build_model(cfg, device="meta")
    parallel = ParallelConfig(fsdp="fsdp2", activation_checkpointing=not args.no_checkpointing, mixed_precision="bf16")
    model = parallelize(model, parallel, device, info.world_size, full_state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)

    t_stride, s_stride = cfg.vae_stride[0], cfg.vae_stride[1]
    n_lat = (args.frames - 1) // t_stride + 1
    h, w = args.height // s_stride, args.width // s_stride
    b, dev = args.batch, device
    x = torch.randn(b, cfg.in_channels, n_lat, h, w, device=dev)
    target = torch.randn(b, cfg.out_channels, n_lat, h, w, device=dev)
    t = torch.rand(b, device=dev) * 1000
    duration = args.frames / 25.0
    spans = [(i * duration / args.phases, (i + 1) * duration / args.phases) for i in range(args.phases)]
    fmap = frame_phase_map(spans, n_lat, 25.0).expand(b, -1, -1).to(dev)
    base = min(120, cfg.text_len // 2)  # a typical base caption, then 24-token phases (fewer on tiny models)
    per_phase = min(24, (cfg.text_len - base) // args.phases)
    real = base + per_phase * args.phases
    ids = block_ids_from_lengths([base] + [per_phase] * args.phases, cfg.text_len).expand(b, -1).to(dev)
    text = torch.randn(b, cfg.text_len, cfg.text_dim, device=dev)
    kw = dict(block_ids=ids, frame_phases=fmap)
    if cfg.audio is not None:
        n_feat = int(duration * 50)
        index, mask = batch_audio_windows(n_lat, [25.0] * b, [n_feat] * b)
        kw.update(audio=torch.randn(b, n_feat, cfg.audio.audio_dim, device=dev), audio_index=index.to(dev), audio_mask=mask.to(dev))

    def step() -> float:
        out = model(x, t, text, **kw)
        loss = (out.float() - target).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    sec = (time.perf_counter() - start) / args.steps

    pt, ph, pw = cfg.patch_size
    tokens = n_lat // pt * (h // ph) * (w // pw)  # per sample
    params = sum(p.numel() for p in build_model(cfg, device="meta").parameters())
    flops = b * (6 * params * tokens + 12 * cfg.num_layers * cfg.dim * (tokens * tokens + tokens * real))
    tflops = flops / sec / 1e12
    if info.is_main:
        name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
        memory = f", peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""
        print(f"# FSDP2 step - {args.flavor} ({params / 1e9:.2f} B params), {info.world_size} rank(s) on {name}, "
              f"torch {torch.__version__}, {'bf16' if cuda else 'fp32'}, AC {'off' if args.no_checkpointing else 'on'}")
        print(f"{args.frames}x{args.height}x{args.width}, batch {b}/rank, {tokens} tokens/sample: {sec:.3f} s/step, "
              f"{b * tokens / sec:,.0f} tokens/s/rank, {tflops:.1f} TFLOP/s/rank"
              + (f", MFU {tflops / args.peak_tflops:.1%} of {args.peak_tflops:g}" if cuda else "") + memory)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
