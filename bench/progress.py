"""A progress bar for long runs: nets done, nets per second, time left; silent off a terminal."""

from __future__ import annotations

import sys
import time

from . import interrupt


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Prints ``[#####-----] 45% 78,000/175,000 nets  12,345 nets/s  1m20s left`` on one line."""

    WIDTH = 24

    def __init__(self, stream=None, enabled: bool | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = self.done = self.resumed = 0
        self.started = time.perf_counter()

    def start(self, total: int, already_done: int = 0) -> None:
        self.total, self.done, self.resumed = total, already_done, already_done
        self.started = time.perf_counter()
        if self.enabled and already_done:
            self.stream.write(f"resuming: {already_done:,} of {total:,} nets already done\n")
        self._draw()

    def advance(self, n: int) -> None:
        self.done += n
        self._draw()
        interrupt.raise_if_pending()  # a Ctrl-C that a library swallowed stops the work here

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(fraction * self.WIDTH))
        elapsed = time.perf_counter() - self.started
        rate = (self.done - self.resumed) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        text = (
            f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {fraction:4.0%} "
            f"{self.done:,}/{self.total:,} nets"
        )
        if rate > 0:
            text += f"  {rate:,.0f} nets/s  {_duration(left)} left"
        return text

    def _draw(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line())
            self.stream.flush()
