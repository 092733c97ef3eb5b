"""Every Kafka topic GridLink reads or writes: the one place that knows their
names, keys, partition counts and retention.

Contract topics (DESIGN.md) keep their names exactly; ``Settings.topic_prefix``
(empty in production) only namespaces them for isolated test runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from settings import Settings
from streams.jurisdiction import ancestor_or_none
from streams.records import Level, Source
from streams.reference import City

GRID_REPORTS = "ingest.grid-reports"
CAMERA_ALERTS = "ingest.camera-alerts"
POLICE_110 = "ingest.police-110"
DEAD_LETTER = "ingest.dead-letter"
CASE_COMMANDS = "cases.commands"  # every input of a township's writer (topics.placement)
CASE_EVENTS = "cases.events"
CASE_REPLIES = "cases.replies"  # internal: accepted or rejected, per command
COMMAND_ALERTS = "command.alerts"
DEPARTMENT_PREFIX = "dept."

#: departments served per jurisdiction (属地): each unit of the department — each
#: township's office — reads a queue of its own, ``dept.<code>.<jurisdiction code>``,
#: beside the department's whole queue ``dept.<code>``, so that ACLs can keep one
#: township from reading another's cases
PER_JURISDICTION: Mapping[str, Level] = {"township": Level.TOWNSHIP}

INGEST_SOURCES = {GRID_REPORTS: Source.GRID, CAMERA_ALERTS: Source.CAMERA, POLICE_110: Source.POLICE}
INGEST_TOPICS = tuple(INGEST_SOURCES)

DAY_MS = 24 * 3600 * 1000
MIB = 1024 * 1024
INGEST_MAX_BYTES = 4 * MIB  # larger than GridLink's 1 MiB limit, so oversize input is
#                             dead-lettered with a reason instead of refused by the broker
DEAD_LETTER_MAX_BYTES = 16 * MIB  # a dead letter carries the original bytes, base64 too


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it must exist on the broker."""

    name: str  # the contract name, without any prefix
    key: str  # what the record key is
    description: str
    partitions: int
    retention_ms: int | None = None  # None = broker default; -1 = keep forever
    compacted: bool = False
    max_message_bytes: int | None = None  # None = broker default (1 MiB)

    def configs(self) -> dict[str, str]:
        configs: dict[str, str] = {}
        if self.max_message_bytes is not None:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        if self.compacted:
            configs["cleanup.policy"] = "compact"
        return configs


@dataclass(frozen=True)
class Replication:
    """How many copies of each partition a topic keeps, and how many must hold a
    record before an ``acks=all`` write of it is acknowledged."""

    factor: int
    min_insync: int

    def configs(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync)}


def replication_for(brokers: int, factor: int | None = None) -> Replication:
    """The replication of topics on a cluster of ``brokers``.

    The factor is ``factor`` when given (``GRIDLINK_REPLICATION``), otherwise the
    cluster decides: 3 on three brokers or more (as production clusters run,
    DESIGN.md), as many as there are below that (1 on a single broker).
    ``min.insync.replicas`` is 2 when the factor is 3 or more, so an acknowledged
    write is on two brokers and one broker may be lost without stopping writes;
    1 below that.
    """
    chosen = factor if factor is not None else min(max(brokers, 1), 3)
    return Replication(chosen, 2 if chosen >= 3 else 1)


def department_topic(code: str) -> str:
    """``dept.<department-code>``: a department's queue."""
    return f"{DEPARTMENT_PREFIX}{code}"


def jurisdiction_topic(code: str, jurisdiction: str) -> str:
    """``dept.<department-code>.<jurisdiction>``: the queue of one unit of a department
    served per jurisdiction (:data:`PER_JURISDICTION`)."""
    return f"{DEPARTMENT_PREFIX}{code}.{jurisdiction}"


def queue_topics(department: str, region: str) -> list[str]:
    """The queues a message for ``department`` about a case in ``region`` goes to: the
    department's, and for a department served per jurisdiction also its unit's there
    (when the case lies that deep)."""
    topics = [department_topic(department)]
    level = PER_JURISDICTION.get(department)
    unit = ancestor_or_none(region, level) if level is not None else None
    if unit is not None:
        topics.append(jurisdiction_topic(department, unit))
    return topics


def jurisdictions(city: City) -> dict[str, list[str]]:
    """Department code → the jurisdiction codes of its units, for every department of
    ``city`` served per jurisdiction."""
    return {code: sorted(r.code for r in city.regions.values() if r.level is level)
            for code, level in PER_JURISDICTION.items() if code in city.departments}


def city_topics(settings: Settings, city: City) -> list[TopicSpec]:
    """:func:`contract_topics` for ``city``'s departments and their units."""
    return contract_topics(settings, city.departments, jurisdictions(city))


def contract_topics(settings: Settings, department_codes: Iterable[str],
                    units: Mapping[str, Iterable[str]] | None = None) -> list[TopicSpec]:
    """Every topic of the contract, plus GridLink's internal replies topic; ``units``:
    department code → jurisdictions of its units (:func:`jurisdictions`).

    ``cases.commands`` and ``cases.events`` must have the same number of
    partitions: partition n of both belongs to the writer of the townships placed
    there (:mod:`topics.placement`).
    """
    p = settings.partitions
    specs = [
        TopicSpec(GRID_REPORTS, "report_id", "grid workers' reports (网格员上报), JSON", p, 7 * DAY_MS,
                  max_message_bytes=INGEST_MAX_BYTES),
        TopicSpec(CAMERA_ALERTS, "alert_id", "video alerts (雪亮), JSON or GB/T 28181 XML", p,
                  7 * DAY_MS, max_message_bytes=INGEST_MAX_BYTES),
        TopicSpec(POLICE_110, "referral_id", "110 social-linkage referrals (110社会联动), JSON", p,
                  7 * DAY_MS, max_message_bytes=INGEST_MAX_BYTES),
        TopicSpec(DEAD_LETTER, "source key", "rejected input with its bytes and a reason", 1,
                  30 * DAY_MS, max_message_bytes=DEAD_LETTER_MAX_BYTES),
        TopicSpec(CASE_COMMANDS, "township code (located events) or case_id (commands)",
                  "every input of a township's writer: validated, located events to triage and "
                  "every change asked of a case, in the township's partition", p, 30 * DAY_MS,
                  max_message_bytes=INGEST_MAX_BYTES),
        TopicSpec(CASE_EVENTS, "case_id", "the full case log, per-case sequence numbers, in the "
                  "partition of the case's township", p, -1, max_message_bytes=INGEST_MAX_BYTES),
        TopicSpec(CASE_REPLIES, "case_id", "each command's answer: accepted, or rejected and why",
                  p, 7 * DAY_MS),
        TopicSpec(COMMAND_ALERTS, "case_id", "P1 cases, SLA breaches, escalations", 1,
                  30 * DAY_MS),
    ]
    specs += [
        TopicSpec(department_topic(code), "case_id", f"queue of department {code}", 1,
                  90 * DAY_MS)
        for code in sorted(set(department_codes))
    ]
    specs += [
        TopicSpec(jurisdiction_topic(code, unit), "case_id",
                  f"queue of department {code} in jurisdiction {unit}", 1, 90 * DAY_MS)
        for code, codes in sorted((units or {}).items()) for unit in sorted(set(codes))
    ]
    return specs
