"""Classification (事件分类): which category an event is, and which rule said so.

Order (DOMAIN.md §2), first match wins:

1. the source's own code — the grid platform's taxonomy code, then its
   src_type/src_domain labels; the camera's AI event code, then its GB/T 28181
   AlarmMethod/AlarmType; the 110 报警类型 bjlx (longest prefix);
2. keyword rules over title + text;
3. the fallback 11.00 with a low confidence (→ the operators' 核实 queue).

Coarse codes. Some source codes name only a family: 110 ``600600`` 城管执法
says "city management", not which kind. Such a code has ``refine_within`` in
``codes.toml``: the keyword rules *of that family only* pick the subtype
(``rule="bjlx:600600>keyword:烧烤"`` → 05.09), and the code's own category is
the default when no keyword of the family matches. Keywords of other families
never override a source code.
"""

from __future__ import annotations

from streams.records import Classification, Event, Source
from streams.triage_rules import FALLBACK_CATEGORY, CodeRule, KeywordRule, TriageRules


def classify(event: Event, rules: TriageRules) -> Classification:
    """Classify one event; every decision records its rule and a confidence (0..1)."""
    text = event_text(event)
    found = _source_code(event, rules)
    if found is not None:
        return _from_code(event, found, text, rules)
    hit = best_keyword(text, rules)
    if hit is not None:
        category, score, rule = hit
        return _make(rules, category, score, f"keyword:{rule.label}")
    return _make(rules, FALLBACK_CATEGORY, rules.fallback_confidence, "fallback")


def needs_verification(classification: Classification, rules: TriageRules) -> bool:
    """True when the confidence is below the threshold: the case goes to 核实 first."""
    return classification.confidence < rules.verification_threshold


def police_code(event: Event, rules: TriageRules) -> CodeRule | None:
    """The rule of a 110 referral's 报警类型 bjlx (longest prefix), or None."""
    if event.source is not Source.POLICE or not event.source_code:
        return None
    return rules.police_code(event.source_code)


def event_text(event: Event) -> str:
    """What keyword and signal rules read: title and text."""
    return f"{event.title}\n{event.text}" if event.title else event.text


def best_keyword(
    text: str, rules: TriageRules, *, family: str | None = None
) -> tuple[str, float, KeywordRule] | None:
    """The best-scoring category of the keyword rules (of ``family`` only, if given).

    A category scores its strongest matching rule's weight plus a small bonus
    per further matching rule, capped; ties go to the category listed first.
    Returns (category, score, strongest rule) or None.
    """
    best: dict[str, tuple[float, int, KeywordRule]] = {}  # category → (weight, matches, rule)
    for rule in rules.keywords:
        if family is not None and not rule.category.startswith(family):
            continue
        first, *more = rule.words
        if first in text and (not more or all(word in text for word in more)):
            seen = best.get(rule.category)
            if seen is None:
                best[rule.category] = (rule.weight, 1, rule)
            else:
                top = rule if rule.weight > seen[0] else seen[2]
                best[rule.category] = (max(seen[0], rule.weight), seen[1] + 1, top)
    winner: tuple[str, float, KeywordRule] | None = None
    for category, (weight, matches, rule) in best.items():  # insertion order = file order
        score = min(rules.keyword_max, weight + rules.keyword_bonus * (matches - 1))
        if winner is None or score > winner[1]:
            winner = (category, score, rule)
    return winner


def _source_code(event: Event, rules: TriageRules) -> CodeRule | None:
    """The source's own code rule, in the order of DOMAIN.md §2."""
    if event.source is Source.POLICE:
        return police_code(event, rules)
    if event.source is Source.CAMERA:
        if event.source_code and event.source_code in rules.ai_events:
            return rules.ai_events[event.source_code]
        if event.alarm_method is not None and event.alarm_type is not None:
            return rules.gb28181.get(f"{event.alarm_method}/{event.alarm_type}")
        return None
    own = event.source_category
    if own is not None and own in rules.categories:
        return CodeRule(
            rule=f"grid_category:{own}",
            category=own,
            confidence=rules.platform_category_confidence,
        )
    labelled = [rules.grid_labels[x] for x in event.source_labels if x in rules.grid_labels]
    precise = [rule for rule in labelled if rule.refine_within is None]
    chosen = precise or labelled  # a precise src_type beats a coarse src_domain
    return chosen[0] if chosen else None


def _from_code(event: Event, code: CodeRule, text: str, rules: TriageRules) -> Classification:
    category, confidence, rule = code.category, code.confidence, code.rule
    if code.refine_within is not None:
        hit = best_keyword(text, rules, family=code.refine_within)
        if hit is not None:
            category, score, keyword = hit
            confidence = max(confidence, score)
            rule = f"{code.rule}>keyword:{keyword.label}"
    if event.source is Source.CAMERA and event.ai_confidence is not None:
        confidence = min(confidence, event.ai_confidence)
    return _make(rules, category, confidence, rule)


def _make(rules: TriageRules, category: str, confidence: float, rule: str) -> Classification:
    return Classification(
        category=category, name=rules.name_of(category), confidence=round(confidence, 3), rule=rule
    )
