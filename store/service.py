"""The store as the agents and commands use it: open a database, migrate it,
and project batches of case events in one transaction each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import CaseEventRow
from store.projector import ProjectionError, load_reference, project
from streams.cases import CaseEvent
from streams.reference import City


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, url: str, *, city: City | None = None) -> Store:
        """Migrate the database at ``url`` to the newest schema and open it;
        with ``city``, (re)load its departments and regions."""
        upgrade(url)
        engine = create_engine(url)
        store = cls(engine=engine, sessions=session_factory(engine))
        if city is not None:
            with store.sessions.begin() as session:
                load_reference(session, city)
        return store

    def project(self, events: Sequence[CaseEvent], *,
                on_gap: Callable[[ProjectionError], None] | None = None) -> int:
        """Apply a batch of events in one transaction; returns how many were new.
        ``on_gap``: see :func:`store.projector.project`."""
        with self.sessions.begin() as session:
            return project(session, events, on_gap=on_gap)

    def ping(self) -> None:
        """``SELECT 1``: raises the driver's error when the database does not answer."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def event_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(CaseEventRow)) or 0

    def close(self) -> None:
        self.engine.dispose()
