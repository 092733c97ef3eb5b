"""Reading Chinese text (读懂文本): segmentation, negation and settled markers.

What classification and priorities read of a report is a :class:`Reading`:

- ``text`` — the title and text, full-width digits and letters folded to
  half-width (``３０`` → ``30``), letters lower-cased;
- ``words`` — the words ``jieba`` cuts it into, with a user dictionary of
  governance terms (``rules/classifier/userdict.txt``: 占道经营, 煤气味, 基本农田 …);
- ``masked`` — the text with *negated* danger and event terms blanked out:
  "没有人受伤" says nobody was hurt, "不是火灾" that there is no fire, so neither
  ``受伤`` nor ``火灾`` may count as a signal or a keyword. A term is negated
  when a negation cue (没有, 无, 未, 不是 …) stands before it in the same
  clause, at most ``scope_chars`` characters before it;
- ``negated`` — those terms, for the learned model (``非:受伤``) and for people;
- ``settled`` — the marker that says the matter is already handled
  (已处理, 已化解, 已劝离, 已扑灭 …), or None;
- ``false_alarm`` — the marker that says an alarm was checked and is false
  (误报, 消警, 非火情 …), or None.

The cue, term and marker lists are data (``rules/classifier/lexicon.toml``).
Nothing here reads a clock or a file after the lexicon is built; readings of
recent texts are kept (a text is read by classification, priorities and
routing in turn).
"""

from __future__ import annotations

import logging
import math
import re
import string
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jieba
import msgspec

