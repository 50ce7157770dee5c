"""Tiny random-weight models with the real architectures, for tests and `actavatar models tiny`.

Pure builders: they return modules (and the tokenizer) and never touch files. Sizes pair with the
`debug` flavour: UMT5 width 32 = text_dim, wav2vec2 width 32 = audio_dim, VAE z 4 = in_channels.
transformers / diffusers / tokenizers are imported inside the functions (optional extras).
"""

from __future__ import annotations

import torch

from model.dit import VideoDiT
from model.registry import FLAVORS, build_model, plain_wan_config

_CORPUS = (
    "A woman in a grey blazer talks to the camera in an office.",
    "raises her right hand",
    "nods while smiling",
    "A man with glasses speaks in a studio and gestures with both hands.",
    "turns his head to the left, then looks back at the camera",
)


def tiny_dit(seed: int = 0) -> VideoDiT:
    """The `debug` flavour with Wan initialisation (`build_model` applies it)."""
    torch.manual_seed(seed)
    return build_model(FLAVORS["debug"]())


def tiny_diffusers_wan(seed: int = 0):
    """A diffusers `WanTransformer3DModel` with the debug backbone (random weights, non-zero head)."""
    from diffusers import WanTransformer3DModel

    from model.wan_import import diffusers_config

    torch.manual_seed(seed)
    return WanTransformer3DModel(**diffusers_config(plain_wan_config(FLAVORS["debug"]())))


def tiny_vae(seed: int = 0, z_dim: int = 4):
    """A diffusers `AutoencoderKLWan` with Wan2.1's 4x8x8 compression and a few channels."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=z_dim,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )


def tiny_tokenizer():
    """A byte-level BPE tokenizer (any text encodes) with T5's specials: <pad>=0, </s>=1, <unk>=2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    # T5 appends </s> to every sequence
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def tiny_vae22(seed: int = 0, z_dim: int = 48):
    """A diffusers `AutoencoderKLWan` of Wan2.2's (TI2V-5B) kind: residual, 2x2 patchified input,
    4x16x16 compression, 48 latent channels; a few feature channels."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=8, decoder_base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1, attn_scales=[],
        temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12, patch_size=2,
        scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim,
    )


def tiny_ti2v_dit(seed: int = 0, z_dim: int = 48) -> VideoDiT:
    """The debug DiT as Wan2.2-TI2V-5B: 48-channel latents in and out, a 4x16x16 VAE."""
    import dataclasses

    torch.manual_seed(seed)
    return build_model(dataclasses.replace(FLAVORS["debug"](), in_channels=z_dim, out_channels=z_dim, vae_stride=(4, 16, 16)))


def tiny_umt5(seed: int = 0, d_model: int = 32):
    """(tokenizer, transformers `UMT5EncoderModel`) with width `d_model`."""
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return tokenizer, UMT5EncoderModel(config).eval()


def tiny_wav2vec2(seed: int = 0, hidden: int = 32):
    """(feature extractor, transformers `Wav2Vec2Model`) at 16 kHz -> 50 Hz, width `hidden`."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=32,
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    return extractor, Wav2Vec2Model(config).eval()


def tiny_clip_vision(seed: int = 0, hidden: int = 32, image_size: int = 32):
    """(CLIPImageProcessor, transformers `CLIPVisionModel`): 8 px patches, so (image_size / 8)^2 + 1
    tokens of width `hidden` (Wan2.1 I2V's CLIP ViT-H/14 at 224 px: 257 x 1280)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=8, projection_dim=hidden)
    processor = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    return processor, CLIPVisionModel(config).eval()


def tiny_i2v_dit(seed: int = 0, z_dim: int = 4, image_dim: int = 32) -> VideoDiT:
    """The debug DiT as a Wan2.1-I2V model: [noisy | mask (4) | condition] input channels, CLIP image
    tokens through added key/value projections."""
    import dataclasses

    torch.manual_seed(seed)
    return build_model(dataclasses.replace(FLAVORS["debug"](), in_channels=2 * z_dim + 4, image_dim=image_dim))
