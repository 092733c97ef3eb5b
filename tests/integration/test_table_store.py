"""The writer's RocksDB store on the real broker: a restarted worker keeps its cases on
disk and reads only the log's tail."""

from __future__ import annotations

import re
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from streams.cases import Claim, ReportOnSite
from tests.integration.test_cases import _assignments, _command, _ids, _log, _open_case
from topics import registry
from topics.placement import case_partition

ROCKSDB = {"GRIDLINK_TABLE_STORE": "rocksdb"}
RECOVERED = re.compile(r"partition (\d+) recovered in [\d.]+ s: the store was at log offset "
                       r"(\d+) and input (\d+); (\d+) events of the log's tail folded, (\d+) "
                       r"kept")


def _end(settings, topic: str, partition: int) -> int:  # type: ignore[no-untyped-def]
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        tp = TopicPartition(settings.topic(topic), partition)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def test_a_restarted_worker_keeps_its_cases_and_reads_only_the_logs_tail(
        start_gridlink, kafka, settings):
    kafka.create_topics()
    first = start_gridlink("worker", env=ROCKSDB)
    first.wait_for_log("Worker]: Ready", timeout=90)
    case_id, events = _open_case(kafka, "GR-20261126-000102")  # overflowing bins, chengguan
    lead = _assignments(events)["chengguan"]
    claimed = _command(kafka, Claim(case_id=case_id, actor="dept:chengguan", assignment_id=lead,
                                    department="chengguan", **_ids()))
    assert claimed["accepted"], claimed
    assert first.stop() == 0

    second = start_gridlink("worker", env=ROCKSDB)
    second.wait_for_log("Worker]: Ready", timeout=90)
    second.wait_for_log("deadline index rebuilt: ", timeout=30)
    log = second.log()
    directory = Path(settings.state_dir) / settings.app_id / "0"
    assert f"stores (rocksdb) in {directory}" in first.log() and f"in {directory}" in log
    partition = case_partition(case_id, settings.partitions)
    assert (directory / f"partition-{partition}").is_dir()

    # the case is on disk up to the log's end: the replacement read nothing of it again
    recovered = {int(m[1]): m.groups()[1:] for m in RECOVERED.finditer(log)}
    at, _, folded, kept = (int(x) for x in recovered[partition])
    assert at == _end(settings, registry.CASE_EVENTS, partition) > 0
    assert (folded, kept) == (0, 0)
    indexed = int(re.search(r"deadline index rebuilt: (\d+) cases", log).group(1))
    assert indexed == 1  # the one case this test opened: its SLA clocks, read from disk

    # the next step applies on top of the claim it kept: no claim, no on-site report
    on_site = _command(kafka, ReportOnSite(case_id=case_id, actor="dept:chengguan",
                                           assignment_id=lead, department="chengguan", **_ids()))
    assert on_site["accepted"], on_site
    case_log = _log(kafka, case_id, until_type="on_site_reported")
    assert [e["seq"] for e in case_log] == list(range(1, len(case_log) + 1))
    assert on_site["seqs"][0] == max(claimed["seqs"]) + 1
