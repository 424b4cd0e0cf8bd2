"""Panda mode end to end through the CLI, on the local path and on a real Celery worker: start, set at an
epoch, pause, resume, roll back, fork, show, replay bit for bit, SIGKILL and resume, bad input.

Every comparison is exact: a session's curve and final metrics are compared with ``==`` against a
session that ran the same timeline without interruption, or against its own replay from scratch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer
from worker_procs import CAVIAR, wait_for, worker_env, worker_pool

from core.errors import BadInput
from core.panda import Timeline, build_timeline, parse_values
from core.panda.timeline import LogEntry

pytestmark = pytest.mark.timeout(300)

#: A small network on digits: an epoch takes a few milliseconds once the kernels are compiled.
BASE = ("--dataset", "digits", "--set", "hidden_units=32", "--set", "layers=1", "--set", "batch_size=64")
#: Epochs long enough (tens of milliseconds) for a request or a kill to land while one trains.
SLOW = ("--dataset", "digits", "--set", "hidden_units=256", "--set", "layers=3", "--set", "batch_size=4")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    return subprocess.run(
        [*CAVIAR, *args], cwd=cwd, env=env or {**os.environ, "CAVIAR_DATABASE_URL": f"sqlite:///{cwd}/c.db"},
        capture_output=True, text=True, timeout=timeout,
    )


def ok(*args: str, cwd: Path, **kw: Any) -> str:
    done = cli(*args, cwd=cwd, **kw)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def show(session: str, cwd: Path, **kw: Any) -> dict[str, Any]:
    """``caviar panda show --format json``'s record, read in this process (polling through the CLI would
    cost a process start per read)."""
    from service.output import dumps
    from service.panda.session import record
    from service.store import open_store

    store = open_store(f"sqlite:///{cwd}/c.db")
    try:
        return json.loads(dumps(record(store, session)))
    finally:
        store.dispose()


def show_cli(session: str, cwd: Path, **kw: Any) -> dict[str, Any]:
    return json.loads(ok("panda", "show", session, "--format", "json", cwd=cwd, **kw))


def curve(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(h["epoch"], h["train_loss"], h["val_loss"], h["val_accuracy"], h["learning_rate"])
            for h in record["history"]]


# --- the timeline (pure) ------------------------------------------------------------------------------


def test_timeline_changes_rollbacks_and_the_schedule():
    initial = {"learning_rate": 0.1, "lr_decay": 0.5, "lr_decay_kind": "inverse_time", "epochs": 10,
               "momentum": 0.9, "seed": 0}
    t = Timeline(initial, ())
    t = t.changed(4, {"learning_rate": 0.01})
    config, schedule_from = t.state_at(6)
    # a new rate restarts the decay from the epoch it took effect
    assert config["learning_rate"] == 0.01 and schedule_from == 4
    assert t.state_at(3)[0]["learning_rate"] == 0.1
    back = t.rolled_back(2, {"momentum": 0.5})
    assert back.state_at(6)[0]["learning_rate"] == 0.1  # the change at 4 is undone
    assert back.state_at(6)[0]["momentum"] == 0.5 and back.state_at(1)[0]["momentum"] == 0.9
    log = [LogEntry("set", 4, {"learning_rate": 0.01}),
           LogEntry("rollback", 7, {"momentum": 0.5}, to_epoch=2)]
    assert build_timeline(initial, [], log).state_at(6) == back.state_at(6)


def test_structural_and_unknown_keys_are_refused_with_the_way_out():
    with pytest.raises(BadInput, match="fork"):
        parse_values({"hidden_units": "64"})
    with pytest.raises(BadInput, match="learning_rate"):
        parse_values({"learning_rate": "-1"})
    with pytest.raises(BadInput):
        parse_values({"no_such_key": "1"})
    assert parse_values({"learning_rate": "0.5", "epochs": "20"}) == {"learning_rate": 0.5, "epochs": 20}


# --- the local path -------------------------------------------------------------------------------------


def test_set_rollback_fork_show_and_replay(tmp_path: Path):
    sid = ok("panda", "start", *BASE, "--set", "epochs=4", "--name", "babysat", "-q", cwd=tmp_path).strip()
    assert show(sid, tmp_path)["state"] == "complete"
    ok("panda", "set", sid, "epochs=8", "learning_rate=0.01", cwd=tmp_path)
    ok("panda", "resume", sid, "-q", cwd=tmp_path)
    ok("panda", "rollback", sid, "--to-epoch", "6", "--set", "learning_rate=0.002", cwd=tmp_path)
    ok("panda", "resume", sid, "-q", cwd=tmp_path)
    r = show_cli(sid, tmp_path)
    assert r == show(sid, tmp_path)
    assert r["state"] == "complete" and r["epoch"] == 8 and r["config"]["learning_rate"] == 0.002
    assert r["changes"] == [
        {"epoch": 4, "key": "epochs", "value": 8},
        {"epoch": 4, "key": "learning_rate", "value": 0.01},
        {"epoch": 8, "key": "rollback", "value": 6},
        {"epoch": 6, "key": "learning_rate", "value": 0.002},
    ]
    # each change took effect at the epoch it says: the rate each epoch trained with
    assert [h["learning_rate"] for h in r["history"]] == [0.003] * 4 + [0.01] * 2 + [0.002] * 2
    assert [h["epoch"] for h in r["history"]] == list(range(1, 9))

    # the same timeline run without stops, pauses or rollbacks gives the same curve and model, bit for bit
    straight = ok("panda", "start", *BASE, "--set", "epochs=8", "-q", cwd=tmp_path).strip()
    s = show(straight, tmp_path)
    assert curve(s)[:4] == curve(r)[:4] and curve(s)[4:] != curve(r)[4:]

    fork = ok("panda", "fork", sid, "--from-epoch", "5", "--set", "learning_rate=0.05", "-q",
              cwd=tmp_path).strip()
    f = show(fork, tmp_path)
    assert f["parent"] == {"id": sid, "epoch": 5}
    assert curve(f)[:5] == curve(r)[:5] and [h["learning_rate"] for h in f["history"]][5:] == [0.05] * 3
    assert show(sid, tmp_path)["history"] == r["history"]  # the original is untouched
    assert {"id": fork, "epoch": 5} in show(sid, tmp_path)["children"]

    for session in (sid, fork):
        report = json.loads(ok("panda", "replay", session, "--format", "json", cwd=tmp_path))
        assert report["identical"] and report["weights"] == "identical", report
        assert report["val_loss"]["stored"] == report["val_loss"]["replayed"]

    rows = json.loads(ok("panda", "list", "--format", "json", cwd=tmp_path))
    assert {row["id"] for row in rows} == {sid, straight, fork}
    status = json.loads(ok("status", sid, "--format", "json", cwd=tmp_path))
    assert status["kind"] == "panda" and status["counts"]["complete"] == 1
    ok("plot", sid, "-o", str(tmp_path / "s.png"), cwd=tmp_path)
    assert (tmp_path / "s.png").stat().st_size > 10_000
    ok("panda", "promote", sid, "-o", str(tmp_path / "study.toml"), cwd=tmp_path)
    assert "[space]" in (tmp_path / "study.toml").read_text()
    ok("validate", str(tmp_path / "study.toml"), cwd=tmp_path)


def _wait_epoch(sid: str, cwd: Path, epoch: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = show(sid, cwd)
        if r["epoch"] >= epoch or r["state"] != "running":
            return r
        time.sleep(0.05)
    raise AssertionError(f"{sid} did not reach epoch {epoch}")


def _kill_runner(sid: str, cwd: Path) -> None:
    """Leave no detached runner behind (a failed assertion must not leave one training)."""
    worker = show(sid, cwd)["worker"] or ""
    if worker.startswith("panda:"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)


def test_pause_set_at_epoch_and_resume_replay_exactly(tmp_path: Path):
    # paused at the start, so the request for epoch 3 is in the log before the first epoch trains
    sid = ok("panda", "start", *BASE, "--set", "epochs=3000", "--paused", cwd=tmp_path).strip()
    try:
        ok("panda", "set", sid, "learning_rate=0.02", "--at-epoch", "3", cwd=tmp_path)
        ok("panda", "pause", sid, "--at-epoch", "6", cwd=tmp_path)
        ok("panda", "resume", sid, "--detach", cwd=tmp_path)
        wait_for(lambda: show(sid, tmp_path)["state"] == "paused", 120, "the pause")
    finally:
        _kill_runner(sid, tmp_path)
    paused = show(sid, tmp_path)
    assert paused["epoch"] == 6 and paused["changes"][-1] == {"epoch": 6, "key": "pause", "value": None}
    ok("panda", "set", sid, "epochs=" + str(paused["epoch"] + 3), "momentum=0.8", cwd=tmp_path)
    assert show(sid, tmp_path)["pending"]  # waits for the resume
    ok("panda", "resume", sid, "-q", cwd=tmp_path)
    r = show(sid, tmp_path)
    assert r["state"] == "complete" and r["epoch"] == paused["epoch"] + 3
    assert {"epoch": 3, "key": "learning_rate", "value": 0.02} in r["changes"]
    assert {"epoch": paused["epoch"], "key": "momentum", "value": 0.8} in r["changes"]
    lr = [h["learning_rate"] for h in r["history"]]
    assert lr[:3] == [0.003] * 3 and set(lr[3:]) == {0.02}
    report = json.loads(ok("panda", "replay", sid, "--format", "json", cwd=tmp_path))
    assert report["identical"], report


def test_sigkill_mid_session_then_resume_is_the_uninterrupted_run(tmp_path: Path):
    decay = ("--set", "lr_decay=0.1")
    sid = ok("panda", "start", *SLOW, *decay, "--set", "epochs=3000", "--paused", cwd=tmp_path).strip()
    try:
        ok("panda", "resume", sid, "--detach", cwd=tmp_path)
        r = _wait_epoch(sid, tmp_path, 4)
        assert r["state"] == "running" and r["worker"].startswith("panda:")
        pid = int(r["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 30, "the kill")
    finally:
        _kill_runner(sid, tmp_path)
    killed_at = show(sid, tmp_path)["epoch"]
    assert 4 <= killed_at < 3000
    # a shorter plan changes nothing before its end: the schedule follows the epoch, not the plan
    end = killed_at + 5
    ok("panda", "set", sid, f"epochs={end}", cwd=tmp_path)
    ok("panda", "resume", sid, "-q", cwd=tmp_path)  # the runner is dead: its lease is taken at once
    resumed = show(sid, tmp_path)
    straight = show(ok("panda", "start", *SLOW, *decay, "--set", f"epochs={end}", "-q", cwd=tmp_path).strip(),
                    tmp_path)
    assert resumed["state"] == straight["state"] == "complete"
    assert curve(resumed) == curve(straight)
    assert resumed["val_loss"] == straight["val_loss"] and resumed["val_accuracy"] == straight["val_accuracy"]


def test_watch_shows_a_finished_session_and_leaves(tmp_path: Path):
    sid = ok("panda", "start", *BASE, "--set", "epochs=3", "-q", cwd=tmp_path).strip()
    out = ok("panda", "watch", sid, cwd=tmp_path, timeout=60)
    assert sid in out and "epoch 3/3" in out and "val_loss" in out


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "args, field",
    [
        (("set", "{sid}", "hidden_units=64"), "fork"),
        (("set", "{sid}", "learning_rate=-1"), "learning_rate"),
        (("set", "{sid}", "no_such_key=1"), "no_such_key"),
        (("set", "{sid}", "batch_size=100000"), "batch_size"),
        (("set", "{sid}", "epochs=5", "--at-epoch", "1"), "--at-epoch"),
        (("rollback", "{sid}", "--to-epoch", "9"), "--to-epoch"),
        (("fork", "{sid}", "--from-epoch", "9"), "--from-epoch"),
        (("fork", "{sid}", "--from-epoch", "2", "--set", "hidden_units=64"), "fork --from-epoch 0"),
        (("show", "nope-000000"), "session"),
        (("promote", "{sid}", "-o", "study.txt"), "--output"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(tmp_path: Path, args: tuple[str, ...], field: str):
    sid = ok("panda", "start", *BASE, "--set", "epochs=3", "-q", cwd=tmp_path).strip()
    before = show(sid, tmp_path)
    done = cli("panda", *(a.format(sid=sid) for a in args), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert field in done.stderr and "Traceback" not in done.stderr
    after = show(sid, tmp_path)
    assert after == before
    assert len(json.loads(ok("panda", "list", "--format", "json", cwd=tmp_path))) == 1


def test_start_refuses_bad_input_before_writing(tmp_path: Path):
    for args, field in (
        (("--dataset", "digits", "--set", "norm=bogus"), "norm"),
        (("--dataset", "nope"), "dataset"),
        (("--set", "epochs=3"), "--dataset"),
        (("--dataset", "digits", "--name", "bad name"), "--name"),
    ):
        done = cli("panda", "start", *args, cwd=tmp_path)
        assert done.returncode == 2 and field in done.stderr, (args, done.stderr)
    assert not (tmp_path / "c.db").exists() or json.loads(
        ok("panda", "list", "--format", "json", cwd=tmp_path)
    ) == []


def test_lr_find_sets_the_rate_and_is_drawn(tmp_path: Path):
    sid = ok("panda", "start", *BASE, "--set", "epochs=2", "--lr-find", "-q", cwd=tmp_path).strip()
    r = show(sid, tmp_path)
    assert r["lr_find"]["applied"] and len(r["lr_find"]["points"]) == 11
    assert r["config"]["learning_rate"] == r["lr_find"]["suggested"]
    ok("plot", sid, "-o", str(tmp_path / "f.png"), cwd=tmp_path)


# --- a real Celery worker --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_session_on_a_celery_worker_takes_requests_through_the_store(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    env = worker_env(redis_server.url, db_url)
    with worker_pool(env, tmp_path) as start:
        worker = start("panda-w", concurrency=1)
        sid = ok("panda", "start", *SLOW, "--set", "epochs=5000", "--paused", cwd=tmp_path, env=env).strip()
        ok("panda", "set", sid, "learning_rate=0.02", "--at-epoch", "3", cwd=tmp_path, env=env)
        ok("panda", "resume", sid, "--broker", redis_server.url, cwd=tmp_path, env=env)
        r = _wait_epoch(sid, tmp_path, 6, timeout=180)
        assert r["state"] == "running" and "panda-w" in r["worker"], worker.log()[-2000:]
        ok("panda", "rollback", sid, "--to-epoch", "4", "--set", "learning_rate=0.005", cwd=tmp_path, env=env)
        wait_for(lambda: any(c["key"] == "rollback" for c in show(sid, tmp_path, env=env)["changes"]), 60,
                 "the rollback", workers=[worker])
        _wait_epoch(sid, tmp_path, 8, timeout=120)
        ok("panda", "pause", sid, cwd=tmp_path, env=env)
        wait_for(lambda: show(sid, tmp_path, env=env)["state"] == "paused", 60, "the pause", workers=[worker])
        r = show(sid, tmp_path, env=env)
        ok("panda", "set", sid, f"epochs={r['epoch'] + 2}", cwd=tmp_path, env=env)
        ok("panda", "resume", sid, "--broker", redis_server.url, cwd=tmp_path, env=env)
        wait_for(lambda: show(sid, tmp_path, env=env)["state"] == "complete", 120, "the end",
                 workers=[worker])
        fork = ok("panda", "fork", sid, "--from-epoch", "5", "--set", "epochs=7",
                  "--broker", redis_server.url, cwd=tmp_path, env=env).strip()
        wait_for(lambda: show(fork, tmp_path, env=env)["state"] == "complete", 120, "the fork",
                 workers=[worker])
    r = show(sid, tmp_path, env=env)
    keys = [(c["epoch"], c["key"]) for c in r["changes"]]
    assert keys[0] == (3, "learning_rate") and ("rollback" in [k for _, k in keys])
    # set at 3, rolled back to 4 with its own rate
    assert [h["learning_rate"] for h in r["history"]][:4] == [0.003] * 3 + [0.02]
    assert {h["learning_rate"] for h in r["history"][4:]} == {0.005}
    # what the worker trained is what this process replays from the log, bit for bit
    for session in (sid, fork):
        report = json.loads(ok("panda", "replay", session, "--format", "json", cwd=tmp_path, env=env))
        assert report["identical"] and report["weights"] == "identical", report
