"""Fault tests: real redis-server, real `caviar worker` processes, killed by process group.

Each test submits a tiny study, breaks something while a trial runs, and checks that the study still
completes with every trial stored once (one row per trial id, a learning curve of exactly its epochs,
the expected number of attempts) and that the broker holds nothing afterwards.

Timeouts are shortened through the environment (see ``tests/worker_procs.py``): heartbeats go stale
after 3 s, reapers run every second, Redis hands an unacknowledged message to another worker after 20 s,
and a trial is killed after 18 s.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer
from worker_procs import (
    run_cli,
    study_state,
    trial_rows,
    wait_for,
    worker_env,
    worker_pool,
)

from workers.broker import UNACKED_KEY, message_ids

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

QUEUE = "caviar"

#: Trials of a second or a few each: 100 short epochs on digits, a heartbeat and a curve row per epoch.
SLOW_STUDY = """
[study]
name = "slow"
dataset = "digits"
objective = "val_loss"
strategy = "random"
seed = 1

[strategy]
trials = {trials}

[fixed]
epochs = {epochs}
layers = 2
hidden_units = 128
batch_size = 64
norm = "none"

[space]
learning_rate = {{ log = [1e-3, 1e-2] }}
"""


def write_study(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def submit(env: dict[str, str], study: Path) -> str:
    done = run_cli("submit", str(study), env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite store (the fault paths under test are the broker's and the workers')."""
    yield f"sqlite:///{tmp_path}/caviar.db"


def _rows_by_id(db_url: str, study_id: str) -> dict[str, dict]:
    return {row["id"]: row for row in trial_rows(db_url, study_id)}


def _running_mid_trial(db_url: str, study_id: str, min_epochs: int = 5) -> str | None:
    """The id of a running trial with at least ``min_epochs`` epochs recorded, if any."""
    from service.store import open_store, reads

    store = open_store(db_url)
    try:
        running = [r["id"] for r in reads.trial_rows(store, study_id, status="running")]
        curves = reads.epochs_of(store, running)
    finally:
        store.dispose()
    for trial_id in running:
        if len(curves.get(trial_id, [])) >= min_epochs:
            return trial_id
    return None


def _finished(db_url: str, study_id: str) -> bool:
    return study_state(db_url, study_id) in ("complete", "failed", "cancelled")


def assert_stored_once(db_url: str, study_id: str, n_trials: int, epochs: int) -> dict[str, dict]:
    """Every trial complete, once, with a learning curve of exactly ``epochs`` rows."""
    from service.store import open_store, reads

    rows = _rows_by_id(db_url, study_id)
    assert len(rows) == n_trials
    assert {r["status"] for r in rows.values()} == {"complete"}
    store = open_store(db_url)
    try:
        curves = reads.epochs_of(store, list(rows))
    finally:
        store.dispose()
    for trial_id, row in rows.items():
        assert row["epochs_run"] == epochs
        assert [e["epoch"] for e in curves[trial_id]] == sorted({e["epoch"] for e in curves[trial_id]})
        assert len(curves[trial_id]) == epochs
    return rows


def assert_broker_drained(server: RedisServer, workers: list) -> None:
    """Nothing waits in the queue and nothing is held unacknowledged (stale copies included)."""
    client = server.client()
    wait_for(
        lambda: client.llen(QUEUE) == 0 and client.hlen(UNACKED_KEY) == 0,
        40, "the broker to drain", workers=workers,
    )


def test_sigkill_whole_worker_mid_trial(
    redis_server: RedisServer, any_db_url: str, tmp_path: Path
) -> None:
    db_url = any_db_url
    # Given a study of 3 trials and one worker running one of them
    env = worker_env(redis_server.url, db_url)
    study_id = submit(env, write_study(tmp_path, SLOW_STUDY.format(trials=3, epochs=100)))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        victim = wait_for(lambda: _running_mid_trial(db_url, study_id), 120, "a trial mid-run", workers=[a])

        # When the whole worker (parent and pool) is SIGKILLed
        a.killpg(signal.SIGKILL)
        a.wait(10)

        # Then nothing was acknowledged or recorded: the message is still held, the trial still running
        assert victim in message_ids(redis_server.client(), QUEUE)
        assert _rows_by_id(db_url, study_id)[victim]["status"] == "running"

        # And a second worker finishes the study, running the victim a second time and nothing twice
        b = start("b")
        wait_for(lambda: _finished(db_url, study_id), 150, "the study to finish", workers=[a, b])
        assert study_state(db_url, study_id) == "complete"
        rows = assert_stored_once(db_url, study_id, 3, 100)
        assert rows[victim]["attempts"] == 2
        assert all(r["attempts"] == 1 for tid, r in rows.items() if tid != victim)
        assert rows[victim]["worker"] == b.name
        assert_broker_drained(redis_server, [a, b])


