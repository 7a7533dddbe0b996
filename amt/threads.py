"""CPU threads that give way when other programs are busy, instead of waiting on them.

PyTorch's intra-op threads work in lockstep: each parallel operation waits for its slowest thread.
When another program keeps a core busy, the thread sharing that core gets a slice of it and every
operation waits for that slice, so on a 2-core laptop one busy program slows a 2-thread training
step several times over, far more than the 2× a fair share would cost (shared/NOTES.md). Using
only the cores other programs leave idle avoids the wait. :class:`CpuLoad` measures what other
programs use (all CPU time on the machine minus this process's own) between two moments, so the
measurement can span work amt does anyway (importing torch, building the data) at no cost.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROC_STAT = Path("/proc/stat")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _machine_busy_seconds() -> float | None:
    """CPU seconds spent by every program since boot (Linux ``/proc/stat``); None elsewhere."""
    try:
        fields = PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


MIN_WINDOW_S = 0.25
"""The shortest measurement trusted: over a few milliseconds, one scheduler tick decides the answer."""


class CpuLoad:
    """Cores kept busy by other programs since the last reading.

    ``CpuLoad()`` starts a measurement; :meth:`others` ends it and starts the next. Where the machine's
    total is not readable (not Linux), the 1-minute load average stands in, less this process's share.
    """

    def __init__(self) -> None:
        self._start = self._reading()

    @staticmethod
    def _reading() -> tuple[float, float | None, float]:
        return time.monotonic(), _machine_busy_seconds(), _own_seconds()

    def others(self, wait: bool = False) -> float | None:
        """Cores other programs kept busy on average since the measurement started; None when it is
        shorter than :data:`MIN_WINDOW_S` (the measurement then goes on), unless ``wait``: then it
        waits out the rest."""
        elapsed = time.monotonic() - self._start[0]
        if elapsed < MIN_WINDOW_S:
            if not wait:
                return None
            time.sleep(MIN_WINDOW_S - elapsed)
        (wall0, busy0, own0), (wall1, busy1, own1) = self._start, self._reading()
        self._start = (wall1, busy1, own1)
        own = (own1 - own0) / (wall1 - wall0)
        if busy0 is None or busy1 is None:
            return max(0.0, (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0) - own)
        return max(0.0, (busy1 - busy0) / (wall1 - wall0) - own)


@dataclass(frozen=True)
class ThreadSettings:
    """How many CPU threads torch uses.

    ``intra_op``: threads per operation; ``"auto"`` takes the cores other programs leave idle
    (at least 1), a number fixes it. ``interop``: threads that run independent operations side by
    side; amt's models have none to run, so 1 saves idle threads (torch accepts it only before its
    first parallel work, so a later change is logged and skipped).
    """

    intra_op: int | str = "auto"
    interop: int = 1

    def __post_init__(self) -> None:
        from amt.errors import AmtError

        if self.intra_op != "auto" and not (isinstance(self.intra_op, int) and self.intra_op >= 1):
            raise AmtError(f"threads.intra_op={self.intra_op!r}: must be auto or a whole number from 1")
        if not isinstance(self.interop, int) or self.interop < 1:
            raise AmtError(f"threads.interop={self.interop!r}: must be a whole number from 1")

    def intra_op_threads(self, load: CpuLoad, wait: bool = False) -> int | None:
        """The intra-op thread count for now: fixed, or the cores idle since ``load`` started (None
        when that was too short a time to tell, see :meth:`CpuLoad.others`)."""
        if self.intra_op != "auto":
            return int(self.intra_op)
        others = load.others(wait)
        if others is None:
            return None
        cores = usable_cores()
        return max(1, min(cores, round(cores - others)))

    def apply(self, load: CpuLoad, wait: bool = False) -> int:
        """Set torch's thread counts; returns the intra-op count in effect."""
        import torch

        threads = self.intra_op_threads(load, wait)
        if threads is not None:
            torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != self.interop:
            try:
                torch.set_num_interop_threads(self.interop)
            except RuntimeError:
                log.debug(
                    "torch's inter-op threads are already running; they stay at %d", torch.get_num_interop_threads()
                )
        return torch.get_num_threads()
