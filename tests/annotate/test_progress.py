"""Per-stage progress lines of `data run`, computed from the ledger."""

from __future__ import annotations

import io

from annotate.ledger import Ledger
from annotate.progress import StageProgress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_lines_count_sources_clips_rates_and_eta(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.put("a", "probe", {"ok": {}})  # done before this run started: not in the rate
    clock = Clock()
    progress = StageProgress(ledger, 4, ["probe", "cut", "asr"], groups=2, interval=0, now=clock)
    for source in ("b", "c"):
        ledger.put(source, "probe", {"ok": {}})
    keys = ["b_0000", "b_0001", "b_0002"]
    ledger.put("b", "cut", {"ok": keys})
    for key in keys:
        ledger.store.write_bytes(ledger.clip_file("b", f"{key}.json"), b"{}")
        ledger.store.write_bytes(ledger.clip_file("b", f"{key}.mp4"), b"")
    ledger.put_clip("b", "asr", "b_0000", {"result": {"status": "ok"}})
    ledger.store.write_json("groups/000000.json", {})
    ledger.store.write_bytes("groups/000000.audit.jsonl", b"")
    clock.t += 10
    lines = progress.lines()
    assert lines[0] == "[data run 0:00:10] probe    3/4 sources   0.20 sources/s   ETA 0:00:05"
    assert lines[1] == "[data run 0:00:10] cut      1/4 sources   3 clips   0.30 clips/s   ETA 0:00:30"
    assert lines[2] == "[data run 0:00:10] asr      1/3 clips cut so far   0.10 clips/s"
    assert lines[3] == "[data run 0:00:10] pack     1/2 shard groups"
    ledger.put("d", "probe", {"ok": {}})
    out = io.StringIO()
    progress.out = out
    progress.report()
    assert "probe    4/4 sources   0.30 sources/s   done" in out.getvalue()
    assert out.getvalue().count("\n") == 4  # one plain line per stage: a log file reads it


def test_the_thread_reports_and_stops(tmp_path):
    import time

    out = io.StringIO()
    with StageProgress(Ledger(tmp_path), 2, ["probe"], interval=0.05, out=out):
        time.sleep(0.3)
    assert out.getvalue().count("probe    0/2 sources") >= 2
