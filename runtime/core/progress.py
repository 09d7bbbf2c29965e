"""Progress of long work on stderr, as training reports its steps: on a terminal one line that
is rewritten in place, elsewhere (logs, pipes) a plain line every 5 %. Shown only once the work
is expected to take more than SHOW_AFTER_S seconds (judged from the rate of the work done so
far), so that short runs print nothing more. Standard library only: ganrun imports it only for
work of more than one batch."""
from __future__ import annotations

import os
import sys
import time

SHOW_AFTER_S = 2.0
# Internal: seconds of expected work above which progress shows. The tests set 0, so that work
# of a few batches shows it without taking seconds.
SHOW_AFTER_ENV = "GAN_EDGE_PROGRESS_AFTER"
REDRAW_S = 0.1  # a terminal line is rewritten at most this often
LINES = 20      # plain lines: one per 5 %
_open = None    # the terminal whose progress line no newline has ended yet


def end_line() -> None:
    """End a progress line left open on the terminal (by an error, or Ctrl-C), so that what is
    printed next starts a line of its own."""
    global _open
    if _open is not None:
        _open.write("\n")
        _open.flush()
        _open = None


class Progress:
    def __init__(self, total: int, unit: str = "samples"):
        self.total, self.unit = total, unit
        self.stream = sys.stderr
        self.terminal = self.stream.isatty()
        self.after = float(os.environ.get(SHOW_AFTER_ENV, SHOW_AFTER_S))
        self.start = time.monotonic()
        self.shown = False
        self.drawn_at = 0.0
        self.next_line = 0  # plain lines: the count at which the next one is due

    def counted(self, batches):
        """Yield each batch of `batches`, counting its samples as done once the caller has
        used it (asks for the next one)."""
        done = 0
        try:
            for batch in batches:
                yield batch
                done += len(batch)
                self.update(done)
        finally:
            end_line()

    def update(self, done: int) -> None:
        global _open
        now = time.monotonic()
        elapsed = now - self.start
        if not self.shown:
            if done >= self.total or elapsed * self.total / max(done, 1) <= self.after:
                return  # finished, or short enough to finish quietly
            self.shown = True
        rate = done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - done) / rate if rate > 0 else float("inf")
        text = (f"{done:,}/{self.total:,} {self.unit} ({done / self.total:.0%}), "
                f"{rate:,.0f} {self.unit}/s, " + (f"about {_duration(left)} left"
                                                 if done < self.total else
                                                 f"done in {_duration(elapsed)}"))
        if self.terminal:
            if done < self.total and now - self.drawn_at < REDRAW_S:
                return
            self.drawn_at = now
            self.stream.write(f"\r{text}\x1b[K" + ("\n" if done >= self.total else ""))
            _open = self.stream if done < self.total else None
        elif done >= self.next_line or done >= self.total:
            self.stream.write(text + "\n")
            self.next_line = done + max(1, self.total // LINES)
        self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
