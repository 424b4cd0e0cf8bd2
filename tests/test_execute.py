"""The trial path's fewer transactions keep their guarantees, on real SQLite files and PostgreSQL:
claims by the database clock, a new attempt's curve replacing the old one, the last epoch stored with
the result, a round advanced when two trials finish it together, and data paths that do not depend on
the worker's directory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.search import load_study
from service import orchestrate
from service.execute import execute_trial
from service.orchestrate import advance_study, submit
from service.store import lease, open_store, reads, rounds, studies
from service.study_file import load_study_file

CAVIAR = str(Path(sys.executable).parent / "caviar")

STUDY = """
[study]
name = "execute-test"
{source}
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 5

[strategy]
rounds = 2
trials_per_round = 3
keep_top = 2

[fixed]
epochs = 3
batch_size = 16
hidden_units = 8
layers = 1

[space]
learning_rate = {{ log = [1e-3, 1e-1] }}
"""

IRIS = STUDY.format(source='dataset = "iris"')


def test_a_claim_takes_over_only_a_stale_heartbeat(any_db_url: str, backdate) -> None:
    # Given a trial claimed by a worker that then went silent
    store = open_store(any_db_url)
    _sid, ids = submit(store, load_study(IRIS))
    assert lease.claim_trial(store, ids[0], "dead@host").attempt == 1
    # When another delivery arrives while the heartbeat is fresh, it does not take the trial
    assert lease.claim_trial(store, ids[0], "w2", steal_after=60.0) is None
    # Then once the heartbeat is older than steal_after by the database's clock, it does
    backdate(store, 120)
    stolen = lease.claim_trial(store, ids[0], "w2", steal_after=60.0)
    assert stolen is not None and stolen.attempt == 2
    assert reads.trial(store, ids[0]).worker == "w2"
    # And the old attempt can no longer write
    assert not lease.epoch_tick(store, ids[0], 1, {"epoch": 1, "val_loss": 1.0})


def test_a_new_attempt_replaces_the_learning_curve(any_db_url: str) -> None:
    # Given an attempt that wrote two epochs and was interrupted (its attempt given back, as Ctrl-C does)
    store = open_store(any_db_url)
    _sid, ids = submit(store, load_study(IRIS))
    claim = lease.claim_trial(store, ids[0], "w")
    for epoch in (1, 2):
        assert lease.epoch_tick(store, ids[0], claim.attempt, {"epoch": epoch, "val_loss": 9.0})
    assert lease.requeue_trial(store, ids[0], give_back_attempt=True)
    # When it is claimed again (the same attempt number)
    again = lease.claim_trial(store, ids[0], "w")
    assert again is not None and again.attempt == 1
    # Then the old curve is gone and the new attempt's rows are the ones stored
    assert reads.epochs_of(store, [ids[0]])[ids[0]] == []
    assert lease.epoch_tick(store, ids[0], again.attempt, {"epoch": 1, "val_loss": 0.5})
    assert [r["val_loss"] for r in reads.epochs_of(store, [ids[0]])[ids[0]]] == [0.5]


def test_the_last_epoch_is_stored_with_the_result_by_the_lease_holder_only(any_db_url: str) -> None:
    store = open_store(any_db_url)
    _sid, ids = submit(store, load_study(IRIS))
    old = lease.claim_trial(store, ids[0], "w1")
    assert lease.requeue_trial(store, ids[0])
    new = lease.claim_trial(store, ids[0], "w2")
    last = {"epoch": 3, "train_loss": 0.4, "val_loss": 0.5, "val_accuracy": 0.9, "learning_rate": 0.01}
    # A lost lease records neither the result nor the row
    assert not lease.finish_trial(store, ids[0], old.attempt, "complete", {"val_loss": 0.5}, last_epoch=last)
    assert reads.epochs_of(store, [ids[0]])[ids[0]] == []
    # The holder records both, once
    assert lease.finish_trial(store, ids[0], new.attempt, "complete", {"val_loss": 0.5}, last_epoch=last)
    assert not lease.finish_trial(store, ids[0], new.attempt, "complete", {"val_loss": 0.1}, last_epoch=last)
    rows = reads.epochs_of(store, [ids[0]])[ids[0]]
    assert [(r["epoch"], r["val_loss"]) for r in rows] == [(3, 0.5)]
    assert reads.trial(store, ids[0]).val_loss == 0.5


def test_execute_trial_stores_every_epoch_and_the_heartbeat(any_db_url: str) -> None:
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study(IRIS))
    assert execute_trial(store, ids[0], worker="w") == []
    row = reads.trial(store, ids[0])
    assert row.status == "complete" and row.epochs_run == 3
    curve = reads.epochs_of(store, [ids[0]])[ids[0]]
    assert [r["epoch"] for r in curve] == [1, 2, 3]
    assert curve[-1]["val_loss"] == pytest.approx(row.val_loss)
    age = lease.heartbeat_age(store, ids[0])
    assert age is not None and 0 <= age < 60
    assert studies.require_study(store, study_id).state == "running"



def _wait_until_blocked(store, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Return once another session of this database waits for a lock (PostgreSQL's view of it).

    SQLite serialises writers, so a second writer cannot read before the first commits whatever the
    timing; there is nothing to wait for.
    """
    if store.dialect != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with store.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the second finisher never waited for the first one's lock")

