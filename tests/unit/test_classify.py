"""Classification: source codes first, coarse codes refined within their family,
keywords, fallback; the rule loader's validation of codes and keywords."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.classify import best_keyword, classify, event_text, needs_verification
from streams.errors import RulesError
from streams.records import Event, Source
from streams.triage_rules import load_triage_rules
from tests.builders import rules_with

RULES_DIR = Path(__file__).parents[2] / "rules"
RULES = load_triage_rules(RULES_DIR)
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def ev(source: Source = Source.GRID, **fields: Any) -> Event:
    return Event(
        event_id=f"{source.value}:X",
        source=source,
        source_id="X",
        occurred_at=T0,
        reported_at=T0,
        **fields,
    )


CASES = [
    # (id, event, category, rule)
    (
        "110 exact code",
        ev(Source.POLICE, source_code="700300", text="广场上聚集了很多人"),
        "03.05",
        "bjlx:700300",
    ),
    (
        "110 coarse 城管 refined by 烧烤 (sample 00342)",
        ev(
            Source.POLICE,
            source_code="600600",
            text="楼下烧烤摊深夜噪音大、油烟重，影响休息，要求处理。",
        ),
        "05.09",
        "bjlx:600600>keyword:烧烤",
    ),
    (
        "110 coarse 城管 without a family keyword keeps its default",
        ev(Source.POLICE, source_code="600600", text="有人反映情况"),
        "05.01",
        "bjlx:600600",
    ),
    (
        "110 coarse 水电气暖 refined by 停水 (sample 00051)",
        ev(Source.POLICE, source_code="601300", text="小区停水两天了，物业不管。"),
        "06.01",
        "bjlx:601300>keyword:停水",
    ),
    (
        "110 prefix 4xxxxx",
        ev(Source.POLICE, source_code="412345", text="救援"),
        "07.01",
        "bjlx:4xxxxx",
    ),
    (
        "110 prefix refined: 4xxxxx + 危化品",
        ev(Source.POLICE, source_code="412345", text="危化品泄漏"),
        "07.03",
        "bjlx:4xxxxx>keyword:危化品",
    ),
    (
        "110 domestic violence",
        ev(Source.POLICE, source_code="200600", text="丈夫打人"),
        "03.02",
        "bjlx:200600",
    ),
    (
        "110 unknown code: keywords decide",
        ev(Source.POLICE, source_code="912345", text="井盖丢了"),
        "06.05",
        "keyword:井盖",
    ),
    (
        "camera AI event",
        ev(Source.CAMERA, source_code="street_vending", text="占道经营"),
        "05.01",
        "ai_event:street_vending",
    ),
    (
        "camera AI event beats GB/T 28181 type",
        ev(Source.CAMERA, source_code="crowd_gathering", alarm_method=5, alarm_type=10),
        "03.05",
        "ai_event:crowd_gathering",
    ),
    (
        "camera smoke",
        ev(Source.CAMERA, source_code="smoke", text="烟雾"),
        "07.01",
        "ai_event:smoke",
    ),
    (
        "GB/T 28181 intrusion",
        ev(Source.CAMERA, alarm_method=5, alarm_type=6, text="入侵检测：人员翻越围栏(河道护栏)"),
        "03.06",
        "gb28181:5/6",
    ),
    (
        "GB/T 28181 crowd density",
        ev(Source.CAMERA, alarm_method=5, alarm_type=10),
        "03.05",
        "gb28181:5/10",
    ),
    (
        "GB/T 28181 unmapped type: keywords over the description",
        ev(Source.CAMERA, alarm_method=5, alarm_type=3, text="遗留物，疑似起火"),
        "07.01",
        "keyword:起火",
    ),
    (
        "grid platform's own code",
        ev(source_category="05.03", text="随便"),
        "05.03",
        "grid_category:05.03",
    ),
    (
        "grid src_type label (sample 101)",
        ev(source_labels=("矛盾劝解", "邻里纠纷"), title="楼上漏水引发邻里纠纷"),
        "01.02",
        "grid_label:邻里纠纷",
    ),
    (
        "grid src_type label 劳资纠纷 (sample 104)",
        ev(source_labels=("矛盾劝解", "劳资纠纷"), text="三十余名农民工聚集讨要拖欠工资"),
        "01.05",
        "grid_label:劳资纠纷",
    ),
    (
        "grid coarse src_domain refined by keywords of its family",
        ev(source_labels=("矛盾劝解",), text="工地拖欠工资三个月"),
        "01.05",
        "grid_label:矛盾劝解>keyword:拖欠+工资",
    ),
    (
        "grid coarse src_domain without keyword: family default",
        ev(source_labels=("矛盾劝解",), text="双方闹得不愉快"),
        "01.99",
        "grid_label:矛盾劝解",
    ),
    (
        "grid unmapped label: keywords (sample 103)",
        ev(
            source_labels=("突发事件报告",),
            text="红旗社区临街商铺后厨冒出浓烟，疑似起火，已有居民拨打119。",
        ),
        "07.01",
        "keyword:起火",
    ),
    (
        "grid no category: keywords (sample 102)",
        ev(text="化机小区3号楼前垃圾桶满溢，垃圾散落路面，无人清运。"),
        "05.03",
        "keyword:垃圾+满溢",
    ),
    ("keywords: 占道经营", ev(text="路口有人占道经营卖水果"), "05.01", "keyword:占道经营"),
    ("keywords: 欠薪 in the title", ev(title="欠薪", text="工人来找"), "01.05", "keyword:欠薪"),
    ("keywords: gas", ev(text="楼道里有很重的煤气味"), "06.02", "keyword:煤气味"),
    ("fallback", ev(text="今天天气不错"), "11.00", "fallback"),
]


@pytest.mark.parametrize(
    ("event", "category", "rule"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_classify_table(event: Event, category: str, rule: str) -> None:
    result = classify(event, RULES)
    assert (result.category, result.rule) == (category, rule)
    assert result.name == RULES.categories[category].name_zh


def test_text_that_clearly_says_otherwise_overrules_a_source_code() -> None:
    # 城管执法 + 起火: the text clearly names a fire; the code is overruled, and why is recorded
    result = classify(ev(Source.POLICE, source_code="600600", text="楼下起火了"), RULES)
    assert (result.category, result.rule) == ("07.01", "bjlx:600600>overruled:keyword:起火")
    assert "bjlx:600600" in result.overruled and "起火" in result.overruled


def test_a_weaker_word_of_another_family_does_not_overrule_a_source_code() -> None:
    # 城管执法 + 烧烤摊 … 冒烟: the code's own family (05.09 烧烤) is at least as strong
    result = classify(
        ev(Source.POLICE, source_code="600600", text="楼下烧烤摊一直冒烟，油烟很大"), RULES
    )
    assert result.category == "05.09" and not result.overruled


def test_camera_confidence_is_capped_by_the_alarm_confidence() -> None:
    sure = classify(ev(Source.CAMERA, source_code="smoke", ai_confidence=0.88), RULES)
    unsure = classify(ev(Source.CAMERA, source_code="smoke", ai_confidence=0.3), RULES)
    assert sure.confidence == 0.88
    assert unsure.confidence == 0.3
    assert needs_verification(unsure, RULES) and not needs_verification(sure, RULES)


def test_fallback_and_vague_labels_go_to_verification() -> None:
    assert needs_verification(classify(ev(text="今天天气不错"), RULES), RULES)
    vague = classify(ev(source_labels=("治安隐患",), text="情况不明"), RULES)
    assert (vague.category, needs_verification(vague, RULES)) == ("03.01", True)
    clear = classify(ev(source_labels=("邻里纠纷",), text="x"), RULES)
    assert not needs_verification(clear, RULES)


def test_more_matching_rules_score_higher_and_tie_goes_to_file_order() -> None:
    one = best_keyword("冒烟", RULES)
    two = best_keyword("冒烟，烟雾", RULES)
    assert one is not None and two is not None
    assert two[1] > one[1] and two[2].label == "冒烟"
    # 08.01 噪音 (0.6) vs 05.03 垃圾 (0.6): equal score, 05.03 is listed first
    tie = best_keyword("垃圾噪音", RULES)
    assert tie is not None and tie[0] == "05.03"


def test_family_restricted_keywords() -> None:
    assert best_keyword("烧烤油烟噪音", RULES, family="08") is not None
    hit = best_keyword("烧烤油烟噪音", RULES, family="08")
    assert hit is not None and hit[0] == "08.01"
    assert best_keyword("烧烤", RULES, family="06") is None


def test_a_keyword_rule_does_not_match_in_its_unless_context() -> None:
    # "分居+!部分居民": 分居 inside 部分居民 is not a marriage falling apart
    separated = best_keyword("夫妻分居两年", RULES, family="01")
    assert separated is not None and separated[0] == "01.01"
    assert separated[2].label == "分居" and separated[2].unless == ("部分居民",)
    residents = best_keyword("部分居民拒交卫生费", RULES, family="01")
    assert residents is None or residents[2].label != "分居"


def test_a_keyword_rule_of_only_unless_words_is_refused(tmp_path: Path) -> None:
    target = rules_with(tmp_path, "keywords.toml", '"分居+!部分居民"', '"!分居"')
    with pytest.raises(RulesError, match="only '!' words"):
        load_triage_rules(target)


CHINESE = st.text(
    alphabet="垃圾满溢烧烤起火浓烟纠纷邻里停水聚集横幅天气不错的了人十三约40", max_size=30
)


@settings(max_examples=300, deadline=None)
@given(
    text=CHINESE,
    source=st.sampled_from(list(Source)),
    code=st.one_of(
        st.none(),
        st.sampled_from(
            [
                "600600",
                "700300",
                "200600",
                "1",
                "412345",
                "999999",
                "smoke",
                "street_vending",
                "nope",
            ]
        ),
    ),
    labels=st.lists(
        st.sampled_from(["矛盾劝解", "邻里纠纷", "突发事件报告", "城市管理"]), max_size=2
    ),
)
def test_every_classification_is_in_the_taxonomy(
    text: str, source: Source, code: str | None, labels: list[str]
) -> None:
    event = ev(source, text=text, source_code=code, source_labels=tuple(labels))
    result = classify(event, RULES)
    assert result.category in RULES.categories
    assert 0.0 <= result.confidence <= 1.0 and result.rule
    if result.rule.startswith("keyword:"):
        # honest: the recorded keywords are in the text and belong to the category
        words = result.rule.removeprefix("keyword:").split("+")
        assert all(w in event_text(event) for w in words)
        assert any(r.category == result.category and list(r.words) == words for r in RULES.keywords)
    if result.rule == "fallback":
        assert best_keyword(event_text(event), RULES) is None


# --------------------------------------------------------------------------- loader


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        (
            "codes.toml",
            '"700300" = { category = "03.05"',
            '"700300" = { category = "03.55"',
            "codes.toml: police.bjlx.700300",
        ),
        ("codes.toml", 'smoke = "07.01"', 'smoke = "7.01"', "codes.toml: camera.ai_event.smoke"),
        (
            "codes.toml",
            '"600600" = { category = "05.01", refine_within = "05"',
            '"600600" = { category = "05.01", refine_within = "06"',
            "police.bjlx.600600",
        ),
        ("codes.toml", '"5/6" = {', '"5-6" = {', "camera.gb28181.5-6"),
        (
            "codes.toml",
            'fight = "03.01"',
            'fight = { category = "03.01", police_only = true }',
            "camera.ai_event.fight",
        ),
        (
            "codes.toml",
            '"邻里纠纷" = "01.02"',
            '"邻里纠纷" = { category = "01.02", confidnce = 0.9 }',
            "unknown key",
        ),
        ("keywords.toml", '[keywords."05.09"]', '[keywords."05.19"]', "keywords.05.19"),
        ("keywords.toml", '"烧烤" = 0.85', '"烧烤" = 1.5', "keywords.05.09.烧烤"),
        (
            "taxonomy.toml",
            '"05.09" = { family = "05"',
            '"05.09" = { family = "06"',
            "category.05.09",
        ),
        ("taxonomy.toml", '"11.00" = {', '"11.01" = {', "category.11.00"),
    ],
)
def test_loader_names_file_and_entry(
    tmp_path: Path, name: str, old: str, new: str, expected: str
) -> None:
    with pytest.raises(RulesError) as err:
        load_triage_rules(rules_with(tmp_path, name, old, new))
    assert name in str(err.value) and expected in str(err.value)


def test_loader_reports_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target)
    (target / "keywords.toml").unlink()
    with pytest.raises(RulesError, match="keywords.toml"):
        load_triage_rules(target)


def test_shipped_rules_cover_every_category_with_keywords() -> None:
    covered = {rule.category for rule in RULES.keywords}
    assert covered >= set(RULES.categories) - {"11.00"}
    assert len(RULES.keywords) >= 100
