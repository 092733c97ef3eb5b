"""A writer's local store: the cases and townships of one partition, and how far
into the log they reach (``GRIDLINK_TABLE_STORE``, ``GRIDLINK_STATE_DIR``).

The store is a cache of the log, never a second source of truth: every value in
it is the fold of ``cases.events`` up to :attr:`Position.log`, the inputs of
``cases.commands`` up to :attr:`Position.input` all taken, and it is written —
values and position together, in one atomic write — only with what the broker
has acknowledged. After a crash the writer reads the log from that position on
(:mod:`agents.writer`); a worker with nothing on disk reads it from the start.

``rocksdb``: one RocksDB database per partition in the worker's state directory,
with bounded caches (the states of a million cases stay on disk); a restarted
worker on the same host reads only the log's tail. ``memory``: a dictionary,
rebuilt from the log whenever the worker starts.

A worker's state directory is ``<state_dir>/<app id>/<n>``, the first ``n`` no
other live worker holds: a worker locks it for its lifetime (an advisory lock
the kernel releases when the process ends, ``kill -9`` included). So two
workers of an app on one host never share one, and a worker started after one
ended takes over its directory. Stores written against another Kafka cluster (a
broker started afresh) are thrown away when a worker starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import msgspec
import rocksdict

from settings import Settings

log = logging.getLogger(__name__)

LOCK_FILE = "worker.lock"
CLUSTER_FILE = "kafka-cluster-id"  # the cluster the stores in the directory came from
POSITION_KEY = b"\x00position"
CASE_PREFIX, TOWNSHIP_PREFIX = b"c", b"t"

# RocksDB's memory, shared by every partition of the worker: block cache and write
# buffers (memtables).
BLOCK_CACHE_BYTES = 64 * 2**20
WRITE_BUFFERS_BYTES = 64 * 2**20
WRITE_BUFFER_BYTES = 16 * 2**20  # one memtable of one partition
BLOOM_BITS_PER_KEY = 10


class Position(msgspec.Struct, frozen=True, array_like=True):
    """How far a partition's store reaches: the next offset of ``cases.events`` it has
    not folded, and the next offset of ``cases.commands`` it has not taken."""

    log: int = 0
    input: int = 0


_position_encoder = msgspec.msgpack.Encoder()
_position_decoder = msgspec.msgpack.Decoder(Position)


class PartitionStore:
    """One partition's values (packed bytes by key) and their :class:`Position`."""

    position: Position

    def get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def items(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The entries whose key starts with ``prefix`` (after key ``after``), in key order."""
        raise NotImplementedError

    def write(self, changes: Mapping[bytes, bytes], position: Position) -> None:
        """Store ``changes`` and ``position`` together, atomically."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the store (the partition leaves this worker)."""


class MemoryStore(PartitionStore):
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.position = Position()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(k for k in self.data if k.startswith(prefix)
                          and (after is None or k > after)):
            yield key, self.data[key]

    def write(self, changes: Mapping[bytes, bytes], position: Position) -> None:
        self.data.update(changes)
        self.position = position


class RocksStore(PartitionStore):
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = rocksdict.Rdict(str(path), options=_options())
        raw = self.db.get(POSITION_KEY)
        self.position = _position_decoder.decode(raw) if raw else Position()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def items(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        # raw mode (see _options): every key and value is bytes, which rocksdict's stub cannot say
        stored = cast(Iterable[tuple[bytes, bytes]],
                      self.db.items(from_key=after if after is not None else prefix))
        for key, value in stored:
            if not key.startswith(prefix):
                return
            if key != after:
                yield key, value

    def write(self, changes: Mapping[bytes, bytes], position: Position) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in changes.items():
            batch.put(key, value)
        batch.put(POSITION_KEY, _position_encoder.encode(position))
        self.db.write(batch)
        self.position = position

    def close(self) -> None:
        self.db.close()


_shared: dict[str, Any] = {}


def _options() -> rocksdict.Options:
    """One block cache and one write-buffer budget for every partition of the process."""
    if not _shared:
        _shared["cache"] = rocksdict.Cache(BLOCK_CACHE_BYTES)
        _shared["buffers"] = rocksdict.WriteBufferManager(WRITE_BUFFERS_BYTES, False)
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    options.set_write_buffer_manager(_shared["buffers"])
    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
    table.set_block_cache(_shared["cache"])
    options.set_block_based_table_factory(table)
    return options


def open_store(settings: Settings, directory: Path, partition: int) -> PartitionStore:
    """Partition ``partition``'s store, of the kind ``settings.table_store`` names."""
    if settings.table_store == "memory":
        return MemoryStore()
    return RocksStore(directory / f"partition-{partition}")


# -- the state directory ----------------------------------------------------------------

_held: list[int] = []  # lock file descriptors, open until the process ends


def claim_state_dir(settings: Settings) -> Path:
    """Lock and return this worker's state directory (see the module's docstring);
    with the RocksDB store, first throw away stores from another Kafka cluster."""
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
    log.info("stores (%s) in %s", settings.table_store, directory)
    return directory


def _check_cluster(settings: Settings, directory: Path) -> None:
    cluster = _cluster_id(settings)
    if cluster is None:
        return
    marker = directory / CLUSTER_FILE
    recorded = marker.read_text().strip() if marker.exists() else None
    if recorded is not None and recorded != cluster:
        log.warning("the stores in %s come from Kafka cluster %s, not %s: throwing them away",
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
    from kafka.errors import KafkaError

    from topics import clients

    chatter = logging.getLogger("kafka")  # its connection log lines, at info
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        admin = clients.admin(settings, client_id="gridlink-state",
                              bootstrap_timeout_ms=10_000)
        try:
            return str(admin.describe_cluster()["cluster_id"])
        finally:
            admin.close()
    except (KafkaError, OSError) as error:  # the worker waits for the broker: it may come later
        log.warning("could not ask Kafka for its cluster id (%r): keeping the stores in the "
                    "state directory unchecked", error)
        return None
    finally:
        chatter.setLevel(level)
