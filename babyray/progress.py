"""Progress of long commands and benchmarks: a bar on a terminal, plain lines otherwise.

    with Progress(total=len(items), desc="reading logs") as bar:
        for item in items:
            ...
            bar.update()

    for x in progress(items, desc="tasks"):   # the same, wrapping an iterable

On a terminal the bar redraws in place (at most 10 times a second); when the stream is
not a terminal (CI, a pipe, a log file) a plain line is written every ``every`` percent
(at most one per ``min_interval`` seconds) and at the end, so logs stay readable. Written to stderr by default, so a command's
output on stdout stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

__all__ = ["Progress", "progress"]

T = TypeVar("T")
_REDRAW = 0.1  # seconds between two redraws of the bar


class Progress:
    """A counter towards ``total`` (None: unknown) shown as a bar or as plain lines."""

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        stream: TextIO | None = None,
        width: int = 30,
        every: float = 10.0,
        tty: bool | None = None,
        min_interval: float = 1.0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.stream = stream or sys.stderr
        self.width = width
        self.every = every
        self.min_interval = min_interval
        self.tty = self.stream.isatty() if tty is None else tty
        self.count = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_step = -1

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done; redraw (terminal) or write a line (every ``every`` %)."""
        self.count += n
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= _REDRAW:
                self._last_draw = now
                self.stream.write("\r" + self._bar())
                self.stream.flush()
        elif self.total:
            step = int(100 * self.count / self.total // self.every)
            now = time.monotonic()
            if (
                step != self._last_step
                and self.count < self.total
                and now - self._last_draw >= self.min_interval
            ):
                self._last_step, self._last_draw = step, now
                self._line()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.tty:
            self.stream.write("\r" + self._bar() + "\n")
        else:
            self._line()
        self.stream.flush()

    def _rate(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return f"{self.count / elapsed:,.1f}/s, {elapsed:.1f}s"

    def _bar(self) -> str:
        prefix = f"{self.desc}: " if self.desc else ""
        if not self.total:
            return f"{prefix}{self.count:,} ({self._rate()})"
        done = min(self.count / self.total, 1.0)
        filled = int(done * self.width)
        return (
            f"{prefix}|{'#' * filled}{'.' * (self.width - filled)}| {self.count:,}/{self.total:,} "
            f"{100 * done:5.1f}% ({self._rate()})"
        )

    def _line(self) -> None:
        prefix = f"{self.desc}: " if self.desc else ""
        if self.total:
            self.stream.write(
                f"{prefix}{self.count:,}/{self.total:,} ({100 * self.count / self.total:.0f}%, "
                f"{self._rate()})\n"
            )
        else:
            self.stream.write(f"{prefix}{self.count:,} ({self._rate()})\n")
        self.stream.flush()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", **options: Any) -> Iterator[T]:
    """Yield ``items`` while showing how many were done (``total`` defaults to ``len``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, **options) as bar:
        for item in items:
            yield item
            bar.update()
