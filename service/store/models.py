"""The study store's tables, as typed SQLAlchemy 2.0 models.

Seven tables: ``studies`` (one per submission: a sweep, or a panda session), ``rounds`` (one per round of
a study, with its search region), ``trials`` (one per configuration, with its final metrics), ``epochs``
(learning curves), ``checkpoints`` (training states, NPZ bytes), ``panda_sessions`` (a session's first
configuration and lineage) and ``panda_requests`` (a session's log of changes).
Unique constraints make every write idempotent: a round is keyed by ``(study_id, round_index)``, a
trial by its deterministic id (and ``(study_id, round_index, trial_index)``), an epoch by
``(trial_id, epoch)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.store.states import StudyKind, StudyState, TrialStatus

__all__ = ["Base", "Study", "Round", "Trial", "Epoch", "TrialCheckpoint", "PandaSession", "PandaRequest"]


class Base(DeclarativeBase):
    """Declarative base; JSON-typed ``dict``/``list`` columns map to :class:`sqlalchemy.JSON`."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    """One submitted study: its spec as given, its parsed spec and its state."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The study file's table as given (``StudySpec.raw``).
    spec_raw: Mapped[dict[str, Any]]
    #: The parsed, normalised spec (``StudySpec.to_dict()``).
    spec: Mapped[dict[str, Any]]
    #: The study file's text, when submitted from a file (kept so a worker can re-parse it exactly).
    spec_text: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    objective: Mapped[str] = mapped_column(String(32))
    strategy: Mapped[str] = mapped_column(String(32))
    #: A :class:`~service.store.states.StudyState` value.
    state: Mapped[str] = mapped_column(String(16), default=StudyState.QUEUED)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    #: The broker queue its trials are sent to; None for a study of the local pool (``caviar run``).
    #: Each side recovers only its own studies.
    queue: Mapped[str | None] = mapped_column(String(200))
    #: Size and SHA-256 of the data file when the study was created (None for a built-in dataset).
    data_fingerprint: Mapped[str | None] = mapped_column(String(100))
    #: A :class:`~service.store.states.StudyKind` value: a sweep, or a panda session (one babysat trial).
    kind: Mapped[str] = mapped_column(String(16), default=StudyKind.SWEEP, server_default=StudyKind.SWEEP)


class Round(Base):
    """One round of a study: the region it searched and the round it zoomed from."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("study_id", "round_index", name="uq_rounds_study_round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    round_index: Mapped[int] = mapped_column(Integer)
    #: name -> [low, high] in parameter units, or the list of allowed choices.
    region: Mapped[dict[str, Any]]
    parent_index: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Trial(Base):
    """One configuration of a study, its life cycle and its final metrics."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "round_index", "trial_index", name="uq_trials_study_round_index"),
        Index("ix_trials_study_status", "study_id", "status"),
        Index("ix_trials_study_val_loss", "study_id", "val_loss"),
        Index("ix_trials_study_val_accuracy", "study_id", "val_accuracy"),
        Index("ix_trials_study_round", "study_id", "round_index"),
    )

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    round_index: Mapped[int] = mapped_column(Integer)
    trial_index: Mapped[int] = mapped_column(Integer)
    #: The searched hyperparameters of this trial (``[fixed]`` keys are in the study's spec).
    params: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    #: A :class:`~service.store.states.TrialStatus` value.
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Last sign of life of the running attempt, by the database's clock.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    epochs_run: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    samples_per_second: Mapped[float | None] = mapped_column(Float)
    #: With ``[pruning]``: the epochs this trial trains to next (its current rung); NULL: all of them.
    target_epochs: Mapped[int | None] = mapped_column(Integer)
    #: ``attempts`` when the current rung began: the attempt cap counts the rung's attempts only, while
    #: ``attempts`` itself only grows (it fences the lease).
    rung_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Epoch(Base):
    """One epoch of a trial's learning curve."""

    __tablename__ = "epochs"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)


class TrialCheckpoint(Base):
    """A trial's training state after ``epoch`` epochs (:class:`core.nn.Checkpoint` as NPZ bytes), written
    by attempt ``attempt``; a new attempt resumes from the latest one. Finished trials keep none."""

    __tablename__ = "checkpoints"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    nbytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PandaSession(Base):
    """A panda session's own facts: its first configuration, its data, and for a fork its parent."""

    __tablename__ = "panda_sessions"

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(160))
    #: The full configuration epoch 1 trained with (:func:`core.hparams.resolve`'s).
    initial: Mapped[dict[str, Any]]
    #: Where the data comes from: dataset | data (+ target), val_fraction, split_seed.
    source: Mapped[dict[str, Any]]
    #: A fork's changes from its parent's timeline (``Change.to_dict()`` each), before ``parent_epoch``.
    inherited: Mapped[list[Any]]
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"))
    parent_epoch: Mapped[int | None] = mapped_column(Integer)
    #: The learning-rate range test run before training (``--lr-find``): points and the suggestion.
    lr_find: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PandaRequest(Base):
    """One request to a panda session: pending until its runner applies it at an epoch boundary.

    ``action`` is a :class:`~service.store.states.PandaAction` value. Applied requests carry
    ``applied_index`` (their order in the log) and ``applied_epoch`` (epochs done when they applied); a
    request that could not apply (its ``at_epoch`` was rolled back past) carries ``refused``.
    """

    __tablename__ = "panda_requests"
    __table_args__ = (Index("ix_panda_requests_study", "study_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    values: Mapped[dict[str, Any]]
    to_epoch: Mapped[int | None] = mapped_column(Integer)
    at_epoch: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    applied_index: Mapped[int | None] = mapped_column(Integer)
    applied_epoch: Mapped[int | None] = mapped_column(Integer)
    refused: Mapped[str | None] = mapped_column(Text)
