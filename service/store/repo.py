"""Queries and idempotent writes on the study store.

Every write is safe to repeat: rounds and trials are created under unique constraints, epochs are
inserted with ``ON CONFLICT DO NOTHING``, and a trial's result is written by a conditional update that
only the holder of the current attempt (the *lease*: status ``running`` and ``attempts`` equal to the
claimed attempt) can make. Times that matter (heartbeats) come from the database's clock.

The functions used by distributed workers and their reaper are :func:`claim_trial`,
:func:`epoch_tick` (heartbeat + learning-curve row), :func:`finish_trial`, :func:`stale_running`,
:func:`reap_stale`, :func:`requeue_trial`, :func:`counts_by_status`, :func:`running_by_worker` and
:func:`queued_trial_ids`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import BadInput
from service.store.clock import as_utc, db_ago, db_now
from service.store.models import FINISHED, Epoch, Round, Study, Trial
from service.store.store import Store

__all__ = [
    "Claim",
    "DEFAULT_MAX_ATTEMPTS",
    "METRICS",
    "SORT_KEYS",
    "create_study",
    "get_study",
    "require_study",
    "list_studies",
    "study_ids",
    "set_study_state",
    "cancel_study",
    "create_round",
    "rounds",
    "latest_round",
    "round_finished",
    "round_results",
    "trial",
    "trial_rows",
    "count_trials",
    "export_records",
    "write_export_csv",
    "EXPORT_COLUMNS",
    "best_trial_row",
    "epochs_of",
    "claim_trial",
    "epoch_tick",
    "heartbeat",
    "finish_trial",
    "finish_trial_progress",
    "Progress",
    "study_progress",
    "requeue_trial",
    "requeue_running",
    "stale_running",
    "reap_stale",
    "counts_by_status",
    "round_counts",
    "running_by_worker",
    "queued_trial_ids",
    "heartbeat_age",
]

#: Attempts after which a trial that keeps dying is marked failed.
DEFAULT_MAX_ATTEMPTS = 3
#: The final metrics stored on a trial.
METRICS = ("val_loss", "val_accuracy", "train_loss", "epochs_run", "seconds", "samples_per_second")
#: Columns ``caviar trials --sort`` accepts.
SORT_KEYS = ("objective", "val_loss", "val_accuracy", "seconds", "round", "id", "attempts")


#: For the trial path's ORM updates: each runs in a fresh session holding no objects, so SQLAlchemy's
#: default of evaluating the criteria against the identity map is pure overhead (a third of a millisecond).
_NO_SYNC = {"synchronize_session": False}


def _insert(store_or_session: Store | Session):  # type: ignore[no-untyped-def]
    dialect = (
        store_or_session.dialect
        if isinstance(store_or_session, Store)
        else store_or_session.get_bind().dialect.name
    )
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _finite(value: Any) -> float | None:
    """A float for the database, or None for missing, NaN and infinite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- studies ---------------------------------------------------------------------------------------------


def create_study(
    store: Store,
    *,
    study_id: str,
    name: str,
    spec_raw: dict[str, Any],
    spec: dict[str, Any],
    spec_text: str | None,
    seed: int,
    objective: str,
    strategy: str,
) -> None:
    """Insert a study in state ``queued``. Raises IntegrityError if the id exists."""

    def go(s: Session) -> None:
        s.add(
            Study(
                id=study_id, name=name, spec_raw=spec_raw, spec=spec, spec_text=spec_text, seed=seed,
                objective=objective, strategy=strategy, state="queued",
            )
        )

    store.run(go)


def get_study(store: Store, study_id: str) -> Study | None:
    """The study with this id, or None."""
    return store.run(lambda s: s.get(Study, study_id))


def study_ids(store: Store) -> list[str]:
    """Every study id, oldest first."""
    return list(store.run(lambda s: s.scalars(select(Study.id).order_by(Study.created_at, Study.id)).all()))


