"""The Celery app's configuration, dispatch and broker inspection against a real redis-server."""

from __future__ import annotations

import logging

import pytest
from redis_server import RedisServer

from core.errors import BadInput
from workers.app import TRIAL_TASK, MaskPasswords, celery_config, make_app
from workers.broker import message_ids, queue_depth
from workers.dispatch import dispatch
from workers.settings import WorkerSettings


def test_config_is_json_only_late_ack_no_result_backend() -> None:
    config = celery_config(WorkerSettings(broker_url="redis://:pw@host:6379/0"))
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == "json"
    assert config["result_accept_content"] == ["json"]
    assert config["result_backend"] is None and config["task_ignore_result"] is True
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_connection_retry_on_startup"]
    # A Redis blip does not cancel running trials (their lease in the store protects them).
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False
    assert config["task_time_limit"] < config["broker_transport_options"]["visibility_timeout"]


def test_time_limit_must_be_below_visibility_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAVIAR_VISIBILITY_TIMEOUT", "10")
    monkeypatch.setenv("CAVIAR_TASK_TIME_LIMIT", "10")
    with pytest.raises(BadInput) as info:
        WorkerSettings.from_env("redis://localhost:6379/0")
    assert info.value.field == "CAVIAR_TASK_TIME_LIMIT"
    monkeypatch.delenv("CAVIAR_TASK_TIME_LIMIT")
    # Without an explicit limit, the default stays below a short visibility timeout.
    assert WorkerSettings.from_env("redis://localhost:6379/0").time_limit < 10


def test_bad_broker_url_is_bad_input_with_password_masked() -> None:
    with pytest.raises(BadInput) as info:
        WorkerSettings(broker_url="amqp://bob:hunter2@host//")
    assert "hunter2" not in str(info.value)


def test_bad_seconds_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAVIAR_STALE_AFTER", "soon")
    with pytest.raises(BadInput):
        WorkerSettings.from_env()


def test_rediss_verifies_certificates_by_default() -> None:
    import ssl

    config = celery_config(WorkerSettings(broker_url="rediss://:pw@host:6380/0"))
    assert config["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    explicit = celery_config(WorkerSettings(broker_url="rediss://:pw@host:6380/0?ssl_cert_reqs=required"))
    assert "broker_use_ssl" not in explicit


def test_log_filter_masks_passwords() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "connected to %s", ("redis://:hunter2@host:6379/0",), None
    )
    assert MaskPasswords().filter(record)
    assert record.getMessage() == "connected to redis://:***@host:6379/0"


def test_dispatch_uses_trial_id_as_task_id_and_json(redis_server: RedisServer) -> None:
    # Given a real broker with a password, when three trials are dispatched,
    # then three JSON messages wait in the queue, each carrying its trial id as task id.
    app = make_app(WorkerSettings(broker_url=redis_server.url, queue="q-test"))
    ids = ["study-a/r0/t0", "study-a/r0/t1", "study-a/r0/t2"]
    assert dispatch(ids, app=app) == 3
    client = redis_server.client()
    assert queue_depth(client, "q-test").queued == 3
    assert message_ids(client, "q-test") == set(ids)
    import json

    raw = json.loads(client.lindex("q-test", 0))
    assert raw["content-type"] == "application/json"
    assert raw["headers"]["task"] == TRIAL_TASK
    assert dispatch([], app=app) == 0



def test_celery_env_override_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Celery would silently prefer CELERY_BROKER_URL over the configured broker.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:hunter2@elsewhere:6379/0")
    with pytest.raises(BadInput) as info:
        make_app(WorkerSettings())
    assert info.value.field == "CELERY_BROKER_URL"
    assert "hunter2" not in str(info.value)


def test_worker_rejects_a_non_redis_broker_with_exit_2(tmp_path) -> None:
    from worker_procs import run_cli, worker_env

    env = worker_env("amqp://bob:hunter2@host//", f"sqlite:///{tmp_path}/caviar.db")
    done = run_cli("worker", "-c", "1", env=env, timeout=60)
    assert done.returncode == 2
    assert "hunter2" not in done.stderr and "redis://" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_submit_of_a_bad_study_exits_2_and_writes_nothing(tmp_path) -> None:
    from worker_procs import free_port_url, run_cli, worker_env

    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\ndataset = "nope"\n')
    db = tmp_path / "caviar.db"
    done = run_cli("submit", str(bad), env=worker_env(free_port_url("pw"), f"sqlite:///{db}"), timeout=60)
    assert done.returncode == 2
    assert not db.exists()
