"""The JSON API's read side: studies, one study, its trials a page at a time, its points, curves and
importance, one trial, the workers.

Records are the CLI's (:func:`service.views.study_record` and :func:`~service.views.trial_record`, the
objects ``caviar status`` and ``caviar trials`` print with ``--format json``). What grows with a study's
size is read with index-friendly SQL: a page of trials is a ``LIMIT``/``OFFSET`` over the trials that have
the sort key, walked in the order of the ``(study_id, val_loss)`` or ``(study_id, val_accuracy)`` index,
followed by those that have none; the best trials come from the same indexes; a sample of points is
picked by ``row_number()`` in the database, so a 100,000-trial study never travels whole.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import BadInput
from core.search.objective import Objective
from service.dashboard.axes import axes
from service.dashboard.reproduce import session_commands, trial_commands
from service.dashboard.responses import NotFound
from service.errors import CaviarError, describe, mask_url
from service.store import Store, fleet, lease, reads, studies
from service.store.clock import as_utc, db_now
from service.store.models import Study, Trial
from service.store.states import FINISHED, StudyKind, TrialStatus
from service.views import study_record, trial_record

__all__ = [
    "TRIAL_SORTS", "STUDY_SORTS", "CURVE_KEYS", "require_study", "status_record", "study_detail",
    "study_rows", "list_row", "trial_page", "points", "curves", "trial_detail", "workers", "importance",
    "trial_rows_by_id", "updated_at", "panda_detail", "queue_status",
]

#: ``sort`` values of ``/api/studies/{id}/trials`` (the CLI's ``--sort`` keys).
TRIAL_SORTS = reads.SORT_KEYS
#: ``sort`` values of ``/api/studies``.
STUDY_SORTS = ("created_at", "updated_at", "id", "name", "state", "kind", "trials", "best", "progress")
#: The fields of a learning-curve row, as ``caviar panda show`` lists them.
CURVE_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate")

_COLUMNS = [c for c in Trial.__table__.columns if c.name != "study_id"]
_TIMES = ("created_at", "started_at", "finished_at", "heartbeat_at")


def _row(row: Any) -> dict[str, Any]:
    d = dict(row)
    for key in _TIMES:
        if key in d:
            d[key] = as_utc(d[key])
    return d


def require_study(store: Store, study_id: str) -> Study:
    """The study, or :class:`NotFound`."""
    study = studies.get_study(store, study_id)
    if study is None:
        raise NotFound(f"no study {study_id!r} in this database")
    return study


# --- studies ---------------------------------------------------------------------------------------------


def _distributed(store: Store, study_id: str, stale_after: float) -> dict[str, Any] | None:
    """What ``caviar status ID`` adds while trials run: running trials per worker, stale trials."""
    running = fleet.running_by_worker(store, study_id)
    if not running:
        return None
    stale = [r["id"] for r in lease.stale_running(store, stale_after, study_id=study_id)]
    return {"running_by_worker": {w: len(ids) for w, ids in running.items()}, "stale": stale}


def status_record(store: Store, study: Study, stale_after: float) -> dict[str, Any]:
    """The object ``caviar status ID --format json`` prints (without ``--broker``)."""
    record = study_record(store, study)
    extras = _distributed(store, study.id, stale_after)
    if extras is not None:
        record["workers"] = extras
    return record


def _spec(store: Store, study: Study) -> Any | None:
    if study.kind == StudyKind.PANDA:
        return None
    from service.orchestrate import study_spec

    return study_spec(store, study.id)


def study_detail(store: Store, study_id: str, stale_after: float) -> dict[str, Any]:
    """``caviar status ID --format json``'s object plus ``space`` (each axis), ``direction``, ``fixed`` and
    ``budget`` (the most trials the strategy runs)."""
    study = require_study(store, study_id)
    record = status_record(store, study, stale_after)
    spec = _spec(store, study)
    record["space"] = axes(spec) if spec is not None else []
    record["fixed"] = dict(spec.fixed) if spec is not None else {}
    record["budget"] = _budget(spec)
    record["direction"] = Objective(study.objective).direction
    return record


def _budget(spec: Any | None) -> int | None:
    if spec is None:
        return None
    try:
        return int(spec.budget)
    except (AttributeError, TypeError, ValueError, BadInput):
        return None


def updated_at(store: Store, study_ids: list[str] | None = None) -> dict[str, datetime | None]:
    """Per study, the last time anything of it changed: its trials' latest start, heartbeat or end (the
    database's clock), else its own end or creation."""
    stmt = select(
        Trial.study_id, func.max(Trial.heartbeat_at), func.max(Trial.finished_at), func.max(Trial.started_at)
    ).group_by(Trial.study_id)
    if study_ids is not None:
        stmt = stmt.where(Trial.study_id.in_(study_ids))
    out: dict[str, datetime | None] = {}
    for sid, *stamps in store.run(lambda s: s.execute(stmt).all()):
        known = [as_utc(t) for t in stamps if t is not None]
        out[sid] = max(known) if known else None  # type: ignore[type-var]
    return out


