"""api key parent: the key that created a key, so revoking it revokes its descendants

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_key_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_api_keys_parent_key_id", ["parent_key_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_parent_key_id")
        batch_op.drop_column("parent_key_id")
