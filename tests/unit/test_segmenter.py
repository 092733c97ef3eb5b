"""The segmenter cuts every text exactly as jieba does with its HMM off: same words,
same order, on the labelled corpora written by people and on random mixtures of what
reports hold (Chinese, ASCII letters and digits, spaces, line breaks, punctuation,
characters the dictionary does not know)."""

from __future__ import annotations

import random

import jieba
import pytest

from streams.corpus import read_corpus
from streams.text import Segmenter, normalise
from tests.conftest import PROJECT_DIR

CORPORA = PROJECT_DIR / "tests" / "data" / "classification"
USERDICT = PROJECT_DIR / "rules" / "classifier" / "userdict.txt"


@pytest.fixture(scope="module")
def jieba_and_ours() -> tuple[jieba.Tokenizer, Segmenter]:
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    tokenizer.load_userdict(str(USERDICT))
    return tokenizer, Segmenter(tokenizer)


def _corpus_texts() -> list[str]:
    texts = []
    for path in sorted(CORPORA.glob("*.jsonl")):
        if path.stem == "sealed":  # kept for the classifier's evaluation alone
            continue
        texts += [record.text for record in read_corpus(path)]
    return texts


def test_the_corpora_are_cut_word_for_word_as_jieba_cuts_them(jieba_and_ours) -> None:
    tokenizer, ours = jieba_and_ours
    texts = _corpus_texts()
    assert len(texts) > 5000
    differ = [t for t in texts
              if ours.cut(normalise(t)) != tokenizer.lcut(normalise(t), HMM=False)]
    assert differ == []


def test_random_mixtures_are_cut_as_jieba_cuts_them(jieba_and_ours) -> None:
    tokenizer, ours = jieba_and_ours
    rng = random.Random(20261207)
    han = "".join(sorted({ch for t in _corpus_texts()[:400] for ch in t if ch >= "\u4e00"}))
    pool = [han] * 6 + ["abcXYZ", "0123456789", " \t", "\n\r\n", "，。！？、：；（）-_.%#&+",
                        "\u3000Ａｂ１２", "\u9fd6\u9fff𠀀😀", "Ⅳ·ー"]
    for _ in range(3000):
        text = "".join(rng.choice(rng.choice(pool)) for _ in range(rng.randint(0, 60)))
        assert ours.cut(text) == tokenizer.lcut(text, HMM=False), repr(text)


@pytest.mark.parametrize("text", ["", " ", "a", "3单元5楼", "110转警", "\r\n", "鿖",
                                  "不是火灾，没有人受伤"])
def test_edges(jieba_and_ours, text: str) -> None:
    tokenizer, ours = jieba_and_ours
    assert ours.cut(text) == tokenizer.lcut(text, HMM=False)


def test_a_tie_goes_to_the_longer_word_as_in_jieba() -> None:
    # every word weighs log(1) - log(1) = 0: 甲乙 and 甲 + 乙 are exactly as probable
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = {"甲": 1, "乙": 1, "甲乙": 1}, 1, True
    assert tokenizer.lcut("甲乙", HMM=False) == ["甲乙"]
    assert Segmenter(tokenizer).cut("甲乙") == ["甲乙"]
