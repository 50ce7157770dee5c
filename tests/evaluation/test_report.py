"""Report files: JSON, Markdown table with runs side by side, PNG plots."""

from __future__ import annotations

import json
import math

from evaluation.report import markdown_table, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def _report():
    return {
        "metrics": {"ckpt_1000": {"fid": 31.25, "fvd": 410.0, "sync_c": 6.1, "sync_d": 8.2, "phase_accuracy": math.nan},
                    "ckpt_2000": {"fid": 25.5, "fvd": 350.5, "sync_c": 6.9, "sync_d": 7.7}},
        "skipped": {"ckpt_1000": {}, "ckpt_2000": {"identity": "no weights given (--face-embedder / face_embedder)"}},
        "protocol": {"fid": {"resize": "bilinear to 299x299, antialias=False"}},
        "timelines": [{"run": "ckpt_2000", "key": "abc_0001", "fps": 25.0,
                       "phases": [{"start_s": 0.0, "end_s": 1.0, "label": "wave"}, {"start_s": 1.0, "end_s": 2.0, "label": "nod"}],
                       "predicted": ["wave"] * 20 + ["none"] * 10 + ["nod"] * 20}],
    }


def test_markdown_puts_runs_side_by_side_and_lists_skips():
    table = markdown_table(_report()["metrics"], _report()["skipped"])
    lines = table.splitlines()
    assert lines[0].startswith("| run | FID ↓ | FVD ↓ | Sync-C ↑ | Sync-D ↓ | ID sim ↑ | Phase acc ↑")
    assert lines[2].startswith("| ckpt_1000 | 31.25 | 410 |") and "| — |" in lines[2]
    assert "| skipped |" in lines[3]
    assert "- identity: no weights given" in table


def test_write_report_files(tmp_path):
    files = write_report(_report(), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["metrics"]["ckpt_2000"]["fid"] == 25.5
    assert data["metrics"]["ckpt_1000"]["phase_accuracy"] is None  # NaN -> null, valid JSON
    assert "timelines" not in data
    md = (tmp_path / "report.md").read_text()
    assert "# Evaluation report" in md and "## Protocol" in md and "bilinear" in md
    names = sorted(p.name for p in files["plots"])
    assert names == ["metric_fid.png", "metric_fvd.png", "metric_sync_c.png", "metric_sync_d.png"]
    assert [p.name for p in files["timelines"]] == ["timeline_ckpt_2000_abc_0001.png"]
    for path in files["plots"] + files["timelines"]:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
