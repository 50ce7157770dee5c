"""Ray Data stages: each wraps one pipeline stage with the durable ledger.

Source stages (probe, analyse, plan, cut) map rows `{"uri", "source_id", "group", "state"}`, where
`state` is a JSON string (kept as a string so Ray's Arrow blocks never have to infer types for
nested, ragged data). After the cut, `clip_rows` turns each source into one row per cut clip
`{"uri", "source_id", "group", "key", "rows", "clip"}` (`rows`: how many rows the source became;
a source with no clip, or one that failed, becomes one row with key ""), and the clip stages
(sync, asr, caption) run on batches of clips from any sources (`map_batches`), so one long video
no longer serialises a model stage.

A stage whose ledger record exists returns it instead of recomputing; a stage that fails records
the failure, so it is not retried on resume either (the input is what it is).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from annotate.config import AnnotateConfig, config_hash
from annotate.ledger import CLIP_STAGES, Ledger
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
        self.clips = self.ledger.store  # clip files live under the ledger

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
                if "error" in record:
                    self.ledger.drop(row["source_id"], self.name)
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
        self.pose = None
        if cfg.pose.enabled:  # keypoints of each clip as it is cut (`annotate.pose`): no extra decode pass or actor
            from annotate.pose import PoseEstimator

            self.pose = PoseEstimator(cfg.pose_backend, cfg.face.model_path or None, cfg.pose.model_path or None,
                                      cfg.face.landmark_bundle or None, cfg.pose.hand_model_path or None, cfg.pose.hands)

    def run(self, uri, source_id, state):
        from annotate.annotation import clip_annotation, with_pose
        from annotate.sources import clip_key
        from dataset.annotation import dump_annotation

        keys = []
        for clip, mp4, wav, face_box in self.stage(uri, state["probe"], state["plan"]):
            key = clip_key(source_id, clip["index"])
            doc = clip_annotation(key, uri, state["sha256"], clip, face_box, self.cfg, self.hash)
            self.clips.write_bytes(self.ledger.clip_file(source_id, f"{key}.mp4"), mp4)
            self.clips.write_bytes(self.ledger.clip_file(source_id, f"{key}.wav"), wav)
            if self.pose is not None:
                doc = with_pose(doc, self.keypoints(source_id, key, mp4, doc))
            self.clips.write_bytes(self.ledger.clip_file(source_id, f"{key}.json"), dump_annotation(doc))
            keys.append(key)
        return keys

    def keypoints(self, source_id: str, key: str, mp4: bytes, doc: dict[str, Any]) -> dict[str, Any]:
        """Write `KEY.pose.npy` beside the clip; the verdict `with_pose` reads. A clip whose keypoints
        cannot be measured is kept without them (the failure is logged, never fatal)."""
        from dataset.media import decode_mp4
        from dataset.pose import encode_pose, motion_intensity

        try:
            # measured on the clip as stored (decoded back from its mp4), so the keypoints index exactly
            # the frames a reader of the shard gets; a small clip decodes in a fraction of its encode
            pose = self.pose(decode_mp4(mp4), (doc.get("face") or {}).get("bbox"), float(doc["video"]["fps"]))
            self.clips.write_bytes(self.ledger.clip_file(source_id, f"{key}.pose.npy"), encode_pose(pose))
            video = doc["video"]
            return {"status": "ok", "method": self.pose.method,
                    "motion": motion_intensity(pose, video["fps"], video["width"] / video["height"])}
        except Exception as err:  # noqa: BLE001 - one clip's keypoints must not fail its source
            log.warning("%s: keypoints failed: %r", key, err)
            return {"status": "failed", "reason": "pose_error", "detail": f"{type(err).__name__}: {err}"}


SOURCE_ROW_STAGES = (ProbeRowStage, AnalyseRowStage, PlanRowStage, CutRowStage)


def clip_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A cut source as one row per clip (or one row with key "" when it has none or failed)."""
    state = json.loads(row["state"])
    base = {"uri": row["uri"], "source_id": row["source_id"], "group": row["group"]}
    keys = [] if state.get("error") else state["cut"]
    if not keys:
        return [{**base, "key": "", "rows": 1, "clip": "{}"}]
    return [{**base, "key": key, "rows": len(keys), "clip": "{}"} for key in keys]


