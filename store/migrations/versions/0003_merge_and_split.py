"""Merge and split of cases (合并 / 拆分).

A merged case keeps the id of the case it went into and when (status
``merged``); a case split off another keeps that case's id. Existing rows get
NULL: no case was merged or split before this revision.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("merged_into", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("split_from", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_cases_merged_into"), "cases", ["merged_into"])
    op.create_index(op.f("ix_cases_split_from"), "cases", ["split_from"])


def downgrade() -> None:
    op.drop_index(op.f("ix_cases_split_from"), table_name="cases")
    op.drop_index(op.f("ix_cases_merged_into"), table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("split_from")
        batch.drop_column("merged_into")
        batch.drop_column("merged_at")
