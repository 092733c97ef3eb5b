"""The P1 rule table (rules/triage.toml): danger to life now is P1, with its reason;
a danger already over, denied, only feared or no danger to life is not.

Texts written the way grid workers, 110 call-takers and camera operators
report, run through the shipped rules and models as triage does (the category
from :func:`classify`, then :func:`prioritise`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.classify import classify
from streams.priority import persons_in_text, prioritise
from streams.records import Priority, Source
from streams.triage_rules import load_triage_rules
from tests.builders import ev

RULES = load_triage_rules(Path(__file__).parents[2] / "rules")
GRID, POLICE, CAMERA = Source.GRID, Source.POLICE, Source.CAMERA

# (source, 110 code, text, the start of a reason that must be recorded)
DANGER_NOW = [
    (GRID, None, "幸福里3号楼502室门缝往外冒烟，敲门没人应，邻居说屋里住着一位瘫痪老人。",
     "signal:smoke_with_people:"),
    (POLICE, "120300", "报警人称小区地下车库一股很浓的燃气味，有住户说头晕，物业还没来人。",
     "signal:life_danger:"),
    (POLICE, None, "报警人称烧烤摊前两名男子持刀对峙，周围群众四散跑开。", "signal:weapons:持刀"),
    (GRID, None, "东环路工地一名工人从三楼脚手架坠落，头部流血，人还躺在地上。",
     "signal:life_danger:"),
    (POLICE, None, "报警人称她爸在家里突然昏迷，呼之不应，家里就她一个人。", "signal:life_danger:"),
    (CAMERA, None, "AI积水告警 下穿隧道水深约1米，一辆小车熄火，车里有人出不来。",
     "signal:life_danger:出不来"),
    (POLICE, None, "报警人称一个小孩在水库边玩掉进水里了，岸上的人在喊救命。",
     "signal:life_danger:"),
    (GRID, None, "建设路路面突然塌陷，一辆电动车连人带车掉进坑里。", "signal:life_danger:塌陷"),
    (POLICE, None, "报警人称电工在配电箱检修时触电倒地，工友正在做心肺复苏。",
     "signal:life_danger:"),
    (GRID, None, "县政府门口聚集了约四十名群众，情绪激动。", "persons:40>=30"),
    (POLICE, None, "报警人称三十多号人堵在厂门口讨薪，车都出不去。", "persons:30>=30"),
    (POLICE, None, "报警人称超市停车场一辆车里锁着一个三四岁的孩子，车停在太阳底下，孩子一直哭，"
     "车主找不到，孩子脸都紫了。", "signal:vulnerable_in_danger:"),
    (POLICE, "200600", "报警人称丈夫正在家里打她，孩子在哭，快来人。",
     "follow_up:bjlx:200600:now:"),
    (CAMERA, None, "越界告警 点位：跨江大桥 复核：一名男子翻过护栏站在桥梁外沿，情绪不稳，"
     "民警在劝。", "signal:on_the_edge:"),
    (CAMERA, None, "人员聚集告警 区政府南门 人数约120人 检测到横幅 持续20分钟。",
     "persons:120>=30"),
    (GRID, None, "李庄村一户老土坯房下雨塌了半边，屋里还住着个八十多岁的老太太，喊了没人应。",
     "signal:life_danger:"),
]

NOT_NOW = [
    (GRID, None, "幸福里一户厨房油锅起火，已扑灭，无人受伤。"),
    (POLICE, None, "报警人称两人在超市门口发生口角，已劝开，无人受伤。"),
    (GRID, None, "楼道里燃气味已处理，燃气公司检测未发现泄漏，判断是下水道返味。"),
    (CAMERA, None, "人员聚集告警 点位：商场中庭 人数约200人 复核：周末促销活动，秩序正常。"),
    (GRID, None, "网格员巡查发现学校附近小卖部在卖管制刀具，已告知派出所。"),
    (CAMERA, None, "秸秆焚烧告警 点位：王庄村南地 复核：村民烧秸秆，冒黑烟飘向乡道。"),
    (POLICE, None, "报警人称人行道上塌了一个小坑，他已经放了锥桶，没有人掉下去。"),
    (POLICE, "200600", "报警人称昨天被丈夫打了，丈夫已经出门了，她想咨询离婚。"),
    (GRID, None, "锦华园5号楼住户在阳台外搭架子晾晒被子，滴水到楼下。"),
    (GRID, None, "下雨后公交站台前积水，车一过就溅到候车乘客身上。"),
    (POLICE, None, "报警人称两车在路口轻微剐蹭，没有人受伤，双方在协商赔偿。"),
    (GRID, None, "小区门口五六个人为停车位争吵，物业已处理。"),
    (GRID, None, "3号楼楼道堆满纸箱杂物，住户担心万一起火人出不去。"),
    (POLICE, None, "报警人称昨晚在大排档被人打了一拳，打人的已被派出所带走，现在想验伤。"),
    # the markers by themselves
    (GRID, None, "已扑灭"),
    (GRID, None, "无人受伤"),
    (GRID, None, "已处理"),
    (POLICE, None, "现场已处理完毕，无人受伤，火已扑灭。"),
]


@pytest.mark.parametrize(("source", "code", "text", "reason"), DANGER_NOW)
def test_danger_to_life_now_is_p1_with_its_reason(
    source: Source, code: str | None, text: str, reason: str
) -> None:
    event = ev(source, source_code=code, text=text)
    decision = prioritise(event, classify(event, RULES), RULES)
    assert decision.priority is Priority.P1, decision.reasons
    assert any(r.startswith(reason) for r in decision.reasons), decision.reasons


@pytest.mark.parametrize(("source", "code", "text"), NOT_NOW)
def test_a_danger_over_denied_or_feared_is_not_p1(
    source: Source, code: str | None, text: str
) -> None:
    event = ev(source, source_code=code, text=text)
    decision = prioritise(event, classify(event, RULES), RULES)
    assert decision.priority is not Priority.P1, decision.reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("网格员巡查发现学校附近小卖部在卖管制刀具，已告知派出所。", ":lowered:在卖"),
        ("人员聚集告警 约200人 复核：周末促销活动，秩序正常。", "persons:200>=30:lowered:"),
    ],
)
def test_a_lowered_p1_records_the_phrase(text: str, reason: str) -> None:
    event = ev(text=text)
    decision = prioritise(event, classify(event, RULES), RULES)
    assert decision.priority is Priority.P2
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_a_going_danger_is_not_lowered_by_a_phrase_of_the_table() -> None:
    # 秸秆 lowers smoke from burning straw, but not a fire out of control
    event = ev(text="村民烧秸秆火势失控，引燃了旁边的麦秸垛，火越烧越大。")
    decision = prioritise(event, classify(event, RULES), RULES)
    assert decision.priority is Priority.P1
    assert not any(":lowered:" in r for r in decision.reasons)


@pytest.mark.parametrize(
    ("text", "persons"),
    [("三十多号人堵在门口", 30), ("两家十几口人在对峙", 10), ("一家三口", None), ("30口井", None)],
)
def test_head_counts_with_hao_and_kou(text: str, persons: int | None) -> None:
    assert persons_in_text(text) == persons
