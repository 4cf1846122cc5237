"""Each collection records the layout of its Milvus collection (fields, metric, index), so a release that
changes the layout can tell which collections to rebuild. Collections made before this are layout 1.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collections", sa.Column("vector_layout", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("vector_layout")
