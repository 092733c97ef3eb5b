"""China Standard Time: the one zone GridLink reads, decides and shows times in.

``TZ`` is the zone (Asia/Shanghai). ``UTC_PLUS_8`` is the fixed offset it has
kept since 1991 (no daylight saving): the same instants, cheaper to convert to
on hot paths, and the zone a timestamp without an offset is read in.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
UTC_PLUS_8 = timezone(timedelta(hours=8))
