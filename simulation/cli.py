"""``gridlink simulate``: realistic traffic for the three sources over the reference city."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from pydantic import ValidationError

from settings import Settings
from simulation.generator import CST, Mix
from simulation.producer import Progress, ReplayError, Summary, run
from simulation.vocabulary import VocabularyError
from streams.errors import GridLinkError

DEFAULT_OUT = Path("data") / "simulate.jsonl"


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GRIDLINK_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {problems}") from None


def _mix(_ctx: click.Context, _param: click.Parameter, value: str) -> Mix:
    try:
        return Mix.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _start(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def _share(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 <= value <= 1:
        raise click.BadParameter(f"{param.name} must be within 0..1")
    return value


@click.command("simulate")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=None,
    help="Messages per second [default: 100; 0 = as fast as possible; "
    "with --replay: as recorded in the file].",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds of sending [default: 60 unless --count is given].",
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Messages to send.")
@click.option(
    "--mix",
    default="grid=0.4,camera=0.4,police=0.2",
    show_default=True,
    callback=_mix,
    help="Shares of grid reports, camera alerts and 110 referrals.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: the same seed and --start give the same traffic.",
)
@click.option(
    "--malformed",
    type=float,
    default=0.02,
    show_default=True,
    callback=_share,
    help="Share of broken messages (they must end in the dead-letter topic).",
)
@click.option(
    "--duplicates",
    type=float,
    default=0.0,
    show_default=True,
    callback=_share,
    help="Share of redelivered copies of earlier messages.",
)
@click.option(
    "--oversize/--no-oversize",
    default=True,
    show_default=True,
    help="Include messages over the 1 MiB limit among the broken ones "
    "(the ingest topics must accept them).",
)
@click.option(
    "--start",
    callback=_start,
    default=None,
    help="Event time of the first message, ISO 8601 [default: now].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where to write every sent message with its expected outcome (JSONL).",
)
@click.option(
    "--replay",
    "replay",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Send the messages of this JSONL file instead of generating.",
)
@click.option("--dry-run", is_flag=True, help="Write the outcome file only; send nothing.")
@click.option("--quiet", is_flag=True, help="No progress, only the summary.")
def simulate(
    rate: float | None,
    duration: float | None,
    count: int | None,
    mix: Mix,
    seed: int,
    malformed: float,
    duplicates: float,
    oversize: bool,
    start: datetime | None,
    out: Path,
    replay: Path | None,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Realistic traffic for the three sources over the reference city.

    Grid reports, camera alerts (JSON and GB/T 28181 XML) and 110 referrals
    with varied Chinese texts; repeated camera alarms, linked 110 calls,
    incidents seen by several sources within minutes, recurring hot spots and
    a share of broken messages. Every message is written with its expected
    outcome to --out, for tests and benchmarks to check against.
    """
    settings = _settings()
    if replay is None and rate is None:
        rate = 100.0
    if duration is None and count is None and replay is None:
        duration = 60.0
    where = "(dry run: nothing sent)" if dry_run else f"to {settings.kafka_bootstrap}"
    source = f"replaying {replay}" if replay else f"mix {mix}, seed {seed}"
    click.echo(f"simulate: {source}, {_pace(rate)} {where}; outcomes → {out}")
    try:
        def send(progress):  # type: ignore[no-untyped-def]
            return _run(settings, rate, duration, count, mix, seed, malformed, duplicates,
                        oversize, start, out, replay, dry_run, progress)

        if quiet:
            summary = send(None)
        else:
            summary = _with_progress(
                send,
                expected_total=count or (int(duration * rate) if duration and rate else None),
            )
    except (ReplayError, VocabularyError, GridLinkError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("kafka"):
            raise click.ClickException(
                f"cannot send to Kafka at {settings.kafka_bootstrap}: {exc}; "
                "is it running (`gridlink kafka status`)?"
            ) from None
        raise
    _report(summary, dry_run)


def _run(
    settings: Settings,
    rate: float | None,
    duration: float | None,
    count: int | None,
    mix: Mix,
    seed: int,
    malformed: float,
    duplicates: float,
    oversize: bool,
    start: datetime | None,
    out: Path,
    replay: Path | None,
    dry_run: bool,
    progress: object,
) -> Summary:
    return run(
        bootstrap=settings.kafka_bootstrap,
        topic_prefix=settings.topic_prefix,
        rate=rate,
        duration=duration,
        count=count,
        mix=mix,
        seed=seed,
        malformed=malformed,
        out=out,
        replay_file=replay,
        progress=progress,  # type: ignore[arg-type]
        reference_dir=settings.reference_dir,
        rules_dir=settings.rules_dir,
        start=start,
        duplicates=duplicates,
        oversize=oversize,
        dry_run=dry_run,
    )


def _pace(rate: float | None) -> str:
    if rate is None:
        return "paced as recorded"
    return "as fast as possible" if rate == 0 else f"{rate:g} msg/s"


def _with_progress(job, expected_total: int | None) -> Summary:  # type: ignore[no-untyped-def]
    """Run ``job(progress)`` with a progress bar when the total is known, else a line
    every five seconds."""
    if expected_total:
        with click.progressbar(
            length=expected_total, label="sending", show_pos=True, show_eta=True
        ) as bar:
            shown = 0

            def progress(p: Progress) -> None:
                nonlocal shown
                step = min(p.sent, expected_total) - shown
                if step > 0:
                    bar.update(step)
                    shown += step

            return job(progress)  # type: ignore[no-any-return]
    last = [0.0]

    def line(p: Progress) -> None:
        if p.elapsed_s - last[0] >= 5:
            last[0] = p.elapsed_s
            click.echo(
                f"  {p.sent} sent, {p.delivered} delivered, {p.failed} failed, {p.rate:.0f} msg/s"
            )

    return job(line)  # type: ignore[no-any-return]


def _report(summary: Summary, dry_run: bool) -> None:
    outcomes = ", ".join(f"{n} {name}" for name, n in sorted(summary.outcomes.items()))
    topics = ", ".join(f"{n} → {name}" for name, n in sorted(summary.by_topic.items()))
    verb = "written" if dry_run else "sent"
    click.echo(
        f"{summary.sent} messages {verb} in {summary.elapsed_s:.1f} s "
        f"({summary.rate:.0f} msg/s): {topics}"
    )
    if outcomes:
        click.echo(f"expected: {outcomes}")
    if not dry_run:
        click.echo(f"delivered {summary.delivered}, failed {summary.failed}")
        for error in summary.errors:
            click.echo(f"  {error}", err=True)
    if summary.out is not None:
        click.echo(f"outcomes: {summary.out}")
