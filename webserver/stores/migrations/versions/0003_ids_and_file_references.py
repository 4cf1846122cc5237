"""Image ids come from a sequence that only moves forward, and every stored file counts its references.

- `id_sequence` (one row, `next_id`): ids are handed out in a transaction of their own that commits before
  the rows are written, so an insert that rolls back, or a process killed before its commit, never gives
  its ids to a later image (SQLite's AUTOINCREMENT counter rolled back with the insert; the id then came
  back for another collection's image while a stale Milvus vector still carried it).
- `stored_files` (`path`, `sha256`, `refs`): how many image rows use each content-addressed file, kept in
  the same transaction as the rows. A delete removes the file only when its count reaches zero, under the
  row's lock, so an upload of the same bytes racing a delete can no longer lose the file.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sequence = op.create_table(
        "id_sequence",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("next_id", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stored_files",
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("refs", sa.Integer, nullable=False),
    )
    conn = op.get_bind()
    highest = conn.execute(sa.text("SELECT MAX(id) FROM images")).scalar() or 0
    if conn.dialect.name == "sqlite":  # ids handed out and rolled back or deleted count too
        has_counter = conn.execute(sa.text(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")).scalar()
        if has_counter:
            counted = conn.execute(sa.text("SELECT MAX(seq) FROM sqlite_sequence WHERE name = 'images'")).scalar()
            highest = max(highest, counted or 0)
    elif conn.dialect.name in ("mysql", "mariadb"):
        counter = conn.execute(sa.text("SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'images'")).scalar()
        highest = max(highest, (counter or 1) - 1)
    op.bulk_insert(sequence, [{"name": "images", "next_id": int(highest) + 1}])
    op.execute("INSERT INTO stored_files (path, sha256, refs) "
               "SELECT path, MIN(sha256), COUNT(*) FROM images GROUP BY path")


def downgrade() -> None:
    op.drop_table("stored_files")
    op.drop_table("id_sequence")
