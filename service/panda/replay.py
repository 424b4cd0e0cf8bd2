"""``caviar panda replay``: re-run a session from its log, from scratch, and compare it bit for bit.

The log (the session's configuration, the changes it inherited from a parent, and every applied ``set``
and ``rollback``) defines a timeline: the configuration each epoch trained with. Training that timeline
from epoch 0 must give the stored learning curve exactly (every loss, accuracy and learning rate), the
stored weights, moments and batch-norm statistics of the last kept epoch exactly, and, for a finished
session, the same final metrics. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.nn import Checkpoint
from core.panda import advance
from core.panda.replay import finite
from service.panda.runner import final_metrics, session_data, timeline_of
from service.panda.session import require_session
from service.store import Store
from service.store import panda as db
from service.store.states import TrialStatus

__all__ = ["replay_session", "CURVE_KEYS"]

#: The per-epoch values a replay must reproduce.
CURVE_KEYS = ("train_loss", "val_loss", "val_accuracy", "learning_rate")


def _same_state(a: Checkpoint, b: Checkpoint) -> bool:
    return a.epoch == b.epoch and all(
        np.array_equal(getattr(a, k), getattr(b, k)) for k in ("params", "running", "m1", "m2", "step")
    )


def replay_session(
    store: Store, session_id: str, *, on_epoch: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Replay ``session_id`` and compare. Returns a JSON-safe report whose ``identical`` says it all:

    ``epochs`` replayed, ``curve_mismatches`` (epochs whose stored values differ, with both), ``weights``
    (``identical``, ``different`` or ``not kept``, for the last epoch's checkpoint) and, for a finished
    session, ``val_loss`` stored and replayed.
    """
    view = require_session(store, session_id)
    stored = db.curve(store, view.trial.id)
    epochs = stored[-1]["epoch"] if stored else 0
    timeline = timeline_of(store, view)
    data = session_data(view.session.source, timeline.initial["dtype"])
    states: dict[int, Checkpoint] = {}

    def keep(checkpoint: Checkpoint) -> None:
        states.clear()  # only the last one is compared: keep memory flat
        states[checkpoint.epoch] = checkpoint

    def step(entry: dict[str, Any]) -> None:
        if on_epoch is not None:
            on_epoch(entry)

    outcome = advance(timeline, data, None, epochs, on_epoch=step, on_checkpoint=keep)
    mismatches = []
    by_epoch = {int(h["epoch"]): h for h in outcome.history}
    for row in stored:
        mine = by_epoch.get(int(row["epoch"]))
        ours = {k: finite(mine[k]) if mine is not None else None for k in CURVE_KEYS}
        theirs = {k: row[k] for k in CURVE_KEYS}
        if mine is None or ours != theirs:
            mismatches.append({"epoch": row["epoch"], "stored": theirs, "replayed": ours if mine else None})
    weights = "not kept"
    kept = db.checkpoint_bytes(store, view.trial.id, epochs) if epochs else None
    if kept is not None and epochs in states:
        weights = "identical" if _same_state(Checkpoint.from_bytes(kept), states[epochs]) else "different"
    report: dict[str, Any] = {
        "id": session_id, "epochs": epochs, "replayed_status": outcome.status,
        "curve_mismatches": mismatches, "weights": weights,
    }
    identical = not mismatches and weights != "different" and len(by_epoch) == len(stored)
    if view.trial.status == TrialStatus.COMPLETE and outcome.status == "complete":
        metrics = final_metrics(timeline, data, outcome.state, epochs)
        report["val_loss"] = {"stored": view.trial.val_loss, "replayed": metrics.val_loss}
        report["val_accuracy"] = {"stored": view.trial.val_accuracy, "replayed": metrics.val_accuracy}
        identical = identical and metrics.val_loss == view.trial.val_loss
        identical = identical and metrics.val_accuracy == view.trial.val_accuracy
    report["identical"] = identical
    return report
