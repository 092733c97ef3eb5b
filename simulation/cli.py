"""``gridlink simulate``: realistic traffic for the three sources over the reference city."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from settings import InvalidSettings, Settings, load_settings
from simulation.actors import (
    Actors,
    ActorsError,
    Tally,
    desks_of,
    load_keys,
    operator_of,
    urllib_transport,
)
from simulation.behaviour import Pace, parse_satisfaction
from simulation.generator import Mix
from simulation.producer import Progress, ReplayError, Summary, run
from simulation.vocabulary import VocabularyError
from streams.errors import GridLinkError
from streams.zone import UTC_PLUS_8

OnProgress = Callable[[Progress], None]
Send = Callable[[OnProgress | None], Summary]  # sends the traffic, reporting its progress

DEFAULT_OUT = Path("data") / "simulate.jsonl"
DEFAULT_KEYS = Path("data") / "demo" / "keys.txt"  # where `gridlink demo` writes its keys
UNTIL_STOPPED_S = 365 * 86_400.0  # traffic beside the actors, without --duration/--count
PROGRESS_EVERY_S = 5.0
API_WAIT_S = 60.0  # for an API that is still starting (as in the demo)


def _settings() -> Settings:
    try:
        return load_settings()
    except InvalidSettings as exc:
        raise click.ClickException(str(exc)) from None


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
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC_PLUS_8)


def _share(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 <= value <= 1:
        raise click.BadParameter(f"{param.name} must be within 0..1")
    return value


def _seconds(_ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not LO,HI (seconds)") from None
    if not 0 <= lo <= hi:
        raise click.BadParameter(f"{param.name} must be LO,HI with 0 <= LO <= HI")
    return lo, hi


def _satisfaction(_ctx: click.Context, _param: click.Parameter,
                  value: str) -> tuple[tuple[str, float], ...]:
    try:
        return parse_satisfaction(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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
@click.option(
    "--departments",
    is_flag=True,
    help="Also run department desks and a command-center operator that work the cases "
    "through the REST API (claim, return, progress, extension, handle; register, re-route, "
    "check, close, evaluate), some of them late; until Ctrl-C or --duration.",
)
@click.option(
    "--traffic/--no-traffic",
    default=True,
    show_default=True,
    help="Send traffic; --no-traffic with --departments only works the cases there are.",
)
@click.option(
    "--api-url",
    default=None,
    help="The API the actors use [default: http://GRIDLINK_API_HOST:GRIDLINK_API_PORT].",
)
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_KEYS,
    show_default=True,
    help="API keys, a 'name key' line per user, as `gridlink demo` writes them: "
    "'<department>-desk' users act for their department (the users file keeps only digests).",
)
@click.option(
    "--operator",
    default=None,
    help="The command-center user among the keys [default: op-city, else admin].",
)
@click.option("--late", type=float, default=0.15, show_default=True, callback=_share,
              help="Share of claims and on-site reports after their deadline (red card).")
@click.option("--slow", type=float, default=0.15, show_default=True, callback=_share,
              help="Share of claims and on-site reports after the yellow mark, in time.")
@click.option("--returns", type=float, default=0.05, show_default=True, callback=_share,
              help="Share of assignments returned (退单) within the return window.")
@click.option("--extensions", type=float, default=0.10, show_default=True, callback=_share,
              help="Share of assignments whose department asks for an extension (延期).")
@click.option("--step-delay", default="5,60", show_default=True, callback=_seconds,
              help="Seconds LO,HI between one step of a case and the next.")
@click.option("--work-delay", default="30,300", show_default=True, callback=_seconds,
              help="Seconds LO,HI of handling (办结) when its deadline is far off.")
@click.option("--max-wait", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              help="Seconds: a late or slow step is planned only within this time; the engine "
              "runs on the wall clock, so in a short run only short deadlines are missed "
              "(P1 accept 5 min, on site 15 min; P2 accept 30 min).")
@click.option(
    "--satisfaction",
    default="satisfied=0.75,basically_satisfied=0.17,dissatisfied=0.06,unreached=0.02",
    show_default=True,
    callback=_satisfaction,
    help="Callback verdicts (回访评价) and their weights.",
)
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
    departments: bool,
    traffic: bool,
    api_url: str | None,
    keys_file: Path,
    operator: str | None,
    late: float,
    slow: float,
    returns: float,
    extensions: float,
    step_delay: tuple[float, float],
    work_delay: tuple[float, float],
    max_wait: float,
    satisfaction: tuple[tuple[str, float], ...],
) -> None:
    """Realistic traffic for the three sources over the reference city.

    Grid reports, camera alerts (JSON and GB/T 28181 XML) and 110 referrals
    with varied Chinese texts; repeated camera alarms, linked 110 calls,
    incidents seen by several sources within minutes, recurring hot spots and
    a share of broken messages. Every message is written with its expected
    outcome to --out, for tests and benchmarks to check against.

    With --departments, department desks and a command-center operator work
    the cases through the API as people would, with delays drawn from --seed:
    most steps on time, a share late, so yellow and red cards, supervision,
    take-over, returns, rulings and callbacks all happen.
    """
    settings = _settings()
    if not traffic and not departments:
        raise click.UsageError("--no-traffic needs --departments (nothing to do otherwise)")
    if departments and dry_run:
        raise click.UsageError("--dry-run sends nothing: it cannot go with --departments")
    until = duration  # the actors stop after it, or on Ctrl-C
    if replay is None and rate is None:
        rate = 100.0
    if duration is None and count is None and replay is None:
        duration = UNTIL_STOPPED_S if departments else 60.0
    actors = None
    if departments:
        try:
            pace = Pace(step_seconds=step_delay, work_seconds=work_delay,
                        max_wait_seconds=max_wait, late=late, slow=slow, returns=returns,
                        extensions=extensions, satisfaction=satisfaction)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        actors = _actors(settings, api_url, keys_file, operator, pace, seed)
    if traffic:
        where = "(dry run: nothing sent)" if dry_run else f"to {settings.kafka_bootstrap}"
        source = f"replaying {replay}" if replay else f"mix {mix}, seed {seed}"
        click.echo(f"simulate: {source}, {_pace(rate)} {where}; outcomes → {out}")
    try:
        def send(progress: OnProgress | None) -> Summary:
            return _run(settings, rate, duration, count, mix, seed, malformed, duplicates,
                        oversize, start, out, replay, dry_run, progress)

        if actors is not None:
            summary = _with_departments(actors, send if traffic else None, until, quiet)
        elif quiet:
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
    if summary is not None:
        _report(summary, dry_run)


def _actors(settings: Settings, api_url: str | None, keys_file: Path, operator: str | None,
            pace: Pace, seed: int) -> Actors:
    """The department desks and the operator, checked against the running API."""
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    try:
        keys = load_keys(keys_file)
        desks = desks_of(keys)
        name = operator_of(keys, operator)
        if not desks:
            raise ActorsError(f"{keys_file} has no '<department>-desk' user")
        if name is None:
            raise ActorsError(f"{keys_file} has no command-center user (op-city, admin, "
                              "op-…): name one with --operator")
        actors = Actors(urllib_transport(url), desks=desks, operator_key=keys[name], pace=pace,
                        seed=seed)
        actors.check(wait_seconds=API_WAIT_S)
    except ActorsError as exc:
        raise click.ClickException(f"--departments at {url}: {exc}") from None
    click.echo(f"departments: {len(desks)} desks and {name} act through {url} "
               f"(late {pace.late:.0%}, slow {pace.slow:.0%}, returns {pace.returns:.0%}, "
               f"extensions {pace.extensions:.0%}); Ctrl-C stops")
    return actors


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _with_departments(actors: Actors, send: Send | None, until: float | None,
                      quiet: bool) -> Summary | None:
    """Run the actors in a thread beside the traffic (``send``, None for none) until
    ``until`` seconds have passed or Ctrl-C (or SIGTERM); a progress line every few
    seconds; the traffic's summary when it finished."""
    stop = threading.Event()
    latest: dict[str, Progress] = {}  # the traffic's last progress

    def report(tally: Tally) -> None:
        if not quiet:
            p = latest.get("traffic")
            sent = f"{p.sent} sent, {p.failed} failed; " if p else ""
            click.echo(f"  {sent}{tally.line()}")

    ends = time.monotonic() + until if until else None
    thread = threading.Thread(target=actors.run, args=(stop,), name="departments", daemon=True,
                              kwargs={"on_progress": report,
                                      "progress_seconds": PROGRESS_EVERY_S})
    previous = signal.signal(signal.SIGTERM, _interrupt)
    summary = None
    thread.start()
    try:
        if send is not None:
            summary = send(lambda p: latest.update(traffic=p))
        while thread.is_alive() and (ends is None or time.monotonic() < ends):
            thread.join(0.5)
    except KeyboardInterrupt:
        click.echo("\nstopping …")
    finally:
        crashed = not thread.is_alive()  # the thread's exception is printed above
        stop.set()
        thread.join()
        signal.signal(signal.SIGTERM, previous)
    if crashed:
        raise click.ClickException("the department actors stopped (see the error above)")
    click.echo(f"departments: {actors.tally.line()}")
    for reason in actors.tally.reasons:
        click.echo(f"  refused or failed: {reason}")
    if send is not None and summary is None:
        click.echo("traffic interrupted")
    return summary


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
    progress: OnProgress | None,
) -> Summary:
    return run(
        bootstrap=settings.kafka_bootstrap,
        settings=settings,
        topic_prefix=settings.topic_prefix,
        rate=rate,
        duration=duration,
        count=count,
        mix=mix,
        seed=seed,
        malformed=malformed,
        out=out,
        replay_file=replay,
        progress=progress,
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


def _with_progress(job: Send, expected_total: int | None) -> Summary:
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

            return job(progress)
    last = [0.0]

    def line(p: Progress) -> None:
        if p.elapsed_s - last[0] >= 5:
            last[0] = p.elapsed_s
            click.echo(
                f"  {p.sent} sent, {p.delivered} delivered, {p.failed} failed, {p.rate:.0f} msg/s"
            )

    return job(line)


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
