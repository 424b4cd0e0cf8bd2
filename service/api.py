"""Querying studies from Python.

The same records the CLI prints with ``--format json``, as plain dicts::

    from service import api

    api.studies()                                  # every study: id, name, state, rounds, counts, best
    rows = api.trials("digits-c2f-3fa9b1")         # every trial: id, round, status, params, val_loss, ...
    top = api.trials("digits-c2f-3fa9b1", status="complete")
    api.best("digits-c2f-3fa9b1")["params"]        # the best trial's hyperparameters
    df = api.trials_frame("digits-c2f-3fa9b1")     # a pandas DataFrame, one column per hyperparameter

``db`` is a database URL; by default ``CAVIAR_DATABASE_URL`` or ``sqlite:///./caviar.db``, as for the CLI.
Unknown study ids raise :class:`core.errors.BadInput` listing the ids that exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.store import Store, open_store
from service.store.reads import best_trial_row, epochs_of, trial_rows
from service.store.studies import list_studies, require_study
from service.views import study_record, trial_record

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["studies", "study", "trials", "trials_frame", "best", "curves"]


def _open(db: str | None) -> Store:
    return open_store(db, create=False)


def studies(db: str | None = None) -> list[dict[str, Any]]:
    """Every study in the database, oldest first (as ``caviar status --format json``)."""
    store = _open(db)
    try:
        return [study_record(store, s) for s in list_studies(store)]
    finally:
        store.dispose()


def study(study_id: str, db: str | None = None) -> dict[str, Any]:
    """One study's record: id, name, state, objective, strategy, rounds (with regions), counts, best."""
    store = _open(db)
    try:
        return study_record(store, require_study(store, study_id))
    finally:
        store.dispose()


def trials(
    study: str,
    db: str | None = None,
    status: str | None = None,
    round: int | None = None,  # noqa: A002 - the name users expect, as the CLI's --round
) -> list[dict[str, Any]]:
    """A study's trials in creation order (round, then index), optionally filtered.

    Args:
        study: the study id.
        db: database URL.
        status: only trials with this status (queued, running, complete, diverged, failed, cancelled).
        round: only this round.

    Returns:
        One dict per trial with id, round, index, status, attempts, params, seed, val_loss,
        val_accuracy, train_loss, epochs_run, seconds, samples_per_second, worker, error and times.
    """
    store = _open(db)
    try:
        row = require_study(store, study)
        return [
            trial_record(r)
            for r in trial_rows(store, study, objective=row.objective, status=status, round_index=round)
        ]
    finally:
        store.dispose()


def trials_frame(
    study: str,
    db: str | None = None,
    status: str | None = None,
    round: int | None = None,  # noqa: A002
) -> pd.DataFrame:
    """:func:`trials` as a pandas DataFrame indexed by trial id, one ``param.<name>`` column per
    hyperparameter. Needs pandas (``pip install pandas``)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("trials_frame needs pandas: pip install pandas (or use api.trials)") from None
    from service.views import flat_trial

    rows = [flat_trial(r) for r in trials(study, db=db, status=status, round=round)]
    frame = pd.DataFrame(rows)
    return frame.set_index("id") if not frame.empty else frame


def best(study: str, db: str | None = None) -> dict[str, Any] | None:
    """The best complete trial by the study's objective, or None if none completed."""
    store = _open(db)
    try:
        row = require_study(store, study)
        found = best_trial_row(store, study, row.objective)
        return trial_record(found) if found else None
    finally:
        store.dispose()


def curves(trial_ids: list[str], db: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Learning curves: trial id -> per-epoch dicts (epoch, train_loss, val_loss, val_accuracy,
    learning_rate, seconds)."""
    store = _open(db)
    try:
        return {
            tid: [{k: v for k, v in e.items() if k != "trial_id"} for e in rows]
            for tid, rows in epochs_of(store, trial_ids).items()
        }
    finally:
        store.dispose()
