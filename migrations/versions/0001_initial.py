"""The first schema: studies, rounds, trials and epochs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec_raw", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_text", sa.Text(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("objective", sa.String(32), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "study_id", sa.String(120), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("round_index", sa.Integer(), nullable=False),
        sa.Column("region", sa.JSON(), nullable=False),
        sa.Column("parent_index", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("study_id", "round_index", name="uq_rounds_study_round"),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column(
            "study_id", sa.String(120), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("round_index", sa.Integer(), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("val_accuracy", sa.Float(), nullable=True),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("epochs_run", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.UniqueConstraint("study_id", "round_index", "trial_index", name="uq_trials_study_round_index"),
    )
    op.create_index("ix_trials_study_status", "trials", ["study_id", "status"])
    op.create_index("ix_trials_study_val_loss", "trials", ["study_id", "val_loss"])
    op.create_index("ix_trials_study_val_accuracy", "trials", ["study_id", "val_accuracy"])
    op.create_index("ix_trials_study_round", "trials", ["study_id", "round_index"])
    op.create_table(
        "epochs",
        sa.Column(
            "trial_id", sa.String(160), sa.ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("epoch", sa.Integer(), primary_key=True),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("val_accuracy", sa.Float(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("epochs")
    op.drop_table("trials")
    op.drop_table("rounds")
    op.drop_table("studies")
