"""The wall clock: the one place the running system reads the time.

The core (``streams/``) never does: entry points read ``wall_clock()`` and pass
``now`` in, so every decision is taken at a time that travels with it.
"""

from __future__ import annotations

from datetime import datetime

from streams.zone import TZ


def wall_clock() -> datetime:
    """Now, as an aware datetime in China Standard Time."""
    return datetime.now(TZ)
