"""Which categories may join one case: the table precomputed from triage.toml
[correlation] (CorrelationRules.compatible_with, built once so triage looks a
pair up instead of working it out per event) agrees with the rule as written,
for every pair of the shipped taxonomy and for codes outside it."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import product
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.triage_rules import CorrelationRules, load_triage_rules

RULES = load_triage_rules(Path(__file__).parents[2] / "rules")
C = RULES.correlation
CATEGORIES = sorted(RULES.categories)
FAMILIES = sorted(RULES.families)


def by_definition(
    a: str, b: str, join_within_family: Iterable[str], compatible: Iterable[tuple[str, str]]
) -> bool:
    """The definition, written out independently of streams.triage_rules: the same
    category; the same family for a family in join_within_family; or a listed
    pair either way round, a 2-digit side standing for its whole family."""

    def covers(pattern: str, code: str) -> bool:
        return code == pattern or (len(pattern) == 2 and code[:2] == pattern)

    if a == b:
        return True
    if a[:2] == b[:2] and a[:2] in set(join_within_family):
        return True
    return any(
        (covers(x, a) and covers(y, b)) or (covers(x, b) and covers(y, a)) for x, y in compatible
    )


def test_every_pair_of_the_shipped_taxonomy_matches_the_definition() -> None:
    assert len(CATEGORIES) > 50 and C.categories == frozenset(CATEGORIES)
    for a, b in product(CATEGORIES, repeat=2):
        expected = by_definition(a, b, C.join_within_family, C.compatible)
        assert C.compatible_categories(a, b) is expected, (a, b)
        assert (b in C.compatible_with[a]) is expected, (a, b)


def test_the_table_covers_the_taxonomy_and_is_symmetric_and_reflexive() -> None:
    assert set(C.compatible_with) == set(CATEGORIES)
    for a, row in C.compatible_with.items():
        assert a in row and row <= C.categories
        assert all(a in C.compatible_with[b] for b in row)


def test_the_shipped_rules_join_what_they_say() -> None:
    assert C.compatible_categories("03.05", "02.01")  # ["03.05", "02"]
    assert C.compatible_categories("01.05", "03.05")  # wage-arrears protest, either way round
    assert C.compatible_categories("03.01", "03.05")  # join_within_family 03
    assert not C.compatible_categories("05.03", "05.01")  # 05 joins only the same category
    assert not C.compatible_categories("07.01", "03.05")


codes = st.one_of(
    st.sampled_from(CATEGORIES),
    st.sampled_from(FAMILIES),  # a bare family code
    st.builds(  # codes outside the taxonomy: a removed subtype, an unknown family
        lambda f, s: f"{f:02d}.{s:02d}", st.integers(0, 13), st.integers(0, 99)
    ),
)


@settings(max_examples=400, deadline=None)
@given(a=codes, b=codes)
def test_codes_outside_the_taxonomy_fall_back_to_the_definition(a: str, b: str) -> None:
    assert C.compatible_categories(a, b) is by_definition(a, b, C.join_within_family, C.compatible)


pair_sides = st.one_of(st.sampled_from(CATEGORIES), st.sampled_from(FAMILIES))


@settings(max_examples=60, deadline=None)
@given(
    join=st.frozensets(st.sampled_from(FAMILIES), max_size=4),
    pairs=st.lists(st.tuples(pair_sides, pair_sides), max_size=6),
    probes=st.lists(st.tuples(codes, codes), min_size=1, max_size=40),
)
def test_replaced_rules_expand_their_own_pairs(
    join: frozenset[str], pairs: list[tuple[str, str]], probes: list[tuple[str, str]]
) -> None:
    """Rules built or replaced with other pairs never use a stale table."""
    rules = msgspec.structs.replace(C, join_within_family=join, compatible=tuple(pairs))
    for a, b in [*probes, *product(CATEGORIES[::7], repeat=2)]:
        assert rules.compatible_categories(a, b) is by_definition(a, b, join, pairs), (a, b)


def test_the_table_is_derived_not_a_field() -> None:
    assert "compatible_with" not in msgspec.structs.asdict(C)
    decoded = msgspec.json.decode(msgspec.json.encode(C), type=CorrelationRules)
    assert decoded == C and decoded.compatible_with == C.compatible_with
    bare = msgspec.structs.replace(C, categories=frozenset())  # no taxonomy: all by definition
    assert bare.compatible_with == {}
    assert bare.compatible_categories("03.05", "01.05") and not bare.compatible_categories(
        "05.03", "05.01"
    )
