"""Priorities (定级): P1 特急 … P4 复杂, with every reason recorded (docs/domain.md §4–5).

A case starts at its category's default (fire P1, utilities outage P2, petitions
and land disputes P4, otherwise P3). Each of these may only make it *more*
urgent, and the most urgent wins:

- the source's own level (GB/T 28181 AlarmPriority, 110 警情级别 jqjb);
- persons involved, reported or read from the text (约40人, 三十余名 → 30);
- signals: words in the text or reporter risk flags (聚集/横幅 → P1,
  持刀 → P1, 可能激化 → P2);
- the reporter's severity_hint, when it is urgent enough to be honoured.

What the text says is then checked by a learned second opinion, when the
rules have one (``[priority.learned]``, :func:`learned_features`): a P1 read
from the text stays P1 only when the learned P1 check finds it at least
``keep_at`` likely (a danger over, denied, feared or small reads as P2), and
a text the rules do not make P1 becomes P1 when the check finds it at least
``promote_at`` likely. Both record the check's version, its probability and
the features that weighed most. The check does not lower a P1 the source's
own data shows (a 110 risk flag, a reported head count), nor raise what a
settled report (已扑灭, capped at P2) or an alarm found false (误报, capped at
P3) says.

Recurrence (the same grid and category ``threshold`` times in the window, this
event included) then raises the result one step (P3 → P2) — a hot spot (热点).

A follow-up case after the police attended a police-only 110 call (家暴 200600
→ 司法所 mediation) takes the configured follow-up priority: the urgent part
was the police's — unless the text says the danger is going on (在打, 救命,
砸门: ``[priority.follow_up_now]``), which is P1 like any violence happening now.

A P1 from a signal or a head count counts as P2 when a phrase of
``[priority.lowered]`` shows it is no danger to life now (a crowd found calm or
an ordinary event, a knife only sold or seen, smoke from burning straw, a road
hole nobody fell into); the phrase is recorded and the learned check does not
raise it again.
"""

from __future__ import annotations

import re
from functools import lru_cache

from streams.classify import event_text, police_code, read
from streams.model import features
from streams.records import Classification, Event, Priority, PriorityDecision, Source
from streams.text import Reading
from streams.triage_rules import LearnedPriority, TriageRules

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000}
#: head-count nouns when the rules name none (triage.toml [persons] nouns)
PERSON_NOUNS = ("人", "人员", "村民", "居民", "群众", "工人", "农民工", "员工", "职工", "学生",
                "业主", "老师", "家长", "司机")
_NUMERAL = r"(数|几)?([0-9]+|[零〇一二两三四五六七八九十百千万]+)(?:余|多|来|几)?"
_RANGE = re.compile(r"([一二两三四五六七八九])[一二两三四五六七八九]")


