"""The metadata schema of release 0.4.0 exactly, as its `create_all` made it: `collections` and `images`.

A database made by 0.4.0 (no alembic_version table) is recognised as this revision and stamped, never
re-created (webserver/stores/schema.py).

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("encoder_id", sa.String(255), nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("collection", sa.String(64), sa.ForeignKey("collections.name", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("caption", sa.Text, nullable=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.UniqueConstraint("collection", "sha256", name="uq_images_collection_sha256"),
        sqlite_autoincrement=True,  # never reuse a deleted id: it is also the Milvus primary key
    )
    op.create_index("ix_images_collection_filename", "images", ["collection", "filename"])


def downgrade() -> None:
    op.drop_table("images")
    op.drop_table("collections")
