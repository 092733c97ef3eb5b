"""Events in batches, for agents whose per-batch work (a state write, a database
transaction) is worth sharing among many events.

:func:`windows` differs from Faust's ``take_events`` in two ways: an event is
handed to the agent as soon as it arrives, not when its batch is complete, and a
window's events are acked only after the agent is done with them
(``take_events`` acks a batch even when the agent fails on it, so it would not be
read again).

A table write needs "the event being processed": it decides the changelog partition
(and, in the RocksDB store, the partition's database). :func:`as_current` makes a
given event the current one for the writes in its block.

Both use Faust internals (the stream's processors, passive draining, acks and the
current-event context variable); they are kept here, in one place.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import Stream, _current_event


async def windows(stream: faust.StreamT, max_events: int, seconds: float
                  ) -> AsyncIterator[AsyncIterator[faust.EventT]]:
    """Windows of ``stream``'s events, each an iterator of its events.

    A window hands over each event as soon as it arrives (so batching adds no
    latency), and ends after ``max_events`` events or ``seconds`` after its first
    one. What the agent does once per window (a state write) is shared by all of
    its events. The window's events are acked, so their offsets may be committed,
    only when the agent asks for the next window: if the agent fails in a window,
    its events are read again after a restart.
    """
    # its waits, processors and passive draining are used: a Stream reading a channel
    if not isinstance(stream, Stream) or not isinstance(stream.channel, faust.ChannelT):
        raise TypeError(f"windows: a faust Stream of a channel, not {stream!r}")
    channel = stream.channel
    loop = asyncio.get_running_loop()
    pending: deque[faust.EventT] = deque()
    arrived = asyncio.Event()
    room = asyncio.Event()

    closed = False  # the agent is gone: an event still in ``add`` is left for the next reader

    async def add(value: Any) -> Any:
        # runs in the stream's draining task, once per event
        while len(pending) >= max_events and not closed:
            room.clear()
            await stream.wait(room.wait())
        event = stream.current_event
        if event is None:
            raise RuntimeError("windows: an event without its message")
        if closed:
            leave_uncommitted([event])
            return value
        pending.append(event)
        arrived.set()
        return value

    async def window(taken: list[faust.EventT]) -> AsyncIterator[faust.EventT]:
        ends = loop.time() + seconds
        while len(taken) < max_events:
            if not pending:
                arrived.clear()
                left = ends - loop.time()
                if left <= 0:
                    return
                await stream.wait(arrived.wait(), timeout=left)
                if not pending:  # the window's time is up, or the stream stops
                    return
            event = pending.popleft()
            room.set()
            taken.append(event)
            yield event

    acks = stream.enable_acks
    stream.enable_acks = False  # acked below, window by window
    stream.add_processor(add)
    stream._enable_passive(channel)  # drain in the background
    taken: list[faust.EventT] = []
    try:
        while not stream.should_stop:
            if not pending:
                arrived.clear()
                if await stream.wait_for_stopped(arrived.wait()):
                    break
            taken = []
            yield window(taken)
            for event in taken:
                await stream.ack(event)
            taken = []
    finally:
        # the agent failed or stops inside a window, or events wait for the next one
        # (one perhaps in ``add``, for room in ``pending``: woken, it is left too)
        closed = True
        room.set()
        stream.enable_acks = acks
        stream._processors.remove(add)
        leave_uncommitted([*taken, *pending])


def leave_uncommitted(events: Sequence[faust.EventT]) -> None:
    """Leave events unprocessed so that their offsets are never committed.

    Before it stops or rebalances, Faust waits until every message a stream took
    is acked, then commits the offsets of the acked ones. A message marked acked
    here, behind the consumer's back, ends that wait but is never counted as
    committable: the committed offset stays before it, and the partition's next
    reader (this worker after a rebalance, or the next one to start) reads it again.
    """
    for event in events:
        event.message.acked = True


@contextmanager
def as_current(event: faust.EventT) -> Iterator[None]:
    """Table writes in this block belong to ``event``'s partition.

    It sets only Faust's context variable in the agent's own task; the stream's
    attributes, which its draining task reads, are left alone."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
