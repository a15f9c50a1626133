"""Progress for the vault's long commands: a rate and an ETA on a terminal, nothing otherwise.

Cron and pipes get one summary line from the command itself; a person at a terminal sees one line
rewritten in place (never a line per item or per batch).
"""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Call with ``(done, total)``; draws ``label done/total, rate/s, ETA`` on a terminal only."""

    def __init__(self, stream: TextIO, *, label: str, min_interval: float = 0.2) -> None:
        self.stream = stream
        self.label = label
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._drawn_at < self.min_interval:
            return
        self._drawn_at, self._drawn = now, True
        self.stream.write("\r" + progress_line(self.label, done, total, now - self.started) + "\033[K")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line so the summary starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def progress_line(label: str, done: int, total: int, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "unknown"
    return f"{label} {done}/{total}, {rate:.1f}/s, ETA {eta}"


def counts(by_reason: dict[str, int]) -> str:
    """``2 provider unavailable, 1 reconnect required`` for a summary line, or ``none`` (the codes in
    words: people read this line; ``--json`` keeps the codes)."""
    return (
        ", ".join(f"{count} {code.replace('_', ' ')}" for code, count in sorted(by_reason.items())) or "none"
    )
