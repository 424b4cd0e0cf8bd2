"""Panda sessions: a study's kind, the session's first configuration and lineage, and its request log.

``studies.kind`` is ``sweep`` (every study before this revision) or ``panda``. ``panda_sessions`` holds
a session's first configuration, its data, and for a fork the parent and the changes it inherited;
``panda_requests`` is the log of changes asked for (pending) and applied, in order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="sweep"))
    op.create_table(
        "panda_sessions",
        sa.Column(
            "study_id", sa.String(120), sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("trial_id", sa.String(160), nullable=False),
        sa.Column("initial", sa.JSON(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("inherited", sa.JSON(), nullable=False),
        sa.Column(
            "parent_id", sa.String(120), sa.ForeignKey("studies.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("parent_epoch", sa.Integer(), nullable=True),
        sa.Column("lr_find", sa.JSON(), nullable=True),
    )
    op.create_table(
        "panda_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "study_id", sa.String(120), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("to_epoch", sa.Integer(), nullable=True),
        sa.Column("at_epoch", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("applied_index", sa.Integer(), nullable=True),
        sa.Column("applied_epoch", sa.Integer(), nullable=True),
        sa.Column("refused", sa.Text(), nullable=True),
    )
    op.create_index("ix_panda_requests_study", "panda_requests", ["study_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_panda_requests_study", table_name="panda_requests")
    op.drop_table("panda_requests")
    op.drop_table("panda_sessions")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("kind")
