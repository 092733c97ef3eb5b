"""The pure processing core of GridLink.

Plain functions over typed records: parse, classify, prioritise, correlate,
route, the case state machine, SLA clocks and the working-day calendar, and
escalation. Nothing here imports Kafka, Faust, SQLAlchemy or FastAPI, and
nothing here reads the clock: ``now`` and the rules are always arguments.
"""
