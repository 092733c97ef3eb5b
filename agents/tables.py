"""Where a worker keeps its tables (``GRIDLINK_TABLE_STORE``, ``GRIDLINK_STATE_DIR``).

``memory``: every table lives in the worker's memory and is recovered from its
changelog, from the beginning, whenever the worker starts or takes a partition.

``rocksdb``: each partition of a table is a RocksDB database (rocksdict, through
Faust's own store) in the worker's state directory, holding the changelog offset
it has applied; a worker restarted on the same host reads only what the
changelogs got since, and the tables stay on disk, not in memory: RocksDB's
caches and write buffers are bounded, whatever the number of cases.

A worker's state directory is ``<state_dir>/<app id>/<n>``, the first ``n`` no
other live worker holds: a worker locks it for its lifetime (an advisory lock
the kernel releases when the process ends, ``kill -9`` included). So two
workers of an app on one host never share one (RocksDB would refuse), and a
worker started after one ended takes over its directory and its tables. Tables
written against another Kafka cluster (a broker started afresh) are thrown away
when a worker starts.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
from collections import deque
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import rocksdict
from faust import stores
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP, StoreT

from settings import Settings

log = logging.getLogger(__name__)

SCHEME = "gridlink-rocksdb"  # Faust store URL scheme of :class:`RocksDBStore`
LOCK_FILE = "worker.lock"
CLUSTER_FILE = "kafka-cluster-id"  # the cluster the tables in the directory came from

# RocksDB's memory, shared by every table partition of the worker: block cache and
# write buffers (memtables). Faust's defaults are per partition, 2 GiB of cache and
# 3 × 64 MiB of memtables each.
BLOCK_CACHE_BYTES = 64 * 2**20
WRITE_BUFFERS_BYTES = 64 * 2**20
WRITE_BUFFER_BYTES = 16 * 2**20  # one memtable of one partition
BLOOM_BITS_PER_KEY = 10  # a key looked up without its partition probes every partition


# -- the RocksDB store ------------------------------------------------------------------

_shared: dict[str, Any] = {}


def _shared_memory() -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    if not _shared:
        _shared["cache"] = rocksdict.Cache(BLOCK_CACHE_BYTES)
        _shared["buffers"] = rocksdict.WriteBufferManager(WRITE_BUFFERS_BYTES, False)
    return _shared["cache"], _shared["buffers"]


class BoundedOptions(faust_rocksdb.RocksDBOptions):
    """Faust's RocksDB options, with one block cache and one write-buffer budget for
    every database of the process."""

    def as_options(self) -> rocksdict.Options:
        cache, buffers = _shared_memory()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(buffers)
        options.set_target_file_size_base(self.target_file_size_base)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class RocksDBStore(faust_rocksdb.Store):
    """Faust's RocksDB store on rocksdict, with :class:`BoundedOptions`, that writes to
    the database only what Kafka holds.

    Faust's store writes a value to RocksDB at once, before its changelog record is
    on the broker. After a ``kill -9`` the database could then hold a case state
    whose changelog record (and, sent alongside, the case's events) never reached
    Kafka; the replacement would take the uncommitted command again to be a
    duplicate, and the events would never be sent. Here a write waits in memory
    (where reads see it) until the broker has acknowledged its changelog record,
    and reaches the database together with that record's offset, in one batch: the
    database always holds exactly the changelog up to the offset it records, and
    recovery reads what follows. A write whose record the producer gives up on
    never reaches the database.
    """

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, driver="rocksdict", **kwargs)
        self.rocksdb_options = BoundedOptions(**self.options, use_rocksdict=True)
        self._sent: deque[Any] = deque()  # changelog records sent for writes to come
        self._latest: dict[bytes, list[Any]] = {}  # key → [latest unacknowledged value, writes]
        self._replaying = False
        send = table.send_changelog

        def send_changelog(*args: Any, **kwargs: Any) -> Any:
            # a table sends a write's changelog record, then hands the write to its store
            record = send(*args, **kwargs)
            self._sent.append(record)
            return record

        table.send_changelog = send_changelog

    def unacknowledged(self, key: bytes) -> tuple[bool, bytes | None]:
        """``(True, value)`` when ``key`` has a write still waiting for Kafka (``None``:
        deleted), else ``(False, None)``."""
        entry = self._latest.get(key)
        return (False, None) if entry is None else (True, entry[0])

    def _set(self, key: bytes, value: bytes | None) -> None:
        while True:  # its changelog record, sent just before
            record = self._sent.popleft()
            if record.message.key == key:
                break
        partition = record.message.partition
        self._key_index[key] = partition
        entry = self._latest.get(key)
        if entry is None:
            self._latest[key] = [value, 1]
        else:
            entry[0] = value
            entry[1] += 1
        record.add_done_callback(partial(self._acknowledged, partition, key, value))

    def _del(self, key: bytes) -> None:
        self._set(key, None)

    def _acknowledged(self, partition: int, key: bytes, value: bytes | None,
                      record: asyncio.Future[Any]) -> None:
        entry = self._latest[key]
        entry[1] -= 1
        if entry[1] == 0:
            del self._latest[key]
        if record.cancelled() or record.exception() is not None:
            return  # not on Kafka, so not on disk either (Faust logs the failure)
        batch = rocksdict.WriteBatch(raw_mode=True)
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
        batch.put(self.offset_key, str(record.result().offset).encode())
        self._db_for_partition(partition).write(batch)

    def _get(self, key: bytes) -> bytes | None:
        entry = self._latest.get(key)
        return super()._get(key) if entry is None else entry[0]

    def _contains(self, key: bytes) -> bool:
        entry = self._latest.get(key)
        return super()._contains(key) if entry is None else entry[0] is not None

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        if self._replaying:  # else a write's offset goes to disk with the write
            super().set_persisted_offset(tp, offset)

    def apply_changelog_batch(self, *args: Any, **kwargs: Any) -> None:
        self._replaying = True  # recovery and standbys: records Kafka holds already
        try:
            super().apply_changelog_batch(*args, **kwargs)
        finally:
            self._replaying = False


def store_url(settings: Settings) -> str:
    """The Faust store URL for ``settings.table_store``."""
    if settings.table_store == "memory":
        return "memory://"
    stores.STORES.aliases.setdefault(SCHEME, f"{__name__}:RocksDBStore")
    return f"{SCHEME}://"


# -- the state directory ----------------------------------------------------------------

_held: list[int] = []  # lock file descriptors, open until the process ends


def claim_state_dir(settings: Settings) -> Path:
    """Lock and return this worker's state directory (see the module's docstring);
    with the RocksDB store, first throw away tables from another Kafka cluster."""
    base = settings.state_dir.expanduser().absolute() / settings.app_id
    slot = 0
    while True:
        directory = base / str(slot)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            slot += 1
            continue
        _held.append(fd)
        break
    if settings.table_store != "memory":
        _check_cluster(settings, directory)
    log.info("tables (%s) in %s", settings.table_store, directory)
    return directory


def _check_cluster(settings: Settings, directory: Path) -> None:
    cluster = _cluster_id(settings)
    if cluster is None:
        return
    marker = directory / CLUSTER_FILE
    recorded = marker.read_text().strip() if marker.exists() else None
    if recorded is not None and recorded != cluster:
        log.warning("the tables in %s come from Kafka cluster %s, not %s: throwing them away",
                    directory, recorded, cluster)
        for entry in directory.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    if recorded != cluster:
        marker.write_text(cluster + "\n")


def _cluster_id(settings: Settings) -> str | None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    chatter = logging.getLogger("kafka")  # its connection log lines, at info
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                 client_id="gridlink-state", bootstrap_timeout_ms=10_000)
        try:
            return str(admin.describe_cluster()["cluster_id"])
        finally:
            admin.close()
    except (KafkaError, OSError) as error:  # the worker waits for the broker: it may come later
        log.warning("could not ask Kafka for its cluster id (%r): keeping the tables in the "
                    "state directory unchecked", error)
        return None
    finally:
        chatter.setLevel(level)


# -- reading a table's local store, whichever it is --------------------------------------


class Scan:
    """The entries of one partition of a table's local store, a chunk at a time. A
    chunk is read when asked for: it is what the table holds at that moment."""

    def __init__(self, partition: int) -> None:
        self.partition = partition

    def chunk(self, limit: int) -> list[tuple[bytes, bytes | None]]:
        """Up to ``limit`` more ``(key, value)`` pairs; none when the scan is over
        (or the partition has left this worker). A value is None when its key was
        deleted since the scan began."""
        raise NotImplementedError


class _RocksDBScan(Scan):
    def __init__(self, store: faust_rocksdb.Store, partition: int) -> None:
        super().__init__(partition)
        self.store = store
        self.after: bytes | None = None  # the last key read

    def chunk(self, limit: int) -> list[tuple[bytes, bytes | None]]:
        db = self.store._dbs.get(self.partition)  # gone when revoked meanwhile
        if db is None:
            return []
        out: list[tuple[bytes, bytes | None]] = []
        for key, value in db.items(from_key=self.after):
            if key == self.after or key == self.store.offset_key:
                continue
            if isinstance(self.store, RocksDBStore):  # a newer value, not on Kafka yet
                waiting, newer = self.store.unacknowledged(key)
                value = newer if waiting else value
            out.append((key, value))
            if len(out) >= limit:
                break
        if out:
            self.after = out[-1][0]
        return out


class _MemoryScan(Scan):
    def __init__(self, data: Mapping[bytes, bytes], partition: int, keys: list[bytes]) -> None:
        super().__init__(partition)
        self.data, self.keys, self.at = data, keys, 0

    def chunk(self, limit: int) -> list[tuple[bytes, bytes | None]]:
        keys = self.keys[self.at:self.at + limit]
        self.at += len(keys)
        return [(key, self.data.get(key)) for key in keys]


def scans(store: StoreT, partitions: Iterable[int],
          known: Mapping[bytes, int] | None = None) -> list[Scan]:
    """Scans of ``partitions`` of a table's local store. The memory store knows the
    partition of what it recovered; ``known`` gives that of keys written since."""
    wanted = set(partitions)
    if isinstance(store, faust_rocksdb.Store):
        for partition in wanted:  # open, as Faust does for a partition it assigns
            store._db_for_partition(partition)
        return [_RocksDBScan(store, p) for p in sorted(wanted)]
    data: Mapping[bytes, bytes] = store.data  # type: ignore[attr-defined]
    recovered: Mapping[bytes, int] = getattr(store, "_key_partition", {})
    by_partition: dict[int, list[bytes]] = {p: [] for p in sorted(wanted)}
    for key in list(data):
        partition = recovered.get(key)
        if partition is None and known is not None:
            partition = known.get(key)
        if partition in by_partition:
            by_partition[partition].append(key)
    return [_MemoryScan(data, p, keys) for p, keys in by_partition.items()]


def knows_partitions(store: StoreT) -> bool:
    """Whether the store keeps each key's partition (one database per partition)."""
    return isinstance(store, faust_rocksdb.Store)
