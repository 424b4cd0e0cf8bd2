"""Training a timeline from one epoch to another: the runner's, the rollback's and the replay's one path.

Each phase of the timeline is one call of :func:`core.nn.train` resumed from the previous phase's last
checkpoint, so the run is bit for bit the run of an engine that changed its configuration in place at the
boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.nn import Checkpoint, TrainResult, train
from core.panda.timeline import Timeline

__all__ = ["Outcome", "advance"]


@dataclass
class Outcome:
    """Where :func:`advance` stopped.

    Attributes:
        status: ``"complete"`` (reached ``until``), ``"diverged"`` or ``"cancelled"`` (``on_epoch`` said
            stop: the state is the last epoch's).
        epoch: epochs done.
        state: the checkpoint after ``epoch`` epochs (None at 0).
        history: the epochs trained by this call (the engine's entries).
        last: the last phase's result (its metrics describe the model at ``until`` when complete).
    """

    status: str
    epoch: int
    state: Checkpoint | None
    history: list[dict[str, Any]] = field(default_factory=list)
    last: TrainResult | None = None


def advance(
    timeline: Timeline,
    data: Any,
    start: Checkpoint | None,
    until: int,
    *,
    on_epoch: Callable[[dict[str, Any]], bool | None] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
) -> Outcome:
    """Train ``timeline`` from ``start`` (None: from scratch) to ``until`` epochs.

    Args:
        on_epoch: called with every epoch's entry after its checkpoint; False stops at that epoch.
        on_checkpoint: called with every epoch's checkpoint.
    """
    epoch = start.epoch if start is not None else 0
    state, history, last = start, [], None
    for phase in timeline.phases(epoch, until):
        kept: list[Checkpoint] = []

        def keep(checkpoint: Checkpoint, kept: list[Checkpoint] = kept) -> None:
            kept.append(checkpoint)
            if on_checkpoint is not None:
                on_checkpoint(checkpoint)

        last = train(
            {**phase.config, "epochs": phase.end}, data, start=state, on_checkpoint=keep,
            on_epoch=on_epoch, schedule_from=phase.schedule_from,
        )
        history.extend(last.history)
        if kept:
            state, epoch = kept[-1], kept[-1].epoch
        if last.status == "diverged":
            return Outcome("diverged", phase.start + len(last.history), state, history, last)
        if last.status == "cancelled":
            return Outcome("cancelled", epoch, state, history, last)
    return Outcome("complete", epoch, state, history, last)


def finite(x: float | None) -> float | None:
    """``x``, or None when it is NaN or infinite (for JSON)."""
    return float(x) if x is not None and math.isfinite(x) else None
