"""The learned text classifier (学习模型): inference, pure Python.

A multinomial logistic regression over the features of a :class:`~streams.text.Reading`
(:func:`features`): jieba words (``w:``), character bigrams (``b:``), negated
terms (``n:``), the source (``s:``) and its code (``k:``). The model is plain
data — ``rules/classifier/model.json``, written by ``gridlink classifier train``
(:mod:`streams.learning`): class list, biases, and for each feature the weights
of the classes it speaks for (sparse). No pickle, nothing executed.

A prediction is explainable: :meth:`TextModel.predict` returns, with the
category and its probability, the features that pushed most towards it
(``top_features``), which a :class:`~streams.records.Classification` records.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import msgspec

from streams.text import MASK, Reading

MODEL_FORMAT = "gridlink-text-classifier/1"


class ModelFile(msgspec.Struct, kw_only=True):
    """``model.json`` as stored."""

    format: str
    version: str
    classes: list[str]
    bias: list[float]
    weights: dict[str, list[tuple[int, float]]]
    trained: dict[str, Any] = {}


class Prediction(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    probability: float
    top_features: tuple[str, ...] = ()
    runner_up: str | None = None
    runner_up_probability: float = 0.0


def features(reading: Reading, *, source: str, code: str | None = None) -> list[str]:
    """The model's features of one text (deduplicated, in a stable order)."""
    out = [f"s:{source}"]
    if code:
        out.append(f"k:{code}")
        out.append(f"k:{source}:{code[:1]}")
    out.extend(text_features(reading))
    return list(dict.fromkeys(out))


@lru_cache(maxsize=1024)
def text_features(reading: Reading) -> tuple[str, ...]:
    """What the text itself gives the model: words, bigrams, negated terms, markers.
    Kept for the texts read recently: the category model and the learned P1 check
    read the same text one after the other."""
    out = [f"w:{word}" for word in reading.words]
    masked = reading.masked
    out.extend(
        f"b:{masked[i : i + 2]}"
        for i in range(len(masked) - 1)
        if _cjk(masked[i]) and _cjk(masked[i + 1])
    )
    out.extend(f"n:{term}" for term in reading.negated)
    if reading.settled:
        out.append("settled")
    if reading.false_alarm:
        out.append("false_alarm")
    return tuple(dict.fromkeys(out))


def _cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" and ch != MASK


class TextModel:
    """A loaded model: ``predict`` over feature lists."""

    def __init__(
        self,
        *,
        version: str,
        classes: Sequence[str],
        bias: Sequence[float],
        weights: Mapping[str, Iterable[tuple[int, float]]],
        trained: Mapping[str, Any] | None = None,
    ) -> None:
        self.version = version
        self.classes = tuple(classes)
        self.bias = tuple(bias)
        self.weights = {name: tuple((int(k), float(w)) for k, w in row)
                        for name, row in weights.items()}
        self.trained = dict(trained or {})
        self.index = {code: i for i, code in enumerate(self.classes)}

    @classmethod
    def from_file(cls, data: ModelFile) -> TextModel:
        return cls(version=data.version, classes=data.classes, bias=data.bias,
                   weights=data.weights, trained=data.trained)

    def to_file(self) -> ModelFile:
        return ModelFile(
            format=MODEL_FORMAT,
            version=self.version,
            classes=list(self.classes),
            bias=list(self.bias),
            weights={name: [(k, w) for k, w in row] for name, row in sorted(self.weights.items())},
            trained=self.trained,
        )

    def scores(self, feats: Sequence[str]) -> list[float]:
        """Raw class scores (logits) of a feature list."""
        scores = list(self.bias)
        if not feats:
            return scores
        x = 1.0 / math.sqrt(len(feats))
        weights = self.weights
        for name in feats:
            row = weights.get(name)
            if row is not None:
                for k, w in row:
                    scores[k] += w * x
        return scores

    def probabilities(self, feats: Sequence[str]) -> list[float]:
        """The probability of every class, in ``classes`` order."""
        scores = self.scores(feats)
        best = max(scores)
        exps = [math.exp(s - best) for s in scores]
        total = sum(exps)
        return [e / total for e in exps]

    def predict(self, feats: Sequence[str], *, within: str | None = None,
                top: int = 5, explain: bool = True) -> Prediction:
        """The most probable category (of family ``within`` only, if given)."""
        scores = self.scores(feats)
        allowed: Collection[int] = (
            range(len(self.classes))
            if within is None
            else [i for i, code in enumerate(self.classes) if code.startswith(within)]
        )
        if not allowed:
            raise ValueError(f"the model knows no category of family {within}")
        best = max(scores[i] for i in allowed)
        exps = {i: math.exp(scores[i] - best) for i in allowed}
        total = sum(exps.values())
        ranked = sorted(allowed, key=lambda i: -scores[i])
        winner = ranked[0]
        second = ranked[1] if len(ranked) > 1 else None
        return Prediction(
            category=self.classes[winner],
            probability=exps[winner] / total,
            top_features=self.explain(feats, winner, top=top) if explain else (),
            runner_up=None if second is None else self.classes[second],
            runner_up_probability=0.0 if second is None else exps[second] / total,
        )

    def explain(self, feats: Sequence[str], k: int, *, top: int = 5) -> tuple[str, ...]:
        """The features that pushed most towards class ``k`` (positive weights only)."""
        pushes = []
        for name in feats:
            for j, w in self.weights.get(name, ()):
                if j == k and w > 0:
                    pushes.append((w, name))
        pushes.sort(key=lambda p: (-p[0], p[1]))
        return tuple(name for _, name in pushes[:top])


def model_json(model: TextModel) -> str:
    """``model.json`` as written: one feature's weights a line (diffs stay readable)."""
    data = model.to_file()
    head = msgspec.json.encode(
        {"format": data.format, "version": data.version, "trained": data.trained,
         "classes": data.classes, "bias": data.bias}
    ).decode()
    rows = ",\n".join(
        f" {msgspec.json.encode(name).decode()}: {msgspec.json.encode(row).decode()}"
        for name, row in data.weights.items()
    )
    return head[:-1] + ',"weights": {\n' + rows + "\n}}\n"
