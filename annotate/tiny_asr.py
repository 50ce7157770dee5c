"""Tiny random-weight ASR models with the real architectures, built offline (tests, `make demo`).

    build_tiny_whisper(DIR/whisper)   Whisper -> CTranslate2 (model.bin, vocabulary.json, config.json)
                                      + tokenizer.json + preprocessor_config.json (faster-whisper)
    build_tiny_aligner(DIR/aligner)   Wav2Vec2ForCTC + Wav2Vec2Processor, character vocabulary
    build_punkt(DIR/nltk_data)        NLTK `tokenizers/punkt_tab/english`, trained here with
                                      PunktTrainer (whisperx's `align` needs it; never downloaded)

The Whisper token layout is the multilingual one (50257 byte-level text tokens, then the special
tokens with 99 language tokens, then 1501 timestamps = 51865): CTranslate2 derives the language
count from it, and faster-whisper finds every special token by name. The text
tokens are short letter groups (some with a leading space) so that random output decodes to
word-like text the character aligner can work on. Outputs are nonsense; the code paths are real.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import string
import tempfile
from pathlib import Path

WHISPER_TEXT_TOKENS = 50257
# Whisper v2's 99 language tokens, in token order (large-v3 appends "yue").
WHISPER_LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg "
    "lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so "
    "af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su"
).split()
_PUNKT_TEXT = (
    "Dr. Smith went to Washington on Monday. He met Mrs. Jones at 10 a.m. and they talked for an hour. "
    "The weather was fine. Mr. Brown arrived late, e.g. after the lunch break. It was the U.S. office. "
    "She said hello. They nodded and smiled. Then everyone left the room. The end is near. "
)


def asr_extra_installed() -> bool:
    """Whether the libraries the ASR models need (whisperx's stack) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("ctranslate2", "faster_whisper", "nltk"))


def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (what ByteLevel pre-tokenizers produce)."""
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet(), key=lambda c: (len(c), ord(c)))


def _whisper_tokenizer():
    """A byte-level BPE `tokenizers.Tokenizer` with Whisper's special-token layout."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab: dict[str, int] = {}
    for token in _byte_alphabet():
        vocab[token] = len(vocab)
    letters = string.ascii_lowercase
    groups = ("".join(p) for n in (2, 3, 4) for p in itertools.product(letters, repeat=n))
    for group in groups:  # alternate " xy" / "xy": random text gets words of a few letters
        for token in ("Ġ" + group, group):
            if len(vocab) < WHISPER_TEXT_TOKENS - 1:
                vocab[token] = len(vocab)
        if len(vocab) >= WHISPER_TEXT_TOKENS - 1:
            break
    # CTranslate2 (4.8) calls a Whisper model multilingual when its vocabulary has the empty
    # token, as the multilingual Whisper vocabularies do.
    vocab[""] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in WHISPER_LANGUAGES),
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                "<|notimestamps|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def build_tiny_whisper(out: str | Path, seed: int = 0, d_model: int = 64) -> Path:
    """Random Whisper (2+2 layers, width `d_model`, 80 mels) converted to CTranslate2 in `out`."""
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    tok = _whisper_tokenizer()
    eot = tok.token_to_id("<|endoftext|>")
    num_tokens = tok.get_vocab_size() + 1501  # + timestamp tokens <|0.00|> ... <|30.00|>
    config = WhisperConfig(
        vocab_size=num_tokens, num_mel_bins=80, d_model=d_model, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_source_positions=1500, max_target_positions=448,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=tok.token_to_id("<|startoftranscript|>"),
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    gen = model.generation_config
    gen.suppress_tokens, gen.begin_suppress_tokens = [], [tok.token_to_id("Ġ"), eot]
    gen.alignment_heads = [[1, 0], [1, 1]]

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model.save_pretrained(hf_dir)
        # The converter reads the language token ids from the special tokens (Whisper's own
        # tokenizers list them the same way); `generation_config.lang_to_id` does not survive
        # a save/load round trip in transformers 4.57.
        specials = [t for t in tok.get_vocab() if t.startswith("<|") and t != "<|endoftext|>"]
        PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                additional_special_tokens=sorted(specials, key=tok.token_to_id)).save_pretrained(hf_dir)
        WhisperFeatureExtractor(feature_size=80).save_pretrained(hf_dir)
        tok.save(str(hf_dir / "tokenizer.json"))  # the raw tokenizers file faster-whisper reads
        if out.exists():
            shutil.rmtree(out)
        TransformersConverter(str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
            str(out), quantization=None, force=True)
    return out


ALIGNER_CHARS = "|" + string.ascii_lowercase + "'"


def build_tiny_aligner(out: str | Path, seed: int = 0, hidden: int = 32) -> Path:
    """Random `Wav2Vec2ForCTC` (16 kHz -> 50 Hz) with a lowercase character vocabulary in `out`."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for char in ALIGNER_CHARS:
        vocab[char] = len(vocab)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(vocab))
        tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token="|", do_lower_case=False)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=False)
    config = Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        vocab_size=len(vocab), pad_token_id=0,
    )
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).eval().save_pretrained(out)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    return out


def build_punkt(nltk_data: str | Path, language: str = "english") -> Path:
    """Train Punkt parameters on a bundled paragraph; write `<nltk_data>/tokenizers/punkt_tab/<language>`.

    NLTK only writes inside its data roots (its path sandbox), so the root is put on
    `nltk.data.path` for the duration of the save.
    """
    import nltk
    from nltk.tokenize.punkt import PunktTrainer, save_punkt_params

    root = Path(nltk_data).resolve()
    target = root / "tokenizers" / "punkt_tab" / language
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    trainer = PunktTrainer()
    trainer.train(_PUNKT_TEXT * 8, finalize=True)
    nltk.data.path.insert(0, str(root))
    try:
        save_punkt_params(trainer.get_params(), dir=str(target))
    finally:
        nltk.data.path.remove(str(root))
    return target