def list_row(
    store: Store, study: Study, stale_after: float, now: datetime, last_change: datetime | None
) -> dict[str, Any]:
    """One row of ``/api/studies``: the status record plus ``kind``, ``progress``, ``best`` (the objective
    value; the best trial's record is ``best_trial``), ``age_seconds`` and ``updated_at``."""
    record = status_record(store, study, stale_after)
    best_trial = record["best"]
    record["best_trial"] = best_trial
    record["best"] = best_trial.get(study.objective) if best_trial else None
    done = sum(n for s, n in record["counts"].items() if s in FINISHED)
    if study.kind == StudyKind.PANDA:
        from service.panda.session import record as panda_record

        session = panda_record(store, study.id)
        record["progress"] = {"done": session["epoch"], "total": session["epochs"]}
        last = session["history"][-1] if session["history"] else {}
        record["panda"] = {
            "state": session["state"], "epoch": session["epoch"], "epochs": session["epochs"],
            "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
            "learning_rate": session["config"].get("learning_rate"),
            "parent": session["parent"]["id"] if session["parent"] else None,
        }
    else:
        budget = _budget(_spec(store, study))
        record["progress"] = {"done": done, "total": max(budget or 0, record["trials"])}
    created = as_utc(study.created_at)
    stamps = [t for t in (created, as_utc(study.finished_at), last_change) if t is not None]
    record["updated_at"] = max(stamps) if stamps else None
    record["age_seconds"] = (now - created).total_seconds() if created is not None else None
    return record


def _sort_value(row: dict[str, Any], key: str) -> Any:
    if key == "progress":
        p = row["progress"]
        return p["done"] / p["total"] if p["total"] else None
    if key == "best":
        value = row["best"]
        if value is None:
            return None
        return -value if Objective(row["objective"]).maximize else value
    return row.get(key)


def study_rows(
    store: Store,
    stale_after: float,
    *,
    kind: str | None = None,
    state: str | None = None,
    q: str | None = None,
    sort: str = "created_at",
    order: str | None = None,
) -> list[dict[str, Any]]:
    """Every study and panda session (filtered by ``kind``, ``state`` and ``q``, a case-insensitive part
    of the id or name), sorted by ``sort`` (rows without a value last whatever the order). The default
    order is newest first for times, best first for ``best``, else ascending."""
    rows_ = studies.list_studies(store)
    if kind is not None:
        rows_ = [s for s in rows_ if s.kind == kind]
    if state is not None:
        rows_ = [s for s in rows_ if s.state == state]
    if q is not None:
        needle = q.lower()
        rows_ = [s for s in rows_ if needle in s.id.lower() or needle in s.name.lower()]
    changes = updated_at(store, [s.id for s in rows_]) if rows_ else {}
    now = store.now()
    out = [list_row(store, s, stale_after, now, changes.get(s.id)) for s in rows_]
    descending = order == "desc" if order is not None else sort in ("created_at", "updated_at")
    present = [r for r in out if _sort_value(r, sort) is not None]
    missing = [r for r in out if _sort_value(r, sort) is None]
    present.sort(key=lambda r: (_sort_value(r, sort), r["id"]), reverse=descending)
    return present + missing


# --- trials ----------------------------------------------------------------------------------------------


def _status_filter(status: str | None) -> str | None:
    if status is not None and status not in set(TrialStatus):
        raise BadInput("status", status, "expected one of " + ", ".join(TrialStatus))
    return status


Term = tuple[InstrumentedAttribute[Any], bool]  # (column, descending)


