"""The deadline index: one min-heap of due times per partition (定时器).

Deadlines live in each case's state (a changelog-backed table); this index is
only the worker's fast way to find the next one due. It is rebuilt from the
table whenever partitions are assigned, so it may be thrown away at any time.

Entries are never removed from the middle of a heap: a case that moves on
simply re-indexes its new deadlines, and a stale entry fires a no-op (the case
state decides, not the index). Re-indexing a case bumps its generation so
stale entries are skipped cheaply when they reach the top.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Due:
    """One deadline that has fallen due: fire it through the case's owner."""

    case_id: str
    deadline_id: str
    due_at: datetime
    partition: int


@dataclass
class DeadlineIndex:
    """Per-partition heaps of ``(due timestamp, case_id, deadline_id)``."""

    _heaps: dict[int, list[tuple[float, str, str, int]]] = field(default_factory=dict)
    _generation: dict[str, int] = field(default_factory=dict)
    _partition_of: dict[str, int] = field(default_factory=dict)

    def index_case(self, partition: int, case_id: str,
                   deadlines: Iterable[tuple[str, datetime]]) -> None:
        """(Re)index a case's pending deadlines, superseding what it had before."""
        generation = self._generation.get(case_id, 0) + 1
        heap = self._heaps.setdefault(partition, [])
        pushed = False
        for deadline_id, due_at in deadlines:
            heapq.heappush(heap, (due_at.timestamp(), case_id, deadline_id, generation))
            pushed = True
        if pushed:
            self._generation[case_id] = generation
            self._partition_of[case_id] = partition
        else:
            self._forget(case_id)

    def drop_partition(self, partition: int) -> None:
        """Forget a revoked partition (its new owner rebuilds it)."""
        heap = self._heaps.pop(partition, [])
        for _, case_id, _, _ in heap:
            if self._partition_of.get(case_id) == partition:
                self._forget(case_id)

    def pop_due(self, now: datetime, *, limit: int = 10_000) -> list[Due]:
        """Remove and return up to ``limit`` current deadlines due at ``now``."""
        cutoff = now.timestamp()
        out: list[Due] = []
        for partition, heap in self._heaps.items():
            while heap and heap[0][0] <= cutoff and len(out) < limit:
                due_ts, case_id, deadline_id, generation = heapq.heappop(heap)
                if self._generation.get(case_id) == generation:
                    out.append(Due(case_id, deadline_id,
                                   datetime.fromtimestamp(due_ts, tz=now.tzinfo), partition))
        return out

    def next_due(self) -> float | None:
        """Timestamp of the earliest entry (possibly stale), or None when empty."""
        tops = [heap[0][0] for heap in self._heaps.values() if heap]
        return min(tops) if tops else None

    def overdue(self, now: datetime, grace_seconds: float) -> int:
        """Current entries due more than ``grace_seconds`` before ``now`` and not
        yet popped: what the auditor reports (should stay 0)."""
        cutoff = now.timestamp() - grace_seconds
        count = 0
        for heap in self._heaps.values():
            # walk only the part of the heap at or before the cutoff: O(overdue)
            stack = [0] if heap else []
            while stack:
                i = stack.pop()
                due_ts, case_id, _, generation = heap[i]
                if due_ts > cutoff:
                    continue
                count += self._generation.get(case_id) == generation
                stack.extend(c for c in (2 * i + 1, 2 * i + 2) if c < len(heap))
        return count

    def __len__(self) -> int:
        """Cases with a pending deadline (a heap also holds stale entries, skipped when
        they reach its top)."""
        return len(self._generation)

    def _forget(self, case_id: str) -> None:
        self._generation.pop(case_id, None)
        self._partition_of.pop(case_id, None)


@dataclass
class ArmedFires:
    """Fire commands made ready ahead of their instant (上膛), sent when it comes.

    Reading a case and encoding its fire takes far longer than sending the record, so
    the timer task arms what falls due within the next few seconds and, at the
    instant, only sends: a burst of thousands of deadlines due together then goes
    out in the time the sends take. A fire armed for a deadline that moves on before
    its instant is a no-op for the engine (it checks the deadline's instant), and
    the case is indexed again when a command changes it, so nothing is lost.
    Each fire (its case's key and its command id, which names the deadline, kind
    and instant within the case) is armed once at a time.
    """

    #: (due timestamp, arming order, case key, command id, record), earliest first
    _heap: list[tuple[float, int, bytes, str, bytes]] = field(default_factory=list)
    _armed: set[tuple[bytes, str]] = field(default_factory=set)  # (case key, command id)
    _counter: int = 0

    def arm(self, command_id: str, due_at: datetime, key: bytes, record: bytes) -> bool:
        """Arm the fire ``record`` of case ``key`` due at ``due_at``; False if that
        command of that case is armed already."""
        fire = (key, command_id)
        if fire in self._armed:
            return False
        self._armed.add(fire)
        self._counter += 1
        heapq.heappush(self._heap, (due_at.timestamp(), self._counter, key, command_id, record))
        return True

    def pop_due(self, now: datetime, *, limit: int) -> list[tuple[float, bytes, bytes]]:
        """Up to ``limit`` armed fires whose instant is at or before ``now``, earliest
        first, as ``(due timestamp, key, record)``."""
        cutoff = now.timestamp()
        out: list[tuple[float, bytes, bytes]] = []
        heap = self._heap
        while heap and heap[0][0] <= cutoff and len(out) < limit:
            due_ts, _, key, command_id, record = heapq.heappop(heap)
            self._armed.discard((key, command_id))
            out.append((due_ts, key, record))
        return out

    def next_due(self) -> float | None:
        """Timestamp of the earliest armed fire, or None."""
        return self._heap[0][0] if self._heap else None

    def overdue(self, now: datetime, grace_seconds: float) -> int:
        """Armed fires more than ``grace_seconds`` past their instant and not sent."""
        cutoff = now.timestamp() - grace_seconds
        return sum(1 for due_ts, *_ in self._heap if due_ts < cutoff)

    def clear(self) -> None:
        """Forget everything armed (partitions were reassigned: the index is rebuilt)."""
        self._heap.clear()
        self._armed.clear()

    def __len__(self) -> int:
        return len(self._heap)
