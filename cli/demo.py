"""``gridlink demo``: the local broker, the topics, a worker and the API, fed
with the contract's sample events; prints where to look."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from settings import PROJECT_DIR, Settings

SAMPLES_DIR = PROJECT_DIR / "tests" / "data" / "contract" / "samples"
SAMPLE_FILES = {
    "ingest.grid-reports": ("grid-reports.valid.jsonl", "report_id"),
    "ingest.camera-alerts": ("camera-alerts.valid.jsonl", "alert_id"),
    "ingest.police-110": ("police-110.valid.jsonl", "referral_id"),
}


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def demo_users(settings: Settings, path: Path) -> dict[str, str]:
    """A users file for the demo's API, with fresh keys (returned, shown once): an
    administrator; the city operator and one per county; a read-only ``wall`` display
    for the board; a city-wide desk per department (``<code>-desk``), a desk per township
    for the territorial ``township`` department (``township-<township>-desk``) and a
    desk per county for every other department (``<code>-<county>-desk``)."""
    from api.auth import Desk, write_demo_users
    from streams.records import Level
    from streams.reference import load_city

    city = load_city(settings.reference_dir)
    top = next(code for code, r in city.regions.items() if r.parent is None)
    counties = sorted(c for c, r in city.regions.items() if r.level is Level.COUNTY)
    townships = sorted(c for c, r in city.regions.items() if r.level is Level.TOWNSHIP)
    departments = sorted(city.departments)
    desks = [Desk(f"township-{t}-desk", "township", t) for t in townships]
    desks += [Desk(f"{d}-{c}-desk", d, c) for c in counties for d in departments
              if d != "township"]
    return write_demo_users(path, departments=departments, desks=desks,
                            operator_regions={"op-city": top, **{f"op-{c}": c for c in counties}},
                            displays={"wall": top})


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float,
              since: int = 0) -> None:
    """Until ``text`` appears in ``log`` after byte ``since`` (logs are appended to: an
    earlier run's lines do not count)."""
    assert isinstance(proc.args, list), "started by _spawn, from a list"
    command = proc.args[3:]  # what follows `python -m cli.main`
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_bytes()[since:].decode(errors="replace"):
            return
        if proc.poll() is not None:
            raise click.ClickException(f"{command} exited; see {log}")
        time.sleep(0.2)
    raise click.ClickException(f"{command} not ready after {timeout:.0f} s; see {log}")


def feed_samples(settings: Settings) -> int:
    """Produce the contract's valid sample events to their ingest topics."""
    from topics import clients

    producer = clients.producer(settings, acks="all", client_id="gridlink-demo")
    sent = 0
    for topic, (filename, key_field) in SAMPLE_FILES.items():
        for line in (SAMPLES_DIR / filename).read_text(encoding="utf-8").splitlines():
            if line.strip():
                key = json.loads(line)[key_field].encode()
                producer.send(settings.topic(topic), key=key, value=line.encode())
                sent += 1
    xml = SAMPLES_DIR / "camera-alert.gb28181.xml"
    producer.send(settings.topic("ingest.camera-alerts"), key=b"gb28181", value=xml.read_bytes())
    producer.flush()
    producer.close()
    return sent + 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def simulate_args(*, rate: float, departments: bool, logs: Path, api_url: str) -> list[str]:
    """The ``gridlink simulate`` the demo runs: traffic at ``rate`` (none at 0) and, with
    ``departments``, desks and the city operator working the cases through the API."""
    args = ["simulate", "--duration", "86400", "--out", str(logs / "simulated.jsonl")]
    args += ["--rate", str(rate)] if rate > 0 else ["--no-traffic"]
    if departments:
        args += ["--departments", "--keys-file", str(logs / "keys.txt"), "--api-url", api_url]
    else:
        args.append("--quiet")
    return args


def run(settings: Settings, local_kafka, create_topics, *, rate: float = 2.0,
        departments: bool = True) -> None:
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on SIGTERM too
    logs = Path("data") / "demo"
    click.echo("1/4 Starting the local Kafka broker …")
    local_kafka.up(echo=click.echo)
    click.echo("2/4 Creating the contract topics …")
    create_topics()
    click.echo("3/4 Starting a worker and the API …")
    users_file = settings.users_file or logs / "users.toml"
    keys = demo_users(settings, users_file) if settings.users_file is None else {}
    since = {name: _size(logs / name) for name in ("worker.log", "api.log")}
    children = [_spawn(["worker"], logs / "worker.log"),
                _spawn(["api"], logs / "api.log", {"GRIDLINK_USERS_FILE": str(users_file)})]
    try:
        _wait_for(logs / "worker.log", "Worker]: Ready", children[0], timeout=120,
                  since=since["worker.log"])
        _wait_for(logs / "api.log", "Uvicorn running", children[1], timeout=60,
                  since=since["api.log"])
        click.echo("4/4 Feeding the sample events …")
        sent = feed_samples(settings)
        (logs / "keys.txt").write_text("".join(f"{n} {k}\n" for n, k in keys.items()))
        base = f"http://{settings.api_host}:{settings.api_port}"
        acting = departments and bool(keys)
        if rate > 0 or acting:
            children.append(_spawn(simulate_args(rate=rate, departments=acting, logs=logs,
                                                 api_url=base), logs / "simulate.log"))
        traffic = (f"simulated traffic\nfollows at {rate:g} messages a second (what was sent: "
                   f"{logs}/simulated.jsonl)" if rate > 0 else "no simulated traffic follows")
        if acting:
            people = f"""
Department desks and the city operator work the cases through the API: they
claim (some late: yellow and red cards, supervision, take-over), return,
report progress, ask for extensions, handle; the operator registers, re-routes,
rules, checks, closes and calls back. Progress: {logs}/simulate.log."""
        elif departments:
            people = "\nNo department actors: GRIDLINK_USERS_FILE is set, the demo has no keys."
        else:
            people = ""
        bootstrap = settings.kafka_bootstrap
        click.echo(f"""
GridLink demo is running. {sent} sample events were sent, and {traffic}.{people}
  console:           {base}/console  (sign in with a user name below and its key)
  board:             {base}/board    (a wall screen signs in as `wall`)
  API:               {base}/docs
  metrics:           {base}/metrics
  department queue:  kcat -b {bootstrap} -C -t {settings.topic('dept.chengguan')} -e
  case log:          kcat -b {bootstrap} -C -t {settings.topic('cases.events')} -e
  dead letters:      kcat -b {bootstrap} -C -t {settings.topic('ingest.dead-letter')} -e
  logs:              {logs}/worker.log, {logs}/api.log
  API keys (X-API-Key header; written to {users_file} as digests):
{chr(10).join(f"    {name:18} {key}" for name, key in list(keys.items())[:6])}
    … and the desks: "<department>-desk" (city-wide), "township-<code>-desk" and
    "<department>-<county>-desk" (all keys printed to {logs}/keys.txt)
Press Ctrl-C to stop the worker, the API and the simulator (the broker keeps running:
`gridlink kafka down` stops it).""")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        raise click.ClickException(f"a demo process exited; see the logs in {logs}")
    except KeyboardInterrupt:
        click.echo("\nStopping …")
    finally:
        # the simulator first (its actors finish their calls while the API still answers),
        # then the worker and the API together
        for group in (children[2:], children[:2]):
            for child in group:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in group:
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