def _terms(sort: str, objective: Objective, order: str | None) -> tuple[InstrumentedAttribute[Any] | None,
                                                                         list[Term]]:
    """(the column whose NULLs go last, or None; the ORDER BY terms after it) for a sort key.

    Without ``order`` a key sorts as ``caviar trials --sort`` does (best first for metrics). With it,
    ``asc``/``desc`` is the numeric order of the key's column, except ``objective``, where ``asc`` is best
    first.
    """
    if sort in ("objective", "val_loss", "val_accuracy"):
        metric = objective if sort == "objective" else Objective(sort)
        col = Trial.val_accuracy if metric.maximize else Trial.val_loss
        other = Trial.val_loss if metric.maximize else Trial.val_accuracy
        natural = metric.maximize  # descending for accuracy
        if order is None:
            desc = natural
        elif sort == "objective":
            desc = natural if order == "asc" else not natural
        else:
            desc = order == "desc"
        flip = desc != natural
        return col, [(col, desc), (other, (not metric.maximize) != flip), (Trial.id, flip)]
    if sort == "seconds":
        desc = order == "desc"
        return Trial.seconds, [(Trial.seconds, desc), (Trial.id, desc)]
    if sort == "attempts":
        desc = order != "asc"
        return None, [(Trial.attempts, desc), (Trial.id, False)]
    desc = order == "desc"  # round, id: creation order
    return None, [(Trial.round_index, desc), (Trial.trial_index, desc)]


def _ordered(terms: list[tuple[Any, bool]]) -> list[ColumnElement[Any]]:
    return [c.desc() if d else c.asc() for c, d in terms]


