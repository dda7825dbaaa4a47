"""accounts: the platform policy an operator saves (one row; absent: the settings' defaults)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vexam.core.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_policy",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("min_client_version", sa.String(length=32), nullable=False),
        sa.Column("device_classes", sa.JSON(), nullable=False),
        sa.Column("min_os", sa.JSON(), nullable=False),
        sa.Column("support_hours_start", sa.String(length=5), nullable=False),
        sa.Column("support_hours_end", sa.String(length=5), nullable=False),
        sa.Column("support_sla_minutes", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", vexam.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_policy")),
    )


def downgrade() -> None:
    op.drop_table("platform_policy")