def test_two_trials_finishing_a_round_together_advance_it(any_db_url: str) -> None:
    # Given a round of three trials, one finished and two running
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study(IRIS))
    claim = lease.claim_trial(store, ids[0], "w")
    assert lease.finish_trial(store, ids[0], claim.attempt, "complete", {"val_loss": 0.3})
    a = lease.claim_trial(store, ids[1], "a")
    b = lease.claim_trial(store, ids[2], "b")
    # When trial A records its result but has not committed yet while trial B records its own
    release = threading.Event()
    a_holding = threading.Event()
    b_writing = threading.Event()
    results: dict[str, rounds.Progress] = {}

    def hold_commit(session: Session) -> None:
        if threading.current_thread().name == "finisher-a":
            a_holding.set()
            release.wait(30)

    def mark_b(*_args) -> None:  # type: ignore[no-untyped-def]
        # B's first statement: BEGIN IMMEDIATE on SQLite (which waits for A), its UPDATE on PostgreSQL.
        if threading.current_thread().name == "finisher-b":
            b_writing.set()

    def finish(name: str, claim: lease.Claim, value: float) -> None:
        _, results[name] = lease.finish_trial_progress(
            store, claim.trial_id, study_id, claim.attempt, "complete", {"val_loss": value}
        )

    event.listen(Session, "before_commit", hold_commit)
    event.listen(store.engine, "before_cursor_execute", mark_b)
    try:
        ta = threading.Thread(target=finish, args=("a", a, 0.2), name="finisher-a")
        ta.start()
        assert a_holding.wait(30)  # A has recorded and holds the study's row lock, not committed
        tb = threading.Thread(target=finish, args=("b", b, 0.1), name="finisher-b")
        tb.start()
        assert b_writing.wait(30)
        _wait_until_blocked(store)  # B waits for A's locks: it cannot count before A commits
        release.set()
        ta.join(60)
        tb.join(60)
    finally:
        release.set()
        event.remove(Session, "before_commit", hold_commit)
        event.remove(store.engine, "before_cursor_execute", mark_b)
    # Then exactly one of them finds the round over, and advancing with its reading creates round 1
    assert sorted(p.due for p in results.values()) == [False, True]
    due = next(p for p in results.values() if p.due)
    assert due.pending == 0 and due.latest == 0
    assert len(advance_study(store, study_id, due)) == 3
    assert [r.round_index for r in rounds.rounds(store, study_id)] == [0, 1]


def test_study_progress_is_one_reading(any_db_url: str) -> None:
    store = open_store(any_db_url)
    assert rounds.study_progress(store, "no-such-study") == rounds.Progress(None)
    study_id, ids = submit(store, load_study(IRIS))
    progress = rounds.study_progress(store, study_id)
    reading = (progress.state, progress.objective, progress.latest, progress.pending)
    assert reading == ("queued", "val_loss", 0, 3)
    assert not progress.due
    studies.cancel_study(store, study_id)
    assert not rounds.study_progress(store, study_id).due


# --- relative data paths -------------------------------------------------------------------------------


def _write_csv(path: Path) -> None:
    from sklearn.datasets import load_iris

    data = load_iris()
    lines = ["a,b,c,d,label"]
    for x, y in zip(data.data, data.target, strict=True):
        lines.append(",".join(f"{v:.1f}" for v in x) + f",{int(y)}")
    path.write_text("\n".join(lines) + "\n")


