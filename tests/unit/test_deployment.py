"""docker-compose.yml cannot run here (no Docker engine): check it by reading it."""

from __future__ import annotations

import json
import re
import tomllib

import yaml

from agents.worker import AGENTS
from settings import Settings
from tests.conftest import PROJECT_DIR

COMPOSE = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]


def test_compose_has_every_service_users_need():
    assert {"kafka", "postgres", "prometheus", "grafana", "jaeger", "worker", "projection",
            "api"} <= set(SERVICES)
    assert SERVICES["api"]["command"] == ["gridlink", "api"]


def test_every_stage_of_a_worker_runs_in_exactly_one_compose_service():
    stages: list[str] = []
    for service in SERVICES.values():
        command = service.get("command") or []
        if command[:2] == ["gridlink", "worker"]:
            rest = command[2:]
            stages += rest[rest.index("--agents") + 1].split(",") if "--agents" in rest \
                else list(AGENTS)
    assert sorted(stages) == sorted(AGENTS)
    assert SERVICES["projection"]["command"][-1] == "projection"
    assert "postgres" in SERVICES["projection"]["depends_on"]


def test_kafka_runs_in_kraft_mode_without_zookeeper():
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert not any("zookeeper" in name for name in SERVICES)


def test_every_gridlink_setting_in_compose_is_a_real_setting():
    known = {f"GRIDLINK_{name.upper()}" for name in Settings.model_fields}
    used = set()
    for name, service in SERVICES.items():
        for key in (service.get("environment") or {}):
            if key.startswith("GRIDLINK_"):
                used.add(key)
                assert key in known, f"service {name} sets unknown setting {key}"
    assert {"GRIDLINK_KAFKA_BOOTSTRAP", "GRIDLINK_DATABASE_URL"} <= used


def test_gridlink_services_point_at_the_compose_kafka_and_postgres():
    for name in ("worker", "projection", "api", "topics"):
        env = SERVICES[name]["environment"]
        assert env["GRIDLINK_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "@postgres:5432/" in env["GRIDLINK_DATABASE_URL"]
        Settings(**{k.removeprefix("GRIDLINK_").lower(): v for k, v in env.items()})


def test_image_installs_every_package_the_project_declares():
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.rstrip("*") for p in included]
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.M))
    assert set(packages) <= copied


# -- Grafana: the provisioned dashboard may only chart metrics GridLink exposes --------------

GRAFANA = PROJECT_DIR / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRIC_NAME = re.compile(r"\bgridlink_[a-z0-9_]+\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("", "_sum", "_count"), "gauge": ("",)}


def _exposed_names() -> set[str]:
    """Every sample name of the metrics declared in observability/metrics.py."""
    from prometheus_client import REGISTRY

    import observability.metrics  # noqa: F401  (declares and registers them)

    return {family.name + suffix for family in REGISTRY.collect()
            for suffix in _SUFFIXES.get(family.type, ("",))}


def _exprs(dashboard: dict) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            out += [(inner["title"], t["expr"]) for t in inner.get("targets", [])]
    return out


def test_the_dashboard_charts_only_metrics_that_exist():
    assert DASHBOARDS, "no dashboard JSON in deploy/grafana/dashboards"
    exposed = _exposed_names()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        exprs = _exprs(dashboard)
        assert exprs, path.name
        for title, expr in exprs:
            used = set(METRIC_NAME.findall(expr))
            assert used, f"{path.name} / {title}: {expr!r} charts no GridLink metric"
            assert used <= exposed, (f"{path.name} / {title}: {sorted(used - exposed)} not in "
                                     "observability/metrics.py")


def test_the_dashboard_covers_what_the_command_center_watches():
    used = {name for path in DASHBOARDS
            for _, expr in _exprs(json.loads(path.read_text(encoding="utf-8")))
            for name in METRIC_NAME.findall(expr)}
    for name in ("gridlink_events_in_total", "gridlink_ingest_to_department_seconds_bucket",
                 "gridlink_consumer_lag_messages", "gridlink_sla_cards_total",
                 "gridlink_open_cases", "gridlink_stats_handling_ratio",
                 "gridlink_stats_on_time_ratio", "gridlink_stats_satisfaction_ratio"):
        assert name in used, name


def test_grafana_provisions_the_dashboards_and_the_prometheus_datasource():
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in SERVICES["grafana"]["volumes"])
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "gridlink.yml")
                              .read_text(encoding="utf-8"))
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/dashboards"] == path
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
                                 .read_text(encoding="utf-8"))["datasources"]
    uids = {source["uid"] for source in datasources}
    for dashboard in DASHBOARDS:
        for panel in json.loads(dashboard.read_text(encoding="utf-8"))["panels"]:
            if "datasource" in panel:
                assert panel["datasource"]["uid"] in uids, panel["title"]


def test_prometheus_scrapes_the_api_and_the_worker_metrics_port():
    config = yaml.safe_load((PROJECT_DIR / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: target for job in config["scrape_configs"]
               for static in job["static_configs"] for target in static["targets"]}
    for job, service in (("gridlink-worker", "worker"), ("gridlink-projection", "projection")):
        port = SERVICES[service]["environment"]["GRIDLINK_WORKER_METRICS_PORT"]
        assert targets[job] == f"{service}:{port}"
    assert targets["gridlink-api"] == f"api:{SERVICES['api']['environment']['GRIDLINK_API_PORT']}"
