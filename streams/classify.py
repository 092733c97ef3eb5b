"""Classification (事件分类): which category an event is, and what said so.

The text is read first (:mod:`streams.text`: segmentation, negated terms
blanked out, settled markers). Then, in the order of docs/domain.md §2:

1. the source's own code — the grid platform's taxonomy code, then its
   src_type/src_domain labels; the camera's AI event code, then its GB/T 28181
   AlarmMethod/AlarmType; the 110 报警类型 bjlx (longest prefix). The text
   refines it within its family, or overrules it where it clearly says
   otherwise (below);
2. keyword rules (``keywords.toml``, synonyms and near-synonyms per category):
   a score of at least ``[classifier] rules_win`` decides;
3. the learned model (``classifier/model.json``) decides the rest, when it is
   at least ``model_min`` sure; its words, bigrams and the keyword rules that
   matched are its features, and the decision records the strongest of them;
4. a weaker keyword match — with the model's probability added when its best
   guess is the same category (two weak voices agreeing), below the
   verification threshold when it is not —, or without any keyword the
   model's guess with its low probability (at least ``model_guess_min``), or
   the fallback 11.00 with a low confidence: the operators' 核实 queue.

Coarse codes. Some source codes name only a family: 110 ``600600`` 城管执法
says "city management", not which kind. Such a code has ``refine_within`` in
``codes.toml``: keywords *of that family* pick the subtype when they are sure
(``rule="bjlx:600600>keyword:烧烤"`` → 05.09), else the model restricted to
that family (``bjlx:600600>model:lr-…``) when it is sure enough to dispatch
on (the verification threshold) and no keyword of the family at least
``family_keyword_win`` sure says otherwise; the code's own category is the
default when neither says anything. A precise code is refined within its
family only by a keyword at least ``overrule_at`` sure (110 打架斗殴 + 持刀 → 03.07).

Overruled codes. A keyword of *another* family at least ``overrule_at`` sure,
stronger than anything of the code's own family and not contradicted by the
model's family, overrules the code: ``rule="bjlx:600600>overruled:keyword:起火"``,
``overruled`` says why. Routing still follows the code where it must (a 110
code the police keep stays with the police).
"""

from __future__ import annotations

from msgspec.structs import replace

from streams.model import Prediction, features
from streams.records import Classification, Event, Source
from streams.text import Reading
from streams.triage_rules import FALLBACK_CATEGORY, CodeRule, KeywordRule, TriageRules

#: a category's keyword score and its strongest rule
Hit = tuple[str, float, KeywordRule]


def classify(event: Event, rules: TriageRules) -> Classification:
    """Classify one event; every decision records its rule and a confidence (0..1)."""
    reading = read(event, rules)
    scores = keyword_scores(reading.masked, rules)
    code = _source_code(event, rules)
    guess = _Guess(event, reading, scores, rules)
    if code is not None:
        return _from_code(event, code, reading, scores, guess, rules)
    return _from_text(scores, guess, rules)


class _Guess:
    """The learned model's reading of one event, worked out only if a decision needs it
    (a sure keyword decides alone, and most texts have one)."""

    def __init__(self, event: Event, reading: Reading,
                 scores: dict[str, tuple[float, int, KeywordRule]], rules: TriageRules) -> None:
        self._args = (event, reading, scores, rules)
        self._done = False
        self._prediction: Prediction | None = None
        self.features: list[str] = []

    @property
    def prediction(self) -> Prediction | None:
        """The model's best category over all of them, or None without a model."""
        if not self._done:
            self._done = True
            event, reading, scores, rules = self._args
            if rules.model is not None:
                self.features = model_features(event, reading, scores, rules)
                self._prediction = rules.model.predict(self.features, explain=False)
        return self._prediction

    def within(self, family: str) -> Prediction | None:
        """The model's best category of ``family``, explained."""
        model = self._args[3].model
        if self.prediction is None or model is None:
            return None
        return model.predict(self.features, within=family)

    def explained(self) -> tuple[str, ...]:
        model = self._args[3].model
        if self.prediction is None or model is None:
            return ()
        return model.explain(self.features, model.index[self.prediction.category])


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


def read(event: Event, rules: TriageRules) -> Reading:
    """The reading of the event's title and text (kept for the texts read recently)."""
    return rules.lexicon.read(event_text(event))


