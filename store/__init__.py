"""The SQL projection of ``cases.events`` (SQLite or PostgreSQL, SQLAlchemy 2).

- :mod:`store.models` — the tables, as typed declarative models;
- :mod:`store.db` — ``create_engine(url)`` and ``session_factory(engine)``;
- :mod:`store.projector` — ``project(session, events)``, ``load_reference(session, city)``;
- :mod:`store.migrate` — ``upgrade(url)``: Alembic migrations shipped in the package.
"""
