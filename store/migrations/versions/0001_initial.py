"""Initial schema: cases, their timeline, assignments, deadlines, evaluations, reference data.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("category_name", sa.String(length=128), nullable=True),
        sa.Column("classification_rule", sa.String(length=128), nullable=True),
        sa.Column("classification_confidence", sa.Float(), nullable=True),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("coordinating_region", sa.String(length=15), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("base_level", sa.SmallInteger(), nullable=False),
        sa.Column("lead_department", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("hot_spot", sa.Boolean(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("ruling_region", sa.String(length=15), nullable=True),
        sa.Column("redo", sa.SmallInteger(), nullable=False),
        sa.Column("satisfaction", sa.String(length=32), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_category"), "cases", ["category"])
    op.create_index(op.f("ix_cases_coordinating_region"), "cases", ["coordinating_region"])
    op.create_index(op.f("ix_cases_grid_code"), "cases", ["grid_code"])
    op.create_index(op.f("ix_cases_lead_department_status"), "cases", ["lead_department", "status"])
    op.create_index(op.f("ix_cases_opened_at"), "cases", ["opened_at"])
    op.create_index(op.f("ix_cases_priority"), "cases", ["priority"])
    op.create_index(op.f("ix_cases_region_code"), "cases", ["region_code"])
    op.create_index(op.f("ix_cases_status_priority"), "cases", ["status", "priority"])
    op.create_index(op.f("ix_cases_updated_at"), "cases", ["updated_at"])

    op.create_table(
        "departments",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_departments")),
    )
    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=15), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("parent", sa.String(length=15), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_regions")),
    )
    op.create_index(op.f("ix_regions_parent"), "regions", ["parent"])

    op.create_table(
        "assignments",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("assignment_id", sa.String(length=16), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=15), nullable=False),
        sa.Column("ruled", sa.Boolean(), nullable=False),
        sa.Column("on_site", sa.Boolean(), nullable=False),
        sa.Column("extensions", sa.SmallInteger(), nullable=False),
        sa.Column("extension_pending", sa.Boolean(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("return_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accept_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolve_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.case_id"],
            name=op.f("fk_assignments_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "assignment_id", name=op.f("pk_assignments")),
    )
    op.create_index(
        op.f("ix_assignments_department_status"), "assignments", ["department", "status"]
    )
    op.create_index(op.f("ix_assignments_status"), "assignments", ["status"])

    op.create_table(
        "case_events",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("command_id", sa.String(length=256), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.case_id"],
            name=op.f("fk_case_events_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "seq", name=op.f("pk_case_events")),
    )
    op.create_index(op.f("ix_case_events_at"), "case_events", ["at"])
    op.create_index(op.f("ix_case_events_type"), "case_events", ["type"])

    op.create_table(
        "deadlines",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("deadline_id", sa.String(length=48), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("assignment_id", sa.String(length=16), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("budget_seconds", sa.Integer(), nullable=False),
        sa.Column("working_days", sa.Boolean(), nullable=False),
        sa.Column("warn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("yellow_fired", sa.Boolean(), nullable=False),
        sa.Column("red_fired", sa.Boolean(), nullable=False),
        sa.Column("over_fired", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("extended", sa.SmallInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.case_id"],
            name=op.f("fk_deadlines_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "deadline_id", name=op.f("pk_deadlines")),
    )
    op.create_index(op.f("ix_deadlines_active_due_at"), "deadlines", ["active", "due_at"])
    op.create_index(op.f("ix_deadlines_department_active"), "deadlines", ["department", "active"])

    op.create_table(
        "evaluations",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redo", sa.SmallInteger(), nullable=False),
        sa.Column("lead_department", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.case_id"],
            name=op.f("fk_evaluations_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "seq", name=op.f("pk_evaluations")),
    )
    op.create_index(op.f("ix_evaluations_at"), "evaluations", ["at"])
    op.create_index(
        op.f("ix_evaluations_lead_department_result"), "evaluations", ["lead_department", "result"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_evaluations_lead_department_result"), table_name="evaluations")
    op.drop_index(op.f("ix_evaluations_at"), table_name="evaluations")

    op.drop_table("evaluations")
    op.drop_index(op.f("ix_deadlines_department_active"), table_name="deadlines")
    op.drop_index(op.f("ix_deadlines_active_due_at"), table_name="deadlines")

    op.drop_table("deadlines")
    op.drop_index(op.f("ix_case_events_type"), table_name="case_events")
    op.drop_index(op.f("ix_case_events_at"), table_name="case_events")

    op.drop_table("case_events")
    op.drop_index(op.f("ix_assignments_status"), table_name="assignments")
    op.drop_index(op.f("ix_assignments_department_status"), table_name="assignments")

    op.drop_table("assignments")
    op.drop_index(op.f("ix_regions_parent"), table_name="regions")

    op.drop_table("regions")
    op.drop_table("departments")
    op.drop_index(op.f("ix_cases_updated_at"), table_name="cases")
    op.drop_index(op.f("ix_cases_status_priority"), table_name="cases")
    op.drop_index(op.f("ix_cases_region_code"), table_name="cases")
    op.drop_index(op.f("ix_cases_priority"), table_name="cases")
    op.drop_index(op.f("ix_cases_opened_at"), table_name="cases")
    op.drop_index(op.f("ix_cases_lead_department_status"), table_name="cases")
    op.drop_index(op.f("ix_cases_grid_code"), table_name="cases")
    op.drop_index(op.f("ix_cases_coordinating_region"), table_name="cases")
    op.drop_index(op.f("ix_cases_category"), table_name="cases")

    op.drop_table("cases")