#: what a blanked-out (negated) term becomes in ``Reading.masked``
MASK = "□"
_WIDTH = str.maketrans(
    {chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
)
_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")
_PUNCT = re.compile(r"^[\W_]+$")
_HAN = jieba.re_han_default  # what jieba segments; the rest it splits itself
_SKIP = jieba.re_skip_default
_ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """What the core reads of one text (see the module docstring)."""

    text: str
    masked: str
    words: tuple[str, ...]
    negated: tuple[str, ...] = ()
    settled: str | None = None
    false_alarm: str | None = None


class Lexicon:
    """The segmenter and the negation and settled-marker lists, built once at start."""

    def __init__(
        self,
        *,
        userdict: Path | None,
        negation_cues: Iterable[str],
        negatable: Iterable[str],
        scope_chars: int,
        clause_breaks: str,
        settled: Iterable[str],
        not_settled: Iterable[str] = (),
        not_negation: Iterable[str] = (),
        false_alarm: Iterable[str] = (),
        not_false_alarm: Iterable[str] = (),
        cache_size: int = 4096,
    ) -> None:
        self.userdict = userdict
        self.segmenter = _segmenter(str(userdict) if userdict is not None else "")
        self.negation_cues = tuple(sorted(set(negation_cues), key=len, reverse=True))
        self.negatable = tuple(sorted(set(negatable), key=len, reverse=True))
        self.scope_chars = scope_chars
        self.clause_breaks = clause_breaks
        self.settled = tuple(settled)
        self.not_settled = tuple(not_settled)
        self.not_negation = tuple(not_negation)
        self.false_alarm = tuple(false_alarm)
        self.not_false_alarm = tuple(not_false_alarm)
        self._clause = re.compile("[" + re.escape(clause_breaks) + "]")
        self._terms = (
            re.compile("|".join(map(re.escape, self.negatable))) if self.negatable else None
        )
        self.read = lru_cache(maxsize=cache_size)(self._read)

    def _read(self, text: str) -> Reading:
        folded = normalise(text)
        masked, negated = self._mask(folded)
        words = tuple(
            w for w in self.segmenter.cut(folded) if w.strip() and not _PUNCT.match(w)
        )
        return Reading(
            text=folded,
            masked=masked,
            words=words,
            negated=negated,
            settled=_first(folded, self.settled, self.not_settled),
            false_alarm=_first(folded, self.false_alarm, self.not_false_alarm),
        )

    def _mask(self, text: str) -> tuple[str, tuple[str, ...]]:
        """The text with negated terms blanked, and those terms."""
        if self._terms is None:
            return text, ()
        negated: list[str] = []
        out = text
        for match in self._terms.finditer(text):
            if self._is_negated(text, match.start()):
                term = match.group()
                negated.append(term)
                out = out[: match.start()] + MASK * len(term) + out[match.end() :]
        return out, tuple(dict.fromkeys(negated))

    def _is_negated(self, text: str, start: int) -> bool:
        window = text[max(0, start - self.scope_chars - 3) : start]
        clause = self._clause.split(window)[-1]
        for phrase in self.not_negation:  # 有没有 asks, it does not deny
            clause = clause.replace(phrase, MASK * len(phrase))
        for cue in self.negation_cues:
            at = clause.rfind(cue)
            if at != -1 and len(clause) - (at + len(cue)) <= self.scope_chars:
                return True
        return False



def _first(text: str, markers: tuple[str, ...], unless: tuple[str, ...]) -> str | None:
    """The first of ``markers`` in the text, phrases of ``unless`` blanked out first."""
    for phrase in unless:
        if phrase in text:
            text = text.replace(phrase, MASK)
    for marker in markers:
        if marker in text:
            return marker
    return None


def normalise(text: str) -> str:
    """Full-width ASCII folded to half-width, letters lower-cased."""
    if _FULL_WIDTH.search(text):
        text = text.translate(_WIDTH)
    return text.lower()


class Segmenter:
    """jieba's segmentation without its HMM (``Tokenizer.lcut(text, HMM=False)``), word
    for word, at less than half its cost.

    Same dictionary, same algorithm: the most probable path through the words the
    dictionary knows, ties to the longer word, a character it does not know on its
    own, runs of single ASCII letters and digits joined. What jieba spends besides —
    a dictionary of candidate ends per character, a logarithm per candidate, a
    generator per block — is left out; the word weights are taken once, in the same
    floating-point steps, so the paths are the same to the last bit.
    ``tests/unit/test_segmenter.py`` compares the two on every corpus text.
    """

    def __init__(self, tokenizer: Any) -> None:
        total = math.log(tokenizer.total)
        # a word's weight; None for a prefix of longer words that is no word itself. Words
        # of one frequency share one weight: a float each would hold another 8 MiB.
        shared: dict[int, float] = {}
        self.weights: dict[str, float | None] = {
            word: (shared.setdefault(freq, math.log(freq) - total) if freq else None)
            for word, freq in tokenizer.FREQ.items()
        }
        self.unknown = math.log(1) - total  # a character the dictionary does not know

    def cut(self, text: str) -> list[str]:
        out: list[str] = []
        for block in _HAN.split(text):
            if not block:
                continue
            if _HAN.match(block):
                out.extend(self._path(block))
            else:  # spaces kept as they are, anything else a character at a time
                for part in _SKIP.split(block):
                    if _SKIP.match(part):
                        out.append(part)
                    else:
                        out.extend(part)
        return out

    def _path(self, block: str) -> list[str]:
        weights = self.weights
        n = len(block)
        score = [0.0] * (n + 1)
        end = [0] * (n + 1)
        for k in range(n - 1, -1, -1):
            best: float | None = None
            last = k
            i = k
            fragment = block[k]
            while fragment in weights:
                weight = weights[fragment]
                if weight is not None:
                    value = weight + score[i + 1]
                    if best is None or value >= best:  # ties to the longer word, as jieba
                        best, last = value, i
                i += 1
                if i == n:
                    break
                fragment = block[k : i + 1]
            if best is None:
                best, last = self.unknown + score[k + 1], k
            score[k], end[k] = best, last
        words: list[str] = []
        letters = ""
        x = 0
        while x < n:
            y = end[x] + 1
            word = block[x:y]
            if y - x == 1 and word in _ASCII_ALNUM:
                letters += word
            else:
                if letters:
                    words.append(letters)
                    letters = ""
                words.append(word)
            x = y
        if letters:
            words.append(letters)
        return words


@lru_cache(maxsize=8)
def _segmenter(userdict: str) -> Segmenter:
    """One segmenter per user dictionary, shared by every lexicon of a process."""
    logging.getLogger("jieba").setLevel(logging.WARNING)
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    if userdict:
        tokenizer.load_userdict(userdict)
    return Segmenter(tokenizer)  # the tokenizer itself is let go
