"""Progress with rate and ETA: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, done: int = 0, *, label: str = "samples", quiet: bool = False):
        self.total = total
        self.done = done
        self.start_done = done
        self.label = label
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.last_line = 0.0
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task(label, total=total, completed=done, rate="")
            self._bar.start()

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int) -> None:
        self.done += n
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():.1f} {self.label}/s")
            return
        now = time.perf_counter()
        if now - self.last_line >= 5.0 or self.done >= self.total:
            self.last_line = now
            rate = self.rate()
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            print(f"imgsynth: {self.done}/{self.total} {self.label} ({100 * self.done / max(self.total, 1):.0f}%), "
                  f"{rate:.1f}/s, ETA {eta:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
