"""``KeyPartitioner`` places every record where Kafka's default partitioner does."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from agents.partitioner import KeyPartitioner


def test_keys_land_on_the_default_partitioners_partition_every_time():
    default, remembering = DefaultPartitioner(), KeyPartitioner(recent_keys=64)
    rng = random.Random(5)
    keys = [f"C20261126-371502004-{rng.getrandbits(32):08x}".encode() for _ in range(300)]
    for count in (1, 4, 8, 12):
        partitions = list(range(count))
        for key in keys + keys[:50]:  # hashes both computed and remembered
            assert remembering(key, partitions, partitions) == default(key, partitions,
                                                                       partitions)


def test_a_key_remembered_ahead_is_placed_as_any_other():
    default, remembering = DefaultPartitioner(), KeyPartitioner(recent_keys=64)
    keys = [f"C20261126-371502004-{n:08x}".encode() for n in range(40)]
    for key in keys:
        remembering.remember(key)
    partitions = list(range(8))
    assert [remembering(k, partitions, partitions) for k in keys] == [
        default(k, partitions, partitions) for k in keys]
