"""Per-stage progress of `actavatar data run`, as plain log lines (readable in a log file).

    [data run 0:01:20] analyse   31/40 sources   0.39 sources/s   ETA 0:00:23
    [data run 0:01:20] cut       28/40 sources   112 clips   1.40 clips/s   ETA 0:00:17
    [data run 0:01:20] asr       55/112 clips cut so far   0.69 clips/s
    [data run 0:01:20] pack      1/3 shard groups

The ledger is the truth (one record per source or clip and stage, written by the workers), so a
background thread on the driver lists it every `interval` seconds (one listing, also on object
storage); rates count only what this run did (a resumed run does not claim the earlier run's
work). Ray Data's own progress bars redraw one terminal line, which a log file cannot show.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TextIO

from annotate.ledger import CLIP_STAGES, Ledger


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StageProgress:
    """Args:
        ledger: the run's ledger.
        total: sources in the run.
        stages: stage names in pipeline order.
        groups: shard groups in the run (0: no pack line).
        interval: seconds between reports (the thread); `report()` can also be called directly.
        out: where lines go (stderr by default).
        now: clock (tests inject one).
    """

    def __init__(self, ledger: Ledger, total: int, stages: Sequence[str], *, groups: int = 0, interval: float = 30.0,
                 out: TextIO | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.ledger, self.total, self.stages, self.groups, self.interval = ledger, total, tuple(stages), groups, interval
        self.out, self.now = out or sys.stderr, now
        self.started = now()
        self._baseline = self._done()  # work already in the ledger (a resumed run)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _done(self) -> Counter[str]:
        """Sources per source stage, clips per clip stage, `clips` cut, `pack` groups committed."""
        paths = self.ledger.scan()
        done: Counter[str] = Counter(self.ledger.counts(paths))
        done["clips"], done["pack"] = self.ledger.clips_and_groups(paths)
        return done

    def lines(self) -> list[str]:
        """One line per stage: sources or clips done, this run's rate, ETA."""
        elapsed = max(self.now() - self.started, 1e-9)
        stamp = f"[data run {_clock(elapsed)}]"
        done, out = self._done(), []
        for stage in self.stages:
            count, new = done[stage], done[stage] - self._baseline[stage]
            if stage in CLIP_STAGES:
                text = f"{stamp} {stage:<8} {count}/{done['clips']} clips cut so far   {new / elapsed:.2f} clips/s"
                out.append(text)
                continue
            text = f"{stamp} {stage:<8} {count}/{self.total} sources"
            if stage == "cut":
                text += f"   {done['clips']} clips   {(done['clips'] - self._baseline['clips']) / elapsed:.2f} clips/s"
            else:
                text += f"   {new / elapsed:.2f} sources/s"
            if count >= self.total:
                text += "   done"
            elif new > 0:
                text += f"   ETA {_clock((self.total - count) * elapsed / new)}"
            out.append(text)
        if self.groups:
            out.append(f"{stamp} {'pack':<8} {done['pack']}/{self.groups} shard groups" + ("   done" if done["pack"] >= self.groups else ""))
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
