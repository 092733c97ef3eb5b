"""Where a worker keeps its tables (agents/tables.py), without a broker: state
directories per worker, tables from another Kafka cluster, the RocksDB store that
writes only what Kafka holds, and scans that read each chunk as it is now."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import types
import weakref
from pathlib import Path

import faust
import pytest
from faust.streams import _current_event
from faust.types import TP

from agents import tables
from settings import Settings
from tests.conftest import PROJECT_DIR


def _settings(state_dir: Path, store: str = "memory") -> Settings:
    return Settings(state_dir=state_dir, app_id="gridlink-t", table_store=store)


def test_workers_on_one_host_get_their_own_state_dir_and_a_successor_takes_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\n"
                                "from agents import tables\nfrom settings import Settings\n"
                                "print(tables.claim_state_dir(Settings(state_dir="
                                f"{str(tmp_path)!r}, app_id='gridlink-t')), flush=True)\n"
                                "time.sleep(60)")],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert Path(holder.stdout.readline().strip()) == tmp_path / "gridlink-t" / "0"
        assert tables.claim_state_dir(_settings(tmp_path)) == tmp_path / "gridlink-t" / "1"
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the kernel releases its lock
        holder.wait()
    assert tables.claim_state_dir(_settings(tmp_path)) == tmp_path / "gridlink-t" / "0"


def test_tables_from_another_kafka_cluster_are_thrown_away(tmp_path, monkeypatch):
    settings = _settings(tmp_path, "rocksdb")
    directory = tmp_path / "slot"
    (directory / "v1" / "tables" / "cases-0.db").mkdir(parents=True)
    (directory / tables.LOCK_FILE).touch()
    monkeypatch.setattr(tables, "_cluster_id", lambda _: "cluster-a")
    tables._check_cluster(settings, directory)  # first start: recorded, kept
    tables._check_cluster(settings, directory)
    assert (directory / "v1" / "tables" / "cases-0.db").is_dir()
    assert (directory / tables.CLUSTER_FILE).read_text().strip() == "cluster-a"

    monkeypatch.setattr(tables, "_cluster_id", lambda _: "cluster-b")  # a fresh broker
    tables._check_cluster(settings, directory)
    assert sorted(p.name for p in directory.iterdir()) == [tables.CLUSTER_FILE, tables.LOCK_FILE]
    assert (directory / tables.CLUSTER_FILE).read_text().strip() == "cluster-b"

    monkeypatch.setattr(tables, "_cluster_id", lambda _: None)  # no broker: left alone
    (directory / "v1").mkdir()
    tables._check_cluster(settings, directory)
    assert (directory / "v1").is_dir()


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = types.SimpleNamespace(topic="cases.commands", partition=partition)


def _in_partition(partition: int) -> _Event:
    """Pretend an agent is processing a record of ``partition``."""
    event = _Event(partition)
    _current_event.set(weakref.ref(event))
    return event  # keep it alive while it is current


class _Changelog:
    """Stands in for the producer: what the table sent, acknowledged on demand."""

    def __init__(self) -> None:
        self.records: list[asyncio.Future] = []

    def send(self, partition: int, key: bytes, value: bytes | None, *_: object,
             **__: object) -> asyncio.Future:
        record = asyncio.get_running_loop().create_future()
        record.message = types.SimpleNamespace(partition=partition, key=key, value=value)
        self.records.append(record)
        return record

    async def acknowledge(self, index: int, offset: int) -> None:
        self.records[index].set_result(types.SimpleNamespace(offset=offset))
        await asyncio.sleep(0)

    async def fail(self, index: int) -> None:
        self.records[index].set_exception(RuntimeError("the producer gave up"))
        await asyncio.sleep(0)


@pytest.fixture
def rocksdb_table(tmp_path):
    settings = _settings(tmp_path, "rocksdb")
    app = faust.App("gridlink-t", store=tables.store_url(settings), datadir=str(tmp_path))
    table = app.Table("cases", key_type=bytes, value_type=bytes, partitions=2)
    changelog = _Changelog()
    table.send_changelog = changelog.send
    table._verified_source_topics_for_partitions.add("cases.commands")  # no consumer here
    assert isinstance(table.data, tables.RocksDBStore)
    table.test_changelog = changelog
    yield table
    _current_event.set(None)
    table.data._dbs.clear()


def test_the_rocksdb_store_writes_a_value_to_disk_once_kafka_has_it(rocksdb_table):
    async def run() -> None:
        table, changelog = rocksdb_table, rocksdb_table.test_changelog
        store = table.data
        tp = TP(table.changelog_topic.get_topic_name(), 1)
        event = _in_partition(1)
        table[b"C-1"] = b"opened"
        table[b"C-1"] = b"claimed"
        table[b"C-2"] = b"opened"
        db = store._db_for_partition(1)
        assert table[b"C-1"] == b"claimed" and db.get(b"C-1") is None  # read, not on disk
        assert store.persisted_offset(tp) is None

        await changelog.acknowledge(0, 10)  # the first record is on the broker
        assert db.get(b"C-1") == b"opened" and store.persisted_offset(tp) == 10
        assert table[b"C-1"] == b"claimed"
        store.set_persisted_offset(tp, 11)  # Faust's own record of it: the write carries it
        assert store.persisted_offset(tp) == 10
        await changelog.acknowledge(1, 11)
        await changelog.acknowledge(2, 12)
        assert db.get(b"C-1") == b"claimed" and db.get(b"C-2") == b"opened"
        assert store.unacknowledged(b"C-1") == (False, None)

        del table[b"C-2"]
        assert b"C-2" not in table and db.get(b"C-2") == b"opened"
        await changelog.acknowledge(3, 13)
        assert db.get(b"C-2") is None and store.persisted_offset(tp) == 13

        table[b"C-1"] = b"handled"  # a record the producer gives up on: never on disk
        await changelog.fail(4)
        assert table[b"C-1"] == b"claimed" == db.get(b"C-1")
        assert store.persisted_offset(tp) == 13
        del event

    asyncio.run(run())


def test_a_scan_reads_each_chunk_as_the_table_is_then(rocksdb_table):
    async def run() -> None:
        table, changelog = rocksdb_table, rocksdb_table.test_changelog
        event = _in_partition(0)
        for i in range(5):
            table[f"C-{i}".encode()] = b"v1"
            await changelog.acknowledge(i, i)
        [scan] = tables.scans(table.data, [0])
        assert scan.chunk(2) == [(b"C-0", b"v1"), (b"C-1", b"v1")]
        table[b"C-2"] = b"v2"  # a command changes a case the scan has not reached yet
        table[b"C-0"] = b"v2"  # and one it has passed: its agent indexes it
        assert scan.chunk(2) == [(b"C-2", b"v2"), (b"C-3", b"v1")]  # v2 not on disk yet
        await changelog.acknowledge(5, 5)
        assert scan.chunk(2) == [(b"C-4", b"v1")]
        assert scan.chunk(2) == []
        del event

    asyncio.run(run())


def test_a_memory_scan_reads_each_chunk_as_the_table_is_then():
    store = types.SimpleNamespace(data={b"a": b"1", b"b": b"1", b"c": b"1", b"x": b"1"},
                                  _key_partition={b"a": 0, b"b": 0, b"c": 1})
    scans = tables.scans(store, [0, 1], known={b"x": 0})  # x: written since the recovery
    assert [s.partition for s in scans] == [0, 1]
    first = scans[0].chunk(2)
    assert first == [(b"a", b"1"), (b"b", b"1")]
    store.data[b"x"] = b"2"
    del store.data[b"c"]
    assert scans[0].chunk(2) == [(b"x", b"2")] and scans[0].chunk(2) == []
    assert scans[1].chunk(2) == [(b"c", None)]


def test_the_store_setting_picks_the_faust_store(tmp_path):
    assert tables.store_url(_settings(tmp_path)) == "memory://"
    url = tables.store_url(_settings(tmp_path, "rocksdb"))
    assert faust.stores.by_url(url) is tables.RocksDBStore
    assert os.fspath(_settings(tmp_path).state_dir) == os.fspath(tmp_path)
