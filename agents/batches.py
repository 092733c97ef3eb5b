"""Events in batches, for agents whose per-batch work (a state write, a database
transaction) is worth sharing among many events.

:func:`windows` differs from Faust's ``take_events`` in two ways: an event is
handed to the agent as soon as it arrives, not when its batch is complete, and a
window's events are acked only when the agent says it is done with them
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


class Window:
    """One window of a stream's events: iterate over it for them (each as soon as it
    arrives), then :meth:`ack` it once they are done with."""

    def __init__(self, stream: faust.StreamT, events: AsyncIterator[faust.EventT],
                 taken: list[faust.EventT], open_windows: list[Window]) -> None:
        self._stream = stream
        self._events = events
        self.taken = taken  # the events handed over so far
        self._open = open_windows
        self.left = False  # left uncommitted: the stream stopped before it was acked

    def __aiter__(self) -> AsyncIterator[faust.EventT]:
        return self._events

    async def ack(self) -> None:
        """The window's events are done with: their offsets may be committed. Windows
        are acked in the order they were handed over (an earlier one first)."""
        if self.left:  # the stream stopped meanwhile: read again by the next owner
            return
        if self._open and self._open[0] is not self:
            raise RuntimeError("windows: acked before an earlier window")
        self._open.remove(self)
        for event in self.taken:
            await self._stream.ack(event)


async def windows(stream: faust.StreamT, max_events: int, seconds: float
                  ) -> AsyncIterator[Window]:
    """Windows of ``stream``'s events (see :class:`Window`).

    A window hands over each event as soon as it arrives (so batching adds no
    latency), and ends after ``max_events`` events or ``seconds`` after its first
    one. What the agent does once per window (a state write) is shared by all of
    its events. The agent acks each window when it is done with it — perhaps after
    it has asked for the next (a window's writes awaited while the next is
    decided). A window not acked when the stream stops, or when the agent fails,
    is never committed: its events are read again after a restart.
    """
    # its waits, processors and passive draining are used: a Stream reading a channel
    if not isinstance(stream, Stream) or not isinstance(stream.channel, faust.ChannelT):
        raise TypeError(f"windows: a faust Stream of a channel, not {stream!r}")
    channel = stream.channel
    loop = asyncio.get_running_loop()
    pending: deque[faust.EventT] = deque()
    arrived = asyncio.Event()
    room = asyncio.Event()

    closed = False  # the agent is gone: what arrives now is left for the next reader

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
    stream.enable_acks = False  # acked by the agent, window by window
    stream.add_processor(add)
    stream._enable_passive(channel)  # drain in the background
    open_windows: list[Window] = []
    try:
        while not stream.should_stop:
            if not pending:
                arrived.clear()
                if await stream.wait_for_stopped(arrived.wait()):
                    break
            taken: list[faust.EventT] = []
            handed = Window(stream, window(taken), taken, open_windows)
            open_windows.append(handed)
            yield handed
    finally:
        # the agent failed or stops inside a window, before acking some, or events wait
        # (some perhaps for room in ``pending``); the processor stays, so that what the
        # stream still drains is not acked behind the agent's back either
        closed = True
        room.set()
        stream.enable_acks = acks
        for unacked in open_windows:
            unacked.left = True
        leave_uncommitted([*(e for w in open_windows for e in w.taken), *pending])
        open_windows.clear()


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
