"""Panda sessions in the store: the session's rows, its request log, and its epochs under the lease.

A session is a study of kind ``panda`` with one round and one trial (so every reader of studies and
trials sees it), a ``panda_sessions`` row (its first configuration, data and lineage) and its
``panda_requests``. Requests are written by anyone (``caviar panda set``, the dashboard) and applied
only by the process holding the trial's lease, at an epoch boundary: :func:`apply` marks them applied and,
for a rollback, deletes the curve and the checkpoints after the epoch it returns to, in one transaction.
:func:`tick` writes an epoch's curve row and checkpoint with the heartbeat, drops the checkpoints the
retention rule (:func:`core.panda.kept_epochs`) lets go, and says whether a request is due.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store import studies
from service.store.clock import db_now
from service.store.dialect import NO_SYNC, finite, insert_for
from service.store.models import Epoch, PandaRequest, PandaSession, Round, Study, Trial, TrialCheckpoint
from service.store.states import PandaAction, StudyKind, StudyState, TrialStatus
from service.store.store import Store

__all__ = [
    "SessionView",
    "create_session",
    "session_view",
    "session_ids",
    "add_request",
    "pending",
    "applied",
    "apply",
    "tick",
    "checkpoint_epochs",
    "checkpoint_bytes",
    "protected_epochs",
    "reopen",
    "stop_idle",
    "curve",
]


@dataclass(frozen=True)
class SessionView:
    """A session's rows, read together."""

    study: Study
    session: PandaSession
    trial: Trial

    @property
    def id(self) -> str:
        return self.study.id


def create_session(
    store: Store,
    *,
    study_id: str,
    trial_id: str,
    name: str,
    source: dict[str, Any],
    initial: dict[str, Any],
    queue: str | None = None,
    inherited: Sequence[dict[str, Any]] = (),
    parent: tuple[str, int] | None = None,
    lr_find: dict[str, Any] | None = None,
    data_fingerprint: str | None = None,
    curve_rows: Sequence[dict[str, Any]] = (),
    checkpoint: tuple[int, bytes] | None = None,
    first_values: dict[str, Any] | None = None,
    paused: bool = False,
) -> None:
    """Insert a session (study, round 0, its queued trial, the session row) in one transaction.

    Args:
        parent: (parent session id, epoch) of a fork; with ``curve_rows`` (the parent's curve up to that
            epoch) and ``checkpoint`` (the state there) copied into the fork, and ``first_values`` (the
            fork's own ``--set``) as its first applied change.
        paused: created paused (``start --paused``): requests wait in the log until it is resumed.

    Raises:
        DuplicateStudy: the id exists already.
    """
    spec = {"study": {"name": name, **source}, "panda": {"initial": initial}}

    def go(s: Session) -> None:
        s.add(
            Study(
                id=study_id, name=name, spec_raw=spec, spec=spec, spec_text=None, seed=int(initial["seed"]),
                objective="val_loss", strategy="panda", state=StudyState.RUNNING, queue=queue,
                data_fingerprint=data_fingerprint, kind=StudyKind.PANDA,
            )
        )
        s.flush()
        s.add(Round(study_id=study_id, round_index=0, region={}, parent_index=None))
        s.add(
            Trial(
                id=trial_id, study_id=study_id, round_index=0, trial_index=0, params={},
                seed=int(initial["seed"]), status=TrialStatus.PAUSED if paused else TrialStatus.QUEUED,
                attempts=0,
            )
        )
        s.add(
            PandaSession(
                study_id=study_id, trial_id=trial_id, initial=initial, source=source,
                inherited=list(inherited),
                parent_id=parent[0] if parent else None, parent_epoch=parent[1] if parent else None,
                lr_find=lr_find,
            )
        )
        s.flush()
        for row in curve_rows:
            s.add(Epoch(trial_id=trial_id, **{k: row[k] for k in _CURVE}))
        if checkpoint is not None:
            s.add(
                TrialCheckpoint(
                    trial_id=trial_id, epoch=checkpoint[0], attempt=0, nbytes=len(checkpoint[1]),
                    data=checkpoint[1],
                )
            )
        if first_values:
            s.add(
                PandaRequest(
                    study_id=study_id, action=PandaAction.SET, values=first_values, applied_index=0,
                    applied_epoch=parent[1] if parent else 0,
                )
            )

    try:
        store.run(go)
    except IntegrityError:
        raise studies.DuplicateStudy(f"session {study_id} exists already") from None


_CURVE = ("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds")


def session_view(store: Store, study_id: str) -> SessionView | None:
    """The session's rows, or None when there is no such session."""

    def go(s: Session) -> SessionView | None:
        study = s.get(Study, study_id)
        if study is None or study.kind != StudyKind.PANDA:
            return None
        session = s.get(PandaSession, study_id)
        trial = s.get(Trial, session.trial_id) if session is not None else None
        if session is None or trial is None:
            return None
        return SessionView(study, session, trial)

    return store.run(go)