def test_only_a_pool_child_killed(redis_server: RedisServer, db_url: str, tmp_path: Path) -> None:
    env = worker_env(redis_server.url, db_url)
    study_id = submit(env, write_study(tmp_path, SLOW_STUDY.format(trials=2, epochs=100)))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        victim = wait_for(lambda: _running_mid_trial(db_url, study_id), 120, "a trial mid-run", workers=[a])
        (child,) = a.pool_children()

        # When only the pool process running the trial dies
        os.kill(child, signal.SIGKILL)

        # Then the same worker replaces it and completes the study; the victim ran twice, stored once
        wait_for(lambda: _finished(db_url, study_id), 150, "the study to finish", workers=[a])
        assert a.alive()
        assert child not in a.pool_children()
        rows = assert_stored_once(db_url, study_id, 2, 100)
        assert rows[victim]["attempts"] == 2
        assert "WorkerLostError" in a.log()
        assert_broker_drained(redis_server, [a])


#: A grid of two trials: one of 4 epochs, and one of 100,000 epochs that can never finish within the
#: task time limit, so the pool kills its process on every attempt (a hung or runaway trial).
POISON_STUDY = """
[study]
name = "poison"
dataset = "iris"
objective = "val_loss"
strategy = "grid"
seed = 0

[fixed]
learning_rate = 0.01
layers = 1
hidden_units = 8
batch_size = 16
norm = "none"

[space]
epochs = { choice = [4, 100000] }
"""


def test_poison_trial_fails_at_the_attempt_cap(
    redis_server: RedisServer, db_url: str, tmp_path: Path
) -> None:
    # Given a 4 s time limit and an attempt cap of 2
    env = worker_env(redis_server.url, db_url, CAVIAR_TASK_TIME_LIMIT="4", CAVIAR_MAX_ATTEMPTS="2")
    study_id = submit(env, write_study(tmp_path, POISON_STUDY))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        # When the runaway trial's process is killed on every attempt
        wait_for(lambda: _finished(db_url, study_id), 150, "the study to finish", workers=[a])
        # Then it ends failed at the cap and the study completes with the healthy trial
        rows = sorted(_rows_by_id(db_url, study_id).values(), key=lambda r: r["params"]["epochs"])
        assert study_state(db_url, study_id) == "complete"
        healthy, poison = rows
        assert healthy["status"] == "complete" and healthy["attempts"] == 1
        assert poison["status"] == "failed"
        assert poison["attempts"] == 2
        assert "attempt" in poison["error"]
        assert "TimeLimitExceeded" in a.log()
        assert_broker_drained(redis_server, [a])


def test_redis_restarted_mid_study(redis_server: RedisServer, db_url: str, tmp_path: Path) -> None:
    # Given a study of 4 trials, one running and three waiting in Redis
    env = worker_env(redis_server.url, db_url)
    study_id = submit(env, write_study(tmp_path, SLOW_STUDY.format(trials=4, epochs=200)))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        running = wait_for(lambda: _running_mid_trial(db_url, study_id), 120, "a trial mid-run", workers=[a])

        # When Redis restarts without persistence (every queued and unacked message is lost)
        redis_server.restart()
        assert redis_server.client().llen(QUEUE) == 0

        # Then the worker reconnects, the reaper re-sends what was lost, and the study completes once
        wait_for(lambda: _finished(db_url, study_id), 180, "the study to finish", workers=[a])
        assert "missing from the broker" in a.log()
        assert study_state(db_url, study_id) == "complete"
        rows = assert_stored_once(db_url, study_id, 4, 200)
        # And the trial that was running went on through the blip: no second attempt
        assert rows[running]["attempts"] == 1, a.log()[-4000:]
        assert a.alive()
        assert_broker_drained(redis_server, [a])


