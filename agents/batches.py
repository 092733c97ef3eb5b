"""Table writes from an agent that takes its events in batches.

Faust's ``stream.take_events`` hands over a list of events, but a table write
needs "the event being processed": it decides the changelog partition (and, in
the RocksDB store, the partition's database). :func:`as_current` makes a given
event the current one for the writes in its block. It sets only Faust's context
variable in the agent's own task; the stream's attributes, which its buffering
task reads, are left alone.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import faust
from faust.streams import _current_event


@contextmanager
def as_current(event: faust.EventT) -> Iterator[None]:
    """Table writes in this block belong to ``event``'s partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
