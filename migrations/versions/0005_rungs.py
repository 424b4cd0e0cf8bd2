"""Pruning rungs: the epochs a trial trains to next, and where its current rung's attempts began.

``trials.target_epochs`` is NULL for a trial that trains all its epochs (every trial of a study without
``[pruning]``); ``trials.rung_base`` is ``attempts`` when its current rung began (0 before any).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("target_epochs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rung_base", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("rung_base")
        batch.drop_column("target_epochs")
