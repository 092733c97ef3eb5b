"""Faults of the brokers, on a real three-broker cluster (replication 3, min ISR 2):

- the split write: the leader of a writer's partition of ``cases.events`` frozen
  (``kill -STOP``) while its inputs' leader is another broker; inputs keep coming,
  the worker is killed (``kill -9``) with its batch stuck at the frozen leader, the
  leader thawed (``kill -CONT``), a worker restarted: no hole, nothing lost;
- ``kill -9`` of one broker of the three under load, and its restart: nothing lost.

Each followed by the check of every invariant (tests/faults/harness.py).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, TopicPartition

from settings import Settings
from tests.faults.harness import (
    Report,
    alive,
    finish_and_check,
    read_offsets,
    settings_of,
    under_load,
    until_appending,
)
from tests.integration.kafka_client import KafkaTestClient
from topics import registry
from topics.local_kafka import LocalCluster

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture
def cluster_env(fault_env: dict[str, str], kafka_cluster: LocalCluster) -> Iterator[dict[str, str]]:
    """The fault suite's settings on the three-broker cluster; every node running after."""
    fault_env["GRIDLINK_KAFKA_BOOTSTRAP"] = kafka_cluster.bootstrap
    yield fault_env
    for node in kafka_cluster.nodes:
        if node.pid() is None:
            node.start()
        else:
            node.kill(signal.SIGCONT)


@pytest.fixture
def cluster_settings(cluster_env: dict[str, str]) -> Iterator[Settings]:
    """The settings of a test on the cluster, its contract topics created."""
    settings = settings_of(cluster_env)
    kafka = KafkaTestClient(settings)
    kafka.create_topics()
    yield settings
    kafka.close()


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """partition → the broker id of its leader."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_topics([topic])[0]
        return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
    finally:
        admin.close()


def lead_elsewhere(bootstrap: str, topic: str, partition: int, avoid: int) -> None:
    """Make another replica than broker ``avoid`` lead ``topic[partition]``: the replica
    list reordered (the same brokers: no data moves), then a preferred-leader election."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_topics([topic])[0]["partitions"]
        replicas = next(p["replica_nodes"] for p in described if p["partition_index"] == partition)
        order = [b for b in replicas if b != avoid] + [avoid]
        admin.alter_partition_reassignments({TopicPartition(topic, partition): order})
        deadline = time.monotonic() + 30
        while leaders(bootstrap, topic)[partition] == avoid:
            assert time.monotonic() < deadline, f"{topic}[{partition}] still led by {avoid}"
            admin.elect_leaders(0, {topic: [partition]}, raise_errors=False)
            time.sleep(0.5)
    finally:
        admin.close()


def replication(bootstrap: str, topic: str) -> set[int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {len(p["replica_nodes"]) for p in admin.describe_topics([topic])[0]["partitions"]}
    finally:
        admin.close()


@pytest.mark.timeout(900)
def test_a_frozen_events_leader_and_a_killed_worker_leave_no_hole(
        cluster_settings, cluster_env, kafka_cluster, start_gridlink, tmp_path, fault_table):
    settings = cluster_settings
    events, commands = settings.topic(registry.CASE_EVENTS), settings.topic(registry.CASE_COMMANDS)
    assert replication(settings.kafka_bootstrap, events) == {3}
    # partition 0's events and inputs led by different brokers
    on_events = leaders(settings.kafka_bootstrap, events)
    lead_elsewhere(settings.kafka_bootstrap, commands, 0, avoid=on_events[0])
    assert leaders(settings.kafka_bootstrap, commands)[0] != on_events[0]
    frozen = kafka_cluster.node(on_events[0])

    load = under_load(settings, start_gridlink, count=900, rate=30.0, seed=2112,
                      ready_timeout=120)
    report = Report("split write: the `cases.events` leader frozen, the worker killed, 3 brokers")
    time.sleep(10)
    frozen.kill(signal.SIGSTOP)  # its partitions' batches wait at a leader that does not answer
    time.sleep(4)
    load.worker.stop(9)
    frozen.kill(signal.SIGCONT)
    before = read_offsets(settings, registry.CASE_EVENTS)
    load.worker = start_gridlink("worker")
    report.recovery_seconds.append(until_appending(settings, before, timeout=120,
                                                   check=alive(load.worker)))
    load.traffic.join(timeout=300)
    assert load.traffic.error is None
    finish_and_check(load, report, settings, cluster_env, start_gridlink=start_gridlink,
                     workdir=tmp_path, fault_table=fault_table)


@pytest.mark.timeout(900)
def test_a_broker_killed_under_load_and_restarted_loses_nothing(
        cluster_settings, cluster_env, kafka_cluster, start_gridlink, tmp_path, fault_table):
    settings = cluster_settings
    events = settings.topic(registry.CASE_EVENTS)
    load = under_load(settings, start_gridlink, count=900, rate=30.0, seed=3113,
                      ready_timeout=120)
    report = Report("`kill -9` of one broker of three under load, and its restart")
    time.sleep(10)
    busiest = max(set(leaders(settings.kafka_bootstrap, events).values()),
                  key=list(leaders(settings.kafka_bootstrap, events).values()).count)
    victim = kafka_cluster.node(busiest)
    before = read_offsets(settings, registry.CASE_EVENTS)
    victim.kill(signal.SIGKILL)
    report.recovery_seconds.append(until_appending(settings, before, timeout=120,
                                                   check=alive(load.worker)))
    time.sleep(8)
    victim.start()
    load.traffic.join(timeout=300)
    assert load.traffic.error is None
    finish_and_check(load, report, settings, cluster_env, start_gridlink=start_gridlink,
                     workdir=tmp_path, fault_table=fault_table)
