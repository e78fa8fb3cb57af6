"""file run summary: what a finished processing run found, kept past Temporal's retention

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ocr_pages", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ocr_excerpt", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("ocr_excerpt")
        batch_op.drop_column("ocr_pages")
