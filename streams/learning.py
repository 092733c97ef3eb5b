"""Training the text classifier (模型训练), pure Python and deterministic.

:func:`train` fits a multinomial logistic regression (:mod:`streams.model`) by
stochastic gradient descent: examples visited in an order shuffled by a
seeded generator, a learning rate that decays per epoch, L2 shrinkage of the
weights an update touches, and at the end every weight smaller than
``prune`` dropped (the model stays small and fast to apply). The same
examples, classes and parameters give the same model, byte for byte; its
version is a digest of all three.

No third-party library: the training set is a few thousand short texts, and
the worker never needs more than :mod:`streams.model` to apply it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from streams.cases import events as ev
from streams.classify import classify, keyword_scores, model_features, read
from streams.model import TextModel
from streams.priority import learned_features, signals_found
from streams.records import Event
from streams.triage_rules import TriageRules

#: the learned P1 check's classes
P1_CLASSES = ("P1", "other")


class TrainingParameters(msgspec.Struct, frozen=True, kw_only=True):
    epochs: int = 24
    rate: float = 0.6
    decay: float = 0.15  # rate / (1 + decay * epoch)
    l2: float = 0.0005
    prune: float = 0.05
    seed: int = 17
    min_count: int = 1  # features seen in fewer examples are left out
    min_gradient: float = 0.01  # classes whose gradient is smaller are not updated (speed)


#: the learned P1 check's parameters: stronger shrinkage than the category model's
#: (its rule-like features are surer on the training texts than on new ones)
P1_PARAMETERS = TrainingParameters(l2=0.005)


class Example(msgspec.Struct, frozen=True):
    features: tuple[str, ...]
    category: str


def train(
    examples: Sequence[Example],
    classes: Sequence[str],
    params: TrainingParameters = TrainingParameters(),
    *,
    trained: dict[str, Any] | None = None,
) -> TextModel:
    """A model fitted to ``examples`` over ``classes`` (each example's category must be one)."""
    index = {code: i for i, code in enumerate(classes)}
    unknown = sorted({e.category for e in examples} - set(index))
    if unknown:
        raise ValueError(f"examples of categories outside the class list: {unknown}")
    counts: dict[str, int] = {}
    for example in examples:
        for name in set(example.features):
            counts[name] = counts.get(name, 0) + 1
    rows = [
        ([f for f in dict.fromkeys(e.features) if counts[f] >= params.min_count], index[e.category])
        for e in examples
    ]
    weights: dict[str, dict[int, float]] = {}
    bias = [0.0] * len(classes)
    rng = random.Random(params.seed)
    order = list(range(len(rows)))
    for epoch in range(params.epochs):
        rng.shuffle(order)
        rate = params.rate / (1.0 + params.decay * epoch)
        shrink = 1.0 - rate * params.l2
        for i in order:
            feats, y = rows[i]
            _step(feats, y, weights, bias, rate, shrink, params.min_gradient)
    pruned = {
        name: tuple(sorted((k, round(w, 4)) for k, w in row.items() if abs(w) >= params.prune))
        for name, row in sorted(weights.items())
    }
    pruned = {name: row for name, row in pruned.items() if row}
    version = model_version(examples, classes, params)
    return TextModel(
        version=version,
        classes=classes,
        bias=[round(b, 4) for b in bias],
        weights=pruned,
        trained=dict(trained or {}) | {"examples": len(examples),
                                        "parameters": msgspec.to_builtins(params)},
    )


def _step(feats: list[str], y: int, weights: dict[str, dict[int, float]], bias: list[float],
          rate: float, shrink: float, min_gradient: float) -> None:
    """One SGD step of the softmax loss on one example."""
    if not feats:
        return
    x = 1.0 / math.sqrt(len(feats))
    scores = list(bias)
    for name in feats:
        row = weights.get(name)
        if row is not None:
            for k, w in row.items():
                scores[k] += w * x
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    for k, e in enumerate(exps):
        p = e / total
        gradient = p - (1.0 if k == y else 0.0)
        if abs(gradient) < min_gradient:
            continue
        step = rate * gradient
        bias[k] -= step
        for name in feats:
            row = weights.setdefault(name, {})
            row[k] = row.get(k, 0.0) * shrink - step * x


def model_version(examples: Sequence[Example], classes: Sequence[str],
                  params: TrainingParameters) -> str:
    """``lr-<digest>``: the same data and parameters give the same version."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(classes), ensure_ascii=False).encode())
    digest.update(msgspec.json.encode(params))
    for example in examples:
        digest.update(example.category.encode())
        digest.update("\x1f".join(example.features).encode())
        digest.update(b"\x1e")
    return f"lr-{digest.hexdigest()[:12]}"


# -- what training reads: labelled texts and operators' corrections ----------------------


class Correction(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's corrected category for the event that opened a case (纠错)."""

    case_id: str
    event: Event
    original: str  # the category triage gave
    category: str  # the operator's
    actor: str
    how: str  # "register" | "reroute"


def example_of(event: Event, category: str, rules: TriageRules) -> Example:
    """The training example of an event labelled ``category``: the features the
    worker's classifier would give the model for it."""
    reading = read(event, rules)
    scores = keyword_scores(reading.masked, rules)
    return Example(tuple(model_features(event, reading, scores, rules)), category)


def p1_example_of(event: Event, priority: str, rules: TriageRules) -> Example:
    """The learned P1 check's training example of an event labelled ``priority``:
    the features triage would give the check, with the category the classifier
    (``rules.model``) gives the event."""
    reading = read(event, rules)
    feats = learned_features(event, reading, classify(event, rules), signals_found(event, rules))
    return Example(tuple(feats), "P1" if priority == "P1" else "other")


def corrections(log: Iterable[ev.CaseEvent]) -> list[Correction]:
    """Operators' corrections on a case log: the last corrected category of each case
    whose first event it changed (立案 with another category, 改派 with a category).

    ``log`` is decoded ``cases.events`` in per-case order; a case whose opening
    is not in it (the log was compacted, or the case opened elsewhere) is skipped.
    """
    opened: dict[str, tuple[Event, str]] = {}
    latest: dict[str, Correction] = {}
    for event in log:
        if isinstance(event, ev.CaseOpened):
            opened[event.case_id] = (event.event, event.classification.category)
            continue
        if isinstance(event, ev.CaseRegistered) and event.classification is not None:
            corrected, how = event.classification.category, "register"
        elif isinstance(event, ev.CaseReclassified):
            corrected, how = event.classification.category, "reroute"
        else:
            continue
        first = opened.get(event.case_id)
        if first is None:
            continue
        latest[event.case_id] = Correction(
            case_id=event.case_id, event=first[0], original=first[1], category=corrected,
            actor=event.actor, how=how,
        )
    return [c for c in latest.values() if c.category != c.original]
