"""exam uploads: small PATCHes of the S3 store staged in the database

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 19:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exam_upload_staged",
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("parts", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["exam_uploads.id"],
            name=op.f("fk_exam_upload_staged_upload_id_exam_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "parts", "start", name=op.f("pk_exam_upload_staged")),
    )
    with op.batch_alter_table("exam_uploads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("s3_staged", sa.Boolean(), server_default="0", nullable=False)
        )
    # Uploads of the S3 store in progress at the upgrade staged their bytes as S3 objects.
    op.execute("UPDATE exam_uploads SET s3_staged = (part_size IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table("exam_uploads", schema=None) as batch_op:
        batch_op.drop_column("s3_staged")
    op.drop_table("exam_upload_staged")
