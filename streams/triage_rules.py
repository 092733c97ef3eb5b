"""Triage rules (分类、定级、分流、关联规则): loaded from TOML and validated once.

The rule files live in one directory (``GRIDLINK_RULES_DIR``; the project's
``rules/`` is the shipped default):

- ``taxonomy.toml`` — categories (domain.subtype) and their families;
- ``codes.toml`` — the sources' own codes → category (110 bjlx, camera AI
  events, GB/T 28181 method/type, the grid app's labels);
- ``keywords.toml`` — Chinese keyword rules → category, with weights;
- ``routing.toml`` — category → lead and supporting departments, entry levels;
- ``triage.toml`` — verification threshold, signals (word lists), priority
  rules, escalation on entry, correlation windows, recurrence, de-duplication,
  and the ``[classifier]`` section naming the files below;
- ``classifier/lexicon.toml`` — negation cues and terms, settled markers
  (:mod:`streams.text`); ``classifier/userdict.txt`` — the segmenter's
  dictionary of governance terms; ``classifier/model.json`` — the learned
  model (:mod:`streams.model`), written by ``gridlink classifier train``.

``load_triage_rules`` raises :class:`RulesError` naming the file and the entry
for anything inconsistent: an unknown category or department, a bad number,
overlapping rows. Everything else in triage takes the loaded ``TriageRules``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property, lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from streams.errors import RulesError
from streams.model import MODEL_FORMAT, ModelFile, TextModel
from streams.records import Level, Priority, Source
from streams.text import Lexicon

#: Department codes of docs/domain.md §3; ``township`` is the 属地 township of the case.
DOMAIN_DEPARTMENTS: frozenset[str] = frozenset(
    {
        "gongan",
        "xinfang",
        "zrzy",
        "chengguan",
        "yingji",
        "xiaofang",
        "zhujian",
        "weijian",
        "minzheng",
        "sifa",
        "sthj",
        "renshe",
        "scjg",
        "shuiwu",
        "gongyong",
        "jiaotong",
        "jiaoyu",
        "tuanwei",
        "tyjr",
        "minzong",
        "zhongzhi",
        "township",
    }
)
TOWNSHIP = "township"
FALLBACK_CATEGORY = "11.00"

_CATEGORY_RE = re.compile(r"^[0-9]{2}\.[0-9]{2}$")
_FAMILY_RE = re.compile(r"^[0-9]{2}$")
_LEVELS = {
    "city": Level.CITY,
    "county": Level.COUNTY,
    "township": Level.TOWNSHIP,
    "community": Level.COMMUNITY,
    "grid": Level.GRID,
}


# --------------------------------------------------------------------------- records


class Category(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # "05.03"
    family: str  # "05"
    name_zh: str
    name_en: str


class CodeRule(msgspec.Struct, frozen=True, kw_only=True):
    """One source code → category (来源编码映射)."""

    rule: (
        str  # "bjlx:600600", "bjlx:4xxxxx", "ai_event:smoke", "gb28181:5/6", "grid_label:邻里纠纷"
    )
    category: str
    confidence: float
    refine_within: str | None = None  # coarse code: keywords of this family pick the subtype
    police_only: bool = False  # 110: stays with the police, not dispatched
    follow_up: bool = False  # 110 police-only: a follow-up case for the routing row's follow_up


class KeywordRule(msgspec.Struct, frozen=True, kw_only=True):
    """``"分居+!部分居民" = 0.8``: every word of ``words`` occurs, none of ``unless``
    (a context in which the words mean something else)."""

    category: str
    words: tuple[str, ...]  # all must occur
    weight: float
    unless: tuple[str, ...] = ()  # none may occur

    @property
    def label(self) -> str:
        return "+".join(self.words)


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A named set of words and risk flags (聚集/横幅 → gathering).

    With ``together``, a word shows the signal only when one of those words
    occurs too (冒烟 with 老人 or 屋里有人: smoke where people are)."""

    name: str
    words: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    together: tuple[str, ...] = ()

    def find(self, text: str, flags: Iterable[str] = ()) -> str | None:
        """The first risk flag or word showing this signal, or None; ``word+other``
        for a signal whose words count only ``together`` with another.

        A flag ``name:count`` (110 hazards ``injured:2``) matches the listed ``name``.
        """
        for flag in flags:
            if flag in self.flags or flag.partition(":")[0] in self.flags:
                return flag
        if not self.words:
            return None
        words, unless = _patterns(self.words, self.unless)
        for phrase in unless:  # longest first: a phrase inside another goes with it
            if phrase in text:
                text = text.replace(phrase, "\u0000")
        found: list[str] = words.findall(text)
        if not found:
            return None
        word = min(found, key=self.words.index)  # the first listed of the words found
        if not self.together:
            return word
        other = next((w for w in self.together if w in text), None)
        return None if other is None else f"{word}+{other}"


@lru_cache(maxsize=256)
def _patterns(
    words: tuple[str, ...], unless: tuple[str, ...]
) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A signal's words as one alternation, and its 'unless' phrases longest first."""
    longest_first = sorted(set(words), key=len, reverse=True)
    return (
        re.compile("|".join(map(re.escape, longest_first))),
        tuple(sorted(set(unless), key=len, reverse=True)),
    )


class RouteRule(msgspec.Struct, frozen=True, kw_only=True):
    rule: str  # "routing:01.01,01.02,01.03"
    lead: str
    supports: tuple[str, ...] = ()
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (signal, departments)
    follow_up: str | None = None


