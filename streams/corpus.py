"""Labelled texts (分类语料) and the events they stand for.

A labelled text is one line of ``tests/data/classification/*.jsonl``: the
source, the text (and a grid report's title, a 110 call's 报警类型 ``bjlx``),
and what a person says it is — category, acceptable alternatives, lead
department, priority. :func:`as_event` turns it into the :class:`Event` and
:class:`Location` the worker would see, so the benchmark and training read a
text exactly as triage does: a grid report located at a grid of the demo
city, a camera alarm at a camera of that grid, a 110 call with its ``bjlx``
as ``source_code``. The place is picked by the text's id, deterministically.

:func:`split_of` puts about one text in five in ``dev`` (measured, never
trained on), by a hash of the id: the split does not move when texts are
added. A quarter of the second independent set (ids ``b0001`` …, by another
hash of the id) is ``fresh`` instead: never trained on, never tuned on, its
texts and errors never looked at, only measured now and then to estimate how
the classifier does on text nobody tuned for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from streams.records import Event, Level, Location, Source
from streams.reference import City, Grid
from streams.zone import UTC_PLUS_8

#: the instant every corpus event is said to happen at (events carry no clock of their own)
AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC_PLUS_8)
DEV_SHARE = 5  # one in five
FRESH_SHARE = 4  # one in four of the texts a fresh split is drawn from
#: the ids a fresh split is drawn from: the second independent set's (b0001 …)
FRESH_IDS = re.compile(r"b[0-9]{4,}")


class LabelledText(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    source: str  # "grid" | "police" | "camera"
    text: str
    category: str
    lead: str
    priority: str  # "P1".."P4"
    title: str = ""
    also: tuple[str, ...] = ()
    bjlx: str | None = None
    note: str = ""

    def accepts(self, category: str) -> bool:
        """The category is the primary one or a listed alternative."""
        return category == self.category or category in self.also


_decoder = msgspec.json.Decoder(LabelledText)


def read_corpus(path: Path) -> list[LabelledText]:
    """Every labelled text of a JSONL file; ValueError names the line of a bad one."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                out.append(_decoder.decode(line))
            except msgspec.ValidationError as exc:
                raise ValueError(f"{path.name}: line {number}: {exc}") from None
    return out


def split_of(text_id: str) -> str:
    """``"fresh"``, ``"dev"`` or ``"train"``, by a hash of the id.

    ``fresh``: an id of the form ``b0001`` whose digest of ``"fresh:" + id``
    is divisible by 4 (about a quarter of that set); then ``dev``: the id's
    own digest divisible by 5; the rest is ``train``.
    """
    if is_fresh(text_id):
        return "fresh"
    digest = int(hashlib.sha256(text_id.encode("utf-8")).hexdigest()[:8], 16)
    return "dev" if digest % DEV_SHARE == 0 else "train"


def is_fresh(text_id: str) -> bool:
    """The text belongs to the fresh split: measured only, never trained or tuned on."""
    if not FRESH_IDS.fullmatch(text_id):
        return False
    digest = int(hashlib.sha256(f"fresh:{text_id}".encode()).hexdigest()[:8], 16)
    return digest % FRESH_SHARE == 0


def as_event(record: LabelledText, city: City) -> tuple[Event, Location]:
    """The event and place the worker would see for this text."""
    grids = _grids(city)
    grid = grids[int(hashlib.sha256(record.id.encode()).hexdigest()[:8], 16) % len(grids)]
    source = Source(record.source)
    source_code: str | None = None
    region_code: str | None = None
    device_id: str | None = None
    if source is Source.POLICE:
        source_code, region_code = record.bjlx, grid.code[:9]
    elif source is Source.CAMERA:
        cameras = sorted(c.device_id for c in city.cameras.values() if c.grid_code == grid.code)
        if cameras:
            device_id = cameras[0]
    event = Event(
        event_id=f"{source.value}:{record.id}",
        source=source,
        source_id=record.id,
        occurred_at=AT,
        reported_at=AT,
        title=record.title,
        text=record.text,
        grid_code=grid.code if source is Source.GRID else None,
        lon=grid.lon,
        lat=grid.lat,
        region_code=region_code,
        device_id=device_id,
        source_code=source_code,
    )
    location = Location(
        method="grid_code" if source is Source.GRID else "nearest_grid",
        region_code=grid.code,
        level=Level.GRID,
        grid_code=grid.code,
        lon=grid.lon,
        lat=grid.lat,
    )
    return event, location


def _grids(city: City) -> list[Grid]:
    return sorted(city.grids.values(), key=lambda g: g.code)


def of_split(records: Iterable[LabelledText], split: str) -> list[LabelledText]:
    return [r for r in records if split_of(r.id) == split]
