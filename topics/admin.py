"""Creating the contract topics on a broker, idempotently, and on a secured cluster the
bindings of the ACL table (:mod:`topics.acls`) — kafka-python's admin client, from the
one client factory."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import InvalidReplicationFactorError, KafkaError, SecurityDisabledError

from settings import Settings
from topics import clients
from topics.acls import Grant
from topics.registry import Replication, TopicSpec, replication_for

SERVED_TIMEOUT_SECONDS = 30.0  # how long new topics may take to be served by their leaders


class TopicsError(RuntimeError):
    """The cluster cannot hold the topics as the settings ask."""


@dataclass(frozen=True)
class TopicDifference:
    """How an existing topic differs from its spec: ``(setting, has, spec)`` each."""

    name: str
    settings: tuple[tuple[str, str, str], ...]

    def __str__(self) -> str:
        return f"{self.name}: " + ", ".join(f"{setting} {has} (spec {spec})"
                                            for setting, has, spec in self.settings)


@dataclass(frozen=True)
class TopicsReport:
    """What :func:`create_topics` found and did (physical topic names)."""

    brokers: int
    replication: Replication
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    differing: list[TopicDifference] = field(default_factory=list)


def wanted_configs(spec: TopicSpec, replication: Replication) -> dict[str, str]:
    """The topic-level configs a topic is created with: its spec's and the replication's."""
    return {**spec.configs(), **replication.configs()}


def create_topics(settings: Settings, specs: Sequence[TopicSpec]) -> TopicsReport:
    """Create every topic that does not exist yet, and compare those that do with their
    spec.

    The replication (:func:`topics.registry.replication_for`) is decided by asking the
    cluster how many brokers it has, unless ``GRIDLINK_REPLICATION`` is set: 3 copies
    and ``min.insync.replicas`` 2 on three brokers or more, 1 and 1 on one broker.
    Returns once every partition of the created topics is served by its leader (so
    the first records sent to them are not refused and retried). Existing topics are
    never changed; :attr:`TopicsReport.differing` lists those whose partitions,
    replication factor or configs (:meth:`TopicSpec.configs`, ``min.insync.replicas``)
    are not the spec's.
    """
    admin = clients.admin(settings, client_id="gridlink-admin")
    try:
        # every registered broker, a stopped (fenced) one too: one broker down for a moment
        # must not lower the replication of what is created meanwhile
        brokers = len(admin.describe_cluster()["brokers"])
        replication = replication_for(brokers, settings.replication)
        if replication.factor > brokers:
            raise TopicsError(f"GRIDLINK_REPLICATION is {replication.factor} but the cluster at "
                              f"{settings.kafka_bootstrap} has {brokers} broker(s)")
        existing_names = set(admin.list_topics())
        missing = [s for s in specs if settings.topic(s.name) not in existing_names]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name=settings.topic(s.name),
                            num_partitions=s.partitions,
                            replication_factor=replication.factor,
                            topic_configs=wanted_configs(s, replication),
                        )
                        for s in missing
                    ],
                    validate_only=False,
                )
            except InvalidReplicationFactorError as exc:  # a broker left since we asked
                raise TopicsError(f"the cluster cannot hold {replication.factor} copies of "
                                  f"each partition now: {exc}") from None
        created = [settings.topic(s.name) for s in missing]
        if created:
            _wait_until_served(settings, created)
        present = [s for s in specs if s not in missing]
        differing = _differences(admin, settings, present, replication)
        return TopicsReport(brokers=brokers, replication=replication, created=created,
                            existing=[settings.topic(s.name) for s in present],
                            differing=differing)
    finally:
        admin.close()


def _differences(admin: KafkaAdminClient, settings: Settings, specs: Sequence[TopicSpec],
                 replication: Replication) -> list[TopicDifference]:
    """Existing topics whose partitions, replication factor or configs differ from spec."""
    if not specs:
        return []
    names = {settings.topic(s.name): s for s in specs}
    described = {topic["name"]: topic for topic in admin.describe_topics(list(names))}
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name,
                        configs=dict.fromkeys(wanted_configs(spec, replication)))
         for name, spec in names.items()],
        config_filter="all",
    ).get("topic", {})
    differing = []
    for name, spec in names.items():
        found: list[tuple[str, str, str]] = []
        partitions = described[name]["partitions"]
        if len(partitions) != spec.partitions:
            found.append(("partitions", str(len(partitions)), str(spec.partitions)))
        factors = sorted({len(p["replica_nodes"]) for p in partitions})
        if factors != [replication.factor]:
            found.append(("replication factor", "/".join(map(str, factors)),
                          str(replication.factor)))
        has = configs.get(name, {})
        for key, value in wanted_configs(spec, replication).items():
            actual = has.get(key, {}).get("value")
            if actual != value:
                found.append((key, str(actual), value))
        if found:
            differing.append(TopicDifference(name, tuple(found)))
    return differing


def _wait_until_served(settings: Settings, names: Sequence[str],
                       timeout: float = SERVED_TIMEOUT_SECONDS) -> None:
    """Wait until every partition of topics ``names`` answers at its leader (its end
    offset is read there); a broker that has only just created a topic refuses the
    first records sent to it for a moment (``NotLeaderForPartition``)."""
    consumer = clients.consumer(settings, client_id="gridlink-admin", enable_auto_commit=False)
    try:
        waiting = list(names)
        deadline = time.monotonic() + timeout
        while waiting:
            waiting = [name for name in waiting if not _served(consumer, name)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} new topics are not served after "
                                   f"{timeout:.0f} s, e.g. {waiting[0]}: is the broker healthy?")
            time.sleep(0.1)
    finally:
        consumer.close()


def _served(consumer: KafkaConsumer, name: str) -> bool:
    partitions = consumer.partitions_for_topic(name)
    if not partitions:
        return False
    try:
        consumer.end_offsets([TopicPartition(name, p) for p in partitions])
    except KafkaError:
        return False
    return True


# -- ACLs -----------------------------------------------------------------------------------

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
              "cluster": ResourceType.CLUSTER}
_OPERATIONS = {"Read": ACLOperation.READ, "Write": ACLOperation.WRITE,
               "Describe": ACLOperation.DESCRIBE, "Create": ACLOperation.CREATE,
               "DescribeConfigs": ACLOperation.DESCRIBE_CONFIGS}


@dataclass(frozen=True)
class AclReport:
    """What :func:`create_acls` found and did."""

    secured: bool  # the cluster has an authorizer (else nothing was done)
    created: int = 0  # bindings created
    existing: int = 0  # bindings of the table that were there already
    failed: tuple[str, ...] = ()


def bindings(grants: Sequence[Grant]) -> list[ACL]:
    """The table as Kafka ACL bindings: one ALLOW per operation, from any host."""
    return [ACL(principal=f"User:{g.principal}", host="*", operation=_OPERATIONS[operation],
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(
                    _RESOURCES[g.resource], g.name,
                    ACLResourcePatternType.PREFIXED if g.prefixed
                    else ACLResourcePatternType.LITERAL))
            for g in grants for operation in g.operations]


def _key(acl: ACL) -> tuple[object, ...]:
    pattern = acl.resource_pattern
    return (acl.principal, acl.host, int(acl.operation), int(acl.permission_type),
            int(pattern.resource_type), pattern.resource_name, int(pattern.pattern_type))


def create_acls(settings: Settings, grants: Sequence[Grant]) -> AclReport:
    """Create every binding of ``grants`` the cluster does not have yet; on a cluster
    without an authorizer, nothing (``secured`` False). Bindings beyond the table are
    left as they are."""
    admin = clients.admin(settings, client_id="gridlink-admin")
    try:
        everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                               permission_type=ACLPermissionType.ANY,
                               resource_pattern=ResourcePatternFilter(
                                   ResourceType.ANY, None, ACLResourcePatternType.ANY))
        try:
            found, _ = admin.describe_acls(everything)
        except SecurityDisabledError:
            return AclReport(secured=False)
        have = {_key(acl) for acl in found}
        wanted = bindings(grants)
        missing = [acl for acl in wanted if _key(acl) not in have]
        failed: list[str] = []
        for start in range(0, len(missing), 200):
            chunk = missing[start:start + 200]
            result = admin.create_acls(chunk)
            failed += [repr(error) for error in result["failed"]]
        return AclReport(secured=True, created=len(missing) - len(failed),
                         existing=len(wanted) - len(missing), failed=tuple(failed))
    finally:
        admin.close()
