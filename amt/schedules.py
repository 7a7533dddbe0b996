"""Learning-rate schedules that torch does not ship: the report's staged learning rate.

Cosine annealing and reduce-on-plateau come straight from ``torch.optim.lr_scheduler``
(``conf/scheduler/cosine.yaml``, ``plateau.yaml``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from amt.errors import AmtError


class StagedLR(LRScheduler):
    """Piecewise-constant learning rate, stepped once per epoch: ``lrs[i]`` for ``epochs[i]`` epochs.

    The default is the report's multi-layer CNN schedule, 10 epochs each at 1e-3, 5e-4 and 1e-4.
    The rates are read relative to the first one: stage ``i`` runs at the optimiser's configured lr
    × ``lrs[i] / lrs[0]``. So the first stage always uses the optimiser's lr untouched, the report's
    schedule comes out exactly when the optimiser is configured with ``lrs[0]`` (Adam's 1e-3), and
    overriding only ``optimizer.lr`` scales the whole schedule instead of being silently ignored.
    After the last stage the last rate stays.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lrs: Sequence[float] = (1e-3, 5e-4, 1e-4),
        epochs: Sequence[int] = (10, 10, 10),
        last_epoch: int = -1,
    ):
        if len(lrs) == 0 or len(lrs) != len(epochs):
            raise AmtError(
                f"scheduler.lrs and scheduler.epochs need one entry per stage, got {list(lrs)} and {list(epochs)}"
            )
        if any(not lr > 0 for lr in lrs):
            raise AmtError(f"scheduler.lrs must all be positive, got {list(lrs)}")
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in epochs):
            raise AmtError(f"scheduler.epochs must all be positive integers, got {list(epochs)}")
        self.lrs = tuple(float(lr) for lr in lrs)
        self.epochs = tuple(epochs)
        self.stage_ends = tuple(itertools.accumulate(self.epochs))
        super().__init__(optimizer, last_epoch)

    def stage(self, epoch: int) -> int:
        """Index of the stage that epoch ``epoch`` (0-based) trains in."""
        return min(bisect.bisect_right(self.stage_ends, epoch), len(self.lrs) - 1)

    def get_lr(self) -> list[float]:
        factor = self.lrs[self.stage(self.last_epoch)] / self.lrs[0]
        return [base_lr * factor for base_lr in self.base_lrs]
