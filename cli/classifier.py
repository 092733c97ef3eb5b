"""``gridlink classifier train``: train the text classifier (模型训练).

Reads the labelled sets (by default the corpus and the six independent sets
``extra-a`` … ``extra-f``; their ``train`` splits, ``--all`` for the
``dev`` splits too; the ``fresh`` split never, and never the sealed set),
optionally the operators' corrections from the case log (``--from-log``),
trains :mod:`streams.learning`'s model, prints the category accuracy of the
model in use and of the new one on the held-out texts (the ``dev`` splits
and the held-out share of the corrections), and writes the new model to
``<rules dir>/classifier/model.json`` — plain JSON a worker loads at start.
When ``triage.toml`` has a learned P1 check (``[priority.learned]``), it is
trained next from the same texts' priorities (with the categories the new
model gives them), its P1 recall and precision on the held-out texts printed
before and after, and written beside the model (``classifier/p1.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import msgspec
from msgspec.structs import replace

from settings import Settings
from streams.cases import event_decoder
from streams.classify import classify
from streams.corpus import as_event, read_corpus, split_of
from streams.errors import RulesError
from streams.learning import (
    P1_CLASSES,
    P1_PARAMETERS,
    Correction,
    Example,
    TrainingParameters,
    corrections,
    example_of,
    p1_example_of,
    train,
)
from streams.model import ModelFile, TextModel, model_json
from streams.priority import prioritise
from streams.records import Event, Priority
from streams.reference import load_city
from streams.triage_rules import TriageRules, load_triage_rules

#: the labelled sets shipped with the project that training may read (not the sealed one)
LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "classification"
CORPORA = tuple(LABELLED / name for name in (
    "corpus.jsonl", "extra-a.jsonl", "extra-b.jsonl", "extra-c.jsonl", "extra-d.jsonl",
    "extra-e.jsonl", "extra-f.jsonl"))


@dataclass(frozen=True)
class HeldOut:
    """One held-out text: the event and the categories accepted for it."""

    event: Event
    accepted: frozenset[str]
    primary: str
    priority: str | None = None  # labelled texts only, not corrections


@click.group()
def classifier() -> None:
    """The text classifier (文本分类模型)."""


@classifier.command("train")
@click.option("--corpus", "corpus_paths", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=CORPORA, show_default=True,
              help="Labelled texts (JSONL); repeat for several sets.")
@click.option("--from-log", is_flag=True,
              help="Also learn from operators' corrections on the case log (cases.events).")
@click.option("--all", "use_all", is_flag=True,
              help="Train on every text, the dev split too (then nothing is held out); "
                   "the fresh split never.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the model; default <rules dir>/classifier/model.json.")
@click.option("--dry-run", is_flag=True, help="Train and score, write nothing.")
@click.option("--seed", default=TrainingParameters().seed, show_default=True)
@click.option("--epochs", default=TrainingParameters().epochs, show_default=True)
def train_command(corpus_paths: Sequence[Path], from_log: bool, use_all: bool, out: Path | None,
                  dry_run: bool, seed: int, epochs: int) -> None:
    """Train the classifier from the corpus (and corrections); print before/after scores."""
    from cli.main import _settings

    settings = _settings()
    city = load_city(settings.reference_dir)
    try:
        rules = load_triage_rules(settings.rules_dir, departments=city.departments,
                                  with_model=False)
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    out = out or settings.rules_dir / rules.classifier.model_file
    records = []
    for path in corpus_paths:
        if path.name == "sealed.jsonl":
            raise click.ClickException("the sealed evaluation set is never trained on")
        try:
            records += read_corpus(path)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if len({r.id for r in records}) != len(records):
        raise click.ClickException("two labelled texts share an id")
    fixes = _corrections(settings) if from_log else []

    examples: list[Example] = []
    trained_on: list[tuple[Event, str]] = []  # (event, priority) of the labelled texts
    held: list[HeldOut] = []
    for record in records:
        if split_of(record.id) == "fresh":
            continue  # measured only, never trained or tuned on
        event, _ = as_event(record, city)
        if use_all or split_of(record.id) == "train":
            examples.append(example_of(event, record.category, rules))
            trained_on.append((event, record.priority))
        else:
            held.append(HeldOut(event, frozenset((record.category, *record.also)),
                                record.category, record.priority))
    for fix in fixes:
        if use_all or split_of(fix.case_id) == "train":
            examples.append(example_of(fix.event, fix.category, rules))
        else:
            held.append(HeldOut(fix.event, frozenset({fix.category}), fix.category))
    names = ", ".join(path.name for path in corpus_paths)
    click.echo(f"labelled texts ({names}): {len(records)}; corrections from the log: "
               f"{len(fixes)}; training on {len(examples)}, holding out {len(held)}")

    params = TrainingParameters(seed=seed, epochs=epochs)
    model = train(examples, sorted(rules.categories), params,
                  trained={"corpus": names, "texts": len(records),
                           "corrections": len(fixes), "all": use_all})
    before = _current_model(out, rules)
    _report(held, rules, before, model)
    learned = rules.learned_priority
    p1_model = p1_out = p1_before = None
    if learned is not None:
        p1_out = out.parent / Path(learned.model_file).name
        with_new = replace(rules, model=model)
        p1_examples = [p1_example_of(event, priority, with_new) for event, priority in trained_on]
        p1_model = train(p1_examples, list(P1_CLASSES),
                         replace(P1_PARAMETERS, seed=seed, epochs=epochs),
                         trained={"corpus": names, "texts": len(records), "all": use_all,
                                  "category_model": model.version})
        p1_before = _current_model(p1_out, rules, classes=P1_CLASSES)
        _report_p1(held, rules, (before, p1_before), (model, p1_model))
    if dry_run:
        click.echo("dry run: model not written")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(model_json(model), encoding="utf-8")
    click.echo(f"model {model.version} written to {out} "
               f"({len(model.weights)} features, {sum(len(r) for r in model.weights.values())} "
               "weights); workers load it at start")
    if p1_model is not None and p1_out is not None:
        p1_out.write_text(model_json(p1_model), encoding="utf-8")
        click.echo(f"learned P1 check {p1_model.version} written to {p1_out} "
                   f"({len(p1_model.weights)} features)")


def _corrections(settings: Settings) -> list[Correction]:
    from kafka.errors import KafkaError

    from topics.case_log import CaseLogMissing, case_log_values

    try:
        log = [event_decoder.decode(value) for value in case_log_values(settings)]
    except (KafkaError, CaseLogMissing) as exc:
        raise click.ClickException(
            f"cannot read the case log from {settings.kafka_bootstrap}: {exc}") from None
    return corrections(log)


def _current_model(path: Path, rules: TriageRules,
                   classes: Sequence[str] | None = None) -> TextModel | None:
    """The model in use at ``path`` (None if there is none, or it cannot be read);
    its classes must be the taxonomy's categories, or ``classes``."""
    if not path.exists():
        return None
    try:
        data = msgspec.json.decode(path.read_bytes(), type=ModelFile)
    except msgspec.DecodeError as exc:
        click.echo(f"the model in use cannot be read ({exc}): no 'before' score")
        return None
    if classes is not None:
        if list(data.classes) != list(classes):
            click.echo(f"{path.name} in use has other classes: no 'before' score")
            return None
    elif any(code not in rules.categories for code in data.classes):
        click.echo("the model in use names categories the taxonomy no longer has: "
                   "no 'before' score")
        return None
    return TextModel.from_file(data)


