"""Where a township's records go: the partition of its writer.

A worker owns townships (乡镇/街道), not case ids: the located events of a
township and the commands on its cases are one input stream, in one partition
of ``cases.commands``, and its cases' events go to the same partition of
``cases.events``. That partition is the one Kafka's Java client and aiokafka
pick for the township code as the record key — ``murmur2(township) mod
partitions`` — whatever the record's own key (a case's records are keyed by its
case id, which carries the township: ``C20261126-371502004-1a2b3c4d``).

An ordinary client may put a command anywhere (``kcat`` partitions with CRC32
by default): the worker that reads a command placed elsewhere forwards it to
its writer's partition. With a command signing key (:mod:`topics.signing`) only
GridLink's API and workers write ``cases.commands``, and they place what they
write: a record found elsewhere is dead-lettered (``wrong_partition``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from aiokafka.partitioner import murmur2

from streams.township import township_of


@lru_cache(maxsize=65_536)
def _hash(township: str) -> int:
    return murmur2(township.encode()) & 0x7FFFFFFF


def writer_partition(township: str, partitions: int) -> int:
    """The partition of ``township``'s writer among ``partitions``."""
    return _hash(township) % partitions


def case_partition(case_id: str, partitions: int) -> int:
    """The partition of the writer of case ``case_id``."""
    return writer_partition(township_of(case_id), partitions)


@dataclass
class Placement:
    """The placement over the partition count ``cases.commands`` really has (a worker
    learns it from the broker at start: see :func:`check`)."""

    partitions: int = 0

    def of_township(self, township: str) -> int:
        return writer_partition(township, self._count())

    def of_case(self, case_id: str) -> int:
        return case_partition(case_id, self._count())

    def _count(self) -> int:
        if self.partitions < 1:
            raise RuntimeError("the partition count of cases.commands is not known yet")
        return self.partitions


def check(commands: int, events: int) -> int:
    """The partition count to place by, given those of ``cases.commands`` and
    ``cases.events``: they must agree, partition n of both being one writer's."""
    if commands != events:
        raise ValueError(f"cases.commands has {commands} partitions and cases.events {events}: "
                         "they must have as many (partition n of both belongs to one writer); "
                         "add partitions to the smaller one")
    return commands