class _ClipStage:
    """Shared mechanics of the clip stages: ledger lookup per clip, then one batched call on the
    clips without a record. A clip that an earlier clip stage did not keep passes through."""

    name = ""
    uses_actor = True

    def __init__(self, cfg: AnnotateConfig, out_dir: str) -> None:
        self.cfg, self.ledger = cfg, Ledger(out_dir)
        self.clips = self.ledger.store
        self._stage = None  # loaded on first use: a resumed run whose clips all have records loads nothing

    def wanted(self, clip: dict[str, Any]) -> bool:
        """Does this stage run on a clip, given the earlier clip stages' results?"""
        return all((clip.get(stage) or {"status": "ok"})["status"] == "ok" for stage in CLIP_STAGES)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        # numpy scalars (Ray's default batch format) back to plain Python values
        rows = [{name: getattr(v, "item", lambda v=v: v)() for name, v in zip(batch, values)} for values in zip(*batch.values())]
        states = [json.loads(row["clip"]) for row in rows]
        pending = []
        for row, clip in zip(rows, states):
            if not row["key"] or not self.wanted(clip):
                continue
            record = self.ledger.get_clip(row["source_id"], self.name, row["key"])
            if record is None:
                pending.append((row, clip))
            else:
                clip[self.name] = record["result"]
        if pending:
            try:
                results = self.run([row for row, _ in pending], [clip for _, clip in pending])
            except Exception as err:  # noqa: BLE001 - a batch that fails as a whole fails each of its clips
                log.warning("%s batch of %d clips failed: %r", self.name, len(pending), err)
                results = [self.failure(f"{type(err).__name__}: {err}") for _ in pending]
            node = _node_id()
            for (row, clip), result in zip(pending, results):
                self.ledger.put_clip(row["source_id"], self.name, row["key"], {"result": result, "node": node})
                clip[self.name] = result
        for row, clip in zip(rows, states):
            row["clip"] = json.dumps(clip)
        return {name: [row[name] for row in rows] for name in batch}

    def failure(self, detail: str) -> dict[str, Any]:
        return {"status": "failed", "reason": f"{self.name}_error", "detail": detail}

    def run(self, rows: list[dict[str, Any]], clips: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def media(self, row: dict[str, Any], clip: dict[str, Any], ext: str) -> str:
        return clip_media(self.ledger, row["source_id"], row["key"], clip.get("sync"))[ext]

    @classmethod
    def ray_options(cls, cfg: AnnotateConfig, cluster_gpus: float) -> dict[str, Any]:
        return {}

    @classmethod
    def batch_size(cls, cfg: AnnotateConfig) -> int:
        return 8


class SyncClipStage(_ClipStage):
    """Measures every cut clip's audio-video offset (`annotate.av_sync`); a clip realigned by the
    filter gets `KEY.synced.wav` / `KEY.synced.mp4` beside the cut files (those stay as cut, so a
    rerun measures the same input), and later stages read the synced pair."""

    name = "sync"

    def run(self, rows, clips):
        from dataset.annotation import parse_annotation
        from dataset.media import decode_mp4, decode_wav, encode_wav, replace_audio

        if self._stage is None:
            from annotate.av_sync import AvSyncStage

            self._stage = AvSyncStage(self.cfg.sync, self.cfg.face.model_path)
        results = []
        for row in rows:
            source_id, key = row["source_id"], row["key"]
            try:
                mp4 = self.clips.read_bytes(self.ledger.clip_file(source_id, f"{key}.mp4"))
                audio, _ = decode_wav(self.clips.read_bytes(self.ledger.clip_file(source_id, f"{key}.wav")))
                face = parse_annotation(self.clips.read_bytes(self.ledger.clip_file(source_id, f"{key}.json"))).get("face") or {}
                verdict = self._stage.check(decode_mp4(mp4), audio.reshape(-1), face.get("bbox"))
            except Exception as err:  # noqa: BLE001 - one bad clip must not stop the others
                log.warning("%s: AV sync failed: %r", key, err)
                verdict = {"status": "failed", "reason": "sync_error", "detail": f"{type(err).__name__}: {err}",
                           "offset_frames": None, "confidence": None, "method": self._stage.method,
                           "shifted_frames": 0, "audio": None}
            realigned = verdict.pop("audio")
            if realigned is not None:
                self.clips.write_bytes(self.ledger.clip_file(source_id, f"{key}.synced.wav"), encode_wav(realigned))
                self.clips.write_bytes(self.ledger.clip_file(source_id, f"{key}.synced.mp4"), replace_audio(mp4, realigned))
            results.append(verdict)
        return results

    def failure(self, detail: str) -> dict[str, Any]:
        return {"status": "failed", "reason": "sync_error", "detail": detail, "offset_frames": None,
                "confidence": None, "method": self.cfg.sync.resolved_method, "shifted_frames": 0}


ASR_FIELDS = ("status", "reason", "detail", "speech_ratio", "language", "num_words", "transcript")


class AsrClipStage(_ClipStage):
    """Transcribes clips (whisperx / faster-whisper, `annotate.asr.AsrStage`) in batches of
    `asr.batch_size` clips from any sources; each clip's verdict and transcript is its record."""

    name = "asr"

    @classmethod
    def ray_options(cls, cfg: AnnotateConfig, cluster_gpus: float) -> dict[str, Any]:
        gpus = cfg.asr.num_gpus if cfg.asr.num_gpus >= 0 else (1.0 if cluster_gpus > 0 and cfg.asr.device != "cpu" else 0.0)
        return {"num_gpus": gpus} if gpus > 0 else {}

    @classmethod
    def batch_size(cls, cfg: AnnotateConfig) -> int:
        return cfg.asr.clip_batch

    def run(self, rows, clips):
        if self._stage is None:
            from annotate.asr import AsrStage

            self._stage = AsrStage(self.cfg.asr)
        wavs = [self.clips.read_bytes(self.media(row, clip, "wav")) for row, clip in zip(rows, clips)]
        out = self._stage({"key": [row["key"] for row in rows], "wav": wavs})
        return [{name: out[name][i] for name in ASR_FIELDS} for i in range(len(rows))]

    def failure(self, detail: str) -> dict[str, Any]:
        return {"status": "failed", "reason": "asr_error", "detail": detail, "speech_ratio": None,
                "language": None, "num_words": None, "transcript": None}


def asr_models_provenance(cfg: AnnotateConfig) -> dict[str, str]:
    """`provenance.models` entries of the ASR stage: the configured ids or directories."""
    models = {"asr": cfg.asr.model, "vad": "whisperx/pyannote-segmentation"}
    language = cfg.asr.language
    if cfg.asr.align == "whisper":
        models["aligner"] = "whisper-cross-attention"  # faster-whisper word_timestamps
    elif language and cfg.asr.align_models.get(language):
        models["aligner"] = cfg.asr.align_models[language]
    return models


CAPTION_FIELDS = ("status", "reason", "detail", "caption", "repairs", "attempts")


class CaptionClipStage(_ClipStage):
    """Captions the clips the ASR stage kept (`annotate.caption.CaptionStage`), batched across
    sources; each clip's record holds its verdict, caption, repairs, raw model outputs and the
    captioner's provenance."""

    name = "caption"

    @classmethod
    def ray_options(cls, cfg: AnnotateConfig, cluster_gpus: float) -> dict[str, Any]:
        caption = cfg.caption
        if caption.backend != "local":
            return {}
        gpus = caption.num_gpus if caption.num_gpus >= 0 else (1.0 if cluster_gpus > 0 and caption.vlm.device != "cpu" else 0.0)
        return {"num_gpus": gpus} if gpus > 0 else {}

    @classmethod
    def batch_size(cls, cfg: AnnotateConfig) -> int:
        return cfg.caption.clip_batch

    def run(self, rows, clips):
        import contextlib

        from annotate.annotation import with_asr
        from dataset.annotation import parse_annotation

        if self._stage is None:
            from annotate.caption import CaptionStage

            self._stage = CaptionStage(self.cfg.caption)
        models = asr_models_provenance(self.cfg)
        docs = [with_asr(parse_annotation(self.clips.read_bytes(self.ledger.clip_file(row["source_id"], f"{row['key']}.json"))),
                         clip["asr"], models) for row, clip in zip(rows, clips)]
        with contextlib.ExitStack() as stack:  # the VLM reads frames from a local file (a copy when remote)
            mp4s = [str(stack.enter_context(self.clips.local_file(self.media(row, clip, "mp4")))) for row, clip in zip(rows, clips)]
            out = self._stage({"key": [row["key"] for row in rows], "mp4": mp4s, "annotation": docs})
        provenance = self._stage.provenance
        return [{**{name: out[name][i] for name in CAPTION_FIELDS}, "provenance": provenance} for i in range(len(rows))]

    def failure(self, detail: str) -> dict[str, Any]:
        return {"status": "failed", "reason": "caption_error", "detail": detail, "caption": None, "repairs": [],
                "attempts": [], "provenance": None}


CLIP_ROW_STAGES = (SyncClipStage, AsrClipStage, CaptionClipStage)


def clip_stages(cfg: AnnotateConfig) -> tuple[type[_ClipStage], ...]:
    """The clip stages of a run: the caption stage only with a VLM backend (truth captions are
    exact and applied while packing), the sync stage only when `sync.enabled`."""
    vlm = cfg.caption.backend in ("local", "server")
    return tuple(stage for stage in CLIP_ROW_STAGES
                 if (vlm or stage is not CaptionClipStage) and (cfg.sync.enabled or stage is not SyncClipStage))


def clip_media(ledger: Ledger, source_id: str, key: str, sync: dict[str, Any] | None) -> dict[str, str]:
    """Ledger paths of a clip's annotation, mp4, wav and keypoints: the realigned pair when the sync
    stage (verdict `sync`) shifted its audio."""
    media = f"{key}.synced" if (sync or {}).get("shifted_frames") else key
    return {"json": ledger.clip_file(source_id, f"{key}.json"), "mp4": ledger.clip_file(source_id, f"{media}.mp4"),
            "wav": ledger.clip_file(source_id, f"{media}.wav"), "pose": ledger.clip_file(source_id, f"{key}.pose.npy")}


def initial_row(uri: str, source_id: str, sha256: str, group: int) -> dict[str, Any]:
    return {"uri": uri, "source_id": source_id, "group": group, "state": json.dumps({"sha256": sha256, "error": None})}