def session_ids(store: Store) -> list[str]:
    """Every session id, oldest first."""
    stmt = select(Study.id).where(Study.kind == StudyKind.PANDA).order_by(Study.created_at, Study.id)
    return list(store.run(lambda s: s.scalars(stmt).all()))


def add_request(
    store: Store,
    study_id: str,
    action: PandaAction,
    values: dict[str, Any] | None = None,
    *,
    to_epoch: int | None = None,
    at_epoch: int | None = None,
) -> int:
    """Append a pending request; return its id."""

    def go(s: Session) -> int:
        row = PandaRequest(
            study_id=study_id, action=action, values=dict(values or {}), to_epoch=to_epoch, at_epoch=at_epoch
        )
        s.add(row)
        s.flush()
        return int(row.id)

    return store.run(go)


def _pending(study_id: str) -> Any:
    return and_(
        PandaRequest.study_id == study_id, PandaRequest.applied_index.is_(None),
        PandaRequest.refused.is_(None),
    )


def _due(study_id: str, epoch: int | Any) -> Any:
    return and_(_pending(study_id), or_(PandaRequest.at_epoch.is_(None), PandaRequest.at_epoch <= epoch))


def pending(store: Store, study_id: str) -> list[PandaRequest]:
    """Requests not applied yet, in the order asked."""
    stmt = select(PandaRequest).where(_pending(study_id)).order_by(PandaRequest.id)
    return list(store.run(lambda s: s.scalars(stmt).all()))


def applied(store: Store, study_id: str) -> list[PandaRequest]:
    """Applied requests, in the order applied (the session's log)."""
    stmt = (
        select(PandaRequest)
        .where(PandaRequest.study_id == study_id, PandaRequest.applied_index.is_not(None))
        .order_by(PandaRequest.applied_index)
    )
    return list(store.run(lambda s: s.scalars(stmt).all()))


def _lease(trial_id: str, attempt: int) -> Any:
    return and_(Trial.id == trial_id, Trial.status == TrialStatus.RUNNING, Trial.attempts == attempt)


def apply(
    store: Store,
    study_id: str,
    trial_id: str,
    attempt: int,
    done: Sequence[tuple[int, int]],
    refused: Sequence[tuple[int, str]] = (),
    rollback_to: int | None = None,
) -> bool:
    """Mark requests applied, in order, each with the epochs done when it applied (``done``: (request id,
    epoch) pairs), and others refused, under the lease.

    A rollback to N also deletes the curve after N and the checkpoints after N, in the same transaction.

    Returns:
        True if the lease is still held (nothing is written otherwise).
    """

    def go(s: Session) -> bool:
        held = s.execute(
            update(Trial).where(_lease(trial_id, attempt)).values(heartbeat_at=db_now()),
            execution_options=NO_SYNC,
        ).rowcount
        if not held:
            return False
        index = s.execute(
            select(func.coalesce(func.max(PandaRequest.applied_index), -1)).where(
                PandaRequest.study_id == study_id
            )
        ).scalar_one()
        for request_id, epoch in done:
            index += 1
            s.execute(
                update(PandaRequest)
                .where(PandaRequest.id == request_id)
                .values(applied_index=index, applied_epoch=epoch)
            )
        for request_id, reason in refused:
            s.execute(update(PandaRequest).where(PandaRequest.id == request_id).values(refused=reason[:2000]))
        if rollback_to is not None:
            s.execute(delete(Epoch).where(Epoch.trial_id == trial_id, Epoch.epoch > rollback_to))
            s.execute(
                delete(TrialCheckpoint).where(
                    TrialCheckpoint.trial_id == trial_id, TrialCheckpoint.epoch > rollback_to
                )
            )
        return True

    return store.run(go)


def tick(
    store: Store,
    study_id: str,
    trial_id: str,
    attempt: int,
    entry: dict[str, Any],
    checkpoint: bytes,
    keep: Callable[[list[int], int], set[int]],
) -> tuple[bool, bool]:
    """Write one epoch (curve row, checkpoint, heartbeat) under the lease, and apply the retention rule.

    Args:
        keep: (checkpoint epochs held, current epoch) -> the epochs to keep.

    Returns:
        (lease still held, a request is due at this epoch).
    """
    epoch = int(entry["epoch"])

    def go(s: Session) -> tuple[bool, bool]:
        held = s.execute(
            update(Trial).where(_lease(trial_id, attempt)).values(heartbeat_at=db_now(), epochs_run=epoch),
            execution_options=NO_SYNC,
        ).rowcount
        if not held:
            return False, False
        row = {"trial_id": trial_id, "epoch": epoch}
        for key in _CURVE[1:]:
            row[key] = finite(entry.get(key))
        s.execute(insert_for(s)(Epoch).values(**row).on_conflict_do_nothing())
        s.execute(
            insert_for(s)(TrialCheckpoint)
            .values(trial_id=trial_id, epoch=epoch, attempt=attempt, nbytes=len(checkpoint), data=checkpoint)
            .on_conflict_do_nothing()  # recomputed after a rollback: the same bits
        )
        held_epochs = list(
            s.scalars(select(TrialCheckpoint.epoch).where(TrialCheckpoint.trial_id == trial_id)).all()
        )
        drop = sorted(set(held_epochs) - keep(held_epochs, epoch))
        if drop:
            s.execute(
                delete(TrialCheckpoint).where(
                    TrialCheckpoint.trial_id == trial_id, TrialCheckpoint.epoch.in_(drop)
                )
            )
        due = s.execute(select(PandaRequest.id).where(_due(study_id, epoch)).limit(1)).first() is not None
        return True, due

    return store.run(go)


