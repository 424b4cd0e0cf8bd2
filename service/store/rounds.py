"""Rounds: create a round with its trials, read rounds and their results, and where a study stands.

A round is unique per ``(study_id, round_index)``, so two processes advancing a study create it once:
the database decides, never a Python lock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.search.objective import Objective
from service.store.models import Round, Study, Trial
from service.store.states import FINISHED, LIVE_STUDY, LIVE_TRIAL, StudyState, TrialStatus
from service.store.store import Store

__all__ = [
    "create_round",
    "rounds",
    "latest_round",
    "round_results",
    "round_counts",
    "Progress",
    "study_progress",
    "progress_in",
    "RoundTally",
    "latest_round_tally",
]


def create_round(
    store: Store,
    study_id: str,
    round_index: int,
    region: dict[str, Any],
    parent_index: int | None,
    trials: Sequence[tuple[str, int, dict[str, Any], int]],
    target_epochs: int | None = None,
) -> bool:
    """Create a round and its queued trials in one transaction.

    Args:
        trials: (trial id, index in the round, params, seed) per trial.
        target_epochs: with ``[pruning]``, the first rung every trial trains to.

    Returns:
        True if this call created the round; False if it existed already (created by another process:
        the unique constraint on ``(study_id, round_index)`` decides).
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
                        "params": params, "seed": seed, "status": TrialStatus.QUEUED, "attempts": 0,
                        "target_epochs": target_epochs, "rung_base": 0,
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
    stmt = select(Round).where(Round.study_id == study_id).order_by(Round.round_index)
    return list(store.run(lambda s: s.scalars(stmt).all()))


def latest_round(store: Store, study_id: str) -> int | None:
    """The index of the study's latest round, or None before round 0 exists."""
    stmt = select(func.max(Round.round_index)).where(Round.study_id == study_id)
    return store.run(lambda s: s.execute(stmt).scalar())


def round_results(store: Store, study_id: str, objective: str) -> list[list[tuple[dict[str, Any], float]]]:
    """Per round, (params, objective value) of every trial, in trial order.

    The value is the stored ``val_loss`` or ``val_accuracy``; NaN for every trial that did not complete
    (diverged, failed, and cancelled ones, which only exist in a cancelled study). A ``pruned`` trial gives
    its last rung's value: weaker evidence that, learning curves falling, ranks it behind the trials that
    trained to the end.
    """
    column = Trial.val_accuracy if Objective(objective).maximize else Trial.val_loss
    stmt = (
        select(Trial.round_index, Trial.params, Trial.status, column)
        .where(Trial.study_id == study_id)
        .order_by(Trial.round_index, Trial.trial_index)
    )
    out: dict[int, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for rnd, params, status, value in store.run(lambda s: s.execute(stmt).all()):
        ok = status in (TrialStatus.COMPLETE, TrialStatus.PRUNED) and value is not None
        out[rnd].append((params, float(value) if ok else math.nan))
    n = max(out) + 1 if out else 0
    return [out.get(i, []) for i in range(n)]


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


@dataclass(frozen=True)
class Progress:
    """Where a study stands, from one query: enough to decide whether to advance it.

    Attributes:
        state: the study's state (None: no such study).
        objective: the study's objective column.
        latest: the index of its latest round (None before round 0 exists).
        pending: the latest round's trials that are not finished (queued, running or paused).
        live: of those, the ones queued or running (the others wait at a ``[pruning]`` rung).
    """

    state: StudyState | None
    objective: str | None = None
    latest: int | None = None
    pending: int = 0
    live: int = 0

    @property
    def due(self) -> bool:
        """True when the study is live and its latest round is over (or none exists): advance it."""
        return self.state in LIVE_STUDY and self.pending == 0

    @property
    def waiting(self) -> bool:
        """True when the study is live and some of its latest round's trials wait at a rung."""
        return self.state in LIVE_STUDY and self.pending > self.live

    @property
    def rung_due(self) -> bool:
        """True when the latest round's running is over but some of its trials wait at a rung."""
        return self.state in LIVE_STUDY and self.pending > 0 and self.live == 0


def progress_in(s: Session, study_id: str) -> Progress:
    """:func:`study_progress` inside the caller's transaction."""
    latest = select(func.max(Round.round_index)).where(Round.study_id == study_id).scalar_subquery()
    of_round = (Trial.study_id == study_id) & (Trial.round_index == latest)
    pending = select(func.count()).select_from(Trial).where(of_round, Trial.status.not_in(FINISHED))
    live = select(func.count()).select_from(Trial).where(of_round, Trial.status.in_(LIVE_TRIAL))
    row = s.execute(
        select(Study.state, Study.objective, latest, pending.scalar_subquery(), live.scalar_subquery())
        .where(Study.id == study_id)
    ).one_or_none()
    if row is None:
        return Progress(None)
    return Progress(StudyState(row[0]), row[1], row[2], int(row[3] or 0), int(row[4] or 0))


def study_progress(store: Store, study_id: str) -> Progress:
    """The study's state and its latest round's unfinished trials, in one query."""
    return store.run(lambda s: progress_in(s, study_id))


@dataclass
class RoundTally:
    """A study's state and its latest round's trials by status, at one moment (what a follower shows)."""

    state: StudyState
    round_index: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Trials of the round that reached a final status."""
        return sum(n for status, n in self.counts.items() if status in FINISHED)

    @property
    def total(self) -> int:
        """Trials of the round."""
        return sum(self.counts.values())


def latest_round_tally(store: Store, study_id: str) -> RoundTally:
    """The study's state, its latest round and that round's trial counts by status."""

    def go(s: Session) -> RoundTally:
        state = s.execute(select(Study.state).where(Study.id == study_id)).scalar_one()
        latest = s.execute(select(func.max(Trial.round_index)).where(Trial.study_id == study_id)).scalar()
        latest = int(latest or 0)
        rows = s.execute(
            select(Trial.status, func.count())
            .where(Trial.study_id == study_id, Trial.round_index == latest)
            .group_by(Trial.status)
        ).all()
        return RoundTally(StudyState(state), latest, {r[0]: int(r[1]) for r in rows})

    return store.run(go)
