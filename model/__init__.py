"""The ActAvatar model: a Wan-architecture video DiT with Phase-Aware Cross-Attention (PACA),
per-frame audio cross-attention and progressive audio-visual alignment, plus encoder wrappers.

Pure torch (no file I/O, no torch.distributed); loaders live in `train/pretrained.py`.

    registry.py         FLAVORS ("debug", "wan2.1-t2v-1.3b", "wan2.1-i2v-14b", "wan2.2-ti2v-5b"), build_model (Wan init)
    dit.py              DiTConfig, VideoDiT (patchify -> blocks -> head), fsdp_units()
    block.py            DiTBlock: self-attn, PACA text (+image) and audio cross-attn, FFN, adaLN
    attention.py        attention() dispatch, Attention module, self-attention processor, RoPE apply
    phase_attention.py  PhaseCrossAttention, PhaseKeys (per-frame key selection)
    audio_attention.py  AudioCrossAttention (per-frame windows, zero-init output)
    audio_windows.py    audio feature windows per latent frame, AudioProjector
    alignment.py        per-layer text/audio weights: linear, cosine, constant, learned
    phase_layout.py     annotation -> texts, latent-frame<->phase map, block ids, batch packing
    embeddings.py       timestep/text/image embeddings, 3D RoPE, FFN
    reference.py        Wan I2V / TI2V reference-image conditioning helpers
    resize.py           cover_crop: the one frame / reference-image resize + centre crop (training and sampling)
    guidance.py         unconditional_inputs: dropped text / audio for guidance (training dropout and sampling)
    text_encoder.py     UMT5 wrapper (base + phase blocks)
    audio_encoder.py    wav2vec2 wrapper (learned weighted sum of layers)
    vae.py              AutoencoderKLWan wrapper (normalised latents)
    wan_import.py       diffusers WanTransformer3DModel -> VideoDiT (config + state dict)
    tiny.py             tiny random-weight models with the real architectures
"""
