"""``gridlink``: the operator's one command (DESIGN.md, "Operator interface")."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from settings import InvalidSettings, Settings, load_settings

if TYPE_CHECKING:
    from streams.reference import City
    from topics.local_kafka import LocalSecurity


def _settings() -> Settings:
    try:
        return load_settings()
    except InvalidSettings as exc:
        raise click.ClickException(str(exc)) from None


def _local_security(settings: Settings):
    """The secrets of a secured local broker or cluster, for every principal of the ACL
    table (``<kafka dir>/secure``)."""
    from streams.reference import load_city
    from topics.acls import principals
    from topics.local_kafka import LocalSecurity
    from topics.registry import jurisdictions

    city = load_city(settings.reference_dir)
    return LocalSecurity(directory=settings.kafka_dir.absolute() / "secure",
                         users=tuple(principals(jurisdictions(city), city.departments)),
                         host=settings.kafka_host)


def _secured(data_dir: Path) -> bool:
    from topics.local_kafka import SECURED_MARKER

    return (data_dir / SECURED_MARKER).exists()


def _local_kafka(settings: Settings, secure: bool = False):
    """The single local broker; secured when asked, or when its storage was formatted so."""
    from topics.local_kafka import LocalKafka

    secure = secure or _secured(settings.kafka_dir)
    return LocalKafka(
        data_dir=settings.kafka_dir,
        cache_dir=settings.kafka_cache_dir,
        host=settings.kafka_host,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.local_kafka_heap(),
        security=_local_security(settings) if secure else None,
    )


def _local_cluster(settings: Settings, brokers: int, secure: bool = False):
    """``brokers`` local nodes in ``<kafka dir>/node-<i>``, from the bootstrap's port on;
    secured when asked, or when their storage was formatted so."""
    from topics.local_kafka import NODE_DIR_PREFIX, LocalCluster

    secure = secure or _secured(settings.kafka_dir / f"{NODE_DIR_PREFIX}1")
    return LocalCluster.consecutive(
        data_dir=settings.kafka_dir,
        cache_dir=settings.kafka_cache_dir,
        brokers=brokers,
        host=settings.kafka_host,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.local_kafka_heap(brokers),
        security=_local_security(settings) if secure else None,
    )


def _found_cluster(settings: Settings):
    """The local cluster whose nodes are in the kafka dir, or None if there is none."""
    from topics.local_kafka import formatted_nodes

    nodes = formatted_nodes(settings.kafka_dir)
    return _local_cluster(settings, max(nodes)) if nodes else None


#: the processes of the printed client settings, and the principal each runs as
PROCESS_USERS = {"admin": "gridlink-admin", "worker": "gridlink-worker", "api": "gridlink-api"}


def _secured_up(security: LocalSecurity, bootstrap: str) -> None:
    """After a secured start: SCRAM users for principals added since the storage was
    formatted, env files per process, and the client settings printed."""
    client = security.client_settings(bootstrap)
    missing = security.missing_users(client)
    if missing:
        security.add_users(client, missing)
        click.echo(f"Added SCRAM users: {', '.join(missing)}")
    files = security.write_env_files(bootstrap, PROCESS_USERS)
    common = security.client_env(bootstrap, PROCESS_USERS["worker"])
    click.echo("Secured: SASL_SSL (SCRAM), TLS with the local CA, the StandardAuthorizer "
               "(only the broker and gridlink-admin are super users). Client settings:")
    for key in ("GRIDLINK_KAFKA_BOOTSTRAP", "GRIDLINK_KAFKA_SECURITY_PROTOCOL",
                "GRIDLINK_KAFKA_SASL_MECHANISM", "GRIDLINK_KAFKA_CA_FILE",
                "GRIDLINK_COMMAND_SIGNING_KEY_FILE"):
        click.echo(f"  {key}={common[key]}")
    click.echo("and each process its user (GRIDLINK_KAFKA_USER, GRIDLINK_KAFKA_PASSWORD_FILE), "
               "all of them in env files:")
    for role, path in files.items():
        click.echo(f"  gridlink {'topics create' if role == 'admin' else role:14} "
                   f"set -a; . {path}; set +a   (as {PROCESS_USERS[role]})")
    click.echo(f"Other principals' passwords: {security.directory / 'users'}/<name>.password; "
               "`gridlink topics create` (as gridlink-admin) creates their ACLs "
               "(`gridlink topics acls` prints them). kcat: -X security.protocol=sasl_ssl "
               "-X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=<name> "
               f"-X sasl.password=<password> -X ssl.ca.location={security.ca_file} "
               "(sasl.mechanisms=PLAIN with librdkafka before 2.6.1, whose SCRAM Kafka 4 "
               "refuses)")


@click.group()
def main() -> None:
    """GridLink: the streaming dispatch core of a city command center (综治中心)."""


# ---- kafka -----------------------------------------------------------------


@main.group()
def kafka() -> None:
    """A local Apache Kafka (KRaft): one broker, or a cluster of several on this machine."""


@kafka.command("up")
@click.option("--brokers", type=click.IntRange(1, 9), default=1, show_default=True,
              help="Nodes, each a broker and a controller; several replicate the topics "
              "(`gridlink topics create` makes three copies on three).")
@click.option("--fresh", is_flag=True, help="Stop it and wipe its data first.")
@click.option("--secure", is_flag=True,
              help="SASL_SSL with SCRAM users, TLS certificates from a CA made here, and the "
              "StandardAuthorizer (ACLs); prints the client settings. Storage formatted "
              "--secure stays secured.")
@click.option("--timeout", default=None, type=float,
              help="Seconds to wait for it.  [default: 90, 120 for several brokers]")
def kafka_up(brokers: int, fresh: bool, secure: bool, timeout: float | None) -> None:
    """Start the local broker, or ``--brokers`` of them (fetching the jars with Maven on
    first use); those already running are left as they are."""
    from topics.local_kafka import LocalKafkaError

    settings = _settings()
    if fresh and secure:
        import shutil

        shutil.rmtree(settings.kafka_dir / "secure", ignore_errors=True)  # new CA, passwords
    single, cluster = _local_kafka(settings, secure), _found_cluster(settings)
    try:
        if brokers == 1:
            if cluster is not None and cluster.running():
                raise LocalKafkaError(f"a {len(cluster.nodes)}-broker cluster is running from "
                                      f"{cluster.data_dir}; `gridlink kafka down` first")
            single.up(fresh=fresh, timeout_seconds=timeout or 90.0, echo=click.echo)
            chosen = single
        else:
            if single.pid() is not None:
                raise LocalKafkaError(f"the single broker is running from {single.data_dir}; "
                                      "`gridlink kafka down` first")
            if cluster is not None and len(cluster.nodes) != brokers and cluster.running():
                raise LocalKafkaError(f"a {len(cluster.nodes)}-broker cluster is running from "
                                      f"{cluster.data_dir}; `gridlink kafka down` first")
            chosen = _local_cluster(settings, brokers, secure)
            chosen.up(fresh=fresh, timeout_seconds=timeout or 120.0, echo=click.echo)
        if chosen.security is not None:
            _secured_up(chosen.security, chosen.bootstrap)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from None


@kafka.command("down")
def kafka_down() -> None:
    """Stop the local broker, or every node of the local cluster, cleanly."""
    settings = _settings()
    single, cluster = _local_kafka(settings), _found_cluster(settings)
    if cluster is not None and cluster.running():
        cluster.down(echo=click.echo)
        if single.pid() is None:
            return
    single.down(echo=click.echo)


@kafka.command("status")
def kafka_status() -> None:
    """Say whether the local broker (or each node of the local cluster) runs and answers;
    exit 1 if one does not."""
    settings = _settings()
    single, cluster = _local_kafka(settings), _found_cluster(settings)
    if cluster is None or (single.pid() is not None and not cluster.running()):
        status = single.status()
        for key, value in status.items():
            click.echo(f"{key:17} {value}")
        if not status["answers_metadata"]:
            sys.exit(1)
        return
    status = cluster.status()
    nodes = status.pop("nodes")
    for key, value in status.items():
        click.echo(f"{key:17} {value}")
    for node in nodes:
        state = ("stopped" if not node["running"] else "does not answer" if not node["answers"]
                 else "in metadata" if node["in_metadata"] else "not in metadata")
        click.echo(f"{'node ' + str(node['node']):17} {node['bootstrap']:21} "
                   f"pid {node['pid'] or '-':<8} {state:16} {node['data_dir']}")
    if not status["healthy"]:
        sys.exit(1)


# ---- topics ----------------------------------------------------------------


@main.group()
def topics() -> None:
    """The contract topics."""


@topics.command("create")
def topics_create() -> None:
    """Create every contract topic that does not exist yet (idempotent)."""
    _create_topics(_settings())


@topics.command("acls")
@click.option("--placeholders", is_flag=True,
              help="One department <code> and one township <township>, as the docs show it.")
def topics_acls(placeholders: bool) -> None:
    """Print the ACL table `gridlink topics create` applies on a secured cluster."""
    from topics.acls import markdown, placeholder_table, table
    from topics.registry import jurisdictions

    settings = _settings()
    if placeholders:
        click.echo(markdown(placeholder_table(settings)), nl=False)
        return
    city = _city(settings)
    click.echo(markdown(table(settings, city.departments, jurisdictions(city))), nl=False)


def _city(settings: Settings) -> City:
    from streams.errors import RulesError
    from streams.reference import load_city

    try:
        return load_city(settings.reference_dir)
    except RulesError as exc:
        raise click.ClickException(f"reference data in {settings.reference_dir}: "
                                   f"{exc.reason}") from None


def _create_topics(settings: Settings) -> None:
    from kafka.errors import KafkaError

    from topics import acls
    from topics.admin import TopicsError, create_acls, create_topics
    from topics.clients import KafkaSecurityError
    from topics.registry import city_topics, jurisdictions

    city = _city(settings)
    specs = city_topics(settings, city)
    try:
        report = create_topics(settings, specs)
        granted = create_acls(settings, acls.table(settings, city.departments,
                                                   jurisdictions(city)))
    except (TopicsError, KafkaSecurityError) as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}; "
            "is it running (`gridlink kafka status`)?"
        ) from None
    for name in report.created:
        click.echo(f"created  {name}")
    for difference in report.differing:
        click.echo(f"differs  {difference}")
    replication = report.replication
    click.echo(f"{len(report.created)} created, {len(report.existing)} already existed"
               + (f" ({len(report.differing)} differ from the spec and were left as they are)"
                  if report.differing else "")
               + f"; {report.brokers} broker(s): replication {replication.factor}, "
               f"min.insync.replicas {replication.min_insync}")
    if granted.secured:
        click.echo(f"ACLs: {granted.created} bindings created, {granted.existing} already "
                   "existed (`gridlink topics acls` prints the table)")
        if granted.failed:
            raise click.ClickException(f"{len(granted.failed)} ACL bindings were refused: "
                                       f"{', '.join(granted.failed[:5])}")


# ---- services --------------------------------------------------------------


@main.command()
@click.option("--agents", "only", default="intake,cases,projection", show_default=True,
              help="The stages this worker runs, comma-separated (``triage`` is a name of "
              "``cases``, which triages too): run the SQL projection in its own processes, "
              "for instance.")
def worker(only: str) -> None:
    """Run the stream agents (start several for scale-out)."""
    from agents.worker import AGENTS, ALIASES, run

    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(AGENTS) - set(ALIASES))
    if unknown or not chosen:
        raise click.BadParameter(f"{', '.join(unknown) or 'none given'}: choose among "
                                 f"{', '.join(AGENTS)}", param_hint="--agents")
    run(_signing(_settings()), agents=chosen)


@main.command()
def api() -> None:
    """Run the REST API, the live board and /metrics."""
    from api.app import run

    run(_signing(_settings()))


def _signing(settings: Settings) -> Settings:
    """``settings``, once the command signing key a worker or the API needs is there."""
    from observability import logging as log_setup
    from topics.signing import SigningKeyMissing, key_for

    try:
        if key_for(settings) is None:
            log_setup.configure(settings)  # in the process's log format (JSON lines, or text)
            logging.getLogger("gridlink.signing").warning(
                "GRIDLINK_COMMAND_SIGNING_KEY is not set: commands on cases.commands are "
                "neither signed nor checked (development only)")
    except (SigningKeyMissing, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    return settings


@main.command()
@click.option("--force", is_flag=True, help="Project over a database that is not empty.")
def replay(force: bool) -> None:
    """Rebuild the SQL projection from the start of cases.events."""
    from cli.replay import replay as run_replay

    run_replay(_settings(), force=force)


@main.group(invoke_without_command=True)
@click.option("--stages", default="lpipe,fbase,pipeline,latency,pipeline2,sqlapart,apart,scale",
              show_default=True,
              help="Which stages to run, comma-separated.")
@click.option("--events", default=20_000, show_default=True,
              help="Inbound messages each throughput stage drains.")
@click.option("--latency-seconds", default=30.0, show_default=True,
              help="How long the latency stage sends at each rate.")
@click.option("--latency-rate", type=click.FloatRange(min=0.1), default=None,
              help="Measure the latency stage at this many messages a second too, "
                   "after half the pipeline's rate.")
@click.option("--open-cases", default=1_000_000, show_default=True,
              help="Open cases (each with a running deadline) in the scale stage.")
@click.option("--window-seconds", default=60.0, show_default=True,
              help="How long the scale stage's deadlines fall due over (the burst at its middle).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench-results.json"), show_default=True,
              help="Where to write the figures as JSON.")
@click.option("--bootstrap", default=None,
              help="Use this running broker instead of starting a fresh one.")
@click.option("--seed", default=7, show_default=True, help="Seed of the generated traffic.")
@click.option("--table-store", type=click.Choice(["memory", "rocksdb"]), default=None,
              help="The workers' table store (default: GRIDLINK_TABLE_STORE's).")
@click.pass_context
def bench(ctx: click.Context, stages: str, events: int, latency_seconds: float,
          latency_rate: float | None, open_cases: int,
          window_seconds: float, out: Path, bootstrap: str | None, seed: int,
          table_store: str | None) -> None:
    """Measure the pipeline against raw Kafka and bare Faust on this machine
    (`gridlink bench report`: the figures against their targets)."""
    if ctx.invoked_subcommand is not None:
        return
    from benchmarks.run import STAGES
    from benchmarks.run import main as run_bench

    chosen = [name.strip() for name in stages.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown or not chosen:
        raise click.BadParameter(f"{', '.join(unknown) or 'none given'}: choose among "
                                 f"{', '.join(STAGES)}", param_hint="--stages")
    run_bench(stages=chosen, events=events, latency_seconds=latency_seconds,
              latency_rate=latency_rate,
              open_cases=open_cases, window_seconds=window_seconds, out=out,
              bootstrap=bootstrap, seed=seed, table_store=table_store)


@bench.command("report")
@click.option("--results", "results", type=click.Path(dir_okay=False, path_type=Path),
              multiple=True, default=[Path("bench-results.json")], show_default=True,
              help="A results file of `gridlink bench --out`; again for another run (for "
                   "each stage, the last file in which it ran gives its figures).")
@click.option("--write", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Put the table into this page, between its <!-- bench:begin --> and "
                   "<!-- bench:end --> lines; without it, print the table.")
def bench_report(results: tuple[Path, ...], write: Path | None) -> None:
    """基准报告: the figures of `gridlink bench` runs against their targets, as a Markdown
    table."""
    from benchmarks.report import ReportError
    from benchmarks.report import main as report

    try:
        block = report(results=list(results), write=write)
    except ReportError as error:
        raise click.ClickException(str(error)) from None
    if write is None:
        click.echo(block, nl=False)
    else:
        click.echo(f"已写入 written to {write}", err=True)


@main.command()
@click.option("--rate", default=2.0, show_default=True,
              help="Simulated messages a second after the samples (0: samples only).")
@click.option("--departments/--no-departments", default=True, show_default=True,
              help="Department desks and the city operator work the cases through the API "
              "(`gridlink simulate --departments`).")
def demo(rate: float, departments: bool) -> None:
    """Everything on embedded defaults: broker, topics, worker, API, sample traffic, and
    departments that work the cases."""
    from cli import demo as demo_module
    from topics.local_kafka import LocalKafkaError

    settings = _settings()
    try:
        demo_module.run(settings, _local_kafka(settings), lambda: _create_topics(settings),
                        rate=rate, departments=departments)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from None


def _register_simulate() -> None:
    from cli.users import users
    from simulation.cli import simulate

    main.add_command(simulate)
    main.add_command(users)


def _register_classifier() -> None:
    from cli.classifier import classifier

    main.add_command(classifier)


_register_simulate()
_register_classifier()

if __name__ == "__main__":
    main()
