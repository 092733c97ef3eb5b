"""The traffic generator's vocabulary (模拟词库): templates and word lists, loaded from
``simulation/data/*.toml`` and checked against the triage rules.

- ``vocabulary.toml`` — shared slots (times, people, dispute states), the
  wrappers each source phrases a text with, place parts (roads, shops,
  markets), people names and the weights of the malformed-message kinds;
- ``categories.toml`` — per category: text templates, titles, slots and what
  each source says about it (grid labels, 110 报警类型 codes, camera AI events
  and GB/T 28181 alarm types);
- ``incidents.toml`` — correlated incidents seen by several sources.

``load_vocabulary(rules)`` reads and checks them: every category must exist in
the taxonomy, every grid label, 110 code, camera event and GB/T 28181 pair must
be known to ``rules`` and mean that category (or, for a coarse code, its
family). Texts themselves are checked by the tests (they must classify).

``render(template, resolve)`` expands ``{slot}`` placeholders.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from streams.records import Source
from streams.triage_rules import TriageRules

SOURCES = (Source.GRID, Source.CAMERA, Source.POLICE)
CAMERA_KINDS = ("security", "city")  # 治安 (industry code 01) or 城管 (08) cameras

_SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_MAX_DEPTH = 8


class VocabularyError(ValueError):
    """A vocabulary file that is missing, malformed or inconsistent with the rules."""


@dataclass(frozen=True)
class GridProfile:
    weight: float
    domains: tuple[str, ...] = ()  # src_domain: coarse (family) labels of the grid app
    types: tuple[str, ...] = ()  # src_type: precise labels
    flags: tuple[str, ...] = ()  # risk flags the worker may add
    hints: tuple[str, ...] = ()  # severity hints the worker may set
    bodies: tuple[str, ...] = ()  # grid-only bodies, besides the category's


@dataclass(frozen=True)
class PoliceProfile:
    weight: float
    bjlx: tuple[str, ...]
    jqjb: tuple[str, ...] = ()
    hazards: bool = False
    bodies: tuple[str, ...] = ()  # the caller's words, besides the category's bodies


@dataclass(frozen=True)
class CameraProfile:
    weight: float
    kind: str
    ai: tuple[str, ...]
    priority: tuple[int, ...]
    texts: tuple[str, ...]
    xml: tuple[tuple[int, int], ...] = ()  # GB/T 28181 (AlarmMethod, AlarmType) pairs


@dataclass(frozen=True)
class CategoryVocabulary:
    code: str
    bodies: tuple[str, ...]
    titles: tuple[str, ...] = ()
    crowd: tuple[int, int] | None = None
    self_resolve: float = 0.0
    hot_spot: bool = False
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    grid: GridProfile | None = None
    police: PoliceProfile | None = None
    camera: CameraProfile | None = None

    def profile(self, source: Source) -> GridProfile | PoliceProfile | CameraProfile | None:
        return {Source.GRID: self.grid, Source.POLICE: self.police, Source.CAMERA: self.camera}[
            source
        ]

    def weight(self, source: Source) -> float:
        profile = self.profile(source)
        return profile.weight if profile is not None else 0.0


@dataclass(frozen=True)
class IncidentStep:
    source: Source
    category: str
    at: tuple[float, float]  # minutes after the first step
    ai: str | None = None
    bjlx: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncidentPlan:
    name: str
    weight: float
    steps: tuple[IncidentStep, ...]
    crowd: tuple[int, int] | None = None


@dataclass(frozen=True)
class Places:
    roads: tuple[str, ...]
    shops: tuple[str, ...]
    estate_suffixes: tuple[str, ...]
    village_forms: tuple[str, ...]
    urban_village_forms: tuple[str, ...]
    place_forms: tuple[str, ...]
    gates: tuple[str, ...]
    markets: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    slots: Mapping[str, tuple[str, ...]]
    wrappers: Mapping[str, tuple[str, ...]]
    places: Places
    given_names: tuple[str, ...]
    caller_forms: tuple[str, ...]
    neutral_flags: tuple[str, ...]
    bjlx_names: Mapping[str, str]
    malformed: Mapping[Source, Mapping[str, float]]
    categories: Mapping[str, CategoryVocabulary]
    incidents: tuple[IncidentPlan, ...]

    def categories_for(self, source: Source) -> tuple[list[str], list[float]]:
        """Category codes a source reports, with their relative weights."""
        codes = [c for c, v in self.categories.items() if v.weight(source) > 0]
        return codes, [self.categories[c].weight(source) for c in codes]


# --------------------------------------------------------------------------- rendering


def render(template: str, resolve: Callable[[str], str]) -> str:
    """``template`` with every ``{slot}`` replaced by ``resolve(slot)``, recursively
    (a value may hold slots of its own), at most eight levels deep."""
    text = template
    for _ in range(_MAX_DEPTH):
        if "{" not in text:
            return text
        text = _SLOT.sub(lambda m: resolve(m.group(1)), text)
    if _SLOT.search(text):
        raise VocabularyError(f"slots nest deeper than {_MAX_DEPTH} levels in {template!r}")
    return text


# --------------------------------------------------------------------------- loading

DATA_PACKAGE = "simulation"  # files under simulation/data/


def load_vocabulary(rules: TriageRules, directory: Path | None = None) -> Vocabulary:
    """Read ``vocabulary.toml``, ``categories.toml`` and ``incidents.toml`` (from
    ``directory``, default: the files shipped in ``simulation/data``) and check them
    against ``rules``."""
    shared = _read(directory, "vocabulary.toml")
    cats = _read(directory, "categories.toml")
    incidents = _read(directory, "incidents.toml")
    places = _table(shared, "places", "vocabulary.toml")
    people = _table(shared, "people", "vocabulary.toml")
    vocabulary = Vocabulary(
        slots=_slot_table(_table(shared, "slots", "vocabulary.toml"), "vocabulary.toml [slots]"),
        wrappers=_slot_table(
            _table(shared, "wrappers", "vocabulary.toml"), "vocabulary.toml [wrappers]"
        ),
        places=Places(
            **{
                name: _strings(places.get(name), f"vocabulary.toml [places] {name}")
                for name in Places.__dataclass_fields__
            }
        ),
        given_names=_strings(people.get("given"), "vocabulary.toml [people] given"),
        caller_forms=_strings(people.get("caller"), "vocabulary.toml [people] caller"),
        neutral_flags=_strings(
            _table(shared, "flags", "vocabulary.toml").get("neutral", []),
            "vocabulary.toml [flags] neutral",
            allow_empty=True,
        ),
        bjlx_names=MappingProxyType(
            {str(k): str(v) for k, v in shared.get("bjlx_names", {}).items()}
        ),
        malformed=_malformed(_table(shared, "malformed", "vocabulary.toml")),
        categories=MappingProxyType(
            {
                code: _category(code, entry, rules)
                for code, entry in _table(cats, "categories", "categories.toml").items()
            }
        ),
        incidents=(),
    )
    plans = tuple(
        _incident(i, entry, vocabulary, rules)
        for i, entry in enumerate(incidents.get("incidents", []))
    )
    return _replace_incidents(vocabulary, plans)


def _replace_incidents(vocabulary: Vocabulary, plans: tuple[IncidentPlan, ...]) -> Vocabulary:
    values = {name: getattr(vocabulary, name) for name in Vocabulary.__dataclass_fields__}
    values["incidents"] = plans
    return Vocabulary(**values)


def _read(directory: Path | None, name: str) -> dict[str, Any]:
    try:
        if directory is None:
            text = resources.files(DATA_PACKAGE).joinpath("data", name).read_text(encoding="utf-8")
        else:
            text = (directory / name).read_text(encoding="utf-8")
        return tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise VocabularyError(f"{name}: {exc}") from None


def _table(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise VocabularyError(f"{where}: [{key}] must be a table")
    return value


def _strings(value: Any, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise VocabularyError(f"{where}: must be a list of strings")
    if not value and not allow_empty:
        raise VocabularyError(f"{where}: must not be empty")
    return tuple(value)


def _slot_table(table: Mapping[str, Any], where: str) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(
        {name: _strings(values, f"{where} {name}") for name, values in table.items()}
    )


def _range(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(x, int) for x in value)
        or not 1 <= value[0] <= value[1]
    ):
        raise VocabularyError(f"{where}: must be [low, high] with 1 <= low <= high")
    return value[0], value[1]


def _weight(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or value < 0:
        raise VocabularyError(f"{where}: weight must be a number >= 0")
    return float(value)


def _malformed(table: Mapping[str, Any]) -> Mapping[Source, Mapping[str, float]]:
    out: dict[Source, Mapping[str, float]] = {}
    for source in SOURCES:
        kinds = table.get(source.value)
        if not isinstance(kinds, dict) or not kinds:
            raise VocabularyError(f"vocabulary.toml: [malformed.{source.value}] must be a table")
        out[source] = MappingProxyType(
            {
                kind: _weight(w, f"vocabulary.toml [malformed.{source.value}] {kind}")
                for kind, w in kinds.items()
            }
        )
    return MappingProxyType(out)


def _category(code: str, entry: Any, rules: TriageRules) -> CategoryVocabulary:
    where = f'categories.toml [categories."{code}"]'
    if code not in rules.categories:
        raise VocabularyError(f"{where}: not a category of the taxonomy")
    if not isinstance(entry, dict):
        raise VocabularyError(f"{where}: must be a table")
    slots = entry.get("slots", {})
    if not isinstance(slots, dict):
        raise VocabularyError(f"{where}.slots: must be a table")
    category = CategoryVocabulary(
        code=code,
        bodies=_strings(entry.get("bodies"), f"{where} bodies"),
        titles=_strings(entry.get("titles", []), f"{where} titles", allow_empty=True),
        crowd=_range(entry.get("crowd"), f"{where} crowd"),
        self_resolve=_weight(entry.get("self_resolve", 0.0), f"{where} self_resolve"),
        hot_spot=bool(entry.get("hot_spot", False)),
        slots=_slot_table(slots, f"{where}.slots"),
        grid=_grid(code, entry.get("grid"), f"{where}.grid", rules),
        police=_police(code, entry.get("police"), f"{where}.police", rules),
        camera=_camera(code, entry.get("camera"), f"{where}.camera", rules),
    )
    if category.hot_spot and (category.grid is None or not category.grid.types):
        raise VocabularyError(f"{where}: a hot spot category needs a precise grid `type` label")
    return category


def _grid(code: str, entry: Any, where: str, rules: TriageRules) -> GridProfile | None:
    if entry is None:
        return None
    types = _strings(entry.get("type", []), f"{where} type", allow_empty=True)
    for label in types:
        rule = rules.grid_labels.get(label)
        if rule is None or rule.refine_within is not None or rule.category != code:
            raise VocabularyError(
                f"{where}: type {label!r} is not a precise grid label of {code} in codes.toml"
            )
    domains = _strings(entry.get("domain", []), f"{where} domain", allow_empty=True)
    for label in domains:
        rule = rules.grid_labels.get(label)
        if rule is not None and rule.refine_within is not None and rule.refine_within != code[:2]:
            raise VocabularyError(
                f"{where}: domain {label!r} refines within family {rule.refine_within}, "
                f"not {code[:2]}"
            )
    hints = _strings(entry.get("hint", []), f"{where} hint", allow_empty=True)
    if any(h not in ("P1", "P2", "P3", "P4") for h in hints):
        raise VocabularyError(f"{where}: hint must be P1-P4")
    return GridProfile(
        weight=_weight(entry.get("weight", 1.0), where),
        domains=domains,
        types=types,
        flags=_strings(entry.get("flags", []), f"{where} flags", allow_empty=True),
        hints=hints,
        bodies=_strings(entry.get("bodies", []), f"{where} bodies", allow_empty=True),
    )


def check_police_code(code: str, bjlx: str, rules: TriageRules, where: str) -> None:
    """``bjlx`` must lead to ``code``: exactly, within its refined family, or (no code
    rule) by keywords."""
    if re.fullmatch(r"[0-9]{6}", bjlx) is None:
        raise VocabularyError(f"{where}: bjlx {bjlx!r} is not 6 digits")
    rule = rules.police_code(bjlx)
    if rule is None:
        return  # e.g. 9xxxxx 举报投诉: keywords decide
    if rule.refine_within is not None:
        ok = code[:2] == rule.refine_within or code == rule.category
    else:
        ok = code == rule.category
    if not ok:
        raise VocabularyError(f"{where}: bjlx {bjlx} means {rule.category}, not {code}")


def _police(code: str, entry: Any, where: str, rules: TriageRules) -> PoliceProfile | None:
    if entry is None:
        return None
    bjlx = _strings(entry.get("bjlx"), f"{where} bjlx")
    for value in bjlx:
        check_police_code(code, value, rules, where)
    jqjb = _strings(entry.get("jqjb", []), f"{where} jqjb", allow_empty=True)
    if any(j not in ("1", "2", "3", "4") for j in jqjb):
        raise VocabularyError(f"{where}: jqjb must be '1'..'4'")
    return PoliceProfile(
        weight=_weight(entry.get("weight", 1.0), where),
        bjlx=bjlx,
        jqjb=jqjb,
        hazards=bool(entry.get("hazards", False)),
        bodies=_strings(entry.get("bodies", []), f"{where} bodies", allow_empty=True),
    )


def check_ai_event(code: str, ai: str, rules: TriageRules, where: str) -> None:
    rule = rules.ai_events.get(ai)
    if rule is None or rule.category != code:
        raise VocabularyError(f"{where}: ai event {ai!r} is not mapped to {code} in codes.toml")


def _camera(code: str, entry: Any, where: str, rules: TriageRules) -> CameraProfile | None:
    if entry is None:
        return None
    kind = entry.get("kind", "security")
    if kind not in CAMERA_KINDS:
        raise VocabularyError(f"{where}: kind must be one of {CAMERA_KINDS}")
    ai = _strings(entry.get("ai"), f"{where} ai")
    for event in ai:
        check_ai_event(code, event, rules, where)
    priority = entry.get("priority", [3])
    if not isinstance(priority, list) or not all(
        isinstance(p, int) and 1 <= p <= 4 for p in priority
    ):
        raise VocabularyError(f"{where}: priority must be a list of 1..4")
    xml: list[tuple[int, int]] = []
    for pair in entry.get("xml", []):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) for x in pair)
        ):
            raise VocabularyError(f"{where}: xml entries must be [method, type]")
        method, alarm_type = pair
        if not 1 <= method <= 7 or not 0 <= alarm_type <= 999:
            raise VocabularyError(f"{where}: xml {pair} out of range")
        mapped = rules.gb28181.get(f"{method}/{alarm_type}")
        if mapped is not None and mapped.category != code:
            raise VocabularyError(
                f"{where}: GB/T 28181 {method}/{alarm_type} means {mapped.category}"
            )
        xml.append((method, alarm_type))
    return CameraProfile(
        weight=_weight(entry.get("weight", 1.0), where),
        kind=kind,
        ai=ai,
        priority=tuple(priority),
        texts=_strings(entry.get("texts"), f"{where} texts"),
        xml=tuple(xml),
    )


def _incident(i: int, entry: Any, vocabulary: Vocabulary, rules: TriageRules) -> IncidentPlan:
    where = f"incidents.toml [[incidents]] #{i + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise VocabularyError(f"{where}: needs a name")
    where = f"{where} ({entry['name']})"
    raw_steps = entry.get("steps")
    if not isinstance(raw_steps, list) or len(raw_steps) < 2:
        raise VocabularyError(f"{where}: needs at least two steps")
    steps: list[IncidentStep] = []
    for n, raw in enumerate(raw_steps):
        here = f"{where} step {n + 1}"
        try:
            source = Source(raw.get("source"))
        except ValueError:
            raise VocabularyError(f"{here}: source must be grid, camera or police") from None
        code = raw.get("category")
        cat = vocabulary.categories.get(code)
        if cat is None or cat.profile(source) is None:
            raise VocabularyError(f"{here}: category {code!r} has no {source.value} vocabulary")
        at = raw.get("at", [0, 0])
        if (
            not isinstance(at, list)
            or len(at) != 2
            or not all(isinstance(x, int | float) for x in at)
            or not 0 <= at[0] <= at[1]
        ):
            raise VocabularyError(f"{here}: at must be [min, max] minutes")
        ai, bjlx = raw.get("ai"), raw.get("bjlx")
        if ai is not None:
            check_ai_event(code, ai, rules, here)
        if bjlx is not None:
            check_police_code(code, bjlx, rules, here)
        if n > 0 and not rules.correlation.compatible_categories(steps[0].category, code):
            raise VocabularyError(
                f"{here}: {code} cannot join a case of {steps[0].category} "
                "(rules/triage.toml [correlation])"
            )
        steps.append(
            IncidentStep(
                source=source,
                category=code,
                at=(float(at[0]), float(at[1])),
                ai=ai,
                bjlx=bjlx,
                flags=_strings(raw.get("flags", []), f"{here} flags", allow_empty=True),
            )
        )
    return IncidentPlan(
        name=entry["name"],
        weight=_weight(entry.get("weight", 1.0), where),
        steps=tuple(steps),
        crowd=_range(entry.get("crowd"), f"{where} crowd"),
    )