def trial_page(
    store: Store,
    study_id: str,
    *,
    offset: int = 0,
    limit: int = 50,
    sort: str = "objective",
    order: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """``{"total", "offset", "limit", "sort", "order", "trials"}``: one page of the study's trials (the
    records ``caviar trials --format json`` lists), ``total`` counting every trial the filter keeps."""
    study = require_study(store, study_id)
    status = _status_filter(status)
    if sort not in TRIAL_SORTS:
        raise BadInput("sort", sort, "expected one of " + ", ".join(TRIAL_SORTS))
    nulls_last, terms = _terms(sort, Objective(study.objective), order)
    where = [Trial.study_id == study_id]
    if status is not None:
        where.append(Trial.status == status)

    def go(s: Session) -> tuple[int, list[dict[str, Any]]]:
        total = s.execute(select(func.count()).select_from(Trial).where(*where)).scalar_one()
        if nulls_last is None:
            stmt = select(*_COLUMNS).where(*where).order_by(*_ordered(terms)).offset(offset).limit(limit)
            return total, [_row(r) for r in s.execute(stmt).mappings()]
        # Two index-friendly segments instead of ORDER BY (x IS NULL), x: the trials with a value in the
        # index's order, then the ones without.
        with_value = s.execute(
            select(func.count(nulls_last)).select_from(Trial).where(*where)
        ).scalar_one()
        rows: list[dict[str, Any]] = []
        if offset < with_value:
            stmt = (
                select(*_COLUMNS).where(*where, nulls_last.is_not(None)).order_by(*_ordered(terms))
                .offset(offset).limit(limit)
            )
            rows += [_row(r) for r in s.execute(stmt).mappings()]
        if len(rows) < limit:
            # Ordered by expressions (x + 0), not columns: else SQLite walks the other metric's index for
            # the ORDER BY, reading every trial, instead of finding the few without a value by this one's.
            plain = [((c + 0) if c is not Trial.id else c, d) for c, d in terms[1:]]
            stmt = (
                select(*_COLUMNS).where(*where, nulls_last.is_(None)).order_by(*_ordered(plain))
                .offset(max(0, offset - with_value)).limit(limit - len(rows))
            )
            rows += [_row(r) for r in s.execute(stmt).mappings()]
        return total, rows

    total, rows = store.run(go)
    return {
        "total": total, "offset": offset, "limit": limit, "sort": sort, "order": order,
        "status": status, "trials": [trial_record(r) for r in rows],
    }


def _best_stmt(study_id: str, objective: Objective, n: int, columns: list[Any]) -> Select[Any]:
    """The ``n`` best complete trials by the objective, walked in its index's order."""
    col = Trial.val_accuracy if objective.maximize else Trial.val_loss
    other = Trial.val_loss if objective.maximize else Trial.val_accuracy
    order = [col.desc(), other.asc(), Trial.id] if objective.maximize else [col, other.desc(), Trial.id]
    return (
        select(*columns)
        .where(Trial.study_id == study_id, Trial.status == TrialStatus.COMPLETE, col.is_not(None))
        .order_by(*order).limit(n)
    )


_POINT_COLUMNS = [Trial.id, Trial.round_index, Trial.trial_index, Trial.status, Trial.params,
                  Trial.val_loss, Trial.val_accuracy]


def _point(row: Any, objective: Objective) -> dict[str, Any]:
    value = row.val_accuracy if objective.maximize else row.val_loss
    valued = row.status in (TrialStatus.COMPLETE, TrialStatus.PRUNED) and value is not None
    return {
        "id": row.id, "round": row.round_index, "index": row.trial_index, "status": row.status,
        "params": row.params, "value": value if valued else None,
        "val_loss": row.val_loss, "val_accuracy": row.val_accuracy,
    }


def points(store: Store, study_id: str, limit: int = 5000) -> dict[str, Any]:
    """``{"total", "sampled", "limit", "best", "points"}`` for the scatter, regions and parallel plots.

    Up to ``limit`` trials: all of them. Beyond: the best ``limit // 2`` complete trials and an evenly
    spaced sample (by creation order) of the others, so the best is always there. ``value`` is the
    objective of a complete or pruned trial (a pruned one's at its rung), else null.
    """
    study = require_study(store, study_id)
    objective = Objective(study.objective)

    def go(s: Session) -> tuple[int, bool, list[Any], str | None]:
        total = s.execute(
            select(func.count()).select_from(Trial).where(Trial.study_id == study_id)
        ).scalar_one()
        best = s.execute(_best_stmt(study_id, objective, 1, [Trial.id])).scalar()
        if total <= limit:
            stmt = (select(*_POINT_COLUMNS).where(Trial.study_id == study_id)
                    .order_by(Trial.round_index, Trial.trial_index))
            return total, False, list(s.execute(stmt).all()), best
        top = list(s.execute(_best_stmt(study_id, objective, limit // 2, _POINT_COLUMNS)).all())
        rest = limit - len(top)
        step = math.ceil(total / rest)
        rn = func.row_number().over(order_by=(Trial.round_index, Trial.trial_index)).label("rn")
        numbered = select(Trial.id.label("id"), rn).where(Trial.study_id == study_id).subquery()
        picked = select(numbered.c.id).where((numbered.c.rn - 1) % step == 0)
        taken = {r.id for r in top}
        found = s.execute(select(*_POINT_COLUMNS).where(Trial.id.in_(picked))).all()
        sample = [r for r in found if r.id not in taken]
        return total, True, top + sample[:rest], best

    total, sampled, rows, best = store.run(go)
    rows.sort(key=lambda r: (r.round_index, r.trial_index))
    return {
        "total": total, "sampled": sampled, "limit": limit, "best": best,
        "points": [_point(r, objective) for r in rows],
    }


def _curve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: r.get(k) for k in (*CURVE_KEYS, "seconds")} for r in rows]


#: At most this many running trials' curves are returned.
MAX_RUNNING_CURVES = 100


def curves(store: Store, study_id: str, which: str = "top", k: int = 5) -> dict[str, Any]:
    """``{"which", "curves": [{"trial", "round", "status", "value", "params", "epochs"}]}``: the learning
    curves of the ``k`` best complete trials (``which=top``) or of the running ones (``which=running``)."""
    study = require_study(store, study_id)
    objective = Objective(study.objective)
    columns = [Trial.id, Trial.round_index, Trial.status, Trial.params, Trial.val_loss, Trial.val_accuracy,
               Trial.worker]
    if which == "top":
        stmt = _best_stmt(study_id, objective, k, columns)
    else:
        stmt = (select(*columns).where(Trial.study_id == study_id, Trial.status == TrialStatus.RUNNING)
                .order_by(Trial.round_index, Trial.trial_index).limit(MAX_RUNNING_CURVES))
    rows = list(store.run(lambda s: s.execute(stmt).all()))
    epochs = reads.epochs_of(store, [r.id for r in rows])
    return {
        "which": which,
        "curves": [
            {
                "trial": r.id, "round": r.round_index, "status": r.status, "worker": r.worker,
                "value": r.val_accuracy if objective.maximize else r.val_loss, "params": r.params,
                "epochs": _curve(epochs.get(r.id, [])),
            }
            for r in rows
        ],
    }


def trial_rows_by_id(s: Session, ids: list[str]) -> list[dict[str, Any]]:
    """Trial rows (every column but ``study_id``) of these ids, in the caller's transaction."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        stmt = select(*_COLUMNS, Trial.study_id).where(Trial.id.in_(ids[i:i + 500]))
        out += [_row(r) for r in s.execute(stmt).mappings()]
    return out


def trial_detail(store: Store, trial_id: str, stale_after: float) -> dict[str, Any]:
    """The trial's record plus ``study``, ``kind``, ``objective``, ``curve``, ``heartbeat_at``,
    ``heartbeat_age`` and ``stale`` (a running trial's), and ``commands`` (reproduce it, save its model)."""

    def go(s: Session) -> tuple[list[dict[str, Any]], Any]:
        return trial_rows_by_id(s, [trial_id]), s.execute(select(db_now())).scalar_one()

    rows, now = store.run(go)
    if not rows:
        raise NotFound(f"no trial {trial_id!r} in this database")
    row = rows[0]
    study = require_study(store, row["study_id"])
    record = trial_record(row)
    record["study"] = study.id
    record["kind"] = study.kind
    record["objective"] = study.objective
    record["target_epochs"] = row["target_epochs"]
    record["heartbeat_at"] = row["heartbeat_at"]
    age = None
    if row["status"] == TrialStatus.RUNNING and row["heartbeat_at"] is not None:
        age = (as_utc(now) - row["heartbeat_at"]).total_seconds()  # type: ignore[operator]
    record["heartbeat_age"] = age
    record["stale"] = age is not None and age > stale_after
    record["curve"] = _curve(reads.epochs_of(store, [trial_id])[trial_id])
    spec = _spec(store, study)
    record["commands"] = (
        trial_commands(spec, study.id, row) if spec is not None else session_commands(study.id)
    )
    return record


# --- the fleet -------------------------------------------------------------------------------------------


def workers(store: Store, stale_after: float, broker_url: str | None) -> dict[str, Any]:
    """``{"workers": [{"worker", "running", "studies", "last_heartbeat_age"}], "stale", "stale_after",
    "queue_depth", "broker", "queue"}``; the queue's only with a broker (its URL masked)."""

    def go(s: Session) -> tuple[Any, list[Any]]:
        now = s.execute(select(db_now())).scalar_one()
        rows = s.execute(
            select(Trial.worker, Trial.id, Trial.study_id, Trial.heartbeat_at)
            .where(Trial.status == TrialStatus.RUNNING).order_by(Trial.worker, Trial.id)
        ).all()
        return now, list(rows)

    now, rows = store.run(go)
    by_worker: dict[str, dict[str, Any]] = defaultdict(lambda: {"running": [], "studies": [], "beats": []})
    for worker, tid, sid, beat in rows:
        w = by_worker[worker or "?"]
        w["running"].append(tid)
        if sid not in w["studies"]:
            w["studies"].append(sid)
        if beat is not None:
            w["beats"].append(as_utc(beat))
    listed = []
    for name, w in sorted(by_worker.items()):
        last = max(w["beats"]) if w["beats"] else None
        age = (as_utc(now) - last).total_seconds() if last is not None else None  # type: ignore[operator]
        listed.append({"worker": name, "running": w["running"], "studies": w["studies"],
                       "last_heartbeat_age": age})
    stale = [r["id"] for r in lease.stale_running(store, stale_after)]
    queue = queue_status(store, broker_url)
    return {
        "workers": listed, "stale": stale, "stale_after": stale_after,
        "queue_depth": queue.get("queued_messages") if queue else None,
        "broker": mask_url(broker_url) if broker_url else None, "queue": queue,
    }


def queue_status(store: Store, broker_url: str | None) -> dict[str, Any] | None:
    """The installed broker's view of the queue (None without a broker; its ``error`` when unreachable)."""
    if not broker_url:
        return None
    from service.broker import broker

    try:
        return broker().queue_status(store, url=broker_url)
    except (CaviarError, BadInput) as exc:
        return {"broker": mask_url(broker_url), "queued_messages": None, "error": describe(exc)}


# --- importance ------------------------------------------------------------------------------------------

_importance_cache: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
_importance_lock = threading.Lock()
_study_locks: dict[tuple[str, str], threading.Lock] = {}

#: Finished trials beyond which importance is measured on an evenly spaced sample of this many (the
#: forest's fit grows with the trials: 100,000 take about a minute, 5,000 a few seconds).
IMPORTANCE_SAMPLE = 5000


def importance(store: Store, study_id: str) -> dict[str, Any]:
    """What ``caviar importance ID --format json`` prints; ``{"importance": null, "reason"}`` when it
    cannot be measured (too few finished trials, a panda session).

    Past :data:`IMPORTANCE_SAMPLE` finished trials it is measured on an evenly spaced sample of them
    (by creation order), and ``sample`` says how many. Results are kept per study and number of finished
    trials (finished trials never change), and one study is measured by one request at a time.
    """
    from core.search.importance import MIN_TRIALS

    study = require_study(store, study_id)
    if study.kind == StudyKind.PANDA:
        return {"study": study_id, "trials": 0, "importance": None,
                "reason": "a panda session searches no space"}
    done_statuses = (TrialStatus.COMPLETE, TrialStatus.DIVERGED, TrialStatus.FAILED)
    where = (Trial.study_id == study_id, Trial.status.in_(done_statuses))
    count = store.run(lambda s: s.execute(select(func.count()).select_from(Trial).where(*where)).scalar_one())
    key = (store.url, study_id, int(count))  # a process may serve several databases (tests do)
    with _importance_lock:
        hit = _importance_cache.get(key)
        lock = _study_locks.setdefault(key[:2], threading.Lock())
    if hit is not None:
        return hit
    if count < MIN_TRIALS:
        return {"study": study_id, "trials": count, "importance": None,
                "reason": f"importance needs at least {MIN_TRIALS} finished trials ({count} so far)"}
    with lock:
        with _importance_lock:
            hit = _importance_cache.get(key)
        if hit is not None:
            return hit
        out = _measure(store, study, where, count)
        with _importance_lock:
            _importance_cache[key] = out
            while len(_importance_cache) > 32:
                _importance_cache.popitem(last=False)
    return out


def _measure(store: Store, study: Study, where: tuple[Any, ...], count: int) -> dict[str, Any]:
    from core.search import importance as measure

    spec = _spec(store, study)
    objective = Objective(study.objective)
    col = Trial.val_accuracy if objective.maximize else Trial.val_loss
    stmt = select(Trial.params, Trial.status, col).where(*where)
    sample = None
    if count > IMPORTANCE_SAMPLE:
        step = math.ceil(count / IMPORTANCE_SAMPLE)
        rn = func.row_number().over(order_by=(Trial.round_index, Trial.trial_index)).label("rn")
        numbered = select(Trial.id.label("id"), rn).where(*where).subquery()
        stmt = stmt.where(Trial.id.in_(select(numbered.c.id).where((numbered.c.rn - 1) % step == 0)))
    stmt = stmt.order_by(Trial.round_index, Trial.trial_index)
    rows = list(store.run(lambda s: s.execute(stmt).all()))
    if count > IMPORTANCE_SAMPLE:
        sample = len(rows)
    values = [v if status == TrialStatus.COMPLETE and v is not None else math.nan for _, status, v in rows]
    base: dict[str, Any] = {"study": study.id, "trials": count}
    if sample is not None:
        base["sample"] = sample
    try:
        shares = measure(spec, [p for p, _, _ in rows], values)
    except BadInput as exc:
        return {**base, "importance": None, "reason": str(exc)}
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    return {**base, "importance": [
        {"rank": i + 1, "hyperparameter": k, "share": v} for i, (k, v) in enumerate(ranked)
    ]}


# --- panda sessions --------------------------------------------------------------------------------------


def panda_detail(store: Store, session_id: str) -> dict[str, Any]:
    """``caviar panda show ID --format json``'s record plus ``trial``, ``curve`` (every epoch, with its
    seconds) and ``commands``; ``changes`` is the record's own."""
    from service.panda.session import record
    from service.store import panda as db

    view = db.session_view(store, session_id)
    if view is None:
        raise NotFound(f"no panda session {session_id!r} in this database")
    out = record(store, session_id)
    out["trial"] = view.trial.id
    out["curve"] = _curve(db.curve(store, view.trial.id))
    out["commands"] = session_commands(session_id)
    return out