@lru_cache(maxsize=8)
def _persons_pattern(nouns: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(map(re.escape, sorted(set(nouns) | {"人"}, key=len, reverse=True)))
    # 名/位 count people by themselves; 个 and 号 only before a person noun (几十号人); 口
    # only before 人 (十几口人), a bare number too (so 602住户 is a room, not 602 people)
    return re.compile(_NUMERAL + rf"(?:(?:名|位)(?:{words})?|(?:个|号)(?:{words})|口人|人)")


def chinese_number(numeral: str) -> int:
    """``"三十五"`` → 35, ``"十"`` → 10, ``"两百"`` → 200, ``"一万二千"`` → 12000, ``"40"`` → 40."""
    if numeral.isdigit():
        return int(numeral)
    total = section = digit = 0
    for ch in numeral:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch == "万":
            total += ((section + digit) or 1) * 10_000
            section = digit = 0
        else:
            section += (digit or 1) * _UNITS[ch]
            digit = 0
    return total + section + digit


@lru_cache(maxsize=4096)
def persons_in_text(text: str, nouns: tuple[str, ...] = PERSON_NOUNS) -> int | None:
    """The largest head count the text states: 约40人 → 40, 三十多人 → 30, 十余人 → 10,
    数十人 → 20, 二十多个工人 → 20, 二三十人 → 20, 三十多号人 → 30 (lower bounds: 余/多
    mean "more than", a range counts its lower end). Counted things are people: a
    number with 名 or 位, or with 个 or 号 and one of ``nouns`` (人, 村民, 工人 …), or
    with 口人 or 人;
    households (三十多户村民) are not a crowd, 602住户 is a room. None if it
    states none."""
    counts = []
    for match in _persons_pattern(nouns).finditer(text):
        count = chinese_number(_RANGE.sub(r"\1", match.group(2)))
        counts.append(count * 2 if match.group(1) else count)
    return max(counts) if counts else None


def persons_involved(event: Event, rules: TriageRules | None = None) -> int | None:
    """Persons involved: the larger of the reported number and what the text says."""
    nouns = rules.person_nouns if rules is not None and rules.person_nouns else PERSON_NOUNS
    stated = persons_in_text(event_text(event), nouns)
    counted = [n for n in (event.persons, stated) if n is not None]
    return max(counted) if counted else None


def signals_found(event: Event, rules: TriageRules) -> dict[str, str]:
    """Signal name → the word or risk flag that showed it (聚集, 可能激化 …). Words are
    looked for in the text as read (:mod:`streams.text`): a negated term ("没有人受伤")
    shows nothing."""
    text = read(event, rules).masked
    found: dict[str, str] = {}
    for name, signal in rules.signals.items():
        hit = signal.find(text, event.risk_flags)
        if hit is not None:
            found[name] = hit
    return found


def is_hot_spot(recurrences: int, rules: TriageRules) -> bool:
    """``recurrences`` earlier occurrences plus this one reach the threshold (热点)."""
    return recurrences + 1 >= rules.correlation.recurrence_threshold


def prioritise(
    event: Event,
    classification: Classification,
    rules: TriageRules,
    *,
    recurrences: int = 0,
    signals: dict[str, str] | None = None,
) -> PriorityDecision:
    """The priority of a new event and every reason for it.

    ``recurrences`` is how many earlier cases of the same grid and category
    fall within the recurrence window (not counting this event); ``signals``
    what :func:`signals_found` gave, if the caller has it already.
    """
    p = rules.priority
    code = police_code(event, rules)
    reading = read(event, rules)
    if code is not None and code.police_only and code.follow_up:
        now = _going_on(reading, rules)
        if now is not None:  # the police attend, and the danger is happening now
            urgent = p.follow_up_now_priority
            return PriorityDecision(
                priority=urgent, reasons=(f"follow_up:{code.rule}:now:{now}={urgent.label}",)
            )
        return PriorityDecision(
            priority=p.follow_up, reasons=(f"follow_up:{code.rule}={p.follow_up.label}",)
        )
    found = signals_found(event, rules) if signals is None else signals
    persons = persons_involved(event, rules)
    # what the text, the category and the head count say (a settled report caps these) …
    said = _from_text(classification.category, reading, found, persons, rules)
    # … and what the source and the reporter say (never capped)
    told: list[tuple[Priority, str]] = []
    if event.source_priority is not None:
        level = p.source.get(event.source, {}).get(event.source_priority)
        if level is not None:
            name = "jqjb" if event.source is Source.POLICE else "alarm_priority"
            told.append((level, f"{name}:{event.source_priority}"))
    if event.severity_hint:
        try:
            hint = Priority.parse(event.severity_hint)
        except ValueError:
            hint = None
        if hint is not None and hint in p.honour_hints:
            told.append((hint, "severity_hint"))
    priority = min(level for level, _ in said)
    reasons = [f"{why}={level.label}" for level, why in said]
    capped = False
    for marker, cap, name in ((reading.settled, rules.settled_cap, "settled"),
                              (reading.false_alarm, rules.false_alarm_cap, "false_alarm")):
        if marker and cap is not None:
            capped = True  # not an emergency now: the learned check does not raise it
            if priority < cap:
                priority = cap
                reasons.append(f"{name}:{marker}={cap.label}")
    # a P1 the rule table lowered (a crowd found calm, a knife only sold) is its decision
    capped = capped or any(":lowered:" in why for _, why in said)
    learned = rules.learned_priority
    if learned is not None and learned.model is not None and not capped:
        # only a P1 that nothing but the category's default gives may be lowered
        keep = any(level is Priority.P1 and not why.startswith("category:")
                   for level, why in said) or _structured_p1(event, found, rules)
        checked = _second_opinion(learned, priority, learned_features(
            event, reading, classification, found), keep=keep)
        if checked is not None:
            priority, why = checked
            reasons.append(f"{why}={priority.label}")
    if told:
        priority = Priority(min(priority, *(level for level, _ in told)))
        reasons += [f"{why}={level.label}" for level, why in told]
    if is_hot_spot(recurrences, rules):
        priority = Priority(max(Priority.P1, priority - 1))
        days = rules.correlation.recurrence_window_seconds // 86400
        reasons.append(f"hot_spot:{recurrences + 1}x/{days}d+1={priority.label}")
    return PriorityDecision(priority=priority, reasons=tuple(reasons))


def learned_features(event: Event, reading: Reading, classification: Classification,
                     found: dict[str, str]) -> list[str]:
    """What the learned P1 check reads: the text's features (as the category model
    reads them), the signals found and the words that showed them, the category
    and its family. Not the head count: the rule table reads it, and a learned
    weight on it could make more people less urgent."""
    out = features(reading, source=event.source.value, code=event.source_code)
    for name, word in found.items():
        out.append(f"sig:{name}")
        out.append(f"sw:{word}")
    out.append(f"cat:{classification.category}")
    out.append(f"fam:{classification.category[:2]}")
    return list(dict.fromkeys(out))


def p1_probability(learned: LearnedPriority, feats: list[str]) -> float:
    """The learned check's probability that the text reports a P1."""
    assert learned.model is not None
    return learned.model.probabilities(feats)[learned.model.index["P1"]]


def _structured_p1(event: Event, found: dict[str, str], rules: TriageRules) -> bool:
    """A P1 the source's own data shows, not the text: a risk flag of a P1 signal
    (110 ``injured:2``), or a reported head count of a P1 crowd."""
    p = rules.priority
    for name, level in p.signals:
        if level is Priority.P1 and found.get(name) in event.risk_flags:
            return True
    crowd = min((n for n, level in p.persons if level is Priority.P1), default=None)
    return crowd is not None and event.persons is not None and event.persons >= crowd


def _second_opinion(learned: LearnedPriority, priority: Priority, feats: list[str], *,
                    keep: bool = False) -> tuple[Priority, str] | None:
    """The learned check's change to what the text says, and why; None if it agrees.
    ``keep``: a P1 the source's own data shows is not the check's to lower."""
    assert learned.model is not None
    p = p1_probability(learned, feats)
    if priority is Priority.P1 and p < learned.keep_at and not keep:
        level, test = Priority.P2, f"<{learned.keep_at}"
    elif priority is not Priority.P1 and p >= learned.promote_at:
        level, test = Priority.P1, f">={learned.promote_at}"
    else:
        return None
    model = learned.model
    k = model.index["P1"] if level is Priority.P1 else model.index["other"]
    top = ",".join(model.explain(feats, k, top=3))
    return level, f"learned:{model.version}:{p:.2f}{test}[{top}]"


def _from_text(
    category: str,
    reading: Reading,
    found: dict[str, str],
    persons: int | None,
    rules: TriageRules,
) -> list[tuple[Priority, str]]:
    """The category's default, the head count, the signals and vulnerable people."""
    p = rules.priority
    default, _ = p.for_category(category)
    candidates: list[tuple[Priority, str]] = [(default, f"category:{category}")]
    if default is Priority.P1 and not any(found.get(name) for name in p.danger_signals):
        doubt = _potential(reading, rules)
        if doubt is not None:  # a danger named as possible, or denied: a hazard, not an emergency
            candidates[0] = (Priority.P2, f"category:{category}:{doubt}")
    if persons is not None:
        for at_least, level in p.persons:
            if persons >= at_least:
                candidates.append(_lowered(level, f"persons:{persons}>={at_least}", "persons",
                                           reading, rules))
                break
    past = next((word for word in p.past_harm if word in reading.masked), None)
    for name, level in p.signals:
        if name not in found:
            continue
        if past is not None and name in p.past_signals:  # a past harm, now a claim
            candidates.append((max(level, Priority.P2), f"signal:{name}:{found[name]}:{past}"))
            continue
        candidates.append(_lowered(level, f"signal:{name}:{found[name]}", name, reading, rules))
    if default is Priority.P1 and candidates[0][0] is Priority.P1 and not any(
            level is Priority.P1 for level, _ in candidates[1:]):
        # a P1 category whose danger the text shows is not to life now (a knife only
        # sold, a gas smell found to be a drain): the category's P1 goes as its signals'
        phrase = next(filter(None, (_lowering(name, reading, rules)
                                    for name in p.danger_signals if name in found)), None)
        if phrase is not None:
            candidates[0] = (max(default, p.lowered_to), f"category:{category}:lowered:{phrase}")
    vulnerable = rules.vulnerable
    current = min(level for level, _ in candidates)
    if vulnerable is not None and current == vulnerable.raise_from and vulnerable.applies(category):
        word = next((w for w in vulnerable.words if w in reading.masked), None)
        if word is not None:
            candidates.append((vulnerable.raise_to, f"vulnerable:{word}"))
    return candidates


def _lowered(level: Priority, why: str, name: str, reading: Reading,
             rules: TriageRules) -> tuple[Priority, str]:
    """A P1 that a phrase of ``[priority.lowered]`` shows is no danger to life now (a
    crowd found calm, a knife only sold, smoke from burning straw) counts as
    ``lowered.to``, with the phrase recorded; any other level as it is."""
    if level is not Priority.P1:
        return level, why
    phrase = _lowering(name, reading, rules)
    if phrase is None:
        return level, why
    return max(level, rules.priority.lowered_to), f"{why}:lowered:{phrase}"


def _lowering(name: str, reading: Reading, rules: TriageRules) -> str | None:
    """The phrase of ``[priority.lowered]`` for ``name`` in the text, unless the text also
    says the danger is going on (``lowered.unless``: 失控, 叫不醒 …)."""
    p = rules.priority
    phrase = next((w for w in p.lowered.get(name, ()) if w in reading.text), None)
    if phrase is None or any(w in reading.text for w in p.lowered_unless):
        return None
    return phrase


def _going_on(reading: Reading, rules: TriageRules) -> str | None:
    """The word of ``[priority.follow_up_now]`` showing that what the police attend is
    happening now (在打, 救命, 砸门), unless the text says it is over (已出警, 出去了)."""
    p = rules.priority
    if any(word in reading.text for word in p.follow_up_over):
        return None
    return next((word for word in p.follow_up_now if word in reading.masked), None)


def _potential(reading: Reading, rules: TriageRules) -> str | None:
    """Why the danger of a P1 category reads as possible only: a word of
    ``[priority.potential]`` (隐患, 担心 …), or a danger term the text denies."""
    for word in rules.priority.potential:
        if word in reading.masked:
            return f"potential:{word}"
    if reading.negated:
        return f"denied:{reading.negated[0]}"
    return None
