"""``gridlink``: the operator's one command (DESIGN.md, "Operator interface")."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GRIDLINK_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {problems}") from None


def _local_kafka(settings: Settings):
    from cli.kafka_local import LocalKafka

    return LocalKafka(
        data_dir=settings.kafka_dir,
        cache_dir=settings.kafka_cache_dir,
        host=settings.kafka_host,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.kafka_heap,
    )


def _department_codes(settings: Settings) -> list[str]:
    """The department codes of the reference city (one ``dept.<code>`` topic each)."""
    from streams.errors import RulesError
    from streams.reference import load_city

    try:
        return sorted(load_city(settings.reference_dir).departments)
    except RulesError as exc:
        raise click.ClickException(f"reference data in {settings.reference_dir}: "
                                   f"{exc.reason}") from None


@click.group()
def main() -> None:
    """GridLink: the streaming dispatch core of a city command center (综治中心)."""


# ---- kafka -----------------------------------------------------------------


@main.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for development, tests and the demo."""


@kafka.command("up")
@click.option("--fresh", is_flag=True, help="Stop it and wipe its data first.")
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for it.")
def kafka_up(fresh: bool, timeout: float) -> None:
    """Start the local broker (fetching its jars with Maven on first use)."""
    from cli.kafka_local import LocalKafkaError

    try:
        _local_kafka(_settings()).up(fresh=fresh, timeout_seconds=timeout, echo=click.echo)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from None


@kafka.command("down")
def kafka_down() -> None:
    """Stop the local broker cleanly."""
    _local_kafka(_settings()).down(echo=click.echo)


@kafka.command("status")
def kafka_status() -> None:
    """Say whether the local broker runs and answers; exit 1 if it does not."""
    status = _local_kafka(_settings()).status()
    for key, value in status.items():
        click.echo(f"{key:17} {value}")
    if not status["answers_metadata"]:
        sys.exit(1)


# ---- topics ----------------------------------------------------------------


@main.group()
def topics() -> None:
    """The contract topics."""


@topics.command("create")
def topics_create() -> None:
    """Create every contract topic that does not exist yet (idempotent)."""
    _create_topics(_settings())


def _create_topics(settings: Settings) -> None:
    from kafka.errors import KafkaError

    from topics.admin import create_topics
    from topics.registry import contract_topics

    specs = contract_topics(settings, _department_codes(settings))
    try:
        created, existing = create_topics(settings, specs)
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}; "
            "is it running (`gridlink kafka status`)?"
        ) from None
    for name in created:
        click.echo(f"created  {name}")
    click.echo(f"{len(created)} created, {len(existing)} already existed")


# ---- services --------------------------------------------------------------


@main.command()
def worker() -> None:
    """Run the stream agents (start several for scale-out)."""
    from agents.worker import run

    run(_settings())


@main.command()
def api() -> None:
    """Run the REST API, the live board and /metrics."""
    from api.app import run

    run(_settings())


@main.command()
@click.option("--force", is_flag=True, help="Project over a database that is not empty.")
def replay(force: bool) -> None:
    """Rebuild the SQL projection from the start of cases.events."""
    from cli.replay import replay as run_replay

    run_replay(_settings(), force=force)


@main.command()
@click.option("--rate", default=2.0, show_default=True,
              help="Simulated messages a second after the samples (0: samples only).")
def demo(rate: float) -> None:
    """Everything on embedded defaults: broker, topics, worker, API and sample traffic."""
    from cli import demo as demo_module
    from cli.kafka_local import LocalKafkaError

    settings = _settings()
    try:
        demo_module.run(settings, _local_kafka(settings), lambda: _create_topics(settings),
                        rate=rate)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from None


def _register_simulate() -> None:
    from simulation.cli import simulate

    main.add_command(simulate)


_register_simulate()

if __name__ == "__main__":
    main()
