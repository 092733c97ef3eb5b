"""docker-compose.yml cannot run here (no Docker engine): check it by reading it."""

from __future__ import annotations

import re
import tomllib

import yaml

from settings import Settings
from tests.conftest import PROJECT_DIR

COMPOSE = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]


def test_compose_has_every_service_users_need():
    assert {"kafka", "postgres", "prometheus", "grafana", "jaeger", "worker", "api"} <= set(
        SERVICES
    )
    assert SERVICES["worker"]["command"] == ["gridlink", "worker"]
    assert SERVICES["api"]["command"] == ["gridlink", "api"]


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
    for name in ("worker", "api", "topics"):
        env = SERVICES[name]["environment"]
        assert env["GRIDLINK_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "@postgres:5432/" in env["GRIDLINK_DATABASE_URL"]
        Settings(**{k.removeprefix("GRIDLINK_").lower(): v for k, v in env.items()})


def test_image_installs_every_package_the_project_declares():
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.M))
    assert set(packages) <= copied


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"GRIDLINK_{name.upper()}" in readme, f"GRIDLINK_{name.upper()} not in README"
