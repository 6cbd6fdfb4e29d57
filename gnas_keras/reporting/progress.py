"""A progress bar for the long phases of a run (warm-up, search, fine-tune, comparisons,
conversion): how much is done, the time elapsed and the time left.

    bar = Progress("fine-tune", steps, out)
    for step in ...:
        bar.update(step + 1, note=f"train loss {loss:.4f}")
    bar.close()

On a terminal the bar is redrawn in place on standard error::

    fine-tune  [########------------]  160/400  40 %  elapsed 0m32s  left 0m48s  train loss 0.62

`Progress.write` prints a line above a live bar (the bar is cleared and redrawn), so other
lines never run into it. When the lines do not go to a terminal (a log file, a pipe, a
test's `out`), no carriage returns are written: a plain line goes to `out` at the first
update, each time another tenth of the phase is done, at least once a minute, and at the end.

Time left = elapsed / (units done in this process) * (units still to do): a resumed phase
does not count the units done before it started. It is shown once a unit is done.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

from gnas_keras.reporting.units import duration


class Progress:
    """One phase's progress: `total` units (steps, candidate evaluations, images).

    Args:
      label: what the phase is ("warm-up", "fine-tune", "[celeba] images").
      total: units in the phase (> 0).
      out: where plain lines go; `Progress.write` (the default, standard error) draws a live
        bar instead when its stream is a terminal.
      done: units done before this bar started (a resumed phase).
      upper_bound: the total is a maximum (a search may stop early): time left reads
        "left <= ...".
      clock: seconds (monotonic); a test's fake clock.
      stream: the terminal stream (default: ``sys.stderr`` when the bar starts).
      redraw_seconds: the live bar is redrawn at most this often (and always at the end).
      line_seconds: a plain line at least this often while units are done.
    """

    _live: Optional["Progress"] = None   # the bar now drawn on the terminal, if any
    WIDTH = 20                           # characters of the bar

    def __init__(self, label: str, total: int, out: Optional[Callable[[str], None]] = None,
                 done: int = 0, upper_bound: bool = False,
                 clock: Callable[[], float] = time.monotonic, stream: Optional[TextIO] = None,
                 redraw_seconds: float = 0.2, line_seconds: float = 60.0):
        self.label, self.total, self.upper_bound = label, max(int(total), 1), upper_bound
        self.out = out or Progress.write
        self.clock, self.stream = clock, stream or sys.stderr
        self.redraw_seconds, self.line_seconds = redraw_seconds, line_seconds
        self.first = self.done = done
        self.note = ""
        self.start = self._drawn = self._lined = clock()
        self._tenth = -1          # the first update writes a line: the phase has begun
        self._printed = done      # `done` when the last plain line was written
        self._drawn_done = -1     # `done` when the live bar was last drawn
        self.closed = False
        isatty = getattr(self.stream, "isatty", None)
        self.live = self.out is Progress.write and bool(isatty and isatty())

    def _tenths(self, done: int) -> int:
        return min(done, self.total) * 10 // self.total

    def seconds_left(self) -> Optional[float]:
        """Estimated seconds to the end: None until a unit is done in this process."""
        if self.done <= self.first:
            return None
        rate = (self.clock() - self.start) / (self.done - self.first)
        return rate * max(self.total - self.done, 0)

    def text(self) -> str:
        """The bar as one line (without carriage return)."""
        left = self.seconds_left()
        when = f"elapsed {duration(self.clock() - self.start)}"
        if left is not None:
            when += f"  left {'<= ' if self.upper_bound else ''}{duration(left)}"
        filled = min(self.done, self.total) * self.WIDTH // self.total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        percent = min(self.done, self.total) * 100 // self.total
        return (f"{self.label}  [{bar}]  {self.done}/{self.total}  {percent} %  {when}"
                + (f"  {self.note}" if self.note else ""))

    def update(self, done: int, note: Optional[str] = None) -> None:
        """`done` units are done now (of `total`); `note` (e.g. the last loss) is shown after
        the times until replaced."""
        self.done = done
        if note is not None:
            self.note = note
        now, tenth = self.clock(), self._tenths(done)
        if self.live:
            if now - self._drawn >= self.redraw_seconds or done >= self.total:
                self._draw()
        elif tenth != self._tenth or done >= self.total or now - self._lined >= self.line_seconds:
            self._tenth, self._lined, self._printed = tenth, now, done
            self.out(self.text())

    def _draw(self) -> None:
        Progress._live = self
        self._drawn, self._drawn_done = self.clock(), self.done
        self.stream.write("\r" + self.text() + "\033[K")
        self.stream.flush()

    def close(self) -> None:
        """Ends the bar: a live bar is drawn as it stands and its line ended; a plain bar
        writes its last line; neither repeats what it showed last."""
        if self.closed:
            return
        self.closed = True
        if self.live:
            if self._drawn_done != self.done:
                self._draw()
            self.stream.write("\n")
            self.stream.flush()
            Progress._live = None
        elif self._printed != self.done:
            self.out(self.text())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def write(line: str) -> None:
        """Prints `line` to standard error, above the live bar if one is drawn."""
        bar = Progress._live
        if bar is not None and not bar.closed:
            bar.stream.write("\r\033[K" + line + "\n")
            bar._draw()
        else:
            print(line, file=sys.stderr, flush=True)