def keyword_scores(text: str, rules: TriageRules) -> dict[str, tuple[float, int, KeywordRule]]:
    """Category → (score, matching rules, strongest rule) of the keyword rules matching ``text``.

    A rule matches when all its words occur and none of its ``unless`` words (the
    context in which they mean something else: 分居 inside 部分居民). A category
    scores its strongest matching rule's weight plus a small bonus per further
    matching rule, capped. Categories in file order.
    """
    by_char = rules.keyword_index
    present = {
        word
        for ch in set(text)
        for word in by_char.get(ch, ())
        if word in text
    }
    if not present:
        return {}
    best: dict[str, tuple[float, int, KeywordRule]] = {}
    by_word = rules.keyword_rules
    candidates = sorted({i for word in present for i in by_word.get(word, ())})
    for index in candidates:  # file order
        rule = rules.keywords[index]
        if all(word in present for word in rule.words) and not any(
                word in text for word in rule.unless):
            seen = best.get(rule.category)
            if seen is None:
                best[rule.category] = (rule.weight, 1, rule)
            else:
                top = rule if rule.weight > seen[0] else seen[2]
                best[rule.category] = (max(seen[0], rule.weight), seen[1] + 1, top)
    return {
        category: (min(rules.keyword_max, weight + rules.keyword_bonus * (matches - 1)), matches,
                   rule)
        for category, (weight, matches, rule) in best.items()
    }


def best_keyword(
    text: str, rules: TriageRules, *, family: str | None = None
) -> Hit | None:
    """The best-scoring category of the keyword rules (of ``family`` only, if given):
    (category, score, strongest rule), ties to the category listed first; or None."""
    return _best(keyword_scores(text, rules), family=family)


def _best(
    scores: dict[str, tuple[float, int, KeywordRule]],
    *,
    family: str | None = None,
    outside: str | None = None,
) -> Hit | None:
    winner: Hit | None = None
    for category, (score, _, rule) in scores.items():  # insertion order = file order
        if family is not None and not category.startswith(family):
            continue
        if outside is not None and category.startswith(outside):
            continue
        if winner is None or score > winner[1]:
            winner = (category, score, rule)
    return winner


def model_features(
    event: Event,
    reading: Reading,
    scores: dict[str, tuple[float, int, KeywordRule]],
    rules: TriageRules,
) -> list[str]:
    """What the learned model reads: the text's features and the keyword rules that matched
    (``kw:<category>``, and ``kw+:<category>`` when at least ``rules_win``)."""
    feats = features(reading, source=event.source.value, code=_code_name(event))
    win = rules.classifier.rules_win
    for category, (score, _, _) in scores.items():
        feats.append(f"kw:{category}")
        if score >= win:
            feats.append(f"kw+:{category}")
    return feats


def _code_name(event: Event) -> str | None:
    if event.source is Source.GRID:
        return event.source_category or (event.source_labels[-1] if event.source_labels else None)
    return event.source_code


def _from_text(
    scores: dict[str, tuple[float, int, KeywordRule]],
    guess: _Guess,
    rules: TriageRules,
) -> Classification:
    c = rules.classifier
    hit = _best(scores)
    if hit is not None and hit[1] >= c.rules_win:
        return _keyword(rules, hit, scores)
    prediction = guess.prediction
    if prediction is not None and rules.model is not None and prediction.probability >= c.model_min:
        confidence = prediction.probability
        if hit is not None and hit[0] == prediction.category:
            confidence = _both(confidence, hit[1])
        return _make(
            rules,
            prediction.category,
            confidence,
            f"model:{rules.model.version}",
            features=guess.explained(),
            model=rules.model.version,
        )
    # no keyword at all: the model's best guess, with its low probability, is a
    # better suggestion for the operators than 11.00 (it goes to 核实 either way)
    if (hit is None and prediction is not None and rules.model is not None
            and prediction.probability >= c.model_guess_min):
        return _make(rules, prediction.category, prediction.probability,
                     f"model:{rules.model.version}", features=guess.explained(),
                     model=rules.model.version)
    if hit is not None:
        # neither a sure keyword nor a sure model: a weak keyword the model does not
        # back stays below the verification threshold (核实 decides)
        if prediction is not None and prediction.category == hit[0]:  # two weak voices agree
            return _keyword(rules, hit, scores, confidence=_both(hit[1], prediction.probability))
        ceiling = rules.verification_threshold - 0.01 if prediction is not None else 1.0
        return _keyword(rules, hit, scores, confidence=min(hit[1], ceiling))
    return _make(rules, FALLBACK_CATEGORY, rules.fallback_confidence, "fallback")


def _keyword(
    rules: TriageRules,
    hit: Hit,
    scores: dict[str, tuple[float, int, KeywordRule]],
    *,
    prefix: str = "",
    confidence: float | None = None,
) -> Classification:
    category, score, rule = hit
    return _make(
        rules,
        category,
        score if confidence is None else confidence,
        f"{prefix}keyword:{rule.label}",
        features=_matched(rules, category, scores),
    )