def test_relative_data_is_stored_absolute_and_found_from_any_directory(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a study file whose data path is relative to the file's folder
    folder = tmp_path / "studies"
    folder.mkdir()
    _write_csv(folder / "flowers.csv")
    study_file = folder / "s.toml"
    study_file.write_text(STUDY.format(source='data = "flowers.csv"\ntarget = "label"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # When it is submitted from another directory
    monkeypatch.chdir(elsewhere)
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study_file(Path("..") / "studies" / "s.toml"))
    # Then the spec workers use names the file absolutely; the raw table keeps the text as given
    study = studies.require_study(store, study_id)
    assert study.spec["study"]["data"] == str((folder / "flowers.csv").resolve())
    assert study.spec_raw["study"]["data"] == "flowers.csv"
    # And a worker in yet another directory, which parses the stored spec, runs the trials
    orchestrate._specs.clear()
    monkeypatch.chdir(tmp_path)
    queue = list(ids)
    while queue:
        queue += execute_trial(store, queue.pop(0), worker="w")
    assert reads.counts_by_status(store, study_id)["complete"] == 6


def test_submit_resolves_a_relative_path_from_text_against_base_dir(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    (tmp_path / "sub").mkdir()
    _write_csv(tmp_path / "sub" / "flowers.csv")  # submit fingerprints the file, so it must exist
    spec = load_study(STUDY.format(source='data = "sub/flowers.csv"\ntarget = "label"'))
    study_id, _ = submit(store, spec, base_dir=tmp_path)
    stored = studies.require_study(store, study_id)
    assert stored.spec["study"]["data"] == str(tmp_path / "sub" / "flowers.csv")
    assert stored.spec_raw["study"]["data"] == "sub/flowers.csv"


def test_caviar_run_from_another_directory_finds_the_data_next_to_the_study(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    _write_csv(folder / "flowers.csv")
    (folder / "s.toml").write_text(STUDY.format(source='data = "flowers.csv"\ntarget = "label"'))
    cwd = tmp_path / "run-here"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CAVIAR_DATABASE_URL", "CAVIAR_BROKER_URL")}
    env["CAVIAR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'c.db'}"
    proc = subprocess.run([CAVIAR, "run", "../project/s.toml", "-w", "1", "--format", "json"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = open_store(env["CAVIAR_DATABASE_URL"])
    (study_id,) = studies.study_ids(store)
    assert studies.require_study(store, study_id).state == "complete"
    assert reads.counts_by_status(store, study_id)["complete"] == 6


def test_a_data_file_changed_under_a_running_study_is_refused(tmp_path: Path) -> None:
    # Given a study created on a CSV file, whose file then changes (one row edited)
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    _write_csv(tmp_path / "flowers.csv")
    spec = load_study(STUDY.format(source=f'data = "{tmp_path / "flowers.csv"}"\ntarget = "label"'))
    study_id, ids = submit(store, spec)
    assert studies.require_study(store, study_id).data_fingerprint.startswith(
        str((tmp_path / "flowers.csv").stat().st_size)
    )
    text = (tmp_path / "flowers.csv").read_text().replace("5.1,3.5", "5.2,3.5", 1)
    (tmp_path / "flowers.csv").write_text(text)
    # When a trial runs, it is failed with a reason that names the file, and the study goes on
    execute_trial(store, ids[0], worker="w")
    row = reads.trial(store, ids[0])
    assert row.status == "failed" and "changed" in row.error and "flowers.csv" in row.error


def test_a_study_stored_before_coarse_to_fine_v2_resumes_with_the_nested_zoom(any_db_url: str) -> None:
    # Given a coarse-to-fine study whose stored spec has no "version" (written before version 2 existed)
    from core.search import plan_round
    from service.store.models import Study

    store = open_store(any_db_url)
    v1 = load_study(IRIS.replace("keep_top = 2", "keep_top = 2\nversion = 1"))
    study_id, _ids = submit(store, load_study(IRIS))
    with store.session() as s:
        row = s.get(Study, study_id)
        old = {**row.spec, "strategy": {k: v for k, v in row.spec["strategy"].items() if k != "version"}}
        row.spec = old
    orchestrate._specs.pop(study_id, None)
    # When any process reads it back, it plans with version 1, as the study was planned when it began
    spec = orchestrate.study_spec(store, study_id)
    assert spec.options["version"] == 1
    results = [[(t, float(t["learning_rate"])) for t in plan_round(v1, []).trials]]
    assert plan_round(spec, results).region == plan_round(v1, results).region
    assert plan_round(spec, results).trials == plan_round(v1, results).trials
