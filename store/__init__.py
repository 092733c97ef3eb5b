"""The SQL projection of ``cases.events`` (SQLite or PostgreSQL, SQLAlchemy 2).

- :mod:`store.models` — the tables, as typed declarative models;
- :mod:`store.db` — ``create_engine(url)``, ``session_factory(engine)``, the ``Session``
  type and ``StoreError``;
- :mod:`store.projector` — ``project(session, events)``, ``load_reference(session, city)``;
- :mod:`store.migrate` — ``upgrade(url)``: Alembic migrations shipped in the package;
- the read side: :mod:`store.queries` and :mod:`store.reads` (cases, queues, the board,
  reference data), :mod:`store.statistics` (考核指标), :mod:`store.gauges` (``/metrics``),
  built from the filter rules of :mod:`store.filters` and answered as the records of
  :mod:`store.records` (a miss raises :class:`store.errors.NotFound`).
"""