class PriorityRules(msgspec.Struct, frozen=True, kw_only=True):
    default: Priority
    by_category: dict[str, Priority]  # category or family → default priority
    signals: tuple[tuple[str, Priority], ...]
    source: dict[Source, dict[int, Priority]]  # source's own level → priority
    persons: tuple[tuple[int, Priority], ...]  # (at_least, priority), largest first
    honour_hints: frozenset[Priority]
    follow_up: Priority
    danger_signals: tuple[str, ...] = ()  # a P1 category without any of these may be doubted
    potential: tuple[str, ...] = ()  # words naming a danger as possible (隐患, 担心 …)
    past_harm: tuple[str, ...] = ()  # a harm reported as past and claimed for (赔偿 …)
    past_signals: tuple[str, ...] = ()  # the signals such a report does not count
    # signal name (or "persons") → phrases showing its danger is not to life now
    lowered: dict[str, tuple[str, ...]] = {}
    lowered_to: Priority = Priority.P2
    lowered_unless: tuple[str, ...] = ()  # phrases of a danger going on: nothing is lowered
    # a follow-up case whose text says the danger is going on (在打, 救命 …) is this urgent
    follow_up_now: tuple[str, ...] = ()
    follow_up_over: tuple[str, ...] = ()  # … unless it says it is over (已出警, 出去了 …)
    follow_up_now_priority: Priority = Priority.P1

    def for_category(self, code: str) -> tuple[Priority, str]:
        """The category's default priority and the key that gave it."""
        for key in (code, code[:2]):
            if key in self.by_category:
                return self.by_category[key], key
        return self.default, "default"


class LearnedPriority(msgspec.Struct, frozen=True, kw_only=True):
    """The learned P1 check (triage.toml [priority.learned]): a second opinion on
    whether the text reports a danger happening now."""

    model_file: str  # relative to the rules directory
    promote_at: float  # a text the rules do not make P1 becomes P1 when at least this likely
    keep_at: float  # a P1 from the text stays P1 only when at least this likely
    model: TextModel | None = None  # None when loaded without models (to train one)


class VulnerableRule(msgspec.Struct, frozen=True, kw_only=True):
    """Vulnerable people (老人, 儿童, 孕妇 …) named in the text raise ``raise_from`` to
    ``raise_to`` in the listed categories or families."""

    words: tuple[str, ...]
    raise_from: Priority
    raise_to: Priority
    categories: tuple[str, ...]

    def applies(self, category: str) -> bool:
        return any(category == key or category[:2] == key for key in self.categories)


class EscalationRules(msgspec.Struct, frozen=True, kw_only=True):
    level_up_signals: tuple[str, ...]
    level_up_categories: frozenset[str]
    township_from_persons: int