def test_sigterm_lets_the_running_trial_finish(
    redis_server: RedisServer, db_url: str, tmp_path: Path
) -> None:
    env = worker_env(redis_server.url, db_url)
    study_id = submit(env, write_study(tmp_path, SLOW_STUDY.format(trials=3, epochs=100)))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        victim = wait_for(lambda: _running_mid_trial(db_url, study_id), 120, "a trial mid-run", workers=[a])

        # When the worker gets SIGTERM (what `docker stop` sends): warm shutdown
        os.kill(a.pid, signal.SIGTERM)
        assert a.wait(60) == 0

        # Then the running trial finished on its first attempt and the others are still queued
        rows = _rows_by_id(db_url, study_id)
        assert rows[victim]["status"] == "complete" and rows[victim]["attempts"] == 1
        assert sorted(r["status"] for r in rows.values()) == ["complete", "queued", "queued"]

        # And another worker finishes the rest
        b = start("b")
        wait_for(lambda: _finished(db_url, study_id), 150, "the study to finish", workers=[a, b])
        rows = assert_stored_once(db_url, study_id, 3, 100)
        assert all(r["attempts"] == 1 for r in rows.values()), (
            {k: (r["attempts"], r["worker"]) for k, r in rows.items()}, a.log()[-3000:], b.log()[-5000:])
        assert_broker_drained(redis_server, [b])


def test_postgres_restarted_mid_study(
    redis_server: RedisServer, pg_server, pg_url: str, tmp_path: Path
) -> None:
    # Given a study of 4 trials on PostgreSQL, a trial running
    db_url = pg_url
    env = worker_env(redis_server.url, db_url)
    study_id = submit(env, write_study(tmp_path, SLOW_STUDY.format(trials=4, epochs=100)))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        wait_for(lambda: _running_mid_trial(db_url, study_id), 120, "a trial mid-run", workers=[a])

        # When PostgreSQL stops (clients disconnected) and comes back on the same port
        pg_server.stop("fast")
        import time

        time.sleep(2)
        pg_server.start()

        # Then the worker's writes are retried, and the study completes with every trial stored once
        wait_for(lambda: _finished(db_url, study_id), 180, "the study to finish", workers=[a])
        assert study_state(db_url, study_id) == "complete"
        rows = assert_stored_once(db_url, study_id, 4, 100)
        assert all(1 <= r["attempts"] <= 3 for r in rows.values())
        assert a.alive()
        assert_broker_drained(redis_server, [a])


def test_sigkill_whole_worker_mid_rung_of_a_pruned_study(
    redis_server: RedisServer, db_url: str, tmp_path: Path
) -> None:
    # Given a halving study (6 trials, rungs of 10, 30 and 90 epochs) whose trials store a checkpoint
    # every epoch, and the same study run without any fault for reference
    text = SLOW_STUDY.format(trials=6, epochs=90).replace(
        "[fixed]", '[pruning]\nkind = "halving"\nmin_epochs = 10\nreduction = 3\n\n[fixed]'
    )
    env = worker_env(redis_server.url, db_url, CAVIAR_CHECKPOINT_SECONDS="0.001")
    ref_db = f"sqlite:///{tmp_path}/ref.db"
    local_env = {k: v for k, v in env.items() if k not in ("CAVIAR_BROKER_URL", "CAVIAR_DATABASE_URL")}
    ref_file = write_study(tmp_path, text, "ref.toml")
    done = run_cli("run", str(ref_file), "-w", "2", "--db", ref_db, env=local_env)
    assert done.returncode == 0, done.stderr
    (ref_id,) = {r["study_id"] for r in _all_rows(ref_db)}
    expected = {(r["round_index"], r["trial_index"]): r for r in trial_rows(ref_db, ref_id)}

    study_id = submit(env, write_study(tmp_path, text))
    with worker_pool(env, tmp_path) as start:
        a = start("a")
        # When the worker is SIGKILLed while a promoted trial trains its second rung
        victim = wait_for(
            lambda: _running_mid_trial(db_url, study_id, min_epochs=15), 120, "a trial in rung 2", workers=[a]
        )
        a.killpg(signal.SIGKILL)
        a.wait(10)
        b = start("b")
        wait_for(lambda: _finished(db_url, study_id), 150, "the study to finish", workers=[a, b])
    # Then the study ends as the reference did: same statuses, rungs and losses, the victim resumed
    assert study_state(db_url, study_id) == "complete"
    got = {(r["round_index"], r["trial_index"]): r for r in trial_rows(db_url, study_id)}
    assert not [r["error"] for r in got.values() if r["error"]]
    assert {k: (r["status"], r["epochs_run"], r["val_loss"]) for k, r in got.items()} == {
        k: (r["status"], r["epochs_run"], r["val_loss"]) for k, r in expected.items()
    }
    assert _rows_by_id(db_url, study_id)[victim]["worker"] == b.name


def _all_rows(db_url: str) -> list[dict]:
    from service.store import open_store, reads, studies

    store = open_store(db_url)
    try:
        return [
            {**r, "study_id": sid} for sid in studies.study_ids(store) for r in reads.trial_rows(store, sid)
        ]
    finally:
        store.dispose()