def checkpoint_epochs(store: Store, trial_id: str) -> list[int]:
    """The epochs the trial holds checkpoints of, ascending."""
    held = TrialCheckpoint.trial_id == trial_id
    stmt = select(TrialCheckpoint.epoch).where(held).order_by(TrialCheckpoint.epoch)
    return [int(e) for e in store.run(lambda s: s.scalars(stmt).all())]


def checkpoint_bytes(store: Store, trial_id: str, epoch: int) -> bytes | None:
    """The checkpoint after ``epoch`` epochs, as NPZ bytes, or None."""
    stmt = select(TrialCheckpoint.data).where(
        TrialCheckpoint.trial_id == trial_id, TrialCheckpoint.epoch == epoch
    )
    data = store.run(lambda s: s.scalar(stmt))
    return bytes(data) if data is not None else None


def protected_epochs(store: Store, study_id: str) -> set[int]:
    """Epochs a rollback went back to or a fork started from: their checkpoints stay."""

    def go(s: Session) -> set[int]:
        back = s.scalars(
            select(PandaRequest.to_epoch).where(
                PandaRequest.study_id == study_id, PandaRequest.action == PandaAction.ROLLBACK,
                PandaRequest.applied_index.is_not(None),
            )
        ).all()
        forks = s.scalars(
            select(PandaSession.parent_epoch).where(PandaSession.parent_id == study_id)
        ).all()
        return {int(e) for e in (*back, *forks) if e is not None}

    return store.run(go)


def reopen(store: Store, study_id: str, trial_id: str) -> bool:
    """A paused, complete or diverged session's trial back to ``queued`` for a runner to claim (its
    attempt cap counts again from here). Returns True if it changed."""

    def go(s: Session) -> bool:
        changed = s.execute(
            update(Trial)
            .where(
                Trial.id == trial_id,
                Trial.status.in_([TrialStatus.PAUSED, TrialStatus.COMPLETE, TrialStatus.DIVERGED]),
            )
            .values(status=TrialStatus.QUEUED, rung_base=Trial.attempts, worker=None, heartbeat_at=None,
                    finished_at=None, error=None)
        ).rowcount
        if changed:
            s.execute(
                update(Study).where(Study.id == study_id).values(state=StudyState.RUNNING, finished_at=None)
            )
        return bool(changed)

    return store.run(go)


def release(store: Store, trial_id: str, attempt: int) -> bool:
    """Give a running session's trial back (``queued``, at its checkpoints) for the next runner: a worker
    whose task's time is up. The attempt cap counts afresh (this is no failure). False if the lease was
    lost meanwhile."""

    def go(s: Session) -> bool:
        return bool(s.execute(
            update(Trial)
            .where(_lease(trial_id, attempt))
            .values(status=TrialStatus.QUEUED, rung_base=Trial.attempts, worker=None, heartbeat_at=None)
        ).rowcount)

    return store.run(go)


def stop_idle(store: Store, study_id: str, trial_id: str) -> bool:
    """Stop a session no process runs (paused, queued, complete or diverged): ``cancelled``, for good."""

    def go(s: Session) -> bool:
        changed = s.execute(
            update(Trial)
            .where(
                Trial.id == trial_id,
                Trial.status.in_(
                    [TrialStatus.PAUSED, TrialStatus.QUEUED, TrialStatus.COMPLETE, TrialStatus.DIVERGED]
                ),
            )
            .values(status=TrialStatus.CANCELLED, finished_at=db_now())
        ).rowcount
        if changed:
            s.execute(
                update(Study)
                .where(Study.id == study_id)
                .values(state=StudyState.CANCELLED, finished_at=db_now())
            )
            s.execute(
                update(PandaRequest).where(_pending(study_id)).values(refused="the session was stopped")
            )
        return bool(changed)

    return store.run(go)


def curve(store: Store, trial_id: str) -> list[dict[str, Any]]:
    """The trial's learning curve, by epoch."""
    stmt = (
        select(*(getattr(Epoch, k) for k in _CURVE)).where(Epoch.trial_id == trial_id).order_by(Epoch.epoch)
    )
    return [dict(r) for r in store.run(lambda s: s.execute(stmt).mappings().all())]
