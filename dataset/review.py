"""A static review page of a corpus: every manifest row, kept clips with their media and labels.

    build_review(CORPUS, HTML)   # HTML + HTML's sibling folder <stem>_files/ with one frame strip per clip

Per kept clip: a strip of evenly spaced frames with the face box drawn on each, the phase timeline
under it (caption phases over the clip's time), the base caption, the transcript with each word's
times, the audio-video sync figures and the manifest's quality figures. Rejected and failed rows
show their stage, reason and detail. The page filters by status, reason and text, and pages
through thousands of rows (50 per page by default); the filters live in the URL (`?status=rejected
&reason=no_face&q=hello&page=2&page_size=20`), so a view can be shared. Plain HTML and JavaScript,
no network access, no libraries: it opens from disk (`file://`) or from `actavatar data review --port`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dataset.atomic import atomic_write_bytes
from dataset.errors import UserError

_TEMPLATE = Path(__file__).with_name("review.html")
FIGURES = ("duration_s", "speech_ratio", "face_detected_ratio", "face_area", "av_offset_frames", "av_sync_confidence",
           "language", "num_words", "num_phases", "shard")


def frame_strip(frames: np.ndarray, count: int, height: int) -> tuple[np.ndarray, list[int]]:
    """`count` evenly spaced frames, each scaled to `height` rows, side by side; and their indices."""
    import av

    total = len(frames)
    picks = sorted({int(round(i)) for i in np.linspace(0, total - 1, min(count, total))})
    width = max(2, int(round(frames.shape[2] * height / frames.shape[1] / 2)) * 2)
    tiles = []
    for i in picks:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
        tiles.append(frame.reformat(width=width, height=height, interpolation="AREA").to_ndarray(format="rgb24"))
    return np.concatenate(tiles, axis=1), picks


def _clean(value: Any) -> Any:
    """JSON-safe manifest values (NaN -> None)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def review_rows(corpus: str | Path, assets: Path, *, frames: int = 8, height: int = 72,
                progress: bool | None = None) -> list[dict[str, Any]]:
    """One dict per manifest row; kept clips carry their annotation and strip file (written to `assets`)."""
    from dataset.manifest import read_manifest
    from dataset.media import decode_mp4, encode_jpeg
    from dataset.reader import shard_pipeline

    from dataset.storage import Store, check_readable

    check_readable(str(corpus))  # object storage: bad credentials are one clear error
    store = Store(corpus)
    if not store.exists("manifest.parquet"):
        raise UserError(f"{corpus}: no manifest.parquet here (is it a corpus folder written by `actavatar data run`?)")
    rows = {row["key"]: {k: _clean(v) for k, v in row.items()} for row in read_manifest(store.url("manifest.parquet")).to_pylist()}
    assets.mkdir(parents=True, exist_ok=True)
    kept = sum(1 for r in rows.values() if r["status"] == "ok")
    bar = tqdm(total=kept, desc="review", unit="clip", disable=(not progress) if progress is not None else None)
    if kept and store.is_dir("shards"):
        for sample in shard_pipeline(store.url("shards"), decode="none"):
            key = sample["__key__"]
            row = rows.setdefault(key, {"key": key, "status": "ok", "stage": "pack", "reason": None,
                                        "detail": "in a shard but not in the manifest"})
            annotation = json.loads(sample["json"])
            video = decode_mp4(sample["mp4"])
            strip, picks = frame_strip(video, frames, height)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".jpg"  # keys come from the archive: never a path
            atomic_write_bytes(assets / name, encode_jpeg(strip))
            fps = annotation["video"]["fps"]
            row.update(annotation=annotation, strip=f"{assets.name}/{name}", strip_times=[round(i / fps, 3) for i in picks])
            bar.update(1)
    bar.close()
    return [rows[k] for k in sorted(rows)]


def script_json(data: Any) -> str:
    """JSON for a `<script type="application/json">` element: "</" (which could close the element
    early, e.g. a transcript saying "</script>") becomes "<\\/", which JSON reads back unchanged."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def build_review(corpus: str | Path, html: str | Path, *, frames: int = 8, height: int = 72,
                 progress: bool | None = None) -> dict[str, Any]:
    """Write the page to `html` (its strips into `<stem>_files/` beside it); returns counts."""
    html = Path(html)
    rows = review_rows(corpus, html.parent / f"{html.stem}_files", frames=frames, height=height, progress=progress)
    data = {"corpus": str(corpus) if "://" in str(corpus) else str(Path(corpus).resolve()), "figures": FIGURES, "rows": rows}
    page = _TEMPLATE.read_text(encoding="utf-8").replace("__REVIEW_DATA__", script_json(data))
    atomic_write_bytes(html, page.encode("utf-8"))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"html": str(html), "rows": len(rows), "status": counts}
