"""Who may do what on a secured cluster: GridLink's one ACL table.

Every principal is a SCRAM user (``User:<name>``); every binding is an ALLOW on one
resource, and the brokers' ``StandardAuthorizer`` (``allow.everyone.if.no.acl.found``
false) refuses everything else. ``gridlink topics create`` creates the table's
bindings on a cluster with an authorizer (:func:`topics.admin.create_acls`);
``gridlink topics acls`` prints it, and ``docs/deploying.md`` shows it for a
department ``<code>`` and a township ``<township>``.

- The outside systems write their own ingest topic, and nothing else.
- Each department reads its own queue, ``dept.<code>``; a department served per
  jurisdiction (:data:`topics.registry.PER_JURISDICTION`, the township) has a
  principal per unit reading only ``dept.<code>.<jurisdiction>``.
- Only GridLink's worker and API principals write ``cases.commands``; only the
  worker writes ``cases.events``, the department queues, ``cases.replies``,
  ``command.alerts``, the dead letters and its internal topics (``<app id>-…``,
  Faust's). ``triage.events`` no longer exists: triage decides inside the writer.
- The command center's principal reads ``command.alerts``.
- Consumer groups: the worker's three (``<app id>``, ``-intake``, ``-projection``);
  one group named after each outside reader's principal. No transactional id is
  granted: GridLink writes no transactions (docs/adr/0002-atomic-writes.md).
- Creating topics and ACLs is the administrator's (a super user locally).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from settings import Settings
from topics import registry

WORKER = "gridlink-worker"
API = "gridlink-api"
ADMIN = "gridlink-admin"
COMMAND_CENTER = "command-center"
#: the outside systems and the ingest topic each writes
PRODUCERS = {"grid-platform": registry.GRID_REPORTS, "xueliang": registry.CAMERA_ALERTS,
             "police-110": registry.POLICE_110}

READ, WRITE, DESCRIBE, CREATE = "Read", "Write", "Describe", "Create"
DESCRIBE_CONFIGS = "DescribeConfigs"


def department_principal(code: str) -> str:
    """The principal of department ``code``: ``dept-<code>``."""
    return f"dept-{code}"


def unit_principal(code: str, jurisdiction: str) -> str:
    """The principal of the unit of department ``code`` in ``jurisdiction``:
    ``dept-<code>-<jurisdiction>``."""
    return f"dept-{code}-{jurisdiction}"


@dataclass(frozen=True)
class Grant:
    """One row of the table: ``principal`` may do ``operations`` on a resource."""

    principal: str  # the user name, without "User:"
    resource: str  # "topic", "group" or "cluster"
    name: str  # physical name; for "prefixed", the prefix
    operations: tuple[str, ...]
    why: str
    prefixed: bool = False

    @property
    def pattern(self) -> str:
        return "prefixed" if self.prefixed else "literal"


def principals(units: Mapping[str, Iterable[str]], departments: Iterable[str]) -> list[str]:
    """Every principal of the table (the SCRAM users a secured cluster needs), the
    administrator's first."""
    names = [ADMIN, WORKER, API, COMMAND_CENTER, *PRODUCERS]
    names += [department_principal(code) for code in sorted(set(departments))]
    names += [unit_principal(code, unit) for code, codes in sorted(units.items())
              for unit in sorted(set(codes))]
    return names