def _report(held: Sequence[HeldOut], rules: TriageRules, before: TextModel | None,
            after: TextModel) -> None:
    if not held:
        click.echo("nothing held out: no before/after score")
        return
    click.echo(f"{'held-out category accuracy':<28}{'exact':>10}{'with alternatives':>20}")
    rows = [("before (" + (before.version if before else "no model") + ")", before),
            (f"after ({after.version})", after)]
    for name, model in rows:
        exact, accepted = _score(held, replace(rules, model=model))
        click.echo(f"{name:<28}{exact:>10.1%}{accepted:>20.1%}")


def _report_p1(held: Sequence[HeldOut], rules: TriageRules,
               before: tuple[TextModel | None, TextModel | None],
               after: tuple[TextModel, TextModel]) -> None:
    labelled = [item for item in held if item.priority is not None]
    if not labelled or rules.learned_priority is None:
        return
    click.echo(f"{'held-out P1':<28}{'recall':>10}{'precision':>20}")
    for name, (category_model, p1) in (
        ("before (" + (before[1].version if before[1] else "no check") + ")", before),
        (f"after ({after[1].version})", after),
    ):
        learned = replace(rules.learned_priority, model=p1)
        recall, precision = _score_p1(labelled, replace(rules, model=category_model,
                                                        learned_priority=learned))
        click.echo(f"{name:<28}{recall:>10.1%}{precision:>20.1%}")


def _score_p1(held: Sequence[HeldOut], rules: TriageRules) -> tuple[float, float]:
    labelled = given = right = 0
    for item in held:
        p1 = prioritise(item.event, classify(item.event, rules), rules).priority is Priority.P1
        labelled += item.priority == "P1"
        given += p1
        right += p1 and item.priority == "P1"
    return right / labelled if labelled else 0.0, right / given if given else 0.0


def _score(held: Sequence[HeldOut], rules: TriageRules) -> tuple[float, float]:
    exact = accepted = 0
    for item in held:
        category = classify(item.event, rules).category
        exact += category == item.primary
        accepted += category in item.accepted
    return exact / len(held), accepted / len(held)


__all__ = ["classifier"]