def _matched(
    rules: TriageRules, category: str, scores: dict[str, tuple[float, int, KeywordRule]]
) -> tuple[str, ...]:
    """The strongest rule of ``category``, for the record (its other rules are not kept)."""
    entry = scores.get(category)
    return (entry[2].label,) if entry else ()


def _source_code(event: Event, rules: TriageRules) -> CodeRule | None:
    """The source's own code rule, in the order of docs/domain.md §2."""
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


def _from_code(
    event: Event,
    code: CodeRule,
    reading: Reading,
    scores: dict[str, tuple[float, int, KeywordRule]],
    guess: _Guess,
    rules: TriageRules,
) -> Classification:
    result = _overrule(code, scores, guess, rules) or _refine(code, scores, guess, rules)
    if event.source is Source.CAMERA and event.ai_confidence is not None:
        result = _with_confidence(result, min(result.confidence, event.ai_confidence))
    return result


def _overrule(
    code: CodeRule,
    scores: dict[str, tuple[float, int, KeywordRule]],
    guess: _Guess,
    rules: TriageRules,
) -> Classification | None:
    """The text clearly names a category of another family: the code is overruled."""
    family = code.refine_within or code.category[:2]
    other = _best(scores, outside=family)
    if other is None or other[1] < rules.classifier.overrule_at:
        return None
    own = _best(scores, family=family)
    if own is not None and own[1] >= other[1]:
        return None
    prediction = guess.prediction
    if prediction is not None and prediction.category[:2] != other[0][:2]:
        return None  # the model reads it as the code's family, or a third one: no clear case
    why = (
        f"{code.rule} 指向 {code.category} {rules.name_of(code.category)}，"
        f"文本明确为 {other[0]} {rules.name_of(other[0])}（{other[2].label}）"
    )
    result = _keyword(rules, other, scores, prefix=f"{code.rule}>overruled:")
    return _with(result, overruled=why)


def _refine(
    code: CodeRule,
    scores: dict[str, tuple[float, int, KeywordRule]],
    guess: _Guess,
    rules: TriageRules,
) -> Classification:
    """The code's category, refined within its family by the text."""
    c = rules.classifier
    if code.refine_within is None:
        own = _best(scores, family=code.category[:2])
        if own is not None and own[0] != code.category and own[1] >= c.overrule_at:
            return _keyword(rules, own, scores, prefix=f"{code.rule}>",
                            confidence=max(code.confidence, own[1]))
        return _make(rules, code.category, code.confidence, code.rule)
    family = code.refine_within
    own = _best(scores, family=family)
    if own is not None and own[1] >= c.rules_win:
        return _keyword(rules, own, scores, prefix=f"{code.rule}>",
                        confidence=max(code.confidence, own[1]))
    within = guess.within(family)
    if own is not None and own[1] >= c.family_keyword_win and (
        within is None or within.category == own[0] or within.probability < c.rules_win
    ):  # the family is the code's: a fair keyword of it decides, unless the model is sure
        return _keyword(rules, own, scores, prefix=f"{code.rule}>",
                        confidence=max(code.confidence, own[1]))
    # the model picks the subtype only when sure enough to dispatch on it
    if (within is not None and rules.model is not None
            and within.probability >= rules.verification_threshold and _text_speaks(within)):
        confidence = max(code.confidence, within.probability)
        if own is not None and own[0] == within.category:
            confidence = max(confidence, own[1])
        return _make(rules, within.category, confidence,
                     f"{code.rule}>model:{rules.model.version}",
                     features=within.top_features, model=rules.model.version)
    if own is not None:
        return _keyword(rules, own, scores, prefix=f"{code.rule}>",
                        confidence=max(code.confidence, own[1]))
    return _make(rules, code.category, code.confidence, code.rule)


def _both(one: float, other: float) -> float:
    """The confidence of two independent voices naming the same category (noisy-or)."""
    return 1.0 - (1.0 - one) * (1.0 - other)


def _text_speaks(prediction: Prediction) -> bool:
    """Some of the features behind a prediction come from the text, not only its source."""
    return any(not name.startswith(("s:", "k:")) for name in prediction.top_features)


def _with_confidence(result: Classification, confidence: float) -> Classification:
    return _with(result, confidence=round(confidence, 3))


def _with(result: Classification, **changes: object) -> Classification:
    return replace(result, **changes)


def _make(
    rules: TriageRules,
    category: str,
    confidence: float,
    rule: str,
    *,
    features: tuple[str, ...] = (),
    model: str = "",
) -> Classification:
    return Classification(
        category=category,
        name=rules.name_of(category),
        confidence=round(confidence, 3),
        rule=rule,
        features=features,
        model=model,
    )
