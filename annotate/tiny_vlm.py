"""A tiny random-weight Qwen2.5-VL with a locally built tokenizer and processor (tests, `make demo`).

    build_tiny_vlm(DIR/vlm)   Qwen2_5_VLForConditionalGeneration (2 text + 2 vision layers) and a
                              Qwen2_5_VLProcessor: byte-level BPE tokenizer with Qwen's special
                              tokens and chat template, Qwen2VL image and video processors

It loads like a real checkpoint (`AutoProcessor` / `AutoModelForImageTextToText.from_pretrained`)
and goes through the same chat template, vision tower and generation code; its outputs are
nonsense. The text tokens are short letter groups (some with a leading space) besides the 256
bytes, so that random captions read as word-like text. Builds offline in about a second.
"""

from __future__ import annotations

import itertools
import string
from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")
TEXT_TOKENS = 2048  # bytes + letter groups; the specials follow

# Qwen2-VL / Qwen2.5-VL's own chat template (from the released tokenizer_config.json).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer():
    """Qwen2TokenizerFast over a byte-level BPE: 256 bytes, letter groups, Qwen's special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2TokenizerFast

    vocab: dict[str, int] = {}
    for token in sorted(ByteLevel.alphabet(), key=lambda c: (len(c), ord(c))):
        vocab[token] = len(vocab)
    groups = ("".join(p) for n in (2, 3) for p in itertools.product(string.ascii_lowercase, repeat=n))
    for group in groups:
        for token in ("Ġ" + group, group):
            if len(vocab) < TEXT_TOKENS:
                vocab[token] = len(vocab)
        if len(vocab) >= TEXT_TOKENS:
            break
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return Qwen2TokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None, chat_template=CHAT_TEMPLATE)


def build_tiny_vlm(out: str | Path, seed: int = 0, hidden: int = 64) -> Path:
    """Write a random tiny Qwen2.5-VL checkpoint + processor into `out`; returns `out`."""
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads = 4
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "tie_word_embeddings": True,
            # M-RoPE: temporal/height/width sections sum to head_dim / 2.
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id = ids["<|im_end|>"], ids["<|endoftext|>"]
    # Small frames: a 112x112 image is 8x8 patches -> 16 tokens after the 2x2 merge.
    pixels = dict(min_pixels=28 * 28, max_pixels=224 * 224)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels), chat_template=CHAT_TEMPLATE,
    )
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
