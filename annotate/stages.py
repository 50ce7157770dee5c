"""Ray Data row stages: each wraps one pipeline stage with the durable ledger.

A row is `{"uri", "source_id", "state"}` where `state` is a JSON string (kept as a string so
Ray's Arrow blocks never have to infer types for nested, ragged data). A stage whose ledger
record exists returns it instead of recomputing; a stage that fails for a source records the
failure, so the failure is not retried on resume either (the input is what it is).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from annotate.config import AnnotateConfig, config_hash
from annotate.ledger import Ledger
from annotate.probe import SourceError

log = logging.getLogger(__name__)


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - informational only
        return None


class _RowStage:
    """Shared mechanics: ledger lookup, error capture, state (de)serialisation."""

    name = ""
    # Stages that load something heavy once (a model) run as actor pools; the others as tasks.
    uses_actor = False

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        self.cfg, self.ledger = cfg, Ledger(out_dir)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        state = json.loads(row["state"])
        if state.get("error") is None:
            record = self.ledger.get(row["source_id"], self.name)
            if record is None:
                try:
                    record = {"ok": self.run(row["uri"], row["source_id"], state)}
                except SourceError as err:
                    record = {"error": {"stage": self.name, "status": err.status, "reason": err.reason, "detail": err.detail}}
                except Exception as err:  # noqa: BLE001 - one bad source must never stop the run
                    log.warning("%s: %s failed: %r", row["uri"], self.name, err)
                    record = {"error": {"stage": self.name, "status": "failed", "reason": f"{self.name}_error",
                                        "detail": f"{type(err).__name__}: {err}"}}
                record["node"] = _node_id()  # where it ran: `data status` and the cluster test read it
                self.ledger.put(row["source_id"], self.name, record)
            if "error" in record:
                state["error"] = record["error"]
            else:
                state[self.name] = record["ok"]
        return {**row, "state": json.dumps(state)}

    def run(self, uri: str, source_id: str, state: dict[str, Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def ray_options(cls, cfg: AnnotateConfig, cluster_gpus: float) -> dict[str, Any]:
        """Extra Ray resources for this stage's actors (e.g. `num_gpus`)."""
        return {}


class ProbeRowStage(_RowStage):
    name = "probe"

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        super().__init__(cfg, out_dir)
        from annotate.probe import ProbeStage

        self.stage = ProbeStage(cfg.probe)

    def run(self, uri, source_id, state):
        return self.stage(uri)


class AnalyseRowStage(_RowStage):
    name = "analyse"
    uses_actor = True

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        super().__init__(cfg, out_dir)
        from annotate.analyse import AnalyseStage

        self.stage = AnalyseStage(cfg.shots, cfg.face)

    def run(self, uri, source_id, state):
        return self.stage(uri, state["probe"])


class PlanRowStage(_RowStage):
    name = "plan"

    def run(self, uri, source_id, state):
        from annotate.plan import plan_source

        return plan_source(state["analyse"], self.cfg.shots, self.cfg.face)


class CutRowStage(_RowStage):
    name = "cut"
    uses_actor = True

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        super().__init__(cfg, out_dir)
        from annotate.cut import CutStage

        self.stage = CutStage(cfg.clip)
        self.hash = config_hash(cfg)

    def run(self, uri, source_id, state):
        from annotate.annotation import clip_annotation
        from annotate.sources import clip_key
        from dataset.annotation import dump_annotation
        from dataset.atomic import atomic_write_bytes

        folder = self.ledger.clip_dir(source_id)
        keys = []
        for clip, mp4, wav, face_box in self.stage(uri, state["probe"], state["plan"]):
            key = clip_key(source_id, clip["index"])
            doc = clip_annotation(key, uri, state["sha256"], clip, face_box, self.cfg, self.hash)
            atomic_write_bytes(folder / f"{key}.mp4", mp4)
            atomic_write_bytes(folder / f"{key}.wav", wav)
            atomic_write_bytes(folder / f"{key}.json", dump_annotation(doc))
            keys.append(key)
        return keys


class SyncRowStage(_RowStage):
    """Measures every cut clip's audio-video offset (`annotate.av_sync`); a clip realigned by the
    filter gets `KEY.synced.wav` / `KEY.synced.mp4` beside the cut files (those stay as cut, so a
    rerun measures the same input), and later stages read the synced pair."""

    name = "sync"
    uses_actor = True

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        super().__init__(cfg, out_dir)
        self._stage = None

    def run(self, uri, source_id, state):
        from dataset.annotation import parse_annotation
        from dataset.atomic import atomic_write_bytes
        from dataset.media import decode_mp4, decode_wav, encode_wav, replace_audio

        if self._stage is None:
            from annotate.av_sync import AvSyncStage

            self._stage = AvSyncStage(self.cfg.sync, self.cfg.face.model_path)
        folder, clips = self.ledger.clip_dir(source_id), {}
        for key in state["cut"]:
            try:
                mp4 = (folder / f"{key}.mp4").read_bytes()
                audio, _ = decode_wav((folder / f"{key}.wav").read_bytes())
                face = parse_annotation((folder / f"{key}.json").read_bytes()).get("face") or {}
                verdict = self._stage.check(decode_mp4(mp4), audio.reshape(-1), face.get("bbox"))
            except Exception as err:  # noqa: BLE001 - one bad clip must not stop its source
                log.warning("%s: AV sync failed: %r", key, err)
                verdict = {"status": "failed", "reason": "sync_error", "detail": f"{type(err).__name__}: {err}",
                           "offset_frames": None, "confidence": None, "method": self._stage.method,
                           "shifted_frames": 0, "audio": None}
            realigned = verdict.pop("audio")
            if realigned is not None:
                atomic_write_bytes(folder / f"{key}.synced.wav", encode_wav(realigned))
                atomic_write_bytes(folder / f"{key}.synced.mp4", replace_audio(mp4, realigned))
            clips[key] = verdict
        return {"clips": clips}


