"""Structure of docker/compose.yaml and docker/Dockerfile (Docker itself cannot run in this suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

DOCKER = Path(__file__).resolve().parent.parent / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_services_present(compose: dict) -> None:
    assert {"redis", "postgres", "worker", "flower"} <= set(compose["services"])


def test_worker_scales(compose: dict) -> None:
    # Given the worker service, when `docker compose up --scale worker=N` runs, then nothing pins it to one
    # container: no fixed name and no host port (N containers would collide on both).
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "caviar worker" in _command(worker)
    env = worker["environment"]
    assert env["CAVIAR_BROKER_URL"].startswith("redis://")
    assert env["CAVIAR_BROKER_URL"].endswith("@redis:6379/0")
    assert env["CAVIAR_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["CAVIAR_DATABASE_URL"]
    assert {"redis", "postgres"} <= set(worker["depends_on"])


def test_redis_never_evicts(compose: dict) -> None:
    command = _command(compose["services"]["redis"]).split()
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--requirepass" in command


def test_flower_monitors_the_app(compose: dict) -> None:
    flower = compose["services"]["flower"]
    command = _command(flower)
    assert "flower" in command and "workers.app" in command
    assert flower["environment"]["CAVIAR_BROKER_URL"] == compose["services"]["worker"]["environment"][
        "CAVIAR_BROKER_URL"
    ]


def test_flower_is_protected(compose: dict) -> None:
    flower = compose["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("admin:${")
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])


def test_passwords_come_from_the_environment(compose: dict) -> None:
    env = compose["services"]["worker"]["environment"]
    assert ":${REDIS_PASSWORD" in env["CAVIAR_BROKER_URL"]
    assert ":${POSTGRES_PASSWORD" in env["CAVIAR_DATABASE_URL"]


def test_no_container_names_anywhere(compose: dict) -> None:
    assert all("container_name" not in s for s in compose["services"].values())


def test_dockerfile_builds_numba_cache() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert "NUMBA_CACHE_DIR=" in text
    assert "warmup(" in text
    # The cache must be writable by the user the worker runs as.
    assert "chown -R caviar" in text and "USER caviar" in text
    for var in ("OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "NUMBA_NUM_THREADS=1"):
        assert var in text
    assert 'CMD ["caviar", "worker"]' in text


def test_no_default_password_anywhere() -> None:
    # A missing password stops compose with a message (${VAR:?...}) instead of falling back to a default.
    text = (DOCKER / "compose.yaml").read_text()
    assert ":-" not in text and "change-me" not in text
    for var in ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_PASSWORD"):
        assert f"${{{var}:?" in text
