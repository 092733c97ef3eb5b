"""Read models of the console and of repeated commands, over the SQL projection.

Plain functions over a session with keyword-only filters, like the other read
models (:mod:`store.queries`): who serves a case (its assignments' units), how
far the projection has read a case's log, what a command did (for a repeated
``Idempotency-Key``), the reference data the console shows, and the grids a
case map draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AssignmentRow, Case, CaseEventRow, Department, Region, within_region
from streams.cases import AnyEvent, CaseEvent, CaseState, apply


def case_units(session: Session, case_id: str) -> set[tuple[str, str]]:
    """(department, unit's jurisdiction) of every assignment the case has had."""
    return {(department, region) for department, region in session.execute(
        select(AssignmentRow.department, AssignmentRow.region)
        .where(AssignmentRow.case_id == case_id))}


def last_seq(session: Session, case_id: str) -> int | None:
    """The sequence number of the case's last event the projection holds (None: none)."""
    return session.scalar(select(Case.last_seq).where(Case.case_id == case_id))


@dataclass(frozen=True)
class CommandOutcome:
    """What one command did to a case, read back from its log."""

    seqs: tuple[int, ...]
    events: tuple[CaseEvent, ...]
    state: CaseState  # the case right after the command's last event

    @property
    def status(self) -> str:
        return str(self.state.status)


def command_outcome(session: Session, case_id: str, command_id: str) -> CommandOutcome | None:
    """The events command ``command_id`` caused on case ``case_id`` and the case's state
    after them; None when the projection holds none (not applied, or not read yet)."""
    seqs = tuple(session.scalars(
        select(CaseEventRow.seq).where(CaseEventRow.case_id == case_id,
                                       CaseEventRow.command_id == command_id)
        .order_by(CaseEventRow.seq)))
    if not seqs:
        return None
    payloads = session.scalars(
        select(CaseEventRow.payload).where(CaseEventRow.case_id == case_id,
                                           CaseEventRow.seq <= seqs[-1])
        .order_by(CaseEventRow.seq))
    state: CaseState | None = None
    caused = []
    for payload in payloads:
        event: CaseEvent = msgspec.convert(payload, AnyEvent)
        state = apply(state, event)
        if event.seq in seqs:
            caused.append(event)
    assert state is not None
    return CommandOutcome(seqs=seqs, events=tuple(caused), state=state)


# -- reference data the console shows ---------------------------------------------------------


def departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.code)))


def regions(session: Session, *, levels: Sequence[int], within: str | None = None
            ) -> list[Region]:
    """Regions of ``levels`` within jurisdiction ``within`` (None: the whole city); grids
    carry their centroid."""
    query = select(Region).where(Region.level.in_(levels))
    if within is not None:
        query = query.where(within_region(Region.code, within))
    return list(session.scalars(query.order_by(Region.code)))


def region_names(session: Session, codes: Sequence[str]) -> dict[str, str]:
    return dict(session.execute(select(Region.code, Region.name)
                                .where(Region.code.in_(set(codes)))).all())


def grids_near(session: Session, grid_or_region: str) -> list[Region]:
    """The grids of the community (or, above it, the region) a case lies in: what its
    map draws around it."""
    prefix = grid_or_region[:12] if len(grid_or_region) >= 12 else grid_or_region
    rows = session.scalars(select(Region).where(Region.level == 5,
                                                within_region(Region.code, prefix))
                           .order_by(Region.code).limit(400))
    return [r for r in rows if r.lon is not None and r.lat is not None]


__all__ = ["CommandOutcome", "case_units", "command_outcome", "departments",
           "grids_near", "last_seq", "region_names", "regions"]
