"""Hints for a person watching a run: plateau, divergence, a loss that climbs. Suggestions only: panda
mode never changes a session by itself."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["hint", "PLATEAU_EPOCHS", "PLATEAU_GAIN"]

#: A plateau: no new best validation loss by more than PLATEAU_GAIN (relative) for this many epochs.
PLATEAU_EPOCHS = 5
PLATEAU_GAIN = 0.005


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def hint(history: Sequence[dict[str, Any]]) -> str | None:
    """One line of advice for the curve so far, or None.

    Example:
        >>> curve = [{"epoch": e, "val_loss": v, "train_loss": v} for e, v in enumerate([1, .5, .4], 1)]
        >>> hint(curve + [{"epoch": 4, "val_loss": float("nan"), "train_loss": float("nan")}])
        'diverged at epoch 4: roll back to epoch 3 with a smaller learning_rate (e.g. a third)'
    """
    if not history:
        return None
    last = history[-1]
    if not (_finite(last.get("val_loss")) and _finite(last.get("train_loss"))):
        good = max((h["epoch"] for h in history if _finite(h.get("val_loss"))), default=0)
        return (
            f"diverged at epoch {last['epoch']}: roll back to epoch {good} with a smaller learning_rate "
            "(e.g. a third)"
        )
    train = [h["train_loss"] for h in history[-3:]]
    if len(train) == 3 and train[0] < train[1] < train[2]:
        return (
            f"training loss rose for 2 epochs ({train[0]:.4g} to {train[2]:.4g}): the learning rate may be "
            "too large; try a third of it"
        )
    vals = [h["val_loss"] for h in history]
    best_at = min(range(len(vals)), key=lambda i: vals[i])
    if len(vals) - 1 - best_at >= PLATEAU_EPOCHS:
        return (
            f"validation loss has not improved since epoch {history[best_at]['epoch']} "
            f"({vals[best_at]:.4g}): "
            "a smaller learning_rate may help, or stop here"
        )
    window = vals[-PLATEAU_EPOCHS - 1:]
    if len(window) == PLATEAU_EPOCHS + 1 and window[0] - min(window[1:]) < PLATEAU_GAIN * abs(window[0]):
        return (
            f"plateau: less than {PLATEAU_GAIN:.1%} better in {PLATEAU_EPOCHS} epochs; try a third of the "
            "learning_rate"
        )
    return None
