"""Trial checkpoints: a running trial's latest training state, for a new attempt to resume from.

``checkpoints`` holds NPZ bytes of :class:`core.nn.Checkpoint` per (trial, epoch), written under the
trial's lease; finished trials keep none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column(
            "trial_id", sa.String(160), sa.ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("epoch", sa.Integer(), primary_key=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("nbytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
