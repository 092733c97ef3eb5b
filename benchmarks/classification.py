"""Classification benchmark: how often triage gets the category, the lead and P1 right.

Reads a set of labelled texts (``tests/data/classification/*.jsonl``, see the
README there) — by default the sealed evaluation set, ``sealed.jsonl`` — turns
each into the event the worker would see (:func:`streams.corpus.as_event`:
source, title, text, the 110 ``bjlx`` as source code, a place in the demo
city) and runs it through :func:`streams.triage.triage` with an empty
correlation state: the same classification, priorities and routing the
worker applies. Prints

- accuracy of the category (exact, and counting the listed alternatives),
  of the family and of the lead department, each with its 95 % Wilson interval;
- the most frequent confusion pairs (labelled → given);
- the share sent to the operators' verification (核实) and the category
  accuracy among the rest;
- P1 recall and precision (P1 labelled vs P1 given);
- classify+route texts/s on this core: classification (segmentation included,
  nothing cached from an earlier run) and routing of every text, best of
  ``--repeat`` runs; and the same with the priority.

Usage, from the repository root::

    python benchmarks/classification.py                       # the sealed set
    python benchmarks/classification.py --set tests/data/classification/corpus.jsonl --split dev
    python benchmarks/classification.py --set tests/data/classification/extra-b.jsonl --split fresh
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from streams.classify import classify  # noqa: E402
from streams.corpus import AT, LabelledText, as_event, read_corpus, split_of  # noqa: E402
from streams.correlate import TownshipState  # noqa: E402
from streams.model import text_features  # noqa: E402
from streams.priority import persons_in_text, prioritise, signals_found  # noqa: E402
from streams.records import Event, Location, Priority  # noqa: E402
from streams.reference import load_city  # noqa: E402
from streams.route import route  # noqa: E402
from streams.triage import triage  # noqa: E402
from streams.triage_rules import TriageRules, load_triage_rules  # noqa: E402

SEALED = ROOT / "tests" / "data" / "classification" / "sealed.jsonl"
RULES_DIR = ROOT / "rules"
CITY_DIR = ROOT / "reference" / "demo_city"
Z95 = 1.959964


@dataclass(frozen=True)
class Outcome:
    record: LabelledText
    category: str
    lead: str | None
    priority: Priority
    verify: bool
    rule: str


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run(records: Sequence[LabelledText], rules: TriageRules,
        located: Sequence[tuple[Event, Location]]) -> list[Outcome]:
    out = []
    for record, (event, location) in zip(records, located, strict=True):
        decision, _ = triage(event, location, TownshipState(), rules, AT)
        assert decision.classification and decision.priority and decision.routing
        out.append(Outcome(record, decision.classification.category, decision.routing.lead,
                           decision.priority.priority, decision.needs_verification,
                           decision.classification.rule))
    return out


def figures(outcomes: Sequence[Outcome]) -> dict:
    n = len(outcomes)

    def share(hits: int, of: int) -> dict:
        low, high = wilson(hits, of)
        return {"hits": hits, "n": of, "rate": hits / of if of else 0.0, "ci95": [low, high]}

    exact = sum(o.category == o.record.category for o in outcomes)
    accepted = sum(o.record.accepts(o.category) for o in outcomes)
    family = sum(o.category[:2] == o.record.category[:2] for o in outcomes)
    lead = sum(o.lead == o.record.lead for o in outcomes)
    rest = [o for o in outcomes if not o.verify]
    labelled_p1 = [o for o in outcomes if o.record.priority == "P1"]
    given_p1 = [o for o in outcomes if o.priority is Priority.P1]
    confusions = Counter(
        (o.record.category, o.category) for o in outcomes if not o.record.accepts(o.category)
    )
    return {
        "texts": n,
        "category_exact": share(exact, n),
        "category_with_alternatives": share(accepted, n),
        "family": share(family, n),
        "lead": share(lead, n),
        "verification": share(n - len(rest), n),
        "right_among_the_rest": share(sum(o.record.accepts(o.category) for o in rest), len(rest)),
        "p1_recall": share(sum(o.priority is Priority.P1 for o in labelled_p1), len(labelled_p1)),
        "p1_precision": share(sum(o.record.priority == "P1" for o in given_p1), len(given_p1)),
        "confusions": [[a, b, count] for (a, b), count in confusions.most_common()],
        "p1_missed": [o.record.id for o in labelled_p1 if o.priority is not Priority.P1],
        "p1_extra": [o.record.id for o in given_p1 if o.record.priority != "P1"],
    }


def rate(located: Sequence[tuple[Event, Location]], rules: TriageRules, *, repeat: int,
         with_priority: bool) -> float:
    """Texts/s of classify+route (and prioritise), every reading made afresh."""
    best = math.inf
    for _ in range(repeat + 1):  # the first run warms up
        _forget(rules)
        started = time.perf_counter()
        for event, location in located:
            classification = classify(event, rules)
            if with_priority:  # as triage does: the signals once, for both
                signals = signals_found(event, rules)
                prioritise(event, classification, rules, signals=signals)
                route(classification, event, location, rules, signals=signals)
            else:
                route(classification, event, location, rules)
        best = min(best, time.perf_counter() - started)
    _forget(rules)
    return len(located) / best


def _forget(rules: TriageRules) -> None:
    """Drop what the core remembers of texts read (readings, head counts, features)."""
    rules.lexicon.read.cache_clear()
    persons_in_text.cache_clear()
    text_features.cache_clear()


def report(name: str, result: dict, top: int, *, errors: bool = True) -> None:
    print(f"set: {name} — {result['texts']} texts")
    print(f"{'':34}{'rate':>8}   95 % CI")
    rows = [
        ("category, exact", "category_exact"),
        ("category, counting alternatives", "category_with_alternatives"),
        ("family", "family"),
        ("lead department", "lead"),
        ("sent to verification (核实)", "verification"),
        ("category right among the rest", "right_among_the_rest"),
        ("P1 recall", "p1_recall"),
        ("P1 precision", "p1_precision"),
    ]
    for label, key in rows:
        f = result[key]
        low, high = f["ci95"]
        print(f"{label:<34}{f['rate']:>8.1%}   {low:.1%}–{high:.1%}   ({f['hits']}/{f['n']})")
    if errors:
        print(f"\ntop confusion pairs (labelled → given), of "
              f"{sum(c for *_, c in result['confusions'])} wrong:")
        for labelled, given, count in result["confusions"][:top]:
            print(f"  {labelled} → {given}  ×{count}")
        if result["p1_missed"]:
            print(f"\nP1 missed: {', '.join(result['p1_missed'])}")
        if result["p1_extra"]:
            print(f"P1 given, not labelled P1: {', '.join(result['p1_extra'])}")
    if "texts_per_s" in result:
        print(f"\nclassify+route: {result['texts_per_s']['classify_route']:,.0f} texts/s; "
              f"with the priority: {result['texts_per_s']['classify_priority_route']:,.0f} "
              f"texts/s (one core, segmentation included, best of {result['repeat']})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="path", type=Path, default=SEALED,
                        help=f"labelled texts, JSONL (default: the sealed set, {SEALED.name})")
    parser.add_argument("--split", choices=("dev", "train", "fresh"), default=None,
                        help="only the texts of this split of the set (by id hash; fresh: "
                             "a quarter of extra-b.jsonl, see the corpus README)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    parser.add_argument("--top", type=int, default=15, help="confusion pairs shown")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--figures-only", action="store_true",
                        help="print the figures, not the confusion pairs or the ids of the "
                             "P1 missed and given (for a set whose errors must not be seen "
                             "while tuning, such as the fresh split)")
    args = parser.parse_args(argv)
    if not args.path.exists():
        print(f"no labelled set at {args.path}: the sealed evaluation set is placed there by "
              "whoever holds it; pass --set PATH to measure another set "
              "(e.g. --set tests/data/classification/corpus.jsonl --split dev)",
              file=sys.stderr)
        return 2
    records = read_corpus(args.path)
    if args.split:
        records = [r for r in records if split_of(r.id) == args.split]
    if not records:
        print(f"no texts in {args.path}" + (f" (split {args.split})" if args.split else ""),
              file=sys.stderr)
        return 2
    city = load_city(CITY_DIR)
    rules = load_triage_rules(RULES_DIR, departments=city.departments)
    located = [as_event(r, city) for r in records]
    result = figures(run(records, rules, located))
    result["model"] = rules.model.version if rules.model else None
    if not args.no_speed:
        result["repeat"] = args.repeat
        result["texts_per_s"] = {
            "classify_route": rate(located, rules, repeat=args.repeat, with_priority=False),
            "classify_priority_route": rate(located, rules, repeat=args.repeat,
                                            with_priority=True),
        }
    name = args.path.name + (f" ({args.split} split)" if args.split else "")
    report(name, result, args.top, errors=not args.figures_only)
    if args.figures_only:
        for key in ("confusions", "p1_missed", "p1_extra"):
            result.pop(key)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
