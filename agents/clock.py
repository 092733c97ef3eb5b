"""The one place the running system reads the clock. The core never does:
agents pass ``now`` in."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def wall_clock() -> datetime:
    """Now, as an aware datetime in China Standard Time."""
    return datetime.now(SHANGHAI)
