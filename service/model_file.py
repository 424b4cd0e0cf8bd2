"""The model out of a study: a stored trial (or a panda session's epoch) as a ``caviar-mlp-1`` file.

caviar keeps no weights of finished trials: a trial is its configuration, seed and data split, and
training is deterministic, so :func:`trial_model` retrains it and then checks that the retrained
``val_loss`` is the stored one, bit for bit. A mismatch (:class:`NotReproduced`) means the data or the
machine changed: nothing is written. When the trial still holds a checkpoint (a trial paused at a
``[pruning]`` rung), training resumes from it instead of starting over, which gives the same bits.

A panda session keeps checkpoints: :func:`session_model` takes the state after a given epoch from its
checkpoint (or recomputes it exactly from the nearest earlier one).

The file's ``meta.source`` says where the model came from (:func:`data_source` describes the data and
its split), which is what ``caviar predict --rows val`` uses to find the validation rows again.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import BadInput
from service.errors import CaviarError

if TYPE_CHECKING:
    from service.store import Store

__all__ = ["NotReproduced", "Retrained", "data_source", "check_output", "trial_model", "session_model"]



class NotReproduced(CaviarError):
    """Retraining gave another validation loss than the stored one: the data or the machine changed."""


@dataclass
class Retrained:
    """A model rebuilt from the store, and how it was rebuilt.

    Attributes:
        model: the network (:class:`core.nn.Model`), with its input scaling, classes and ``source``.
        epochs: the epochs it was trained for.
        val_loss, val_accuracy: its validation figures (equal to the stored ones).
        resumed_from: the epoch of the stored checkpoint it resumed from (0: trained from scratch).
        seconds: wall time of the retraining.
    """

    model: Any
    epochs: int
    val_loss: float
    val_accuracy: float
    resumed_from: int = 0
    seconds: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """A JSON-safe summary (the ``saved`` object of ``--format json``)."""
        return {
            "epochs": self.epochs, "val_loss": self.val_loss, "val_accuracy": self.val_accuracy,
            "resumed_from": self.resumed_from, "seconds": round(self.seconds, 3), "source": self.source,
        }


def data_source(
    dataset: str | None, data: str | os.PathLike[str] | None, target: str | None, split_seed: int,
    val_fraction: float, rows: int | None = None,
) -> dict[str, Any]:
    """The data a model was trained on, as its file records it: a named dataset or an absolute file path,
    the label column, the train/validation split (seed, fraction) and the rows split."""
    out: dict[str, Any] = {"split_seed": int(split_seed), "val_fraction": float(val_fraction)}
    if rows is not None:
        out["rows"] = int(rows)
    if dataset is not None:
        out["dataset"] = dataset
    if data is not None:
        out["data"] = os.path.abspath(str(data))
    if target is not None:
        out["target"] = target
    return out


def check_output(path: Path, flag: str = "--save") -> None:
    """Refuse an output path that cannot be written: a directory, or a file in a missing directory."""
    if path.is_dir():
        raise BadInput(flag, str(path), "expected a file name, not a directory")
    if not path.absolute().parent.is_dir():
        raise BadInput(flag, str(path), "expected a file in an existing directory")


def _same_bits(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    return struct.pack("<d", float(a)) == struct.pack("<d", float(b))


def trial_model(
    store: Store, trial_id: str, on_epoch: Callable[[dict[str, Any]], Any] | None = None
) -> Retrained:
    """Retrain a stored trial and check it is the trial the study recorded.

    Call :func:`service.settings.single_thread_env` first, as the pool and workers do: the BLAS thread
    count changes rounding. ``on_epoch`` sees each retrained epoch's history entry (a progress bar).

    Raises:
        BadInput: no such trial, a trial with no result to reproduce (queued, running, failed, diverged,
            cancelled), a panda session's trial, or a data file that changed since the study began.
        NotReproduced: the retrained validation loss differs from the stored one.
    """
    from core.nn import Checkpoint, train
    from service.execute import check_data_unchanged, trial_config, trial_dataset
    from service.orchestrate import is_panda, study_spec

    # the store is imported here, not at the top: caviar train imports this module at start-up
    from service.store import TrialStatus, checkpoints, reads
    from service.store.states import WITH_MODEL

    row = reads.trial(store, trial_id)
    if row is None:
        raise BadInput("trial", trial_id, "the id of a trial (see caviar trials STUDY)")
    if is_panda(store, row.study_id):
        raise BadInput("trial", trial_id, "a sweep's trial (for a panda session: caviar panda save)")
    if row.status not in WITH_MODEL:
        raise BadInput(
            f"trial {trial_id}", row.status,
            "a trial with a result to reproduce: " + ", ".join(WITH_MODEL),
        )
    spec = study_spec(store, row.study_id)
    config = trial_config(spec, dict(row.params), int(row.seed))
    epochs = int(config["epochs"]) if row.status == TrialStatus.COMPLETE else int(row.epochs_run or 0)
    check_data_unchanged(store, row.study_id, spec)
    data = trial_dataset(spec, config["dtype"])
    start = None
    held = checkpoints.latest(store, trial_id)
    if held is not None and 0 < held[0] <= epochs:
        try:
            start = Checkpoint.from_bytes(held[1])
        except BadInput:
            start = None  # unreadable: train from scratch, which gives the same bits
    began = time.perf_counter()
    result = train({**config, "epochs": epochs}, data, start=start, on_epoch=on_epoch)
    seconds = time.perf_counter() - began
    if result.status != "complete" or not _same_bits(result.val_loss, row.val_loss):
        raise NotReproduced(
            f"retraining trial {trial_id} gave val_loss {result.val_loss!r} ({result.status}), the study "
            f"stored {row.val_loss!r}: the data or the machine (CPU, library versions) changed since"
        )
    source = {
        "study": row.study_id, "trial": trial_id, "epochs": epochs,
        "val_loss": row.val_loss, "val_accuracy": row.val_accuracy,
        "data": data_source(spec.dataset, spec.data, spec.target, spec.data_seed, spec.val_fraction,
                            len(data.y_train) + len(data.y_val)),
    }
    result.model.source = source
    return Retrained(
        result.model, epochs, float(result.val_loss), float(result.val_accuracy),
        resumed_from=start.epoch if start is not None else 0, seconds=seconds, source=source,
    )


def session_model(store: Store, session_id: str, epoch: int | None = None) -> Retrained:
    """A panda session's model after ``epoch`` epochs (default: the last epoch it trained).

    The state comes from the session's checkpoint of that epoch, or is recomputed exactly from the
    nearest earlier one; the validation loss is checked against the session's curve, bit for bit, except
    with ``bn_inference = "population"`` (whose final statistics the curve does not describe).

    Raises:
        BadInput: no such session, or an epoch it has not reached.
        NotReproduced: the recomputed validation loss differs from the stored curve's.
    """
    from service.panda.runner import final_metrics, session_data, state_at, timeline_of
    from service.panda.session import require_session
    from service.store import panda as db

    view = require_session(store, session_id)
    curve = db.curve(store, view.trial.id)
    reached = int(curve[-1]["epoch"]) if curve else 0
    if epoch is None:
        epoch = reached
    if not 1 <= epoch <= reached:
        allowed = f"an epoch the session reached, 1..{reached}" if reached else "a session that has trained"
        raise BadInput("--epoch", epoch, allowed)
    timeline = timeline_of(store, view)
    data = session_data(dict(view.session.source), timeline.initial["dtype"])
    began = time.perf_counter()
    state = state_at(store, view.trial.id, timeline, data, epoch)
    result = final_metrics(timeline, data, state, epoch)
    seconds = time.perf_counter() - began
    config = timeline.state_at(epoch)[0]
    stored = next((c for c in curve if int(c["epoch"]) == epoch), None)
    population = config["bn_inference"] == "population" and config["norm"] in ("batch", "switchable")
    recorded = stored["val_loss"] if stored is not None else None
    checked = not population and recorded is not None and math.isfinite(recorded)
    if checked and not _same_bits(result.val_loss, recorded):
        raise NotReproduced(
            f"recomputing session {session_id} at epoch {epoch} gave val_loss {result.val_loss!r}, its "
            f"curve holds {recorded!r}: the data or the machine changed since"
        )
    source = {
        "panda_session": session_id, "trial": view.trial.id, "epochs": epoch,
        "val_loss": float(result.val_loss), "val_accuracy": float(result.val_accuracy),
        "data": {**{k: v for k, v in dict(view.session.source).items()
                    if k in ("dataset", "data", "target", "split_seed", "val_fraction")},
                 "rows": len(data.y_train) + len(data.y_val)},
    }
    result.model.source = source
    result.model.config = {**config, "epochs": epoch}
    return Retrained(result.model, epoch, float(result.val_loss), float(result.val_accuracy),
                     resumed_from=state.epoch if state is not None else 0, seconds=seconds, source=source)
