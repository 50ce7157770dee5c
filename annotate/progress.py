"""Per-stage progress of `actavatar data run`, as plain log lines (readable in a log file).

    [data run 0:01:20] analyse   31/40 sources   0.39 sources/s   ETA 0:00:23
    [data run 0:01:20] asr       18/40 sources   55 clips   0.69 clips/s   ETA 0:00:32

The ledger is the truth (one record per source and stage, written by the workers), so a
background thread on the driver reads it every `interval` seconds; rates count only what this run
did (a resumed run does not claim the earlier run's work). Clip counts come from each source's cut
record, read once. Ray Data's own progress bars redraw one terminal line, which a log file cannot show.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from annotate.ledger import Ledger

CLIP_STAGES = ("sync", "asr", "caption")  # stages that work on the cut clips of a source


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StageProgress:
    """Args:
        ledger: the run's ledger.
        total: sources in the run.
        stages: stage names in pipeline order.
        interval: seconds between reports (the thread); `report()` can also be called directly.
        out: where lines go (stderr by default).
        now: clock (tests inject one).
    """

    def __init__(self, ledger: Ledger, total: int, stages: Sequence[str], *, interval: float = 30.0,
                 out: TextIO | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.ledger, self.total, self.stages, self.interval = ledger, total, tuple(stages), interval
        self.out, self.now = out or sys.stderr, now
        self.started = now()
        self._clips: dict[str, int] = {}  # source -> clips cut (read once per source)
        self._baseline = self._done()  # work already in the ledger (a resumed run)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _clip_count(self, source: str) -> int:
        if source not in self._clips:
            record = self.ledger.get(source, "cut") or {}
            self._clips[source] = len(record.get("ok") or [])
        return self._clips[source]

    def _done(self) -> dict[str, tuple[int, int]]:
        """stage -> (sources done, clips done) from the ledger."""
        done = {stage: [0, 0] for stage in self.stages}
        if self.ledger.root.is_dir():
            for folder in self.ledger.root.iterdir():
                if not folder.is_dir():
                    continue
                for stage in self.stages:
                    if (folder / f"{stage}.json").is_file():
                        done[stage][0] += 1
                        if stage == "cut" or stage in CLIP_STAGES:
                            done[stage][1] += self._clip_count(folder.name)
        return {stage: (s, c) for stage, (s, c) in done.items()}

    def lines(self) -> list[str]:
        """One line per stage: sources (and clips) done, this run's rate, ETA."""
        elapsed = max(self.now() - self.started, 1e-9)
        stamp = f"[data run {_clock(elapsed)}]"
        out = []
        for stage, (sources, clips) in self._done().items():
            new_sources = sources - self._baseline[stage][0]
            new_clips = clips - self._baseline[stage][1]
            text = f"{stamp} {stage:<8} {sources}/{self.total} sources"
            if stage == "cut" or stage in CLIP_STAGES:
                text += f"   {clips} clips   {new_clips / elapsed:.2f} clips/s"
            else:
                text += f"   {new_sources / elapsed:.2f} sources/s"
            if sources >= self.total:
                text += "   done"
            elif new_sources > 0:
                text += f"   ETA {_clock((self.total - sources) * elapsed / new_sources)}"
            out.append(text)
        return out

    def report(self) -> None:
        for line in self.lines():
            print(line, file=self.out, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def __enter__(self) -> StageProgress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="data-run-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
