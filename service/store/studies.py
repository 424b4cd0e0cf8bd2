"""Studies: create, look up, list, change state, cancel.

A study is created once under its primary key; its state only moves forward (``queued`` → ``running`` →
a final state), each change a conditional ``UPDATE`` so that two processes racing change it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import BadInput
from service.store.clock import db_now
from service.store.db import StoreError
from service.store.models import Study, Trial
from service.store.states import FINAL_STUDY, LIVE_STUDY, StudyState, TrialStatus
from service.store.store import Store

__all__ = [
    "DuplicateStudy",
    "create_study",
    "get_study",
    "require_study",
    "study_ids",
    "list_studies",
    "set_study_state",
    "cancel_study",
    "broker_studies",
    "study_queue",
]


class DuplicateStudy(StoreError):
    """A study with this id exists already."""


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
    queue: str | None = None,
    data_fingerprint: str | None = None,
) -> None:
    """Insert a study in state ``queued``.

    Args:
        queue: the broker queue its trials go to; None for a study of the local pool.
        data_fingerprint: the data file's fingerprint (see :func:`core.data.fingerprint`).

    Raises:
        DuplicateStudy: the id exists already.
    """

    def go(s: Session) -> None:
        s.add(
            Study(
                id=study_id, name=name, spec_raw=spec_raw, spec=spec, spec_text=spec_text, seed=seed,
                objective=str(objective), strategy=strategy, state=StudyState.QUEUED, queue=queue,
                data_fingerprint=data_fingerprint,
            )
        )

    try:
        store.run(go)
    except IntegrityError:
        raise DuplicateStudy(f"study {study_id} exists already") from None


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
    state: StudyState,
    *,
    only_from: Sequence[StudyState] | None = None,
    error: str | None = None,
) -> bool:
    """Set a study's state (and ``finished_at`` for final states) if it is in ``only_from``.

    Returns:
        True if the row changed.
    """
    values: dict[str, Any] = {"state": state}
    if state in FINAL_STUDY:
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
            .where(Study.id == study_id, Study.state.in_(LIVE_STUDY))
            .values(state=StudyState.CANCELLED, finished_at=db_now())
        )
        return s.execute(
            update(Trial)
            .where(Trial.study_id == study_id, Trial.status.in_((TrialStatus.QUEUED, TrialStatus.PAUSED)))
            .values(status=TrialStatus.CANCELLED, finished_at=db_now())
        ).rowcount

    return store.run(go)


def broker_studies(store: Store, queues: Sequence[str]) -> dict[str, str]:
    """Live studies whose trials go to one of ``queues``: study id -> its queue, by id."""
    stmt = (
        select(Study.id, Study.queue)
        .where(Study.state.in_(LIVE_STUDY), Study.queue.in_(list(queues)))
        .order_by(Study.id)
    )
    return {sid: queue for sid, queue in store.run(lambda s: s.execute(stmt).all())}


def study_queue(store: Store, study_id: str) -> str | None:
    """The broker queue of a study's trials (None: the local pool's, or no such study)."""
    return store.run(lambda s: s.execute(select(Study.queue).where(Study.id == study_id)).scalar())
