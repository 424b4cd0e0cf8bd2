"""The store's vocabulary: a trial's status and a study's state, as string-valued enums.

The values are what the database stores and what ``--format json`` prints; a :class:`~enum.StrEnum`
member *is* its string, so rows and JSON stay exactly as they were written before these types existed.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TrialStatus", "StudyState", "StudyKind", "PandaState", "PandaAction", "FINISHED", "LIVE_TRIAL",
    "LIVE_STUDY", "FINAL_STUDY", "WITH_MODEL",
]


class TrialStatus(StrEnum):
    """Where one trial is in its life cycle."""

    #: Waiting for a process to claim it.
    QUEUED = "queued"
    #: Claimed by a process holding its lease (status ``running`` and the attempt number).
    RUNNING = "running"
    #: Trained to the end; its metrics are stored.
    COMPLETE = "complete"
    #: Its loss became NaN or infinite; the history up to there is stored.
    DIVERGED = "diverged"
    #: Raised, or gave up at the attempt cap; ``error`` says why.
    FAILED = "failed"
    #: Stopped because its study was cancelled.
    CANCELLED = "cancelled"
    #: Trained to a rung of ``[pruning]`` and waiting for the rung's decision (its checkpoint kept).
    PAUSED = "paused"
    #: Stopped at a rung of ``[pruning]``: its metrics and curve are the rung's.
    PRUNED = "pruned"

    @property
    def is_finished(self) -> bool:
        """True for a final status."""
        return self in FINISHED


class StudyState(StrEnum):
    """Where one study is in its life cycle."""

    #: Submitted; no trial claimed yet.
    QUEUED = "queued"
    #: At least one trial was claimed.
    RUNNING = "running"
    #: Its strategy proposed no further round.
    COMPLETE = "complete"
    #: Stopped by an error of the study itself.
    FAILED = "failed"
    #: Cancelled by a person (``caviar cancel``).
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for a state the study never leaves."""
        return self in FINAL_STUDY


class StudyKind(StrEnum):
    """What a study is."""

    #: Many trials planned by a strategy, round after round.
    SWEEP = "sweep"
    #: One trial babysat by a person (``caviar panda``).
    PANDA = "panda"


class PandaState(StrEnum):
    """Where a panda session is, as ``caviar panda show`` reports it (derived from its trial's status)."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETE = "complete"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"

    @classmethod
    def of(cls, status: TrialStatus | str) -> PandaState:
        """The session state of its trial's status (a queued trial waits for its runner: running)."""
        return _PANDA_OF[TrialStatus(status)]


class PandaAction(StrEnum):
    """What a request asks of a panda session."""

    SET = "set"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    STOP = "stop"


_PANDA_OF = {
    TrialStatus.QUEUED: PandaState.RUNNING,
    TrialStatus.RUNNING: PandaState.RUNNING,
    TrialStatus.PAUSED: PandaState.PAUSED,
    TrialStatus.COMPLETE: PandaState.COMPLETE,
    TrialStatus.CANCELLED: PandaState.STOPPED,
    TrialStatus.DIVERGED: PandaState.DIVERGED,
    TrialStatus.FAILED: PandaState.FAILED,
    TrialStatus.PRUNED: PandaState.STOPPED,
}

# Named sets as tuples: SQLAlchemy's ``in_()`` takes them as they are, in a fixed order (stable SQL text).

#: Final statuses: such a trial is never run again.
FINISHED: tuple[TrialStatus, ...] = (
    TrialStatus.COMPLETE, TrialStatus.DIVERGED, TrialStatus.FAILED, TrialStatus.CANCELLED, TrialStatus.PRUNED,
)
#: Statuses of a trial that still has to run, or is running.
LIVE_TRIAL: tuple[TrialStatus, ...] = (TrialStatus.QUEUED, TrialStatus.RUNNING)
#: Statuses of a trial whose model can be rebuilt (``caviar best/trials --save``): a complete trial's full
#: run, or the prefix a pruned or paused trial trained to its rung.
WITH_MODEL: tuple[TrialStatus, ...] = (TrialStatus.COMPLETE, TrialStatus.PRUNED, TrialStatus.PAUSED)
#: States of a study that still advances.
LIVE_STUDY: tuple[StudyState, ...] = (StudyState.QUEUED, StudyState.RUNNING)
#: States a study never leaves.
FINAL_STUDY: tuple[StudyState, ...] = (StudyState.COMPLETE, StudyState.FAILED, StudyState.CANCELLED)