class CorrelationRules(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    radius_m: float
    window_seconds: dict[int, int]  # priority value (1 = P1) → join window
    join_within_family: frozenset[str]
    compatible: tuple[tuple[str, str], ...]
    repeat_alarm_window_seconds: int
    lateness_seconds: int  # how long past its window an open case is kept for late events
    recurrence_window_seconds: int
    recurrence_threshold: int
    dedup_retention_seconds: int
    dedup_max_ids: int
    # the taxonomy's category codes: compatibility among them is expanded once
    # (``compatible_with``); codes outside it are checked by the definition
    categories: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # expand at load (and on every replace/decode, so it never goes stale)
        self.compatible_with  # noqa: B018

    @cached_property
    def compatible_with(self) -> dict[str, frozenset[str]]:
        """Category → the categories of the taxonomy compatible with it (itself included).

        Derived from ``join_within_family`` and ``compatible`` over ``categories``;
        not a field (not encoded, not compared)."""
        return expand_compatibility(self.categories, self.join_within_family, self.compatible)

    def compatible_categories(self, a: str, b: str) -> bool:
        """True when events of categories ``a`` and ``b`` may be one incident."""
        row = self.compatible_with.get(a)
        if row is not None:
            if b in row:
                return True
            if b in self.categories:
                return False
        return compatible_by_definition(a, b, self.join_within_family, self.compatible)


def compatible_by_definition(
    a: str, b: str, join_within_family: frozenset[str], compatible: Iterable[tuple[str, str]]
) -> bool:
    """Compatibility of two category codes as ``triage.toml`` [correlation] defines it:
    the same category; the same family, for families in ``join_within_family``; or
    a listed pair, either way round, each side a category or a whole family."""
    if a == b or (a[:2] == b[:2] and a[:2] in join_within_family):
        return True
    for x, y in compatible:
        if (_covers(x, a) and _covers(y, b)) or (_covers(x, b) and _covers(y, a)):
            return True
    return False


def expand_compatibility(
    categories: Iterable[str],
    join_within_family: frozenset[str],
    compatible: Iterable[tuple[str, str]],
) -> dict[str, frozenset[str]]:
    """Every category → the frozenset of ``categories`` compatible with it."""
    codes = sorted(set(categories))
    pairs = tuple(compatible)
    return {
        a: frozenset(b for b in codes if compatible_by_definition(a, b, join_within_family, pairs))
        for a in codes
    }


class ClassifierRules(msgspec.Struct, frozen=True, kw_only=True):
    """How keyword rules, source codes and the learned model combine (triage.toml [classifier])."""

    rules_win: float  # a keyword score this high decides, whatever the model says
    overrule_at: float  # a keyword score this high in another family overrules a source code
    model_min: float  # below this probability the model's guess is not used
    family_keyword_win: float = 0.7  # within a coarse code's family, this keyword score decides
    model_guess_min: float = 0.1  # without any keyword, a guess this likely is suggested (核实)
    model_file: str = ""  # relative to the rules directory, "" without a model


class TriageRules(msgspec.Struct, frozen=True, kw_only=True):
    categories: dict[str, Category]
    families: dict[str, str]  # "05" → 城市管理
    police_codes: dict[str, CodeRule]  # bjlx prefix → rule
    ai_events: dict[str, CodeRule]
    gb28181: dict[str, CodeRule]  # "5/6" → rule
    grid_labels: dict[str, CodeRule]
    platform_category_confidence: float  # the grid platform's own taxonomy code ("05.03")
    keywords: tuple[KeywordRule, ...]
    keyword_bonus: float
    keyword_max: float
    signals: dict[str, Signal]
    routes: dict[str, RouteRule]  # category → its row (family rows expanded)
    fallback_lead: str
    entry_levels: dict[Source, Level]
    priority: PriorityRules
    escalation: EscalationRules
    correlation: CorrelationRules
    verification_threshold: float
    fallback_confidence: float
    departments: frozenset[str]
    classifier: ClassifierRules
    lexicon: Lexicon
    # a P1 of unknown category: supports of the fallback lead per signal (routing.toml)
    provisional_when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    model: TextModel | None = None
    # keyword-rule words by their first character, and rule indexes by their first word:
    # a text is scanned once for the words it can hold
    keyword_index: dict[str, tuple[str, ...]] = {}
    keyword_rules: dict[str, tuple[int, ...]] = {}
    # priorities from text: vulnerable people and settled reports (triage.toml [priority.*])
    vulnerable: VulnerableRule | None = None
    settled_cap: Priority | None = None
    false_alarm_cap: Priority | None = None
    learned_priority: LearnedPriority | None = None
    person_nouns: tuple[str, ...] = ()

    def police_code(self, bjlx: str) -> CodeRule | None:
        """The 110 code rule of the longest matching prefix."""
        for n in range(len(bjlx), 0, -1):
            rule = self.police_codes.get(bjlx[:n])
            if rule is not None:
                return rule
        return None

    def name_of(self, category: str) -> str:
        found = self.categories.get(category)
        return found.name_zh if found else category


def _covers(pattern: str, code: str) -> bool:
    return code == pattern or (len(pattern) == 2 and code[:2] == pattern)


# --------------------------------------------------------------------------- loading


class _File:
    """One rule file, with errors that name it and the entry."""

    def __init__(self, rules_dir: Path, name: str) -> None:
        self.name = name
        path = rules_dir / name
        try:
            with path.open("rb") as fh:
                self.data: dict[str, Any] = tomllib.load(fh)
        except FileNotFoundError:
            raise RulesError(f"{name}: missing from rules directory {rules_dir}") from None
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{name}: not valid TOML: {exc}", field=name) from None

    def fail(self, entry: str, message: str) -> NoReturn:
        raise RulesError(f"{self.name}: {entry}: {message}", field=f"{self.name}:{entry}")

    def table(self, value: Any, entry: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(entry, f"expected a table, got {value!r}")
        return value

    def section(self, *path: str, required: bool = True) -> dict[str, Any]:
        node: Any = self.data
        for i, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                if not required:
                    return {}
                self.fail(".".join(path[: i + 1]), "missing")
            node = node[key]
        return self.table(node, ".".join(path))

    def strings(self, value: Any, entry: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(entry, f"expected a list of non-empty strings, got {value!r}")
        return tuple(value)

    def number(self, value: Any, entry: str, *, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            self.fail(entry, f"expected a number in [{low}, {high}], got {value!r}")
        return float(value)

    def integer(self, value: Any, entry: str, *, low: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(entry, f"expected an integer >= {low}, got {value!r}")
        return value

    def priority(self, value: Any, entry: str) -> Priority:
        try:
            return Priority.parse(str(value))
        except ValueError:
            self.fail(entry, f"expected P1..P4, got {value!r}")

    def only_keys(self, table: Mapping[str, Any], allowed: set[str], entry: str) -> None:
        unknown = set(table) - allowed
        if unknown:
            self.fail(entry, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def load_triage_rules(
    rules_dir: Path, *, departments: Iterable[str] | None = None, with_model: bool = True
) -> TriageRules:
    """Load and validate the triage rule files in ``rules_dir``.

    ``departments`` is the city's department list (e.g. the reference data's
    codes); by default the codes of docs/domain.md §3. ``with_model`` False leaves
    the learned model out (to train a new one). Raises ``RulesError``.
    """
    rules_dir = Path(rules_dir)
    known = frozenset(departments) if departments is not None else DOMAIN_DEPARTMENTS
    categories, families = _load_taxonomy(_File(rules_dir, "taxonomy.toml"))
    keywords, bonus, cap = _load_keywords(_File(rules_dir, "keywords.toml"), categories)
    triage = _File(rules_dir, "triage.toml")
    signals = _load_signals(triage)
    routing_file = _File(rules_dir, "routing.toml")
    routes, fallback, entry = _load_routing(routing_file, categories, families, known, signals)
    provisional_when = _load_provisional(routing_file, known, signals)
    codes = _File(rules_dir, "codes.toml")
    police = _load_codes(codes, "police", "bjlx", categories, families, routes)
    ai_events = _load_codes(codes, "camera", "ai_event", categories, families, routes)
    gb28181 = _load_codes(codes, "camera", "gb28181", categories, families, routes)
    labels = _load_codes(codes, "grid", "labels", categories, families, routes)
    platform_confidence = codes.number(
        codes.section("grid").get("confidence", 0.9), "grid.confidence", low=0.0, high=1.0
    )
    verification = triage.section("verification")
    threshold = triage.number(
        verification.get("confidence_threshold"),
        "verification.confidence_threshold",
        low=0.0,
        high=1.0,
    )
    fallback_confidence = triage.number(
        verification.get("fallback_confidence"),
        "verification.fallback_confidence",
        low=0.0,
        high=1.0,
    )
    if fallback_confidence >= threshold:
        triage.fail("verification.fallback_confidence", "must be below confidence_threshold")
    classifier = _load_classifier(triage)
    lexicon = _load_lexicon(rules_dir, triage)
    model = (
        _load_model(rules_dir, classifier.model_file, categories)
        if classifier.model_file and with_model
        else None
    )
    vulnerable, settled_cap, false_alarm_cap, nouns = _load_text_priority(
        triage, categories, families)
    learned = _load_learned_priority(rules_dir, triage, with_model=with_model)
    return TriageRules(
        categories=categories,
        families=families,
        police_codes=police,
        ai_events=ai_events,
        gb28181=gb28181,
        grid_labels=labels,
        platform_category_confidence=platform_confidence,
        keywords=keywords,
        keyword_bonus=bonus,
        keyword_max=cap,
        signals=signals,
        routes=routes,
        fallback_lead=fallback,
        entry_levels=entry,
        priority=_load_priority(triage, categories, families, signals),
        escalation=_load_escalation(triage, categories, signals),
        correlation=_load_correlation(triage, categories, families),
        verification_threshold=threshold,
        fallback_confidence=fallback_confidence,
        departments=known,
        classifier=classifier,
        lexicon=lexicon,
        model=model,
        keyword_index=_by_first_character(w for rule in keywords for w in rule.words),
        keyword_rules=_by_first_word(keywords),
        vulnerable=vulnerable,
        settled_cap=settled_cap,
        false_alarm_cap=false_alarm_cap,
        learned_priority=learned,
        person_nouns=nouns,
        provisional_when=provisional_when,
    )


def _load_provisional(
    f: _File, known: frozenset[str], signals: Mapping[str, Signal]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    table = f.section("provisional", required=False)
    f.only_keys(table, {"when"}, "provisional")
    out = []
    for signal, departments in f.table(table.get("when", {}), "provisional.when").items():
        if signal not in signals:
            f.fail(f"provisional.when.{signal}", "unknown signal (not in triage.toml [signals])")
        listed = f.strings(departments, f"provisional.when.{signal}")
        for dept in listed:
            _check_department(f, dept, f"provisional.when.{signal}", known - {TOWNSHIP})
        out.append((signal, listed))
    return tuple(out)


def _by_first_character(words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for word in dict.fromkeys(words):
        index.setdefault(word[0], []).append(word)
    return {ch: tuple(found) for ch, found in index.items()}


def _by_first_word(keywords: Sequence[KeywordRule]) -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for i, rule in enumerate(keywords):
        index.setdefault(rule.words[0], []).append(i)
    return {word: tuple(found) for word, found in index.items()}


def _load_classifier(f: _File) -> ClassifierRules:
    table = f.section("classifier")
    f.only_keys(table, {"lexicon", "model", "rules_win", "overrule_at", "model_min",
                        "family_keyword_win", "model_guess_min"}, "classifier")
    model = table.get("model", "")
    if not isinstance(model, str):
        f.fail("classifier.model", f"expected a file name, got {model!r}")
    return ClassifierRules(
        rules_win=f.number(table.get("rules_win"), "classifier.rules_win", low=0.0, high=1.0),
        overrule_at=f.number(table.get("overrule_at"), "classifier.overrule_at", low=0.0,
                             high=1.0),
        model_min=f.number(table.get("model_min"), "classifier.model_min", low=0.0, high=1.0),
        family_keyword_win=f.number(table.get("family_keyword_win", 0.7),
                                    "classifier.family_keyword_win", low=0.0, high=1.0),
        model_guess_min=f.number(table.get("model_guess_min", 0.1),
                                 "classifier.model_guess_min", low=0.0, high=1.0),
        model_file=model,
    )


def _load_lexicon(rules_dir: Path, triage: _File) -> Lexicon:
    name = triage.section("classifier").get("lexicon")
    if not isinstance(name, str) or not name:
        triage.fail("classifier.lexicon", f"expected a file name, got {name!r}")
    f = _File(rules_dir, name)
    negation = f.section("negation")
    f.only_keys(negation, {"cues", "scope_chars", "clause_breaks", "negatable", "unless"},
                "negation")
    settled = f.section("settled")
    f.only_keys(settled, {"markers", "unless"}, "settled")
    false_alarm = f.section("false_alarm", required=False) or {}
    f.only_keys(false_alarm, {"markers", "unless"}, "false_alarm")
    breaks = negation.get("clause_breaks")
    if not isinstance(breaks, str) or not breaks:
        f.fail("negation.clause_breaks", "expected a string of characters")
    userdict = rules_dir / (Path(name).parent / "userdict.txt")
    if not userdict.exists():
        raise RulesError(f"{userdict.name}: missing beside {name} in rules directory {rules_dir}")
    _check_userdict(userdict)
    return Lexicon(
        userdict=userdict,
        negation_cues=f.strings(negation.get("cues"), "negation.cues"),
        negatable=f.strings(negation.get("negatable"), "negation.negatable"),
        scope_chars=f.integer(negation.get("scope_chars"), "negation.scope_chars"),
        clause_breaks=breaks,
        settled=f.strings(settled.get("markers"), "settled.markers"),
        not_settled=f.strings(settled.get("unless", []), "settled.unless"),
        not_negation=f.strings(negation.get("unless", []), "negation.unless"),
        false_alarm=f.strings(false_alarm.get("markers", []), "false_alarm.markers"),
        not_false_alarm=f.strings(false_alarm.get("unless", []), "false_alarm.unless"),
    )


def _check_userdict(path: Path) -> None:
    """jieba's format: ``word [frequency] [tag]`` a line."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 3 or (len(parts) > 1 and not parts[1].isdigit()):
            raise RulesError(f"{path.name}: line {number}: expected 'word [frequency] [tag]', "
                             f"got {line!r}", field=f"{path.name}:{number}")


def _load_learned_priority(rules_dir: Path, f: _File, *,
                           with_model: bool) -> LearnedPriority | None:
    table = f.section("priority", "learned", required=False)
    if not table:
        return None
    f.only_keys(table, {"model", "promote_at", "keep_at"}, "priority.learned")
    name = table.get("model")
    if not isinstance(name, str) or not name:
        f.fail("priority.learned.model", f"expected a file name, got {name!r}")
    promote_at = f.number(table.get("promote_at"), "priority.learned.promote_at",
                          low=0.0, high=1.0)
    keep_at = f.number(table.get("keep_at"), "priority.learned.keep_at", low=0.0, high=1.0)
    if keep_at > promote_at:
        f.fail("priority.learned.keep_at", "must not be above promote_at")
    model = None
    if with_model:
        model = _load_model(rules_dir, name, {"P1": None, "other": None},
                            what="classes (expected P1 and other)")
        if list(model.classes) != ["P1", "other"]:
            raise RulesError(f"{name}: classes: expected ['P1', 'other'], got "
                             f"{list(model.classes)}", field=f"{name}:classes")
    return LearnedPriority(model_file=name, promote_at=promote_at, keep_at=keep_at, model=model)


def _load_model(rules_dir: Path, name: str, categories: Mapping[str, Any], *,
                what: str = "categories") -> TextModel:
    path = rules_dir / name
    try:
        data = msgspec.json.decode(path.read_bytes(), type=ModelFile)
    except FileNotFoundError:
        raise RulesError(f"{name}: missing from rules directory {rules_dir} "
                         "(train one: gridlink classifier train)") from None
    except msgspec.ValidationError as exc:
        raise RulesError(f"{name}: not a model file: {exc}", field=name) from None
    if data.format != MODEL_FORMAT:
        raise RulesError(f"{name}: format {data.format!r}, expected {MODEL_FORMAT!r}", field=name)
    unknown = [code for code in data.classes if code not in categories]
    if unknown:
        where = " (not in taxonomy.toml)" if what == "categories" else ""
        raise RulesError(f"{name}: classes: unknown {what} {unknown}{where}",
                         field=f"{name}:classes")
    if len(data.bias) != len(data.classes):
        raise RulesError(f"{name}: bias: {len(data.bias)} values for {len(data.classes)} classes",
                         field=f"{name}:bias")
    for feature, row in data.weights.items():
        if any(not 0 <= k < len(data.classes) for k, _ in row):
            raise RulesError(f"{name}: weights.{feature}: class index out of range",
                             field=f"{name}:weights")
    return TextModel.from_file(data)


def _load_text_priority(
    f: _File, categories: Mapping[str, Category], families: Mapping[str, str]
) -> tuple[VulnerableRule | None, Priority | None, Priority | None, tuple[str, ...]]:
    vulnerable = None
    table = f.section("priority", "vulnerable", required=False)
    if table:
        f.only_keys(table, {"words", "raise_from", "raise_to", "categories"},
                    "priority.vulnerable")
        keys = f.strings(table.get("categories"), "priority.vulnerable.categories")
        for key in keys:
            if key not in categories and key not in families:
                f.fail("priority.vulnerable.categories", f"unknown category or family {key!r}")
        vulnerable = VulnerableRule(
            words=f.strings(table.get("words"), "priority.vulnerable.words"),
            raise_from=f.priority(table.get("raise_from"), "priority.vulnerable.raise_from"),
            raise_to=f.priority(table.get("raise_to"), "priority.vulnerable.raise_to"),
            categories=keys,
        )
    settled = f.section("priority", "settled", required=False)
    cap = None
    if settled:
        f.only_keys(settled, {"at_most"}, "priority.settled")
        cap = f.priority(settled.get("at_most"), "priority.settled.at_most")
    false_alarm = f.section("priority", "false_alarm", required=False)
    false_cap = None
    if false_alarm:
        f.only_keys(false_alarm, {"at_most"}, "priority.false_alarm")
        false_cap = f.priority(false_alarm.get("at_most"), "priority.false_alarm.at_most")
    persons = f.section("persons", required=False)
    nouns: tuple[str, ...] = ()
    if persons:
        f.only_keys(persons, {"nouns"}, "persons")
        nouns = f.strings(persons.get("nouns"), "persons.nouns")
    return vulnerable, cap, false_cap, nouns


def _load_taxonomy(f: _File) -> tuple[dict[str, Category], dict[str, str]]:
    families: dict[str, str] = {}
    for code, entry in f.section("family").items():
        where = f"family.{code}"
        entry = f.table(entry, where)
        if not _FAMILY_RE.match(code):
            f.fail(where, "a family is 2 digits")
        if not isinstance(entry.get("zh"), str) or not isinstance(entry.get("en"), str):
            f.fail(where, "needs zh and en names")
        families[code] = entry["zh"]
    categories: dict[str, Category] = {}
    for code, entry in f.section("category").items():
        where = f"category.{code}"
        entry = f.table(entry, where)
        f.only_keys(entry, {"family", "zh", "en"}, where)
        if not _CATEGORY_RE.match(code):
            f.fail(where, "a category code is NN.NN")
        if entry.get("family") != code[:2]:
            f.fail(where, f"family must be {code[:2]!r}, got {entry.get('family')!r}")
        if code[:2] not in families:
            f.fail(where, f"family {code[:2]} is not listed under [family]")
        zh, en = entry.get("zh"), entry.get("en")
        if not (isinstance(zh, str) and zh and isinstance(en, str) and en):
            f.fail(where, "needs non-empty zh and en names")
        categories[code] = Category(code=code, family=code[:2], name_zh=zh, name_en=en)
    if FALLBACK_CATEGORY not in categories:
        f.fail(f"category.{FALLBACK_CATEGORY}", "the fallback category must exist")
    return categories, families


def _load_keywords(
    f: _File, categories: Mapping[str, Category]
) -> tuple[tuple[KeywordRule, ...], float, float]:
    scoring = f.section("scoring")
    bonus = f.number(
        scoring.get("bonus_per_extra_rule"), "scoring.bonus_per_extra_rule", low=0.0, high=0.5
    )
    cap = f.number(scoring.get("max_confidence"), "scoring.max_confidence", low=0.0, high=1.0)
    rules: list[KeywordRule] = []
    for category, table in f.section("keywords").items():
        where = f"keywords.{category}"
        if category not in categories:
            f.fail(where, "unknown category (not in taxonomy.toml)")
        for key, weight in f.table(table, where).items():
            parts = tuple(w.strip() for w in key.split("+"))
            if not all(part.lstrip("!") for part in parts):
                f.fail(f"{where}.{key}", "empty word in a '+' rule")
            words = tuple(part for part in parts if not part.startswith("!"))
            unless = tuple(part[1:] for part in parts if part.startswith("!"))
            if not words:
                f.fail(f"{where}.{key}", "a rule needs a word that must occur, not only '!' words")
            value = f.number(weight, f"{where}.{key}", low=0.01, high=1.0)
            rules.append(KeywordRule(category=category, words=words, weight=value,
                                     unless=unless))
    if not rules:
        f.fail("keywords", "no keyword rules")
    return tuple(rules), bonus, cap


def _load_signals(f: _File) -> dict[str, Signal]:
    signals: dict[str, Signal] = {}
    for name, entry in f.section("signals").items():
        where = f"signals.{name}"
        entry = f.table(entry, where)
        f.only_keys(entry, {"words", "flags", "unless", "together"}, where)
        signal = Signal(
            name=name,
            words=f.strings(entry.get("words", []), f"{where}.words"),
            flags=f.strings(entry.get("flags", []), f"{where}.flags"),
            unless=f.strings(entry.get("unless", []), f"{where}.unless"),
            together=f.strings(entry.get("together", []), f"{where}.together"),
        )
        if not signal.words and not signal.flags:
            f.fail(where, "needs words or flags")
        if signal.together and not signal.words:
            f.fail(f"{where}.together", "needs words to go together with")
        signals[name] = signal
    return signals


def _check_department(f: _File, code: Any, where: str, known: frozenset[str]) -> str:
    if code not in known:
        f.fail(where, f"unknown department {code!r} (known: {', '.join(sorted(known))})")
    return str(code)


def _load_routing(
    f: _File,
    categories: Mapping[str, Category],
    families: Mapping[str, str],
    known: frozenset[str],
    signals: Mapping[str, Signal],
) -> tuple[dict[str, RouteRule], str, dict[Source, Level]]:
    entry_table = f.section("entry")
    entry: dict[Source, Level] = {}
    for source in Source:
        name = entry_table.get(source.value)
        if name not in _LEVELS:
            f.fail(f"entry.{source.value}", f"expected one of {list(_LEVELS)}, got {name!r}")
        entry[source] = _LEVELS[name]
    fallback = _check_department(
        f, f.section("fallback").get("lead"), "fallback.lead", known - {TOWNSHIP}
    )
    rows = f.data.get("route")
    if not isinstance(rows, list) or not rows:
        f.fail("route", "expected [[route]] rows")
    by_code: dict[str, RouteRule] = {}
    by_family: dict[str, RouteRule] = {}
    for i, row in enumerate(rows):
        where = f"route #{i + 1}"
        row = f.table(row, where)
        f.only_keys(row, {"categories", "lead", "supports", "when", "follow_up"}, where)
        codes = f.strings(row.get("categories"), f"{where}.categories")
        where = f"route #{i + 1} ({', '.join(codes)})"
        lead = _check_department(f, row.get("lead"), f"{where}.lead", known)
        supports = f.strings(row.get("supports", []), f"{where}.supports")
        for dept in supports:
            _check_department(f, dept, f"{where}.supports", known)
        if lead in supports or len(set(supports)) != len(supports):
            f.fail(f"{where}.supports", "must not repeat a department or name the lead")
        when: list[tuple[str, tuple[str, ...]]] = []
        for signal, depts in f.table(row.get("when", {}), f"{where}.when").items():
            if signal not in signals:
                f.fail(f"{where}.when.{signal}", "unknown signal (not in triage.toml [signals])")
            listed = f.strings(depts, f"{where}.when.{signal}")
            for dept in listed:
                _check_department(f, dept, f"{where}.when.{signal}", known)
            when.append((signal, listed))
        follow_up = row.get("follow_up")
        if follow_up is not None:
            follow_up = _check_department(f, follow_up, f"{where}.follow_up", known)
        rule = RouteRule(
            rule="routing:" + ",".join(codes),
            lead=lead,
            supports=supports,
            when=tuple(when),
            follow_up=follow_up,
        )
        for code in codes:
            target = by_family if _FAMILY_RE.match(code) else by_code
            if code not in categories and code not in families:
                f.fail(where, f"unknown category {code!r} (not in taxonomy.toml)")
            if code in target:
                f.fail(where, f"{code} already routed by {target[code].rule}")
            target[code] = rule
    routes = {
        code: by_code.get(code) or by_family[category.family]
        for code, category in categories.items()
        if code in by_code or category.family in by_family
    }
    return routes, fallback, entry


def _load_codes(
    f: _File,
    source: str,
    kind: str,
    categories: Mapping[str, Category],
    families: Mapping[str, str],
    routes: Mapping[str, RouteRule],
) -> dict[str, CodeRule]:
    section = f.section(source)
    default = f.number(section.get("confidence", 0.9), f"{source}.confidence", low=0.0, high=1.0)
    prefix = {"bjlx": "bjlx", "ai_event": "ai_event", "gb28181": "gb28181", "labels": "grid_label"}
    out: dict[str, CodeRule] = {}
    for key, entry in f.section(source, kind).items():
        where = f"{source}.{kind}.{key}"
        entry = {"category": entry} if isinstance(entry, str) else f.table(entry, where)
        f.only_keys(
            entry,
            {"category", "refine_within", "confidence", "name", "police_only", "follow_up"},
            where,
        )
        category = entry.get("category")
        if not isinstance(category, str) or category not in categories:
            f.fail(where, f"unknown category {category!r} (not in taxonomy.toml)")
        refine = entry.get("refine_within")
        if refine is not None and (refine not in families or category[:2] != refine):
            f.fail(where, f"refine_within must be the family of {category}, got {refine!r}")
        police_only = entry.get("police_only", False)
        follow_up = entry.get("follow_up", False)
        if not isinstance(police_only, bool) or not isinstance(follow_up, bool):
            f.fail(where, "police_only and follow_up are true or false")
        if (police_only or follow_up) and source != "police":
            f.fail(where, "police_only / follow_up apply to 110 codes only")
        if follow_up and not police_only:
            f.fail(where, "follow_up needs police_only = true")
        if follow_up and (category not in routes or routes[category].follow_up is None):
            f.fail(where, f"follow_up: routing.toml names no follow_up department for {category}")
        label = key
        if kind == "bjlx":
            if not key.isdigit() or not 1 <= len(key) <= 6:
                f.fail(where, "a bjlx key is a code prefix of 1 to 6 digits")
            label = key + "x" * (6 - len(key))
        if kind == "gb28181":
            parts = key.split("/")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                f.fail(where, "a GB/T 28181 key is 'AlarmMethod/AlarmType', e.g. '5/6'")
        confidence = f.number(
            entry.get("confidence", default), f"{where}.confidence", low=0.0, high=1.0
        )
        out[key] = CodeRule(
            rule=f"{prefix[kind]}:{label}",
            category=category,
            confidence=confidence,
            refine_within=refine,
            police_only=police_only,
            follow_up=follow_up,
        )
    return out


def _load_priority(
    f: _File,
    categories: Mapping[str, Category],
    families: Mapping[str, str],
    signals: Mapping[str, Signal],
) -> PriorityRules:
    table = f.section("priority")
    by_category: dict[str, Priority] = {}
    for key, value in f.section("priority", "category").items():
        if key not in categories and key not in families:
            f.fail(f"priority.category.{key}", "unknown category or family")
        by_category[key] = f.priority(value, f"priority.category.{key}")
    by_signal = []
    for name, value in f.section("priority", "signals").items():
        if name not in signals:
            f.fail(f"priority.signals.{name}", "unknown signal (not in [signals])")
        by_signal.append((name, f.priority(value, f"priority.signals.{name}")))
    source: dict[Source, dict[int, Priority]] = {}
    for name, levels in f.section("priority", "source", required=False).items():
        where = f"priority.source.{name}"
        if name not in {s.value for s in Source}:
            f.fail(where, f"unknown source; one of {[s.value for s in Source]}")
        mapped: dict[int, Priority] = {}
        for level, value in f.table(levels, where).items():
            if not level.isdigit():
                f.fail(f"{where}.{level}", "a source level is a number")
            mapped[int(level)] = f.priority(value, f"{where}.{level}")
        source[Source(name)] = mapped
    persons: list[tuple[int, Priority]] = []
    rows = table.get("persons", [])
    if not isinstance(rows, list):
        f.fail("priority.persons", "expected [[priority.persons]] rows")
    for i, row in enumerate(rows):
        where = f"priority.persons[{i}]"
        row = f.table(row, where)
        f.only_keys(row, {"at_least", "priority"}, where)
        persons.append(
            (
                f.integer(row.get("at_least"), f"{where}.at_least"),
                f.priority(row.get("priority"), f"{where}.priority"),
            )
        )
    persons.sort(key=lambda p: -p[0])
    for (more, p_more), (fewer, p_fewer) in pairwise(persons):
        if more == fewer or p_more > p_fewer:
            f.fail("priority.persons", f"thresholds {more} and {fewer} overlap or invert")
    hints = frozenset(
        f.priority(h, "priority.honour_hints")
        for h in f.strings(table.get("honour_hints", []), "priority.honour_hints")
    )
    named: dict[str, tuple[str, ...]] = {}
    for key in ("danger_signals", "past_signals"):
        named[key] = f.strings(table.get(key, []), f"priority.{key}")
        for name in named[key]:
            if name not in signals:
                f.fail(f"priority.{key}", f"unknown signal {name!r} (not in [signals])")
    lowered: dict[str, tuple[str, ...]] = {}
    lowered_table = dict(f.section("priority", "lowered", required=False))
    lowered_to = f.priority(lowered_table.pop("to", "P2"), "priority.lowered.to")
    lowered_unless = f.strings(lowered_table.pop("unless", []), "priority.lowered.unless")
    for name, phrases in lowered_table.items():
        if name != "persons" and name not in signals:
            f.fail(f"priority.lowered.{name}", "unknown signal (not in [signals]) nor 'persons'")
        lowered[name] = f.strings(phrases, f"priority.lowered.{name}")
    now = f.table(table.get("follow_up_now", {}), "priority.follow_up_now")
    f.only_keys(now, {"words", "unless", "priority"}, "priority.follow_up_now")
    return PriorityRules(
        lowered=lowered,
        lowered_to=lowered_to,
        lowered_unless=lowered_unless,
        follow_up_now=f.strings(now.get("words", []), "priority.follow_up_now.words"),
        follow_up_over=f.strings(now.get("unless", []), "priority.follow_up_now.unless"),
        follow_up_now_priority=f.priority(now.get("priority", "P1"),
                                          "priority.follow_up_now.priority"),
        danger_signals=named["danger_signals"],
        past_signals=named["past_signals"],
        past_harm=f.strings(table.get("past_harm", []), "priority.past_harm"),
        potential=f.strings(table.get("potential", []), "priority.potential"),
        default=f.priority(table.get("default"), "priority.default"),
        by_category=by_category,
        signals=tuple(by_signal),
        source=source,
        persons=tuple(persons),
        honour_hints=hints,
        follow_up=f.priority(table.get("follow_up", "P3"), "priority.follow_up"),
    )


def _load_escalation(
    f: _File, categories: Mapping[str, Category], signals: Mapping[str, Signal]
) -> EscalationRules:
    table = f.section("escalation")
    level_up = f.strings(table.get("level_up_signals", []), "escalation.level_up_signals")
    for name in level_up:
        if name not in signals:
            f.fail("escalation.level_up_signals", f"unknown signal {name!r}")
    cats = f.strings(table.get("level_up_categories", []), "escalation.level_up_categories")
    for code in cats:
        if code not in categories:
            f.fail("escalation.level_up_categories", f"unknown category {code!r}")
    return EscalationRules(
        level_up_signals=level_up,
        level_up_categories=frozenset(cats),
        township_from_persons=f.integer(
            table.get("township_from_persons"), "escalation.township_from_persons"
        ),
    )


def _load_correlation(
    f: _File, categories: Mapping[str, Category], families: Mapping[str, str]
) -> CorrelationRules:
    table = f.section("correlation")
    windows: dict[int, int] = {}
    raw = f.table(table.get("window_seconds"), "correlation.window_seconds")
    for priority in Priority:
        windows[int(priority)] = f.integer(
            raw.get(priority.label), f"correlation.window_seconds.{priority.label}"
        )
    join = f.strings(table.get("join_within_family", []), "correlation.join_within_family")
    for family in join:
        if family not in families:
            f.fail("correlation.join_within_family", f"unknown family {family!r}")
    pairs: list[tuple[str, str]] = []
    raw_pairs = table.get("compatible", [])
    if not isinstance(raw_pairs, list):
        f.fail("correlation.compatible", "expected a list of pairs")
    for i, pair in enumerate(raw_pairs):
        where = f"correlation.compatible[{i}]"
        pair = f.strings(pair, where)
        if len(pair) != 2:
            f.fail(where, "expected a pair [a, b]")
        for code in pair:
            if code not in categories and code not in families:
                f.fail(where, f"unknown category or family {code!r}")
        pairs.append((pair[0], pair[1]))
    recurrence = f.section("recurrence")
    dedup = f.section("dedup")
    return CorrelationRules(
        radius_m=f.number(table.get("radius_m"), "correlation.radius_m", low=1.0, high=100_000.0),
        window_seconds=windows,
        join_within_family=frozenset(join),
        compatible=tuple(pairs),
        repeat_alarm_window_seconds=f.integer(
            table.get("repeat_alarm_window_seconds"), "correlation.repeat_alarm_window_seconds"
        ),
        lateness_seconds=f.integer(table.get("lateness_seconds"), "correlation.lateness_seconds"),
        recurrence_window_seconds=86400
        * f.integer(recurrence.get("window_days"), "recurrence.window_days"),
        recurrence_threshold=f.integer(recurrence.get("threshold"), "recurrence.threshold", low=2),
        dedup_retention_seconds=f.integer(
            dedup.get("retention_seconds"), "dedup.retention_seconds"
        ),
        dedup_max_ids=f.integer(dedup.get("max_ids"), "dedup.max_ids"),
        categories=frozenset(categories),
    )
