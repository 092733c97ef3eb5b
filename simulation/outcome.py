"""What a correct pipeline must make of a generated message (预期结果).

The generator knows what it put in a message — the intended category, the
source's own levels, the head counts it wrote, the risk flags and hints — and
derives from the rule *data* (routing table, priority table, signal word
lists) what triage must decide. These are independent re-statements of the
rules in ``rules/*.toml``, not calls into ``streams``: the expectations are a
check on the pipeline, not a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from streams.records import Priority, Source
from streams.triage_rules import CodeRule, TriageRules

DISPATCH = "dispatch"
CLOSED_AT_GRID = "closed_at_grid"
POLICE_ONLY = "police_only"
FOLLOW_UP = "follow_up"


class Expected(msgspec.Struct, frozen=True, kw_only=True):
    """The expected outcome of one generated message (one line of the outcome file).

    ``outcome``: ``case`` (opens or joins a case), ``dead_letter`` (rejected:
    ``error`` is the code, ``error_class`` ``invalid`` for the parser's
    ``InvalidEvent`` or ``unroutable`` for the locator's ``UnroutableEvent``,
    ``field`` the first offending field when known) or ``duplicate`` (a
    redelivered copy of message ``duplicate_of``).

    ``lead`` and ``disposition`` are what routing gives the event when it opens
    its case (``lead`` is None when it is not dispatched: ``closed_at_grid``,
    ``police_only``). ``priority`` is the event's own priority; when
    ``hot_spot`` is None the same grid and category may have recurred by
    chance, and the pipeline may make it one step more urgent (True: it must,
    and ``priority`` already includes the step; False: it must not).

    Messages with the same ``incident`` must end in one case; ``repeat_of`` (a
    camera alarm repeated by its device) and ``linked_to`` (a 110 call naming an
    earlier call in gljjdbh) name the source id whose case the event must join.
    Other events may still join a case by chance (same grid, compatible
    category, within the window): that is correct, not a failure.
    """

    source: str  # grid | camera | police
    source_id: str  # report_id / alert_id / referral_id ("DeviceID|AlarmTime|SN" for XML)
    event_id: str | None  # "<source>:<source_id>" (None for a dead letter)
    outcome: str  # case | dead_letter | duplicate
    category: str  # "05.01", or "dead_letter"
    exact: bool = False  # the category comes from a source code, not from keywords
    rule: str | None = None  # the source's own code the message carries, e.g. "bjlx:600600"
    lead: str | None = None
    disposition: str | None = None  # dispatch | closed_at_grid | police_only | follow_up
    priority: str | None = None  # "P1".."P4"
    hot_spot: bool | None = None
    hot_spot_id: str | None = None  # the recurring hot spot this occurrence belongs to
    grid: str | None = None  # the grid the event must be located in
    region: str | None = None  # the jurisdiction code it enters at (the grid's, or the 110 code)
    event_time: str | None = None  # occurred_at, RFC 3339
    incident: str | None = None
    repeat_of: str | None = None
    linked_to: str | None = None
    duplicate_of: int | None = None  # seq of the original
    error: str | None = None
    error_class: str | None = None  # invalid | unroutable
    field: str | None = None
    variant: str = "json"  # json | json-ascii | xml-utf-8 | xml-gb2312 | xml-gbk | <malformed kind>


def routing_of(
    rules: TriageRules,
    category: str,
    *,
    self_resolved: bool = False,
    police_rule: CodeRule | None = None,
    has_township: bool = True,
) -> tuple[str | None, str]:
    """(lead, disposition) per routing.toml and codes.toml (docs/domain.md §3)."""
    row = rules.routes.get(category)
    if self_resolved:
        return None, CLOSED_AT_GRID
    if police_rule is not None and police_rule.police_only:
        if police_rule.follow_up and row is not None and row.follow_up is not None:
            return row.follow_up, FOLLOW_UP
        return None, POLICE_ONLY
    if row is None:
        return rules.fallback_lead, DISPATCH
    if row.lead == "township" and not has_township:
        return rules.fallback_lead, DISPATCH
    return row.lead, DISPATCH


class SignalScanner:
    """The triage.toml signals, looked for as the core looks for them."""

    def __init__(self, rules: TriageRules) -> None:
        self._signals = tuple(rules.signals.items())

    def __call__(self, text: str, flags: Iterable[str] = ()) -> set[str]:
        """Names of the signals a text and risk flags show."""
        flags = tuple(flags)
        return {name for name, signal in self._signals if signal.find(text, flags) is not None}


_scanners: dict[int, tuple[TriageRules, SignalScanner]] = {}


def signals_in(rules: TriageRules, text: str, flags: Iterable[str] = ()) -> set[str]:
    """Names of the triage.toml signals a text and risk flags show."""
    cached = _scanners.get(id(rules))
    if cached is None or cached[0] is not rules:
        cached = (rules, SignalScanner(rules))
        _scanners[id(rules)] = cached
    return cached[1](text, flags)


def own_priority(
    rules: TriageRules,
    category: str,
    *,
    source: Source,
    text: str,
    source_priority: int | None = None,
    persons: int | None = None,
    flags: Iterable[str] = (),
    hint: str | None = None,
    police_rule: CodeRule | None = None,
) -> Priority:
    """The priority the event's own content gives it (before any hot-spot step)."""
    p = rules.priority
    if police_rule is not None and police_rule.police_only and police_rule.follow_up:
        return p.follow_up
    levels = [p.for_category(category)[0]]
    if source_priority is not None:
        level = p.source.get(source, {}).get(source_priority)
        if level is not None:
            levels.append(level)
    if persons is not None:
        levels += [level for at_least, level in p.persons if persons >= at_least][:1]
    found = signals_in(rules, text, flags)
    levels += [level for name, level in p.signals if name in found]
    if hint:
        hinted = Priority.parse(hint)
        if hinted in p.honour_hints:
            levels.append(hinted)
    return min(levels)


def raised(priority: Priority) -> Priority:
    """One step more urgent (a hot spot)."""
    return Priority(max(Priority.P1, priority - 1))
