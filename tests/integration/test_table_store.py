"""The RocksDB table store on the real broker: a restarted worker keeps its cases on
disk and reads only the changelog's tail."""

from __future__ import annotations

import re
from pathlib import Path

from streams.cases import Claim, ReportOnSite
from tests.integration.test_cases import _assignments, _command, _ids, _log, _open_case

ROCKSDB = {"GRIDLINK_TABLE_STORE": "rocksdb"}
ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|$")


def _recovery_table(log: str, title: str) -> dict[tuple[str, int], int]:
    """Faust's last recovery table titled ``title`` in a worker's log:
    (changelog topic, partition) → offset."""
    start = log.rindex(title)
    rows: dict[tuple[str, int], int] = {}
    topic = ""
    for line in log[start:].splitlines()[3:]:
        match = ROW.match(line.strip())
        if match is None:
            break
        name, partition, offset = match.groups()
        topic = topic if name == "〃" else name
        rows[(topic, int(partition))] = int(offset)
    return rows


def test_a_restarted_worker_keeps_its_cases_and_reads_only_the_changelog_tail(
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
    assert f"tables (rocksdb) in {directory}" in first.log() and f"in {directory}" in log
    assert (directory / "v1" / "tables" / "cases-0.db").is_dir()

    # the case is in the changelog, and the replacement read none of it again
    changelog = f"{settings.app_id}-cases-changelog"
    highwaters = {tp: offset for tp, offset in _recovery_table(log, "Highwater - Active").items()
                  if tp[0] == changelog}
    starts = _recovery_table(log, "Reading Starts At - Active")
    assert len(highwaters) == settings.partitions and max(highwaters.values()) >= 0, highwaters
    assert {tp: starts[tp] for tp in highwaters} == highwaters, log[-4000:]
    indexed = int(re.search(r"deadline index rebuilt: (\d+) cases", log).group(1))
    assert indexed >= 1  # the case's SLA clocks, read from disk

    # the next step applies on top of the claim it kept: no claim, no on-site report
    on_site = _command(kafka, ReportOnSite(case_id=case_id, actor="dept:chengguan",
                                           assignment_id=lead, department="chengguan", **_ids()))
    assert on_site["accepted"], on_site
    case_log = _log(kafka, case_id, until_type="on_site_reported")
    assert [e["seq"] for e in case_log] == list(range(1, len(case_log) + 1))
    assert on_site["seqs"][0] == max(claimed["seqs"]) + 1