def require_study(store: Store, study_id: str) -> Study:
    """The study with this id.

    Raises:
        BadInput: no such study; the message lists the ids that exist.
    """
    study = get_study(store, study_id)
    if study is None:
        ids = study_ids(store)
        listed = ", ".join(ids[-20:]) if ids else "(none: run a study first)"
        more = f" (latest 20 of {len(ids)})" if len(ids) > 20 else ""
        raise BadInput("study", study_id, f"expected one of the studies in this database{more}: {listed}")
    return study


def list_studies(store: Store) -> list[Study]:
    """Every study, oldest first."""
    return list(store.run(lambda s: s.scalars(select(Study).order_by(Study.created_at, Study.id)).all()))


def set_study_state(
    store: Store,
    study_id: str,
    state: str,
    *,
    only_from: Sequence[str] | None = None,
    error: str | None = None,
) -> bool:
    """Set a study's state (and ``finished_at`` for final states) if it is in ``only_from``.

    Returns:
        True if the row changed.
    """
    values: dict[str, Any] = {"state": state}
    if state in ("complete", "failed", "cancelled"):
        values["finished_at"] = db_now()
    if error is not None:
        values["error"] = error
    stmt = update(Study).where(Study.id == study_id).values(**values)
    if only_from is not None:
        stmt = stmt.where(Study.state.in_(list(only_from)))
    return bool(store.run(lambda s: s.execute(stmt).rowcount))


def cancel_study(store: Store, study_id: str) -> int:
    """Cancel a study: its state becomes ``cancelled`` and its queued trials ``cancelled``.

    Running trials notice at their next epoch and stop. Finished trials are kept.

    Returns:
        The number of queued trials cancelled.
    """

    def go(s: Session) -> int:
        s.execute(
            update(Study)
            .where(Study.id == study_id, Study.state.in_(["queued", "running"]))
            .values(state="cancelled", finished_at=db_now())
        )
        return s.execute(
            update(Trial)
            .where(Trial.study_id == study_id, Trial.status == "queued")
            .values(status="cancelled", finished_at=db_now())
        ).rowcount

    return store.run(go)


# --- rounds ----------------------------------------------------------------------------------------------


def create_round(
    store: Store,
    study_id: str,
    round_index: int,
    region: dict[str, Any],
    parent_index: int | None,
    trials: Sequence[tuple[str, int, dict[str, Any], int]],
) -> bool:
    """Create a round and its queued trials in one transaction.

    Args:
        trials: (trial id, index in the round, params, seed) per trial.

    Returns:
        True if this call created the round; False if it existed already (created by another process:
        the unique constraint on ``(study_id, round_index)`` decides, never a Python lock).
    """

    def go(s: Session) -> bool:
        s.add(Round(study_id=study_id, round_index=round_index, region=region, parent_index=parent_index))
        s.flush()
        if trials:
            s.execute(
                Trial.__table__.insert(),
                [
                    {
                        "id": tid, "study_id": study_id, "round_index": round_index, "trial_index": idx,
                        "params": params, "seed": seed, "status": "queued", "attempts": 0,
                    }
                    for tid, idx, params, seed in trials
                ],
            )
        return True

    try:
        return store.run(go)
    except IntegrityError:
        return False


def rounds(store: Store, study_id: str) -> list[Round]:
    """The rounds of a study in order."""
    return list(
        store.run(
            lambda s: s.scalars(
                select(Round).where(Round.study_id == study_id).order_by(Round.round_index)
            ).all()
        )
    )


def latest_round(store: Store, study_id: str) -> int | None:
    """The index of the study's latest round, or None before round 0 exists."""
    return store.run(
        lambda s: s.execute(select(func.max(Round.round_index)).where(Round.study_id == study_id)).scalar()
    )


def round_finished(store: Store, study_id: str, round_index: int) -> bool:
    """True when no trial of the round is queued or running."""
    pending = store.run(
        lambda s: s.execute(
            select(func.count())
            .select_from(Trial)
            .where(
                Trial.study_id == study_id,
                Trial.round_index == round_index,
                Trial.status.not_in(list(FINISHED)),
            )
        ).scalar_one()
    )
    return pending == 0


