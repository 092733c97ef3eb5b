"""A department's queue in one index scan, and a report's case by index.

Assignments keep their case's priority and their running deadline, so the
queue (交办队列) is ordered off one index on (department, status, priority,
due_at, …) instead of sorting a join. Timeline rows keep the source id of the
report they brought in, so Open311's request-by-id is an index lookup.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPORT_EVENTS = ("case_opened", "event_linked")


def upgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False,
                                   server_default="4"))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE assignments SET "
        "priority = (SELECT cases.priority FROM cases WHERE cases.case_id = assignments.case_id), "
        "due_at = CASE WHEN resolve_due_at IS NULL OR accept_due_at < resolve_due_at "
        "THEN accept_due_at ELSE resolve_due_at END"
    )
    with op.batch_alter_table("assignments") as batch:
        batch.alter_column("priority", server_default=None)
    op.drop_index(op.f("ix_assignments_department_status"), table_name="assignments")
    op.create_index("ix_assignments_queue", "assignments",
                    ["department", "status", "priority", "due_at", "dispatched_at", "case_id",
                     "assignment_id"])

    op.add_column("case_events", sa.Column("source_id", sa.String(length=128), nullable=True))
    events = sa.table("case_events", sa.column("case_id"), sa.column("seq"),
                      sa.column("type"), sa.column("payload", sa.JSON()),
                      sa.column("source_id"))
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.case_id, events.c.seq, events.c.payload)
                              .where(events.c.type.in_(_REPORT_EVENTS))).all()
    for case_id, seq, payload in rows:
        source_id = ((payload or {}).get("event") or {}).get("source_id")
        if source_id:
            connection.execute(events.update()
                               .where(events.c.case_id == case_id, events.c.seq == seq)
                               .values(source_id=source_id))
    op.create_index(op.f("ix_case_events_source_id"), "case_events", ["source_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_case_events_source_id"), table_name="case_events")
    with op.batch_alter_table("case_events") as batch:
        batch.drop_column("source_id")
    op.drop_index("ix_assignments_queue", table_name="assignments")
    op.create_index(op.f("ix_assignments_department_status"), "assignments",
                    ["department", "status"])
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("due_at")
        batch.drop_column("priority")
