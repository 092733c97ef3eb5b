"""Routing (分流交办): lead and supporting departments, and the entry level.

- The category's row in ``routing.toml`` names the lead (牵头, exactly one) and
  the supports (配合); conditional supports join when the event shows their
  signal (gongan for a dispute with violence reported).
- ``township`` is the 属地 township of the case's location. When the location
  is known only to the county, there is no township to involve: a township
  support is dropped, and a township lead falls back to ``zhongzhi``.
- A category without a row goes to the fallback lead (综治中心 兜底).
- 110 codes the police keep (police_only) are recorded, not dispatched; with
  ``follow_up`` a case goes to the row's follow-up department (家暴 → 司法所).
- A grid report settled on the spot (已化解) is closed at grid level (自办):
  recorded, not dispatched.

Entry level (docs/domain.md §5.1, §5.3): by source (grid L5, camera L4, 110 L3),
never below the level the location is known to (a 110 call with only a
6-digit code enters at the county); 5+ persons → no lower than the township
(and the township supports); weapons or a severe mental-illness subject → one
level up.
"""

from __future__ import annotations

from streams.classify import police_code
from streams.priority import persons_involved, signals_found
from streams.records import PROVISIONAL, Classification, Event, Level, Location, Routing, Source
from streams.triage_rules import TOWNSHIP, TriageRules


def route(
    classification: Classification,
    event: Event,
    location: Location,
    rules: TriageRules,
    *,
    signals: dict[str, str] | None = None,
) -> Routing:
    """Who handles the case and at which level it enters (``signals``: what
    :func:`~streams.priority.signals_found` gave, if the caller has it already)."""
    signals = signals_found(event, rules) if signals is None else signals
    persons = persons_involved(event, rules) or 0
    level = entry_level(event, location, classification, rules, signals=signals, persons=persons)
    row = rules.routes.get(classification.category)
    if event.source is Source.GRID and event.self_resolved:
        lead = row.lead if row is not None else rules.fallback_lead
        at = Level(min(Level.GRID, location.level))
        return Routing(
            lead=lead,
            entry_level=at,
            rule="closed_at_grid",
            dispatch=False,
            disposition="closed_at_grid",
        )
    code = police_code(event, rules)
    if code is not None and code.police_only:
        if code.follow_up and row is not None and row.follow_up is not None:
            return Routing(
                lead=row.follow_up,
                entry_level=level,
                rule=f"follow_up:{code.rule}",
                disposition="follow_up",
            )
        return Routing(
            lead="gongan",
            entry_level=level,
            rule=f"police_only:{code.rule}",
            dispatch=False,
            disposition="police_only",
        )
    if row is None:
        return Routing(lead=rules.fallback_lead, entry_level=level, rule="fallback")
    has_township = location.level >= Level.TOWNSHIP
    lead, rule = row.lead, row.rule
    if lead == TOWNSHIP and not has_township:
        lead, rule = rules.fallback_lead, f"{row.rule}>fallback:no_township"
    supports = list(row.supports)
    for signal, departments in row.when:
        if signal in signals:
            supports.extend(departments)
    if persons >= rules.escalation.township_from_persons:
        supports.append(TOWNSHIP)
    if not has_township:
        supports = [d for d in supports if d != TOWNSHIP]
    return Routing(
        lead=lead,
        supports=tuple(dict.fromkeys(d for d in supports if d != lead)),
        entry_level=level,
        rule=rule,
    )


def provisional(routing: Routing, event: Event, rules: TriageRules) -> Routing:
    """The routing of a P1 whose category is unknown: dispatched at once to the
    fallback lead (综治中心 兜底), with 应急 and others where the signals of
    ``routing.toml [provisional]`` show life at risk, while an operator verifies it."""
    signals = signals_found(event, rules)
    supports = [d for signal, depts in rules.provisional_when if signal in signals for d in depts]
    return Routing(
        lead=rules.fallback_lead,
        supports=tuple(dict.fromkeys(d for d in supports if d != rules.fallback_lead)),
        entry_level=routing.entry_level,
        rule="provisional:p1_unknown_category",
        disposition=PROVISIONAL,
    )


def entry_level(
    event: Event,
    location: Location,
    classification: Classification,
    rules: TriageRules,
    *,
    signals: dict[str, str] | None = None,
    persons: int | None = None,
) -> Level:
    """The level a new case enters at (docs/domain.md §5.1 and §5.3)."""
    signals = signals_found(event, rules) if signals is None else signals
    persons = (persons_involved(event, rules) or 0) if persons is None else persons
    esc = rules.escalation
    level = min(rules.entry_levels[event.source], location.level)
    if persons >= esc.township_from_persons:
        level = min(level, Level.TOWNSHIP)
    serious = classification.category in esc.level_up_categories or any(
        name in signals for name in esc.level_up_signals
    )
    if serious:
        level = Level(max(Level.CITY, level - 1))
    return Level(level)