def sync_verdict(state: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The sync stage's verdict for a clip (None when the stage did not run)."""
    return ((state.get("sync") or {}).get("clips") or {}).get(key)


def synced_keys(state: dict[str, Any]) -> list[str]:
    """The cut clips that the sync stage kept (all of them when it did not run)."""
    return [key for key in state["cut"] if (sync_verdict(state, key) or {"status": "ok"})["status"] == "ok"]


class AsrRowStage(_RowStage):
    """Transcribes every cut clip of a source; the ledger record holds each clip's verdict and
    transcript (the cut stage's files stay as they are; `pack` merges the two)."""

    name = "asr"
    uses_actor = True

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        super().__init__(cfg, out_dir)
        self._stage = None  # loaded on first use: a resumed run whose sources all passed ASR loads nothing

    @classmethod
    def ray_options(cls, cfg: AnnotateConfig, cluster_gpus: float) -> dict[str, Any]:
        gpus = cfg.asr.num_gpus if cfg.asr.num_gpus >= 0 else (1.0 if cluster_gpus > 0 and cfg.asr.device != "cpu" else 0.0)
        return {"num_gpus": gpus} if gpus > 0 else {}

    def run(self, uri, source_id, state):
        if self._stage is None:
            from annotate.asr import AsrStage

            self._stage = AsrStage(self.cfg.asr)
        keys = synced_keys(state)
        out = self._stage({"key": keys, "wav": [str(clip_files(self.ledger.root.parent, source_id, key, state)["wav"])
                                                for key in keys]})
        fields = ("status", "reason", "detail", "speech_ratio", "language", "num_words", "transcript")
        clips = {key: {name: out[name][i] for name in fields} for i, key in enumerate(out["key"])}
        return {"clips": clips, "models": asr_models_provenance(self.cfg)}


def asr_models_provenance(cfg: AnnotateConfig) -> dict[str, str]:
    """`provenance.models` entries of the ASR stage: the configured ids or directories."""
    models = {"asr": cfg.asr.model, "vad": "whisperx/pyannote-segmentation"}
    language = cfg.asr.language
    if cfg.asr.align == "whisper":
        models["aligner"] = "whisper-cross-attention"  # faster-whisper word_timestamps
    elif language and cfg.asr.align_models.get(language):
        models["aligner"] = cfg.asr.align_models[language]
    return models


class CaptionRowStage(_RowStage):
    """Captions every clip of a source that the ASR stage kept (`annotate.caption.CaptionStage`);
    the ledger record holds each clip's verdict, caption, repairs and raw model outputs."""

    name = "caption"
    uses_actor = True

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        super().__init__(cfg, out_dir)
        self._stage = None  # loaded on first use, as in the ASR stage

    @classmethod
    def ray_options(cls, cfg: AnnotateConfig, cluster_gpus: float) -> dict[str, Any]:
        caption = cfg.caption
        if caption.backend != "local":
            return {}
        gpus = caption.num_gpus if caption.num_gpus >= 0 else (1.0 if cluster_gpus > 0 and caption.vlm.device != "cpu" else 0.0)
        return {"num_gpus": gpus} if gpus > 0 else {}

    def run(self, uri, source_id, state):
        from annotate.annotation import with_asr
        from dataset.annotation import parse_annotation

        asr = state["asr"]
        keys = [key for key in synced_keys(state) if asr["clips"][key]["status"] == "ok"]
        if keys and self._stage is None:
            from annotate.caption import CaptionStage

            self._stage = CaptionStage(self.cfg.caption)
        folder = self.ledger.clip_dir(source_id)
        docs = [with_asr(parse_annotation((folder / f"{key}.json").read_bytes()), asr["clips"][key], asr["models"])
                for key in keys]
        mp4s = [str(clip_files(self.ledger.root.parent, source_id, key, state)["mp4"]) for key in keys]
        out = self._stage({"key": keys, "mp4": mp4s, "annotation": docs}) if keys else {}
        fields = ("status", "reason", "detail", "caption", "repairs", "attempts")
        clips = {key: {name: out[name][i] for name in fields} for i, key in enumerate(out.get("key", []))}
        return {"clips": clips, "provenance": self._stage.provenance if keys else None}


ROW_STAGES = (ProbeRowStage, AnalyseRowStage, PlanRowStage, CutRowStage, SyncRowStage, AsrRowStage, CaptionRowStage)


def row_stages(cfg: AnnotateConfig) -> tuple[type[_RowStage], ...]:
    """The stages of a run: the caption stage only with a VLM backend (truth captions are exact
    and applied while packing), the sync stage only when `sync.enabled`."""
    vlm = cfg.caption.backend in ("local", "server")
    return tuple(stage for stage in ROW_STAGES
                 if (vlm or stage is not CaptionRowStage) and (cfg.sync.enabled or stage is not SyncRowStage))


def initial_row(uri: str, source_id: str, sha256: str) -> dict[str, Any]:
    return {"uri": uri, "source_id": source_id, "state": json.dumps({"sha256": sha256, "error": None})}


def clip_files(out_dir: str | Path, source_id: str, key: str, state: dict[str, Any] | None = None) -> dict[str, Path]:
    """A clip's annotation, mp4 and wav; the realigned pair when the sync stage shifted its audio."""
    folder = Ledger(out_dir).clip_dir(source_id)
    shifted = bool(state and (sync_verdict(state, key) or {}).get("shifted_frames"))
    media = f"{key}.synced" if shifted else key
    return {"json": folder / f"{key}.json", "mp4": folder / f"{media}.mp4", "wav": folder / f"{media}.wav"}
