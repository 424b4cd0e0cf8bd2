"""Throughput columns: a trial's training samples per second and each epoch's seconds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("samples_per_second", sa.Float(), nullable=True))
    with op.batch_alter_table("epochs") as batch:
        batch.add_column(sa.Column("seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("epochs") as batch:
        batch.drop_column("seconds")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("samples_per_second")
