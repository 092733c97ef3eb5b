"""Reading Chinese text, the learned model and its training, the labelled corpus,
and the rule files they come from."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from streams.classify import classify, keyword_scores, model_features, read
from streams.corpus import as_event, read_corpus, split_of
from streams.errors import RulesError
from streams.learning import Example, TrainingParameters, train
from streams.model import ModelFile, TextModel, model_json
from streams.records import Source
from streams.reference import load_city
from streams.text import MASK
from streams.triage_rules import load_triage_rules
from tests.builders import ev, rules_with

ROOT = Path(__file__).resolve().parents[2]
RULES = load_triage_rules(ROOT / "rules")
CORPUS = ROOT / "tests" / "data" / "classification" / "corpus.jsonl"
CITY = load_city(ROOT / "reference" / "demo_city")


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("两人吵了几句，没有人受伤", ("受伤",)),
        ("现场无人受伤", ("受伤",)),
        ("不是火灾，是烧烤的烟", ("火灾",)),
        ("燃气公司检查，暂未发现泄漏", ("泄漏",)),
        ("担心漏气", ("漏气",)),
        ("有人受伤，没有人管", ()),  # the cue stands after the term
        ("没有人管，有人受伤了", ()),  # another clause
        ("老板不给工资", ()),  # 工资 is no danger term: never negated
        ("阳台塌下来了，不知道有没有砸到人", ()),  # 有没有 asks, it does not deny
    ],
)
def test_negated_terms(text: str, negated: tuple[str, ...]) -> None:
    reading = RULES.lexicon.read(text)
    assert reading.negated == negated
    for term in negated:
        assert term not in reading.masked and MASK * len(term) in reading.masked
    assert len(reading.masked) == len(reading.text)


@pytest.mark.parametrize(
    ("text", "marker"),
    [
        ("张大爷与儿子争吵，经网格员调解双方达成一致", "达成一致"),
        ("楼道纸箱起火，已被扑灭", "已被扑灭"),
        ("两伙人在门口对骂，已劝离", "已劝离"),
        ("物业说这事已处理不了", None),
        ("火势很大，未能扑灭", None),
        ("楼下有人打架", None),
    ],
)
def test_settled_markers(text: str, marker: str | None) -> None:
    assert RULES.lexicon.read(text).settled == marker


def test_segmentation_keeps_governance_terms_and_folds_full_width() -> None:
    reading = RULES.lexicon.read("李庄村村民反映有人在基本农田上违法建房，约４０人围观")
    assert "基本农田" in reading.words and "，" not in reading.words
    assert "40" in reading.text


# --------------------------------------------------------------------------- the model


def tiny_examples() -> list[Example]:
    return [
        Example(("w:着火", "w:冒烟"), "07.01"),
        Example(("w:起火", "w:冒烟"), "07.01"),
        Example(("w:垃圾", "w:满溢"), "05.03"),
        Example(("w:垃圾", "w:清运"), "05.03"),
        Example(("w:停水", "w:水管"), "06.01"),
        Example(("w:水管", "w:爆裂"), "06.01"),
    ]


CLASSES = ["05.03", "06.01", "07.01"]
QUICK = TrainingParameters(epochs=8)


def test_training_is_deterministic_and_learns_the_examples() -> None:
    one = train(tiny_examples(), CLASSES, QUICK)
    two = train(tiny_examples(), CLASSES, QUICK)
    assert model_json(one) == model_json(two) and one.version == two.version
    for example in tiny_examples():
        assert one.predict(list(example.features)).category == example.category
    other = train(tiny_examples(), CLASSES, TrainingParameters(epochs=8, seed=18))
    assert other.version != one.version  # the seed is part of what made it


def test_a_prediction_is_explained_by_its_strongest_features() -> None:
    model = train(tiny_examples(), CLASSES, QUICK)
    prediction = model.predict(["w:冒烟", "w:无关"])
    assert prediction.category == "07.01"
    assert prediction.top_features[0] == "w:冒烟" and "w:无关" not in prediction.top_features
    within = model.predict(["w:冒烟"], within="06")
    assert within.category == "06.01" and within.probability == 1.0


def test_the_model_file_is_plain_json_and_reads_back_the_same() -> None:
    model = train(tiny_examples(), CLASSES, QUICK)
    text = model_json(model)
    data = json.loads(text)
    assert data["format"] == "gridlink-text-classifier/1" and data["classes"] == CLASSES
    again = TextModel.from_file(msgspec.json.decode(text, type=ModelFile))
    feats = ["w:垃圾", "w:水管"]
    assert again.scores(feats) == pytest.approx(model.scores(feats))


def test_training_refuses_a_category_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="09.09"):
        train([Example(("w:x",), "09.09")], CLASSES, QUICK)


@pytest.mark.parametrize(
    "text", ["晚上总有人往沟里倒东西，水都变颜色了", "两口子三天两头闹，这回说要分开过"]
)
def test_the_model_decides_what_no_sure_keyword_decides(text: str) -> None:
    assert RULES.model is not None
    event = ev(text=text)
    reading = read(event, RULES)
    scores = keyword_scores(reading.masked, RULES)
    assert all(score < RULES.classifier.rules_win for score, _, _ in scores.values())
    prediction = RULES.model.predict(model_features(event, reading, scores, RULES))
    result = classify(event, RULES)
    if prediction.probability >= RULES.classifier.model_min:
        assert (result.category, result.rule) == (prediction.category,
                                                  f"model:{RULES.model.version}")
        assert result.model == RULES.model.version and result.features
    else:  # the model is unsure: a weak keyword (to verification unless the model's best
        # guess agrees with it) or the fallback (to verification)
        assert not result.rule.startswith("model:")
        agrees = result.rule.startswith("keyword:") and result.category == prediction.category
        assert agrees or result.confidence < RULES.verification_threshold


# --------------------------------------------------------------------------- rule files


def test_a_false_alarm_is_read_and_its_unless_phrases_respected() -> None:
    lexicon = RULES.lexicon
    assert lexicon.read("烟火识别告警，复核为误报").false_alarm == "误报"
    assert lexicon.read("复核：非误报，确认火情").false_alarm is None
    assert lexicon.read("楼道冒烟").false_alarm is None


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    target = rules_with(tmp_path, "triage.toml", "lexicon = ", "lexicon = ")
    (target / "classifier" / "model.json").unlink()
    with pytest.raises(RulesError, match="classifier/model.json: missing"):
        load_triage_rules(target)
    assert load_triage_rules(target, with_model=False).model is None


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        ("triage.toml", "rules_win = 0.85", "rules_win = 1.5", "classifier.rules_win"),
        ("triage.toml", 'model = "classifier/model.json"', 'model = "classifier/nope.json"',
         "classifier/nope.json: missing"),
        ("classifier/lexicon.toml", "scope_chars = 6", "scope_chars = 0",
         "negation.scope_chars"),
        ("classifier/lexicon.toml", "[settled]", "[settled]\nmarker = []", "unknown key"),
        ("classifier/model.json", '"format":"gridlink-text-classifier/1"',
         '"format":"pickle"', "format"),
        ("classifier/model.json", '"classes":["01.01"', '"classes":["01.77"', "01.77"),
        ("routing.toml", 'when = { life_danger = ["yingji"]',
         'when = { life_danger = ["nobody"]', "provisional.when.life_danger"),
        ("triage.toml", "raise_from = \"P3\"", "raise_from = \"P9\"",
         "priority.vulnerable.raise_from"),
        ("triage.toml", "keep_at = 0.25", "keep_at = 0.9", "priority.learned.keep_at"),
        ("triage.toml", 'model = "classifier/p1.json"', 'model = "classifier/p9.json"',
         "classifier/p9.json: missing"),
        ("classifier/p1.json", '"classes":["P1","other"]', '"classes":["P1","P2"]', "P2"),
        ("classifier/lexicon.toml", "[false_alarm]", "[false_alarm]\nmarker = []",
         "unknown key"),
    ],
)
def test_loader_names_file_and_entry(
    tmp_path: Path, name: str, old: str, new: str, expected: str
) -> None:
    with pytest.raises(RulesError) as err:
        load_triage_rules(rules_with(tmp_path, name, old, new))
    assert expected in str(err.value)


# --------------------------------------------------------------------------- the corpus


def test_the_corpus_covers_every_category_and_is_well_formed() -> None:
    records = read_corpus(CORPUS)
    assert len(records) >= 1100
    counts = Counter(r.category for r in records)
    assert all(counts[code] >= 5 for code in RULES.categories), counts
    assert len({r.id for r in records}) == len(records)
    assert len({r.text for r in records}) == len(records)
    for r in records:
        assert r.source in {s.value for s in Source}
        assert set(r.also) <= set(RULES.categories) and r.category not in r.also
        assert r.lead in RULES.departments and r.priority in {"P1", "P2", "P3", "P4"}
        assert (r.bjlx is not None) == (r.source == "police")
    dev = [r for r in records if split_of(r.id) == "dev"]
    assert 0.15 < len(dev) / len(records) < 0.25


def test_the_independent_sets_are_well_formed_and_a_quarter_of_the_second_is_fresh() -> None:
    names = ("extra-a.jsonl", "extra-b.jsonl", "extra-c.jsonl", "extra-d.jsonl", "extra-e.jsonl",
             "extra-f.jsonl")
    sets = {name: read_corpus(CORPUS.parent / name) for name in names}
    ids = [r.id for records in [read_corpus(CORPUS), *sets.values()] for r in records]
    assert len(set(ids)) == len(ids)
    for records in sets.values():
        for r in records:
            assert r.category in RULES.categories and set(r.also) <= set(RULES.categories)
            assert r.lead in RULES.departments and r.priority in {"P1", "P2", "P3", "P4"}
            assert (r.bjlx is not None) <= (r.source == "police")
    for name in ("extra-c.jsonl", "extra-d.jsonl", "extra-e.jsonl", "extra-f.jsonl"):
        counts = Counter(r.category for r in sets[name])
        assert all(counts[code] >= 6 for code in RULES.categories), (name, counts)
    others = [*read_corpus(CORPUS), *sets["extra-a.jsonl"], *sets["extra-c.jsonl"],
              *sets["extra-d.jsonl"], *sets["extra-e.jsonl"], *sets["extra-f.jsonl"]]
    assert not any(split_of(r.id) == "fresh" for r in others)
    fresh = [r for r in sets["extra-b.jsonl"] if split_of(r.id) == "fresh"]
    assert 0.2 < len(fresh) / len(sets["extra-b.jsonl"]) < 0.3
    assert split_of("b0001") == split_of("b0001")  # by the id alone, always


def test_a_labelled_text_becomes_the_event_the_worker_sees() -> None:
    record = next(r for r in read_corpus(CORPUS) if r.source == "police")
    event, location = as_event(record, CITY)
    assert event.source is Source.POLICE and event.source_code == record.bjlx
    assert event.text == record.text and location.grid_code in CITY.grids
    assert as_event(record, CITY) == (event, location)  # the place is picked by id, always


# --------------------------------------------------------------------------- the command


def test_classifier_train_writes_a_model_and_scores_before_and_after(tmp_path: Path) -> None:
    from cli.main import main

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    corpus = tmp_path / "small.jsonl"
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[::8]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["classifier", "train", "--corpus", str(corpus), "--epochs", "3"],
        env={"GRIDLINK_RULES_DIR": str(rules)},
    )
    assert result.exit_code == 0, result.output
    assert "before (lr-" in result.output and "after (lr-" in result.output
    written = json.loads((rules / "classifier" / "model.json").read_text(encoding="utf-8"))
    assert written["trained"]["texts"] == len(lines)
    assert load_triage_rules(rules).model.version == written["version"]
    # the learned P1 check is trained next, from the same texts, and written beside it
    assert "held-out P1" in result.output
    check = json.loads((rules / "classifier" / "p1.json").read_text(encoding="utf-8"))
    assert check["classes"] == ["P1", "other"]
    assert check["trained"]["category_model"] == written["version"]
    assert load_triage_rules(rules).learned_priority.model.version == check["version"]
