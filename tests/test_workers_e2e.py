"""End to end: `caviar submit` then two `caviar worker` processes finish a study with no CLI running,
with the same trials as the embedded default (`caviar run` on a local pool)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis_server import RedisServer
from worker_procs import run_cli, study_state, trial_rows, wait_for, worker_env, worker_pool

from service.store import open_store
from service.study_file import load_study_file
from workers.client import queue_status, submit_remote

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

QUICK = Path(__file__).resolve().parent.parent / "examples" / "quick.toml"


def _by_position(rows: list[dict]) -> dict[tuple[int, int], dict]:
    return {(r["round_index"], r["trial_index"]): r for r in rows}


def test_submit_then_two_workers_match_the_embedded_default(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    # Given Redis and PostgreSQL, when a study is submitted and the CLI exits
    env = worker_env(redis_server.url, pg_url)
    done = run_cli("submit", str(QUICK), env=env)
    assert done.returncode == 0, done.stderr
    study_id = done.stdout.strip()
    assert study_state(pg_url, study_id) == "queued"

    # Then two workers complete every round on their own
    with worker_pool(env, tmp_path) as start:
        workers = [start("one"), start("two")]
        wait_for(
            lambda: study_state(pg_url, study_id) in ("complete", "failed"), 180, "the study to finish",
            workers=workers,
        )
    assert study_state(pg_url, study_id) == "complete"
    remote = _by_position(trial_rows(pg_url, study_id))

    # And the embedded default (`caviar run`, local pool, SQLite) produces the same trials
    local_db = f"sqlite:///{tmp_path}/local.db"
    local_env = {k: v for k, v in env.items() if k != "CAVIAR_BROKER_URL"}  # else `run` uses the broker
    done = run_cli("run", str(QUICK), "--workers", "2", "--db", local_db, "--format", "json", env=local_env)
    assert done.returncode == 0, done.stderr
    store = open_store(local_db)
    try:
        from service.store import studies

        (local_id,) = studies.study_ids(store)
    finally:
        store.dispose()
    local = _by_position(trial_rows(local_db, local_id))
    assert set(remote) == set(local)
    assert len({r["round_index"] for r in remote.values()}) == 2
    for key, row in remote.items():
        assert row["status"] == local[key]["status"] == "complete"
        assert row["params"] == local[key]["params"]
        assert row["seed"] == local[key]["seed"]
        assert row["val_loss"] == pytest.approx(local[key]["val_loss"], rel=1e-6)
        assert row["attempts"] == 1


def test_run_with_broker_follows_the_study(redis_server: RedisServer, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/caviar.db"
    # A worker started from a multi-threaded environment pins its processes to one thread anyway.
    env = worker_env(redis_server.url, db_url, OPENBLAS_NUM_THREADS="4", OMP_NUM_THREADS="4")
    with worker_pool(env, tmp_path) as start:
        worker = start("one", concurrency=2)
        wait_for(lambda: len(worker.pool_children()) == 2, 120, "the pool", workers=[worker])
        import psutil

        for pid in [worker.pid, *worker.pool_children()]:
            environ = psutil.Process(pid).environ()
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
                assert environ[var] == "1", (pid, var)
        done = run_cli(
            "run", str(QUICK), "--broker", redis_server.url, "--format", "json", env=env, timeout=180
        )
        assert done.returncode == 0, done.stderr + worker.log()[-3000:]
    # The password never reaches the output.
    assert redis_server.password not in done.stdout + done.stderr
    summary = json.loads(done.stdout)
    study_id = summary["id"] if isinstance(summary, dict) else summary[0]["id"]
    assert study_state(db_url, study_id) == "complete"


def test_queue_status_counts_waiting_messages(redis_server: RedisServer, tmp_path: Path) -> None:
    # Given a submitted study and no worker
    store = open_store(f"sqlite:///{tmp_path}/caviar.db")
    try:
        spec = load_study_file(QUICK)
        study_id, trial_ids = submit_remote(store, spec, broker=redis_server.url)
        # When the status is read
        status = queue_status(store, broker=redis_server.url, study_id=study_id)
    finally:
        store.dispose()
    # Then the round's trials wait in the queue, nothing runs, and the password is masked
    assert status.queued_messages == len(trial_ids) == 4
    assert status.unacked_messages == 0
    assert status.running_by_worker == {} and status.stale == []
    assert redis_server.password not in json.dumps(status.to_dict())
    assert "***" in status.broker


def test_unreachable_broker_writes_nothing(tmp_path: Path) -> None:
    from worker_procs import free_port_url

    db_url = f"sqlite:///{tmp_path}/caviar.db"
    env = worker_env(free_port_url("hunter2"), db_url)
    done = run_cli("submit", str(QUICK), env=env)
    assert done.returncode == 1
    assert "hunter2" not in done.stderr and "***" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    store = open_store(db_url)
    try:
        from service.store import studies

        assert studies.study_ids(store) == []
    finally:
        store.dispose()


def test_a_named_queue_carries_every_round(redis_server: RedisServer, tmp_path: Path) -> None:
    # Given a study submitted to queue "q1", and a worker consuming -Q q1 without CAVIAR_QUEUE set
    db_url = f"sqlite:///{tmp_path}/caviar.db"
    env = worker_env(redis_server.url, db_url)
    done = run_cli("submit", str(QUICK), env={**env, "CAVIAR_QUEUE": "q1"})
    assert done.returncode == 0, done.stderr
    study_id = done.stdout.strip()
    with worker_pool(env, tmp_path) as start:
        worker = start("one", args=("-Q", "q1"))
        # Then every round (the next ones sent by the worker itself) reaches it, and the study completes
        wait_for(lambda: study_state(db_url, study_id) in ("complete", "failed"), 180, "the study to finish",
                 workers=[worker])
    rows = trial_rows(db_url, study_id)
    assert study_state(db_url, study_id) == "complete"
    assert len({r["round_index"] for r in rows}) == 2
    assert {r["status"] for r in rows} <= {"complete", "diverged"}
    assert redis_server.client().llen("caviar") == 0  # nothing went to the default queue