def table(settings: Settings, departments: Iterable[str],
          units: Mapping[str, Iterable[str]] | None = None) -> list[Grant]:
    """The bindings for ``departments`` and their ``units`` (department code →
    jurisdiction codes), with ``settings``' topic prefix and app id."""
    topic, app = settings.topic, settings.app_id
    groups = (app, f"{app}-intake", f"{app}-projection")
    rows: list[Grant] = []

    def grant(who: str, resource: str, name: str, operations: Sequence[str], why: str,
              prefixed: bool = False) -> None:
        rows.append(Grant(who, resource, name, tuple(operations), why, prefixed))

    for system, ingest in PRODUCERS.items():
        grant(system, "topic", topic(ingest), [WRITE], "publishes its own events")
    for ingest in registry.INGEST_TOPICS:
        grant(API, "topic", topic(ingest), [WRITE], "intake over HTTP (and Open311)")
        grant(WORKER, "topic", topic(ingest), [READ], "intake")
    grant(WORKER, "topic", topic(registry.CASE_COMMANDS), [READ, WRITE],
          "the writers' input; intake, timers and follow-ups write it")
    grant(API, "topic", topic(registry.CASE_COMMANDS), [WRITE], "the command gateway")
    grant(WORKER, "topic", topic(registry.CASE_EVENTS), [READ, WRITE],
          "the case log: written by the writers, read back by recovery and the projection")
    grant(API, "topic", topic(registry.CASE_EVENTS), [READ], "the live board")
    grant(WORKER, "topic", topic(registry.CASE_REPLIES), [WRITE], "answers to commands")
    grant(API, "topic", topic(registry.CASE_REPLIES), [READ], "the command gateway's answers")
    grant(WORKER, "topic", topic(registry.COMMAND_ALERTS), [WRITE], "P1, red cards, escalation")
    grant(API, "topic", topic(registry.COMMAND_ALERTS), [READ], "the live board")
    grant(COMMAND_CENTER, "topic", topic(registry.COMMAND_ALERTS), [READ],
          "what the command center must see now")
    grant(WORKER, "topic", topic(registry.DEAD_LETTER), [WRITE], "rejected input")
    for code in sorted(set(departments)):
        grant(WORKER, "topic", topic(registry.department_topic(code)), [WRITE],
              "assignments and changes")
        grant(department_principal(code), "topic", topic(registry.department_topic(code)),
              [READ], "its own queue")
    for code, codes in sorted((units or {}).items()):
        for unit in sorted(set(codes)):
            name = topic(registry.jurisdiction_topic(code, unit))
            grant(WORKER, "topic", name, [WRITE], "assignments and changes in one jurisdiction")
            grant(unit_principal(code, unit), "topic", name, [READ],
                  "its own jurisdiction's queue")
    grant(WORKER, "topic", f"{app}-", [READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS],
          "Faust's internal topics (its assignor's leader topic)", prefixed=True)
    for group in groups:
        grant(WORKER, "group", group, [READ, DESCRIBE], "the worker's consumer groups")
    grant(API, "group", app, [DESCRIBE], "readiness: are the writers in their group")
    grant(WORKER, "cluster", "kafka-cluster", [DESCRIBE],
          "the cluster id its stores were written against")
    readers = [COMMAND_CENTER, *(department_principal(c) for c in sorted(set(departments))),
               *(unit_principal(c, u) for c, codes in sorted((units or {}).items())
                 for u in sorted(set(codes)))]
    for reader in readers:
        grant(reader, "group", reader, [READ, DESCRIBE], "a consumer group of its own")
    return rows


def placeholder_table(settings: Settings) -> list[Grant]:
    """The table for one department ``<code>`` and one unit ``township``/``<township>``:
    the form the documentation shows."""
    return table(settings, ["<code>", "township"], {"township": ["<township>"]})


def markdown(grants: Sequence[Grant]) -> str:
    """The table as Markdown, one row per principal and resource."""
    lines = ["| principal | resource | name | pattern | operations | why |",
             "| --- | --- | --- | --- | --- | --- |"]
    for g in grants:
        lines.append(f"| `User:{g.principal}` | {g.resource} | `{g.name}` | {g.pattern} | "
                     f"{', '.join(g.operations)} | {g.why} |")
    lines.append("| (anyone) | transactional id | — | — | none | GridLink writes no "
                 "transactions |")
    return "\n".join(lines) + "\n"


__all__ = ["ADMIN", "API", "COMMAND_CENTER", "PRODUCERS", "WORKER", "Grant",
           "department_principal", "markdown", "placeholder_table", "principals", "table",
           "unit_principal"]