def round_results(store: Store, study_id: str, objective: str) -> list[list[tuple[dict[str, Any], float]]]:
    """Per round, (params, objective value) of every finished trial, in trial order.

    The value is the stored ``val_loss`` or ``val_accuracy``; NaN for diverged and failed trials (and
    for cancelled ones, which only exist in a cancelled study).
    """
    column = Trial.val_loss if objective == "val_loss" else Trial.val_accuracy
    rows = store.run(
        lambda s: s.execute(
            select(Trial.round_index, Trial.params, Trial.status, column)
            .where(Trial.study_id == study_id)
            .order_by(Trial.round_index, Trial.trial_index)
        ).all()
    )
    out: dict[int, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for rnd, params, status, value in rows:
        ok = status == "complete" and value is not None
        out[rnd].append((params, float(value) if ok else math.nan))
    n = max(out) + 1 if out else 0
    return [out.get(i, []) for i in range(n)]


# --- trials: reads ---------------------------------------------------------------------------------------


def trial(store: Store, trial_id: str) -> Trial | None:
    """The trial with this id, or None."""
    return store.run(lambda s: s.get(Trial, trial_id))


_COLUMNS = [c for c in Trial.__table__.columns if c.name not in ("study_id",)]


def _objective_order(objective: str):  # type: ignore[no-untyped-def]
    # Best first; NULL (diverged, failed, unfinished) last on both backends.
    if objective == "val_accuracy":
        return [Trial.val_accuracy.is_(None), Trial.val_accuracy.desc(), Trial.val_loss, Trial.id]
    return [Trial.val_loss.is_(None), Trial.val_loss, Trial.val_accuracy.desc(), Trial.id]


def _trial_query(
    study_id: str,
    *,
    objective: str,
    round_index: int | None = None,
    status: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> Select[Any]:
    stmt = select(*_COLUMNS).where(Trial.study_id == study_id)
    if round_index is not None:
        stmt = stmt.where(Trial.round_index == round_index)
    if status is not None:
        stmt = stmt.where(Trial.status == status)
    key = sort or "id"
    if key == "objective":
        order = _objective_order(objective)
    elif key in ("val_loss", "val_accuracy"):
        order = _objective_order(key)
    elif key == "seconds":
        order = [Trial.seconds.is_(None), Trial.seconds, Trial.id]
    elif key == "attempts":
        order = [Trial.attempts.desc(), Trial.id]
    else:  # id and round: creation order
        order = [Trial.round_index, Trial.trial_index]
    stmt = stmt.order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


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
    """
    if sort is not None and sort not in SORT_KEYS:
        raise BadInput("--sort", sort, "expected one of " + ", ".join(SORT_KEYS))
    stmt = _trial_query(
        study_id, objective=objective, round_index=round_index, status=status, sort=sort, limit=limit
    )
    rows = store.run(lambda s: s.execute(stmt).mappings().all())
    out = []
    for row in rows:
        d = dict(row)
        for key in ("created_at", "started_at", "finished_at", "heartbeat_at"):
            d[key] = as_utc(d[key])
        out.append(d)
    return out


def export_records(store: Store, study_id: str) -> list[dict[str, Any]]:
    """Every trial of a study as a public record (see :mod:`service.views`), fast enough for 100,000 rows.

    A textual query skips SQLAlchemy's per-value type processing; ``params`` is decoded here and
    times are ISO 8601 text in UTC.
    """
    import json

    sql = text(
        "SELECT id, round_index, trial_index, status, attempts, params, seed, val_loss, val_accuracy, "
        "train_loss, epochs_run, seconds, samples_per_second, worker, error, created_at, started_at, "
        "finished_at FROM trials WHERE study_id = :sid ORDER BY round_index, trial_index"
    )
    rows = store.run(lambda s: s.execute(sql, {"sid": study_id}).all())
    loads = json.loads

    def when(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, str):  # SQLite keeps UTC text without an offset
            return v.replace(" ", "T") + "+00:00"
        return as_utc(v).isoformat()  # type: ignore[union-attr]

    out = []
    for r in rows:
        out.append({
            "id": r[0], "round": r[1], "index": r[2], "status": r[3], "attempts": r[4],
            "params": loads(r[5]) if isinstance(r[5], str) else r[5], "seed": r[6], "val_loss": r[7],
            "val_accuracy": r[8], "train_loss": r[9], "epochs_run": r[10], "seconds": r[11],
            "samples_per_second": r[12], "worker": r[13], "error": r[14], "created_at": when(r[15]),
            "started_at": when(r[16]), "finished_at": when(r[17]),
        })
    return out


#: Columns of a CSV export, before the ``param.<name>`` columns.
EXPORT_COLUMNS = (
    ("id", "id"), ("round", "round_index"), ("index", "trial_index"), ("status", "status"),
    ("attempts", "attempts"), ("seed", "seed"), ("val_loss", "val_loss"), ("val_accuracy", "val_accuracy"),
    ("train_loss", "train_loss"), ("epochs_run", "epochs_run"), ("seconds", "seconds"),
    ("samples_per_second", "samples_per_second"), ("worker", "worker"), ("error", "error"),
    ("created_at", "created_at"), ("started_at", "started_at"), ("finished_at", "finished_at"),
)


def write_export_csv(store: Store, study_id: str, out: Any, param_names: Sequence[str]) -> int:
    """Write every trial of a study as CSV to the text stream ``out``; return the number of rows.

    The database flattens ``params`` into one column per name and formats times (ISO 8601, UTC), so
    Python only streams tuples to :mod:`csv` — 100,000 trials take well under a second.
    """
    import csv
    import re

    for name in param_names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise BadInput("param", name, "expected a hyperparameter name")
    times = {"created_at", "started_at", "finished_at"}
    if store.dialect == "postgresql":
        def tcol(c: str) -> str:
            return f"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"

        def pcol(n: str) -> str:
            return f"params->>'{n}'"
    else:
        def tcol(c: str) -> str:
            return f"replace({c}, ' ', 'T') || '+00:00'"

        def pcol(n: str) -> str:
            return f"json_extract(params, '$.{n}')"
    cols = [tcol(c) if c in times else c for _, c in EXPORT_COLUMNS] + [pcol(n) for n in param_names]
    select_sql = f"SELECT {', '.join(cols)} FROM trials WHERE study_id = %s ORDER BY round_index, trial_index"
    header = [h for h, _ in EXPORT_COLUMNS] + [f"param.{n}" for n in param_names]
    csv.writer(out, lineterminator="\n").writerow(header)

    def go(s: Session) -> int:
        # The driver's own connection: rows stream as plain tuples (or as CSV text from PostgreSQL's
        # COPY), with no per-value work in Python.
        raw = s.connection().connection.driver_connection
        if store.dialect == "postgresql":
            from psycopg import sql as pgsql

            copy_sql = "COPY (" + select_sql.replace("%s", "{}") + ") TO STDOUT WITH (FORMAT csv)"
            query = pgsql.SQL(copy_sql).format(pgsql.Literal(study_id))
            n = 0
            with raw.cursor() as cur, cur.copy(query) as copy:
                for data in copy:
                    chunk = bytes(data).decode("utf-8")
                    n += chunk.count("\n")
                    out.write(chunk)
            return n
        writer = csv.writer(out, lineterminator="\n")
        cur = raw.cursor()
        try:
            cur.execute(select_sql.replace("%s", "?"), (study_id,))
            n = 0
            while chunk := cur.fetchmany(10_000):
                writer.writerows(chunk)
                n += len(chunk)
            return n
        finally:
            cur.close()

    return store.run(go)


def count_trials(store: Store, study_id: str) -> int:
    """How many trials the study has."""
    return store.run(
        lambda s: s.execute(
            select(func.count()).select_from(Trial).where(Trial.study_id == study_id)
        ).scalar_one()
    )


def best_trial_row(store: Store, study_id: str, objective: str) -> dict[str, Any] | None:
    """The best complete trial by the study's objective, or None if none completed."""
    rows = trial_rows(store, study_id, objective=objective, status="complete", sort="objective", limit=1)
    return rows[0] if rows else None


def epochs_of(store: Store, trial_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Learning curves: trial id -> list of epoch rows in order."""
    ids = list(trial_ids)
    if not ids:
        return {}
    rows = store.run(
        lambda s: s.execute(
            select(Epoch.__table__).where(Epoch.trial_id.in_(ids)).order_by(Epoch.trial_id, Epoch.epoch)
        ).mappings().all()
    )
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for row in rows:
        out[row["trial_id"]].append(dict(row))
    return out


# --- trials: the life cycle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claimed attempt of a trial: the lease is (trial id, attempt)."""

    trial_id: str
    study_id: str
    round_index: int
    trial_index: int
    params: dict[str, Any]
    seed: int
    attempt: int


def claim_trial(
    store: Store,
    trial_id: str,
    worker: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    steal_after: float | None = None,
) -> Claim | None:
    """Claim a queued trial: ``running``, ``attempts += 1``, worker, start and heartbeat by the DB clock.

    A trial past ``max_attempts`` is marked ``failed`` instead. A trial already finished, or running
    under a live lease, is not claimed. Previous attempts' epoch rows are deleted so the learning curve
    is the new attempt's.

    The usual case is one conditional ``UPDATE ... RETURNING`` (the row's own lock decides between two
    claimants); it also returns whether the study is still ``queued`` and whether epoch rows exist, so
    those writes are made only when needed. The rarer outcomes (finished, live lease, attempt cap) are
    told apart by reading the row afterwards, in the same transaction.

    Args:
        steal_after: also claim a ``running`` trial whose heartbeat is older than this many seconds by
            the database's clock (its worker is presumed dead); None claims queued trials only.

    Returns:
        The claim, or None if this call did not claim the trial.
    """
    claimable = Trial.status == "queued"
    if steal_after is not None:
        claimable = claimable | and_(Trial.status == "running", Trial.heartbeat_at < db_ago(steal_after))
    study_state = select(Study.state).where(Study.id == Trial.study_id).scalar_subquery()
    has_epochs = select(Epoch.trial_id).where(Epoch.trial_id == Trial.id).exists()
    claim_stmt = (
        update(Trial)
        .where(Trial.id == trial_id, Trial.attempts < max_attempts, claimable)
        .values(
            status="running", attempts=Trial.attempts + 1, worker=worker, started_at=db_now(),
            heartbeat_at=db_now(), finished_at=None, error=None,
        )
        .returning(
            Trial.study_id, Trial.round_index, Trial.trial_index, Trial.params, Trial.seed, Trial.attempts,
            study_state, has_epochs,
        )
    )

    def go(s: Session) -> Claim | None:
        row = s.execute(claim_stmt, execution_options=_NO_SYNC).one_or_none()
        if row is None:
            _refuse_claim(s, trial_id, claimable, max_attempts)
            return None
        study_id, round_index, trial_index, params, seed, attempt, state, stale_curve = row
        if stale_curve:
            s.execute(delete(Epoch).where(Epoch.trial_id == trial_id))
        if state == "queued":
            s.execute(
                update(Study).where(Study.id == study_id, Study.state == "queued").values(state="running")
            )
        return Claim(trial_id, study_id, round_index, trial_index, dict(params), seed, attempt)

    return store.run(go)


def _refuse_claim(s: Session, trial_id: str, claimable: Any, max_attempts: int) -> None:
    """A claim that did not happen: mark the trial ``failed`` if it is claimable but at the cap."""
    attempts = s.execute(
        select(Trial.attempts).where(Trial.id == trial_id, Trial.status.not_in(list(FINISHED)))
    ).scalar_one_or_none()
    if attempts is None or attempts < max_attempts:
        return  # missing, finished, running under a live lease, or claimed by another process just now
    s.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.attempts == attempts, claimable)
        .values(
            status="failed", finished_at=db_now(),
            error=f"gave up after {attempts} attempts (the attempt cap is {max_attempts})",
        )
    )


def _lease(trial_id: str, attempt: int):  # type: ignore[no-untyped-def]
    return and_(Trial.id == trial_id, Trial.status == "running", Trial.attempts == attempt)


def heartbeat(store: Store, trial_id: str, attempt: int) -> bool:
    """Refresh a running attempt's heartbeat with the DB clock.

    Returns:
        True if the lease is still held and the study is not cancelled (False: stop the trial).
    """
    return epoch_tick(store, trial_id, attempt, None)


def epoch_tick(store: Store, trial_id: str, attempt: int, entry: dict[str, Any] | None) -> bool:
    """Write one learning-curve row (idempotently) and refresh the heartbeat, in one transaction.

    Args:
        entry: the engine's history entry (epoch, train_loss, val_loss, val_accuracy, learning_rate,
            seconds), or None for a heartbeat only.

    Returns:
        True if the lease is still held and the study is not cancelled.
    """
    live_study = select(Study.id).where(Study.state.not_in(["cancelled", "failed"]))

    def go(s: Session) -> bool:
        held = s.execute(
            update(Trial)
            .where(_lease(trial_id, attempt), Trial.study_id.in_(live_study))
            .values(heartbeat_at=db_now()),
            execution_options=_NO_SYNC,
        ).rowcount
        if held and entry is not None:
            s.execute(_insert(s)(Epoch).values(**_epoch_row(trial_id, entry)).on_conflict_do_nothing())
        return bool(held)

    return store.run(go)


def _epoch_row(trial_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"trial_id": trial_id, "epoch": int(entry["epoch"])}
    for key in ("train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"):
        row[key] = _finite(entry.get(key))
    return row


def _finish(
    s: Session,
    trial_id: str,
    attempt: int,
    status: str,
    metrics: dict[str, Any] | None,
    error: str | None,
    last_epoch: dict[str, Any] | None,
) -> bool:
    if status not in FINISHED:
        raise ValueError(f"not a final status: {status}")
    values: dict[str, Any] = {"status": status, "finished_at": db_now(), "heartbeat_at": db_now()}
    for key in METRICS:
        if metrics and key in metrics:
            value = metrics[key]
            values[key] = int(value) if key == "epochs_run" and value is not None else _finite(value)
    if error is not None:
        values["error"] = error[:4000]
    stmt = update(Trial).where(_lease(trial_id, attempt)).values(**values)
    recorded = bool(s.execute(stmt, execution_options=_NO_SYNC).rowcount)
    if recorded and last_epoch is not None:
        s.execute(_insert(s)(Epoch).values(**_epoch_row(trial_id, last_epoch)).on_conflict_do_nothing())
    return recorded


def finish_trial(
    store: Store,
    trial_id: str,
    attempt: int,
    status: str,
    metrics: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    last_epoch: dict[str, Any] | None = None,
) -> bool:
    """Record an attempt's outcome, once: only the holder of the lease can, and only the first time.

    Args:
        status: ``complete``, ``diverged``, ``failed`` or ``cancelled``.
        metrics: final metrics (:data:`METRICS` keys); NaN and infinities are stored as NULL.
        error: the error text of a failed trial.
        last_epoch: a learning-curve row not yet written (the last epoch's), stored in the same
            transaction, idempotently, if the result is.

    Returns:
        True if this call recorded the result; False if it was recorded already or the lease was lost.
    """
    return store.run(lambda s: _finish(s, trial_id, attempt, status, metrics, error, last_epoch))


@dataclass(frozen=True)
class Progress:
    """Where a study stands, from one query: enough to decide whether to advance it.

    Attributes:
        state: the study's state (None: no such study).
        objective: the study's objective column.
        latest: the index of its latest round (None before round 0 exists).
        pending: the latest round's trials that are queued or running.
    """

    state: str | None
    objective: str | None = None
    latest: int | None = None
    pending: int = 0

    @property
    def due(self) -> bool:
        """True when the study is live and its latest round is over (or none exists): advance it."""
        return self.state in ("queued", "running") and self.pending == 0


def _progress(s: Session, study_id: str) -> Progress:
    latest = (
        select(func.max(Round.round_index)).where(Round.study_id == study_id).scalar_subquery()
    )
    pending = (
        select(func.count())
        .select_from(Trial)
        .where(Trial.study_id == study_id, Trial.round_index == latest, Trial.status.not_in(list(FINISHED)))
        .scalar_subquery()
    )
    row = s.execute(
        select(Study.state, Study.objective, latest, pending).where(Study.id == study_id)
    ).one_or_none()
    if row is None:
        return Progress(None)
    return Progress(row[0], row[1], row[2], int(row[3] or 0))


def study_progress(store: Store, study_id: str) -> Progress:
    """The study's state and its latest round's unfinished trials, in one query."""
    return store.run(lambda s: _progress(s, study_id))


def finish_trial_progress(
    store: Store,
    trial_id: str,
    study_id: str,
    attempt: int,
    status: str,
    metrics: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    last_epoch: dict[str, Any] | None = None,
) -> tuple[bool, Progress]:
    """:func:`finish_trial`, then :func:`study_progress`, in one transaction.

    The study's row is locked (``FOR NO KEY UPDATE`` on PostgreSQL; SQLite transactions are serial)
    between recording and counting, so of two trials finishing a round at the same moment the second
    to take the lock counts after the first committed: at least one of them sees the round over.
    Without the lock each could miss the other's uncommitted result and neither would advance.

    Returns:
        (True if this call recorded the result, the study's progress after it).
    """

    def go(s: Session) -> tuple[bool, Progress]:
        recorded = _finish(s, trial_id, attempt, status, metrics, error, last_epoch)
        s.execute(select(Study.id).where(Study.id == study_id).with_for_update(key_share=True))
        return recorded, _progress(s, study_id)

    return store.run(go)


def requeue_trial(store: Store, trial_id: str, *, give_back_attempt: bool = False) -> bool:
    """Put a running trial back in the queue (its worker died or was interrupted).

    Args:
        give_back_attempt: decrement ``attempts`` (the attempt was interrupted on purpose, e.g. Ctrl-C,
            and should not count towards the cap).
    """
    values: dict[str, Any] = {"status": "queued", "worker": None, "heartbeat_at": None}
    if give_back_attempt:
        values["attempts"] = Trial.attempts - 1
    stmt = update(Trial).where(Trial.id == trial_id, Trial.status == "running").values(**values)
    return bool(store.run(lambda s: s.execute(stmt).rowcount))


def requeue_running(store: Store, study_id: str, *, worker_prefix: str | None = None,
                    give_back_attempt: bool = True) -> list[str]:
    """Requeue a study's running trials (optionally only those of workers whose name starts with a prefix).

    Returns:
        The ids requeued.
    """

    def go(s: Session) -> list[str]:
        cond = [Trial.study_id == study_id, Trial.status == "running"]
        if worker_prefix is not None:
            cond.append(Trial.worker.startswith(worker_prefix, autoescape=True))
        ids = list(s.scalars(select(Trial.id).where(*cond)).all())
        if ids:
            values: dict[str, Any] = {"status": "queued", "worker": None, "heartbeat_at": None}
            if give_back_attempt:
                values["attempts"] = Trial.attempts - 1
            s.execute(update(Trial).where(Trial.id.in_(ids), Trial.status == "running").values(**values))
        return ids

    return store.run(go)


def stale_running(store: Store, older_than: float, *, study_id: str | None = None) -> list[dict[str, Any]]:
    """Running trials whose heartbeat is older than ``older_than`` seconds by the database's clock.

    Returns:
        Dicts with id, study_id, worker, attempts and heartbeat_at.
    """

    def go(s: Session) -> list[dict[str, Any]]:
        cutoff = s.execute(select(db_now())).scalar_one() - timedelta(seconds=older_than)
        stmt = select(Trial.id, Trial.study_id, Trial.worker, Trial.attempts, Trial.heartbeat_at).where(
            Trial.status == "running", Trial.heartbeat_at < cutoff
        )
        if study_id is not None:
            stmt = stmt.where(Trial.study_id == study_id)
        return [dict(r) for r in s.execute(stmt.order_by(Trial.id)).mappings().all()]

    return store.run(go)


def reap_stale(
    store: Store, older_than: float, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, study_id: str | None = None
) -> tuple[list[str], list[str]]:
    """Requeue running trials with a stale heartbeat, or mark them failed once they reached the cap.

    Each row is changed by a conditional update (still running, same attempt, still stale), so two
    reapers racing change it once.

    Returns:
        (ids requeued — dispatch them again, ids failed).
    """
    requeued: list[str] = []
    failed: list[str] = []
    for row in stale_running(store, older_than, study_id=study_id):

        def go(s: Session, row: dict[str, Any] = row) -> bool:
            cutoff = s.execute(select(db_now())).scalar_one() - timedelta(seconds=older_than)
            cond = [_lease(row["id"], row["attempts"]), Trial.heartbeat_at < cutoff]
            if row["attempts"] >= max_attempts:
                values: dict[str, Any] = {
                    "status": "failed", "finished_at": db_now(),
                    "error": f"worker {row['worker']} stopped responding; gave up after "
                             f"{row['attempts']} attempts (the attempt cap is {max_attempts})",
                }
            else:
                values = {"status": "queued", "worker": None, "heartbeat_at": None}
            return bool(s.execute(update(Trial).where(*cond).values(**values)).rowcount)

        if store.run(go):
            (failed if row["attempts"] >= max_attempts else requeued).append(row["id"])
    return requeued, failed


def counts_by_status(store: Store, study_id: str | None = None) -> dict[str, int]:
    """Number of trials per status (every status present, zeros included)."""
    stmt = select(Trial.status, func.count()).group_by(Trial.status)
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    rows = store.run(lambda s: s.execute(stmt).all())
    out = dict.fromkeys(("queued", "running", "complete", "diverged", "failed", "cancelled"), 0)
    out.update({status: n for status, n in rows})
    return out


def round_counts(store: Store, study_id: str) -> dict[int, dict[str, int]]:
    """Per round index, the number of trials per status (statuses present only)."""
    stmt = (
        select(Trial.round_index, Trial.status, func.count())
        .where(Trial.study_id == study_id)
        .group_by(Trial.round_index, Trial.status)
    )
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for rnd, status, n in store.run(lambda s: s.execute(stmt).all()):
        out[rnd][status] = n
    return dict(out)


def running_by_worker(store: Store, study_id: str | None = None) -> dict[str, list[str]]:
    """Running trial ids per worker name."""
    stmt = select(Trial.worker, Trial.id).where(Trial.status == "running").order_by(Trial.worker, Trial.id)
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    out: dict[str, list[str]] = defaultdict(list)
    for worker, tid in store.run(lambda s: s.execute(stmt).all()):
        out[worker or "?"].append(tid)
    return dict(out)


def queued_trial_ids(store: Store, study_id: str | None = None) -> list[str]:
    """Ids of queued trials (of one study, or of every study that is not cancelled), in creation order."""
    stmt = (
        select(Trial.id)
        .join(Study, Study.id == Trial.study_id)
        .where(Trial.status == "queued", Study.state.in_(["queued", "running"]))
        .order_by(Trial.study_id, Trial.round_index, Trial.trial_index)
    )
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    return list(store.run(lambda s: s.scalars(stmt).all()))


def heartbeat_age(store: Store, trial_id: str) -> float | None:
    """Seconds since the trial's last heartbeat by the database's clock (None without one)."""

    def go(s: Session) -> float | None:
        now, beat = s.execute(select(db_now(), Trial.heartbeat_at).where(Trial.id == trial_id)).one()
        a, b = as_utc(now), as_utc(beat)
        return None if a is None or b is None else (a - b).total_seconds()

    return store.run(go)


