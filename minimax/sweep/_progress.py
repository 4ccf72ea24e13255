"""Progress of a long sweep on the log (stderr): points done / total, rate and ETA."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("minimax.sweep")


def _clock(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts solved points and logs ``done/total (pct) rate points/s elapsed ETA``.

    The rate counts only points solved in this process (a resumed sweep starts at the number
    already done, and that head start does not inflate the rate).
    """

    def __init__(self, total: int, already: int = 0, name: str = "sweep") -> None:
        self.total, self.done, self.name = total, already, name
        self._start_done = already
        self._t0 = time.perf_counter()

    def update(self, count: int, note: str = "") -> str:
        self.done += count
        elapsed = time.perf_counter() - self._t0
        fresh = self.done - self._start_done
        rate = fresh / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 else "?"
        pct = 100.0 * self.done / max(self.total, 1)
        line = (f"{self.name}: {self.done}/{self.total} points ({pct:.1f}%), {rate:.1f} points/s,"
                f" elapsed {_clock(elapsed)}, ETA {eta}" + (f" [{note}]" if note else ""))
        log.info(line)
        return line
