"""A writer's local store (agents/store.py), without a broker: state directories per
worker, stores from another Kafka cluster, and what a store keeps across a restart."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agents import store
from agents.store import MemoryStore, Position, RocksStore
from settings import Settings
from tests.conftest import PROJECT_DIR


def _settings(state_dir: Path, kind: str = "memory") -> Settings:
    return Settings(state_dir=state_dir, app_id="gridlink-t", table_store=kind)


def test_workers_on_one_host_get_their_own_state_dir_and_a_successor_takes_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\n"
                                "from agents import store\nfrom settings import Settings\n"
                                "print(store.claim_state_dir(Settings(state_dir="
                                f"{str(tmp_path)!r}, app_id='gridlink-t', "
                                "table_store='memory')), flush=True)\n"
                                "time.sleep(60)")],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert Path(holder.stdout.readline().strip()) == tmp_path / "gridlink-t" / "0"
        assert store.claim_state_dir(_settings(tmp_path)) == tmp_path / "gridlink-t" / "1"
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the kernel releases its lock
        holder.wait()
    assert store.claim_state_dir(_settings(tmp_path)) == tmp_path / "gridlink-t" / "0"


def test_stores_from_another_kafka_cluster_are_thrown_away(tmp_path, monkeypatch):
    settings = _settings(tmp_path, "rocksdb")
    directory = tmp_path / "slot"
    (directory / "partition-0").mkdir(parents=True)
    (directory / store.LOCK_FILE).touch()
    monkeypatch.setattr(store, "_cluster_id", lambda _: "cluster-a")
    store._check_cluster(settings, directory)  # first start: recorded, kept
    store._check_cluster(settings, directory)
    assert (directory / "partition-0").is_dir()
    assert (directory / store.CLUSTER_FILE).read_text().strip() == "cluster-a"

    monkeypatch.setattr(store, "_cluster_id", lambda _: "cluster-b")  # a fresh broker
    store._check_cluster(settings, directory)
    assert sorted(p.name for p in directory.iterdir()) == [store.CLUSTER_FILE, store.LOCK_FILE]

    monkeypatch.setattr(store, "_cluster_id", lambda _: None)  # no broker: left alone
    (directory / "partition-1").mkdir()
    store._check_cluster(settings, directory)
    assert (directory / "partition-1").is_dir()


@pytest.fixture(params=["memory", "rocksdb"])
def opened(request, tmp_path):  # type: ignore[no-untyped-def]
    def reopen(previous: store.PartitionStore | None = None) -> store.PartitionStore:
        if request.param == "memory":
            return previous if previous is not None else MemoryStore()
        if previous is not None:
            previous.close()
        return RocksStore(tmp_path / "partition-0")
    return reopen


def test_values_and_their_position_are_written_together_and_kept(opened):
    first = opened()
    assert first.position == Position(0, 0)
    first.write({b"cC1": b"one", b"t371502004": b"town"}, Position(log=7, input=3))
    first.write({b"cC2": b"two", b"cC1": b"one again"}, Position(log=9, input=5))
    again = opened(first)
    assert again.position == Position(log=9, input=5)
    assert again.get(b"cC1") == b"one again" and again.get(b"cC3") is None
    assert list(again.items(b"c")) == [(b"cC1", b"one again"), (b"cC2", b"two")]
    assert list(again.items(b"c", after=b"cC1")) == [(b"cC2", b"two")]
    assert list(again.items(b"t")) == [(b"t371502004", b"town")]
    again.close()
