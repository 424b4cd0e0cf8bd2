"""The lease protocol: who may run a trial and write its result.

A process *claims* a queued trial: one conditional ``UPDATE`` sets it ``running``, increments
``attempts`` and stamps the heartbeat with the database's clock. The pair (trial id, attempt) is the
*lease*: only its holder can write heartbeats and learning-curve rows (:func:`epoch_tick`) and the result
(:func:`finish_trial`), and the result is written once. A lease whose heartbeat is older than
``stale_after`` seconds by the database's clock (:func:`stale`, the one staleness rule) is presumed
dead: :func:`reap_stale` re-queues the trial, or fails it at the attempt cap; :func:`claim_trial` with
``steal_after`` takes it over directly. :func:`requeue_trial` and :func:`requeue_running` give a lease
back on purpose (Ctrl-C, a pool that lost a process).

Every change is a conditional update on the lease, so two processes racing change a row once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.orm import Session

from core.errors import BadInput
from service.settings import DEFAULT_MAX_ATTEMPTS
from service.store import checkpoints
from service.store.clock import as_utc, db_ago, db_now
from service.store.dialect import NO_SYNC, finite, insert_for
from service.store.models import Epoch, Study, Trial, TrialCheckpoint
from service.store.rounds import Progress, progress_in
from service.store.states import FINISHED, StudyState, TrialStatus
from service.store.store import Store

__all__ = [
    "METRICS",
    "Claim",
    "stale",
    "claim_trial",
    "epoch_tick",
    "finish_trial",
    "finish_trial_progress",
    "requeue_trial",
    "requeue_running",
    "stale_running",
    "reap_stale",
    "heartbeat_age",
]

#: The final metrics stored on a trial.
METRICS = ("val_loss", "val_accuracy", "train_loss", "epochs_run", "seconds", "samples_per_second")


def stale(older_than: float) -> ColumnElement[bool]:
    """The one staleness rule: running, with a heartbeat older than ``older_than`` seconds by the
    database's clock."""
    return and_(Trial.status == TrialStatus.RUNNING, Trial.heartbeat_at < db_ago(older_than))


