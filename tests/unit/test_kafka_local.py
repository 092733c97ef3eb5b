"""The local broker's and cluster's configuration, read without starting a JVM."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from topics.admin import TopicDifference
from topics.local_kafka import (
    LocalCluster,
    LocalKafka,
    formatted_nodes,
    free_ports,
    quorum_voters,
)
from topics.registry import Replication, replication_for

# What `gridlink kafka up` writes for its single broker: what it wrote before clusters
# existed, and the smallest session timeout a consumer may ask for.
SINGLE_BROKER_PROPERTIES = """\
# Written by `gridlink kafka up`; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=/srv/kafka/kraft
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.retention.hours=168
log.segment.bytes=268435456
"""


def _properties(node: LocalKafka) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in node._server_properties().splitlines()
             if line and not line.startswith("#"))
    return dict(pairs)


def test_the_single_broker_is_configured_as_it_was():
    broker = LocalKafka(data_dir=Path("/srv/kafka"), cache_dir=Path("/srv/cache"))
    assert broker._server_properties() == SINGLE_BROKER_PROPERTIES
    assert broker.bootstrap == "127.0.0.1:9092"
    assert broker.pid_file == Path("/srv/kafka/kafka.pid")


def test_quorum_voters_name_every_controller():
    assert quorum_voters("127.0.0.1", [(1, 9093), (2, 9095), (3, 9097)]) == (
        "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097")


def test_a_cluster_on_consecutive_ports_from_the_bootstrap_port():
    cluster = LocalCluster.consecutive(data_dir=Path("/srv/kafka"), cache_dir=Path("/srv/cache"),
                                       brokers=3)
    assert [(n.node_id, n.port, n._controller_port) for n in cluster.nodes] == [
        (1, 9092, 9093), (2, 9094, 9095), (3, 9096, 9097)]
    assert cluster.bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert [n.data_dir for n in cluster.nodes] == [Path(f"/srv/kafka/node-{i}") for i in (1, 2, 3)]
    assert cluster.data_dir == Path("/srv/kafka")
    assert cluster.node(2) is cluster.nodes[1]
    with pytest.raises(KeyError):
        cluster.node(4)


def test_each_node_of_a_cluster_has_its_own_ports_and_data_and_one_quorum():
    cluster = LocalCluster.on_ports(data_dir=Path("/srv/kafka"), cache_dir=Path("/srv/cache"),
                                    ports=[(4001, 5001), (4002, 5002), (4003, 5003)])
    configs = [_properties(node) for node in cluster.nodes]
    voters = "1@127.0.0.1:5001,2@127.0.0.1:5002,3@127.0.0.1:5003"
    for node_id, config in enumerate(configs, start=1):
        assert config["node.id"] == str(node_id)
        assert config["controller.quorum.voters"] == voters
        assert config["listeners"] == (f"PLAINTEXT://127.0.0.1:400{node_id},"
                                       f"CONTROLLER://127.0.0.1:500{node_id}")
        assert config["log.dirs"] == f"/srv/kafka/node-{node_id}/kraft"
    assert len({node.pid_file for node in cluster.nodes}) == 3
    assert len({node.log_dir for node in cluster.nodes}) == 3


def test_a_three_node_cluster_replicates_its_own_topics_and_reacts_to_a_fault_promptly():
    cluster = LocalCluster.consecutive(data_dir=Path("/srv/kafka"), cache_dir=Path("/srv/cache"),
                                       brokers=3)
    config = _properties(cluster.nodes[0])
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "share.coordinator.state.topic.replication.factor", "default.replication.factor"):
        assert config[key] == "3", key
    assert config["transaction.state.log.min.isr"] == "2"
    assert config["share.coordinator.state.topic.min.isr"] == "2"
    assert config["unclean.leader.election.enable"] == "false"
    # a dead broker is fenced (and leaves the ISRs) sooner than Kafka's default 9 s, and
    # heartbeats several times within that
    session = int(config["broker.session.timeout.ms"])
    assert session < 9000 and int(config["broker.heartbeat.interval.ms"]) * 3 <= session
    assert int(config["replica.lag.time.max.ms"]) < 30000
    # no broker-wide min.insync.replicas: a topic created with one copy stays writable
    assert "min.insync.replicas" not in config


def test_the_cluster_nodes_have_a_modest_heap_each():
    cluster = LocalCluster.consecutive(data_dir=Path("/srv/kafka"), cache_dir=Path("/srv/cache"),
                                       brokers=3)
    assert all("-Xmx512m" in node._java(Path("/jars")) for node in cluster.nodes)


def test_formatted_nodes_are_found_by_their_storage(tmp_path: Path):
    for node_id in (1, 2, 5):
        (tmp_path / f"node-{node_id}" / "kraft").mkdir(parents=True)
    for node_id in (1, 5):
        (tmp_path / f"node-{node_id}" / "kraft" / "meta.properties").write_text("cluster.id=x\n")
    (tmp_path / "node-x").mkdir()
    assert formatted_nodes(tmp_path) == [1, 5]
    assert formatted_nodes(tmp_path / "nothing") == []


@pytest.mark.parametrize(("brokers", "setting", "factor", "min_insync"), [
    (1, None, 1, 1),
    (2, None, 2, 1),
    (3, None, 3, 2),
    (5, None, 3, 2),
    (3, 1, 1, 1),  # GRIDLINK_REPLICATION overrides what the cluster would decide
    (3, 2, 2, 1),
    (1, 3, 3, 2),  # asked for more than there are: topics.admin refuses it with a reason
])
def test_replication_is_decided_by_the_cluster_unless_set(brokers, setting, factor, min_insync):
    assert replication_for(brokers, setting) == Replication(factor, min_insync)


def test_a_differing_topic_reads_as_one_line():
    difference = TopicDifference("cases.events", (("partitions", "2", "4"),
                                                  ("min.insync.replicas", "1", "2")))
    assert str(difference) == "cases.events: partitions 2 (spec 4), min.insync.replicas 1 (spec 2)"


def test_free_ports_are_distinct_and_free_to_listen_on() -> None:
    """A broker and its controller (or six nodes' ports) are chosen at once: none twice."""
    ports = free_ports(6)

    assert len(set(ports)) == 6
    listening = [socket.socket() for _ in ports]
    try:
        for held, port in zip(listening, ports, strict=True):
            held.bind(("127.0.0.1", port))
            held.listen()
    finally:
        for held in listening:
            held.close()
