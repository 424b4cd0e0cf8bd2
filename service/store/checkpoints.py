"""Trial checkpoints: a running trial's latest training state, so that a new attempt resumes from it.

A checkpoint is :class:`core.nn.Checkpoint` as NPZ bytes (never pickle), keyed by (trial, epoch). The
retention rule keeps the database bounded: a trial holds at most one checkpoint, its latest, while it
runs, and none once it has finished (its result is what stays). Writes happen inside the lease's
transactions (:func:`service.store.lease.epoch_tick` writes the checkpoint with its epoch's curve row;
:func:`service.store.lease.finish_trial` drops them with the result), so a checkpoint always has its
learning curve up to its epoch and only the attempt holding the lease writes one.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.store.dialect import insert_for
from service.store.models import Trial, TrialCheckpoint
from service.store.store import Store

__all__ = ["put", "drop", "latest", "stored_bytes"]


def put(s: Session, trial_id: str, attempt: int, epoch: int, data: bytes) -> None:
    """Store ``data`` as the trial's checkpoint after ``epoch`` epochs, replacing any older one.

    Called inside a transaction that holds the trial's lease.
    """
    older = (TrialCheckpoint.trial_id == trial_id) & (TrialCheckpoint.epoch != epoch)
    s.execute(delete(TrialCheckpoint).where(older))
    s.execute(
        insert_for(s)(TrialCheckpoint)
        .values(trial_id=trial_id, epoch=epoch, attempt=attempt, nbytes=len(data), data=data)
        .on_conflict_do_nothing()  # the same epoch again (a replayed attempt) holds the same bits
    )


def drop(s: Session, trial_id: str) -> None:
    """Delete the trial's checkpoints (it finished), inside the caller's transaction."""
    s.execute(delete(TrialCheckpoint).where(TrialCheckpoint.trial_id == trial_id))


def latest(store: Store, trial_id: str) -> tuple[int, bytes] | None:
    """The trial's latest checkpoint as (epoch, NPZ bytes), or None."""

    def go(s: Session) -> tuple[int, bytes] | None:
        row = s.execute(
            select(TrialCheckpoint.epoch, TrialCheckpoint.data)
            .where(TrialCheckpoint.trial_id == trial_id)
            .order_by(TrialCheckpoint.epoch.desc())
            .limit(1)
        ).one_or_none()
        return (int(row[0]), bytes(row[1])) if row is not None else None

    return store.run(go)


def stored_bytes(store: Store, study_id: str | None = None) -> int:
    """Bytes of checkpoints held (of one study, or of every study)."""

    def go(s: Session) -> int:
        q = select(func.coalesce(func.sum(TrialCheckpoint.nbytes), 0))
        if study_id is not None:
            q = q.join(Trial, Trial.id == TrialCheckpoint.trial_id).where(Trial.study_id == study_id)
        return int(s.execute(q).scalar_one())

    return store.run(go)