def _lease(trial_id: str, attempt: int) -> ColumnElement[bool]:
    return and_(Trial.id == trial_id, Trial.status == TrialStatus.RUNNING, Trial.attempts == attempt)


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
    #: The epoch of the checkpoint this attempt resumes from (0: none, train from the start).
    resume_epoch: int = 0
    #: With ``[pruning]``: the rung this attempt trains to (None: every epoch).
    target_epochs: int | None = None
    #: Training seconds already recorded for the epochs this attempt resumes after (earlier rungs).
    seconds_before: float = 0.0


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
    under a live lease, is not claimed. A new attempt resumes from the trial's checkpoint if an earlier
    attempt left one (:mod:`service.store.checkpoints`): previous attempts' epoch rows after it are
    deleted, so the learning curve is the checkpoint's followed by the new attempt's (resumed training
    is bit-identical, so the curve is the one an uninterrupted run draws).

    The usual case is one conditional ``UPDATE ... RETURNING`` (the row's own lock decides between two
    claimants); it also returns whether the study is still ``queued`` and whether epoch rows exist, so
    those writes are made only when needed. The rarer outcomes (finished, live lease, attempt cap) are
    told apart by reading the row afterwards, in the same transaction.

    Args:
        steal_after: also claim a trial that is :func:`stale` after this many seconds (its worker is
            presumed dead); None claims queued trials only.

    Returns:
        The claim, or None if this call did not claim the trial.
    """
    claimable: ColumnElement[bool] = Trial.status == TrialStatus.QUEUED
    if steal_after is not None:
        claimable = claimable | stale(steal_after)
    study_state = select(Study.state).where(Study.id == Trial.study_id).scalar_subquery()
    has_epochs = select(Epoch.trial_id).where(Epoch.trial_id == Trial.id).exists()
    claim_stmt = (
        update(Trial)
        .where(Trial.id == trial_id, Trial.attempts - Trial.rung_base < max_attempts, claimable)
        .values(
            status=TrialStatus.RUNNING, attempts=Trial.attempts + 1, worker=worker, started_at=db_now(),
            heartbeat_at=db_now(), finished_at=None, error=None,
        )
        .returning(
            Trial.study_id, Trial.round_index, Trial.trial_index, Trial.params, Trial.seed, Trial.attempts,
            study_state, has_epochs, Trial.target_epochs, Trial.seconds,
        )
    )

    def go(s: Session) -> Claim | None:
        row = s.execute(claim_stmt, execution_options=NO_SYNC).one_or_none()
        if row is None:
            _refuse_claim(s, trial_id, claimable, max_attempts)
            return None
        study_id, round_index, trial_index, params, seed, attempt, state, stale_curve, target, spent = row
        resume = 0
        if stale_curve:
            saved = s.execute(
                select(TrialCheckpoint.epoch).where(TrialCheckpoint.trial_id == trial_id)
                .order_by(TrialCheckpoint.epoch.desc()).limit(1)
            ).scalar_one_or_none()
            resume = int(saved or 0)
            s.execute(delete(Epoch).where(Epoch.trial_id == trial_id, Epoch.epoch > resume))
        if state == StudyState.QUEUED:
            s.execute(
                update(Study)
                .where(Study.id == study_id, Study.state == StudyState.QUEUED)
                .values(state=StudyState.RUNNING)
            )
        return Claim(
            trial_id, study_id, round_index, trial_index, dict(params), seed, attempt, resume, target,
            float(spent or 0.0) if resume else 0.0,
        )

    return store.run(go)


def _refuse_claim(s: Session, trial_id: str, claimable: Any, max_attempts: int) -> None:
    """A claim that did not happen: mark the trial ``failed`` if it is claimable but at the cap."""
    row = s.execute(
        select(Trial.attempts, Trial.rung_base).where(Trial.id == trial_id, Trial.status.not_in(FINISHED))
    ).one_or_none()
    if row is None or row[0] - row[1] < max_attempts:
        return  # missing, finished, running under a live lease, or claimed by another process just now
    attempts = row[0] - row[1]
    s.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.attempts == row[0], claimable)
        .values(
            status=TrialStatus.FAILED, finished_at=db_now(),
            error=f"gave up after {attempts} attempts (the attempt cap is {max_attempts})",
        )
    )


def _epoch_row(trial_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"trial_id": trial_id, "epoch": int(entry["epoch"])}
    for key in ("train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"):
        row[key] = finite(entry.get(key))
    return row


def epoch_tick(
    store: Store,
    trial_id: str,
    attempt: int,
    entry: dict[str, Any] | None,
    checkpoint: tuple[int, bytes] | None = None,
) -> bool:
    """Write one learning-curve row (idempotently) and refresh the heartbeat, in one transaction.

    Args:
        entry: the engine's history entry (epoch, train_loss, val_loss, val_accuracy, learning_rate,
            seconds), or None for a heartbeat only.
        checkpoint: (epoch, NPZ bytes) to keep as the trial's checkpoint, written with the curve row
            (so a checkpoint never lacks its curve), replacing the older one.

    Returns:
        True if the lease is still held and the study is not cancelled.
    """
    live_study = select(Study.id).where(Study.state.not_in([StudyState.CANCELLED, StudyState.FAILED]))

    def go(s: Session) -> bool:
        held = s.execute(
            update(Trial)
            .where(_lease(trial_id, attempt), Trial.study_id.in_(live_study))
            .values(heartbeat_at=db_now()),
            execution_options=NO_SYNC,
        ).rowcount
        if held and entry is not None:
            s.execute(insert_for(s)(Epoch).values(**_epoch_row(trial_id, entry)).on_conflict_do_nothing())
        if held and checkpoint is not None:
            checkpoints.put(s, trial_id, attempt, *checkpoint)
        return bool(held)

    return store.run(go)


def _finish(
    s: Session,
    trial_id: str,
    attempt: int,
    status: TrialStatus,
    metrics: dict[str, Any] | None,
    error: str | None,
    last_epoch: dict[str, Any] | None,
    drop_checkpoints: bool = False,
    checkpoint: tuple[int, bytes] | None = None,
) -> bool:
    if status not in FINISHED and status != TrialStatus.PAUSED:
        raise BadInput("status", status, "expected a final status: " + ", ".join(FINISHED) + " (or paused)")
    values: dict[str, Any] = {"status": status, "finished_at": db_now(), "heartbeat_at": db_now()}
    for key in METRICS:
        if metrics and key in metrics:
            value = metrics[key]
            values[key] = int(value) if key == "epochs_run" and value is not None else finite(value)
    if error is not None:
        values["error"] = error[:4000]
    stmt = update(Trial).where(_lease(trial_id, attempt)).values(**values)
    recorded = bool(s.execute(stmt, execution_options=NO_SYNC).rowcount)
    if recorded and last_epoch is not None:
        s.execute(insert_for(s)(Epoch).values(**_epoch_row(trial_id, last_epoch)).on_conflict_do_nothing())
    if recorded and drop_checkpoints:
        checkpoints.drop(s, trial_id)
    if recorded and checkpoint is not None:  # a paused trial's rung checkpoint, to resume from
        checkpoints.put(s, trial_id, attempt, *checkpoint)
    return recorded


def finish_trial(
    store: Store,
    trial_id: str,
    attempt: int,
    status: TrialStatus,
    metrics: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    last_epoch: dict[str, Any] | None = None,
    drop_checkpoints: bool = False,
) -> bool:
    """Record an attempt's outcome, once: only the holder of the lease can, and only the first time.

    Args:
        status: ``complete``, ``diverged``, ``failed`` or ``cancelled``.
        metrics: final metrics (:data:`METRICS` keys); NaN and infinities are stored as NULL.
        error: the error text of a failed trial.
        last_epoch: a learning-curve row not yet written (the last epoch's), stored in the same
            transaction, idempotently, if the result is.
        drop_checkpoints: the trial may hold checkpoints: delete them with the result (a finished
            trial keeps none).

    Returns:
        True if this call recorded the result; False if it was recorded already or the lease was lost.

    Raises:
        BadInput: ``status`` is not a final status.
    """
    return store.run(
        lambda s: _finish(s, trial_id, attempt, status, metrics, error, last_epoch, drop_checkpoints)
    )


def finish_trial_progress(
    store: Store,
    trial_id: str,
    study_id: str,
    attempt: int,
    status: TrialStatus,
    metrics: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    last_epoch: dict[str, Any] | None = None,
    drop_checkpoints: bool = False,
    checkpoint: tuple[int, bytes] | None = None,
) -> tuple[bool, Progress]:
    """:func:`finish_trial`, then :func:`service.store.rounds.study_progress`, in one transaction.

    ``status`` may also be ``paused`` (a ``[pruning]`` rung reached), with the rung's ``checkpoint``
    (epoch, NPZ bytes) stored in the same transaction.

    The study's row is locked (``FOR NO KEY UPDATE`` on PostgreSQL; SQLite transactions are serial)
    between recording and counting, so of two trials finishing a round at the same moment the second
    to take the lock counts after the first committed: at least one of them sees the round over.
    Without the lock each could miss the other's uncommitted result and neither would advance.

    Returns:
        (True if this call recorded the result, the study's progress after it).
    """

    def go(s: Session) -> tuple[bool, Progress]:
        recorded = _finish(
            s, trial_id, attempt, status, metrics, error, last_epoch, drop_checkpoints, checkpoint
        )
        s.execute(select(Study.id).where(Study.id == study_id).with_for_update(key_share=True))
        return recorded, progress_in(s, study_id)

    return store.run(go)


def _requeue_values(give_back_attempt: bool) -> dict[str, Any]:
    values: dict[str, Any] = {"status": TrialStatus.QUEUED, "worker": None, "heartbeat_at": None}
    if give_back_attempt:
        values["attempts"] = Trial.attempts - 1
    return values


def requeue_trial(store: Store, trial_id: str, *, give_back_attempt: bool = False) -> bool:
    """Put a running trial back in the queue (its worker died or was interrupted).

    Args:
        give_back_attempt: decrement ``attempts`` (the attempt was interrupted on purpose, e.g. Ctrl-C,
            and should not count towards the cap).
    """
    stmt = (
        update(Trial)
        .where(Trial.id == trial_id, Trial.status == TrialStatus.RUNNING)
        .values(**_requeue_values(give_back_attempt))
    )
    return bool(store.run(lambda s: s.execute(stmt).rowcount))


def requeue_running(
    store: Store,
    study_id: str,
    *,
    worker_prefix: str | None = None,
    workers: Sequence[str] | None = None,
    give_back_attempt: bool = True,
) -> list[str]:
    """Requeue a study's running trials: all, those of workers whose name starts with ``worker_prefix``,
    or those of the named ``workers``.

    Returns:
        The ids requeued.
    """
    cond = [Trial.study_id == study_id, Trial.status == TrialStatus.RUNNING]
    if worker_prefix is not None:
        cond.append(Trial.worker.startswith(worker_prefix, autoescape=True))
    if workers is not None:
        cond.append(Trial.worker.in_(list(workers)))

    def go(s: Session) -> list[str]:
        ids = list(s.scalars(select(Trial.id).where(*cond)).all())
        if ids:
            s.execute(
                update(Trial)
                .where(Trial.id.in_(ids), Trial.status == TrialStatus.RUNNING)
                .values(**_requeue_values(give_back_attempt))
            )
        return ids

    return store.run(go)


def stale_running(store: Store, older_than: float, *, study_id: str | None = None) -> list[dict[str, Any]]:
    """Running trials that are :func:`stale` after ``older_than`` seconds.

    Returns:
        Dicts with id, study_id, worker, attempts, rung_base (``attempts`` when its ``[pruning]`` rung
        began) and heartbeat_at, by id.
    """
    stmt = select(
        Trial.id, Trial.study_id, Trial.worker, Trial.attempts, Trial.rung_base, Trial.heartbeat_at
    ).where(stale(older_than))
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    stmt = stmt.order_by(Trial.id)
    return [dict(r) for r in store.run(lambda s: s.execute(stmt).mappings().all())]


def reap_stale(
    store: Store,
    older_than: float,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    study_id: str | None = None,
) -> tuple[list[str], list[str]]:
    """Requeue :func:`stale` trials, or mark them failed once they reached the cap.

    Each row is changed by a conditional update (same attempt, still stale), so two reapers racing
    change it once.

    Returns:
        (ids requeued — dispatch them again, ids failed).
    """
    requeued: list[str] = []
    failed: list[str] = []
    for row in stale_running(store, older_than, study_id=study_id):
        attempts = row["attempts"] - row["rung_base"]  # the cap counts the current rung's attempts
        at_cap = attempts >= max_attempts
        if at_cap:
            values: dict[str, Any] = {
                "status": TrialStatus.FAILED, "finished_at": db_now(),
                "error": f"worker {row['worker']} stopped responding; gave up after "
                         f"{attempts} attempts (the attempt cap is {max_attempts})",
            }
        else:
            values = _requeue_values(False)
        stmt = update(Trial).where(_lease(row["id"], row["attempts"]), stale(older_than)).values(**values)
        if store.run(lambda s, stmt=stmt: s.execute(stmt).rowcount):
            (failed if at_cap else requeued).append(row["id"])
    return requeued, failed


def heartbeat_age(store: Store, trial_id: str) -> float | None:
    """Seconds since the trial's last heartbeat by the database's clock (None without one)."""

    def go(s: Session) -> float | None:
        now, beat = s.execute(select(db_now(), Trial.heartbeat_at).where(Trial.id == trial_id)).one()
        a, b = as_utc(now), as_utc(beat)
        return None if a is None or b is None else (a - b).total_seconds()

    return store.run(go)


