"""Reading trials: one trial, filtered and sorted lists, the best trial, counts and learning curves.

What the read commands (``status``, ``trials``, ``best``, ``plot``) and :mod:`service.api` show. Sorting
by the objective puts the best first and trials without a value (diverged, failed, unfinished) last,
on both backends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from core.errors import BadInput
from core.search.objective import Objective
from service.store.clock import as_utc
from service.store.models import Epoch, Study, Trial
from service.store.states import LIVE_STUDY, TrialStatus
from service.store.store import Store

__all__ = [
    "SORT_KEYS",
    "trial",
    "trial_rows",
    "count_trials",
    "best_trial_row",
    "epochs_of",
    "counts_by_status",
    "queued_trial_ids",
]

#: Columns ``caviar trials --sort`` accepts.
SORT_KEYS = ("objective", "val_loss", "val_accuracy", "seconds", "round", "id", "attempts")

_COLUMNS = [c for c in Trial.__table__.columns if c.name != "study_id"]
_TIMES = ("created_at", "started_at", "finished_at", "heartbeat_at")


def trial(store: Store, trial_id: str) -> Trial | None:
    """The trial with this id, or None."""
    return store.run(lambda s: s.get(Trial, trial_id))


def _objective_order(objective: str) -> list[ColumnElement[Any]]:
    # Best first; NULL (diverged, failed, unfinished) last on both backends.
    if Objective(objective).maximize:
        return [Trial.val_accuracy.is_(None), Trial.val_accuracy.desc(), Trial.val_loss, Trial.id]
    return [Trial.val_loss.is_(None), Trial.val_loss, Trial.val_accuracy.desc(), Trial.id]


def _order(key: str, objective: str) -> list[ColumnElement[Any]]:
    if key == "objective":
        return _objective_order(objective)
    if key in ("val_loss", "val_accuracy"):
        return _objective_order(key)
    if key == "seconds":
        return [Trial.seconds.is_(None), Trial.seconds, Trial.id]
    if key == "attempts":
        return [Trial.attempts.desc(), Trial.id]
    return [Trial.round_index, Trial.trial_index]  # id and round: creation order


def _trial_query(
    study_id: str,
    *,
    objective: str,
    round_index: int | None,
    status: str | None,
    sort: str | None,
    limit: int | None,
) -> Select[Any]:
    stmt = select(*_COLUMNS).where(Trial.study_id == study_id)
    if round_index is not None:
        stmt = stmt.where(Trial.round_index == round_index)
    if status is not None:
        stmt = stmt.where(Trial.status == status)
    stmt = stmt.order_by(*_order(sort or "id", objective))
    return stmt.limit(limit) if limit is not None else stmt


def trial_rows(
    store: Store,
    study_id: str,
    *,
    objective: str = "val_loss",
    round_index: int | None = None,
    status: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Trials of a study as plain dicts (every column but ``study_id``; times as aware UTC datetimes).

    Args:
        objective: the study's objective, for ``sort="objective"``.
        round_index, status: filters.
        sort: one of :data:`SORT_KEYS` (default: round, then index).
        limit: at most this many rows (the top N with a sort).

    Raises:
        BadInput: ``sort`` is not one of :data:`SORT_KEYS`.
    """
    if sort is not None and sort not in SORT_KEYS:
        raise BadInput("--sort", sort, "expected one of " + ", ".join(SORT_KEYS))
    stmt = _trial_query(
        study_id, objective=objective, round_index=round_index, status=status, sort=sort, limit=limit
    )
    out = []
    for row in store.run(lambda s: s.execute(stmt).mappings().all()):
        d = dict(row)
        for key in _TIMES:
            d[key] = as_utc(d[key])
        out.append(d)
    return out


def count_trials(store: Store, study_id: str) -> int:
    """How many trials the study has."""
    stmt = select(func.count()).select_from(Trial).where(Trial.study_id == study_id)
    return store.run(lambda s: s.execute(stmt).scalar_one())


def best_trial_row(store: Store, study_id: str, objective: str) -> dict[str, Any] | None:
    """The best complete trial by the study's objective, or None if none completed."""
    rows = trial_rows(
        store, study_id, objective=objective, status=TrialStatus.COMPLETE, sort="objective", limit=1
    )
    return rows[0] if rows else None


def epochs_of(store: Store, trial_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Learning curves: trial id -> list of epoch rows in order."""
    ids = list(trial_ids)
    if not ids:
        return {}
    stmt = select(Epoch.__table__).where(Epoch.trial_id.in_(ids)).order_by(Epoch.trial_id, Epoch.epoch)
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for row in store.run(lambda s: s.execute(stmt).mappings().all()):
        out[row["trial_id"]].append(dict(row))
    return out


def counts_by_status(store: Store, study_id: str | None = None) -> dict[str, int]:
    """Number of trials per status (every status present, zeros included)."""
    stmt = select(Trial.status, func.count()).group_by(Trial.status)
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    out = {str(status): 0 for status in TrialStatus}
    out.update({status: n for status, n in store.run(lambda s: s.execute(stmt).all())})
    return out


def queued_trial_ids(store: Store, study_id: str | None = None) -> list[str]:
    """Ids of queued trials (of one study, or of every study still live), in creation order."""
    stmt = (
        select(Trial.id)
        .join(Study, Study.id == Trial.study_id)
        .where(Trial.status == TrialStatus.QUEUED, Study.state.in_(LIVE_STUDY))
        .order_by(Trial.study_id, Trial.round_index, Trial.trial_index)
    )
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    return list(store.run(lambda s: s.scalars(stmt).all()))
