"""Who runs a study's trials, and the fingerprint of its data file.

``studies.queue`` is the broker queue a study's trials are sent to, or NULL for a study of the local
pool (``caviar run``): each side recovers only its own studies. Existing studies that a local pool ran
keep NULL; the others get the default queue, ``caviar``. ``studies.data_fingerprint`` is the size and
SHA-256 of the study's data file when it was created (NULL for a built-in dataset), so a worker can refuse
data that changed under a running study.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("queue", sa.String(200), nullable=True))
        batch.add_column(sa.Column("data_fingerprint", sa.String(100), nullable=True))
    op.execute(
        "UPDATE studies SET queue = 'caviar' WHERE NOT EXISTS "
        "(SELECT 1 FROM trials WHERE trials.study_id = studies.id AND trials.worker LIKE 'local:%')"
    )


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("data_fingerprint")
        batch.drop_column("queue")
