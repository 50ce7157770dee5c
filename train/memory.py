"""Per-GPU memory of a training run, estimated from parameter and activation counts (no GPU needed).

    python -m train.memory --flavor wan2.1-i2v-14b --lora-rank 32 --gpus 8 --frames 81 --height 480 --width 832

Counts the DiT's parameters on the meta device (with LoRA adapters when asked) and adds, per GPU:
  frozen weights     fp32, sharded by FSDP2 over the GPUs                        4 B x frozen / gpus
  trainable state    fp32 weight + fp32 grad + AdamW m, v + EMA, sharded          20 B x trainable / gpus
  gathered units     bf16 copies of the two largest FSDP units (current + prefetch)
  activations        with activation checkpointing: every block's bf16 input kept
                     (layers x tokens x dim x 2 B) + one block recomputed in the backward
                     (about tokens x (14 dim + 3 ffn) x 2 B: q, k, v, attention out, norms, FFN)
  encoders           media shards only: UMT5-XXL encoder, Wan VAE, wav2vec2 (+ CLIP ViT-H for I2V)
                     in bf16, from their published parameter counts; cached latents need none
Estimates, not measurements: allocator fragmentation, NCCL buffers and the CUDA context (about
1-3 GB) come on top. `bench/gpu_check.sh` measures the 1.3B flavour when a GPU is lent.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from dataset.errors import UserError

GB = 1024**3
# encoder-only parameter counts (published model cards): UMT5-XXL encoder, Wan2.1 VAE (127 M; Wan2.2's
# 16x VAE is of the same order), wav2vec2-base, CLIP ViT-H/14 vision tower
ENCODER_PARAMS = {"umt5-xxl": 5.7e9, "wan-vae": 0.13e9, "wav2vec2-base": 0.095e9, "clip-vit-h-14": 0.63e9}


@dataclasses.dataclass(frozen=True, slots=True)
class Estimate:
    params: int
    trainable: int
    rows: dict[str, float]  # GB per GPU

    @property
    def total(self) -> float:
        return sum(self.rows.values())


def estimate(flavor: str, *, gpus: int, frames: int, height: int, width: int, batch: int = 1, lora_rank: int = 0,
             trainable: str = "full", media: bool = True) -> Estimate:
    """The per-GPU estimate for training `flavor` (see the module docstring for each row)."""
    from model.registry import FLAVORS, build_model
    from train.lora import LoraConfig, add_lora, is_lora_parameter

    if flavor not in FLAVORS:
        raise UserError(f"flavor must be one of {sorted(FLAVORS)}, got {flavor!r}")
    if gpus < 1 or batch < 1:
        raise UserError(f"gpus and batch must be >= 1, got {gpus}, {batch}")
    cfg = FLAVORS[flavor]()
    model = build_model(cfg, device="meta")
    new_parts = model.new_parameter_prefixes()
    if lora_rank:
        add_lora(model, LoraConfig(rank=lora_rank))
    params = trainable_count = 0
    for name, p in model.named_parameters():
        params += p.numel()
        if lora_rank:
            train = is_lora_parameter(name) or name.startswith(new_parts)
        else:
            train = trainable == "full" or name.startswith(new_parts)
        trainable_count += p.numel() if train else 0
    unit = max(sum(p.numel() for p in block.parameters()) for block in model.blocks)
    t, s = cfg.vae_stride[0], cfg.vae_stride[1]
    pt, ph, pw = cfg.patch_size
    tokens = ((frames - 1) // t + 1) // pt * (height // s // ph) * (width // s // pw)
    rows = {
        "frozen weights (fp32, sharded)": 4 * (params - trainable_count) / gpus / GB,
        "trainable: weight, grad, AdamW, EMA (fp32, sharded)": 20 * trainable_count / gpus / GB,
        "gathered bf16 units (2 blocks)": 2 * 2 * unit / GB,
        "activations (checkpointed block inputs)": batch * cfg.num_layers * tokens * cfg.dim * 2 / GB,
        "activations (one block recomputed)": batch * tokens * (14 * cfg.dim + 3 * cfg.ffn_dim) * 2 / GB,
    }
    if media:
        encoders = ENCODER_PARAMS["umt5-xxl"] + ENCODER_PARAMS["wan-vae"] + ENCODER_PARAMS["wav2vec2-base"]
        if cfg.image_dim is not None:
            encoders += ENCODER_PARAMS["clip-vit-h-14"]
        rows["encoders (bf16, media shards)"] = 2 * encoders / GB
    return Estimate(params=params, trainable=trainable_count, rows=rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", required=True, help="a model.flavor (wan2.1-t2v-1.3b, wan2.1-i2v-14b, wan2.2-ti2v-5b, debug)")
    parser.add_argument("--gpus", type=int, default=8, help="FSDP2 ranks the state is sharded over")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--batch", type=int, default=1, help="samples per GPU")
    parser.add_argument("--lora-rank", type=int, default=0, help="LoRA rank (0 = full fine-tuning)")
    parser.add_argument("--trainable", choices=["full", "audio"], default="full", help="without LoRA: stage.trainable")
    parser.add_argument("--latents", action="store_true", help="cached latents: no encoders on the GPU")
    args = parser.parse_args(argv)
    est = estimate(args.flavor, gpus=args.gpus, frames=args.frames, height=args.height, width=args.width, batch=args.batch,
                   lora_rank=args.lora_rank, trainable=args.trainable, media=not args.latents)
    print(f"{args.flavor}: {est.params / 1e9:.2f} B parameters, {est.trainable / 1e9:.3f} B trainable"
          f"{f' (LoRA rank {args.lora_rank} + new ActAvatar parts)' if args.lora_rank else ''}; "
          f"{args.frames}x{args.height}x{args.width}, batch {args.batch}/GPU, {args.gpus} GPU(s)")
    for name, value in est.rows.items():
        print(f"  {name:<52} {value:7.1f} GB")
    print(f"  {'total per GPU (estimate; + 1-3 GB CUDA context, NCCL)':<52} {est.total:7.1f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
