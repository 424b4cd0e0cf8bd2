"""The study store on real SQLite files and a real PostgreSQL server: schema, idempotent writes,
leases, heartbeats by the database clock, reaping, trial execution and round advancement."""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import inspect

from core.errors import BadInput
from core.search import load_study
from service.execute import execute_trial
from service.orchestrate import advance_study, submit
from service.store import SchemaError, StoreError, fleet, lease, open_store, reads, rounds, studies
from service.store import db as dbmod

STUDY = """
[study]
name = "store-test"
dataset = "iris"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 3

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
learning_rate = { log = [1e-3, 1e-1] }
"""


def _finish(store, trial_id: str, value: float) -> None:  # type: ignore[no-untyped-def]
    claim = lease.claim_trial(store, trial_id, "test")
    assert claim is not None
    metrics = {"val_loss": value, "val_accuracy": 0.5}
    assert lease.finish_trial(store, trial_id, claim.attempt, "complete", metrics)


def test_fresh_database_is_upgraded_to_head(any_db_url: str) -> None:
    # Given an empty database, when it is opened, then it carries the code's head revision.
    store = open_store(any_db_url)
    current, head = dbmod.schema_revisions(store.engine)
    assert current == head == dbmod.HEAD_REVISION
    assert {"studies", "rounds", "trials", "epochs"} <= set(inspect(store.engine).get_table_names())


def test_upgrade_from_the_first_migration_keeps_data(any_db_url: str) -> None:
    # Given a database made by migration 0001 with a study in it
    store = open_store(any_db_url, upgrade=False)
    from alembic import command

    cfg = dbmod._alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    assert dbmod.schema_revisions(store.engine)[0] == "0001"
    cols = {c["name"] for c in inspect(store.engine).get_columns("trials")}
    assert "samples_per_second" not in cols
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO studies (id, name, spec_raw, spec, seed, objective, strategy, state) "
            "VALUES ('old', 'old', '{}', '{}', 1, 'val_loss', 'random', 'complete')"
        )
    # When it is upgraded
    before, after = dbmod.upgrade(store.engine)
    # Then it is at head, the new columns exist and the old rows survived
    assert (before, after) == ("0001", dbmod.schema_revisions(store.engine)[1])
    cols = {c["name"] for c in inspect(store.engine).get_columns("trials")}
    assert "samples_per_second" in cols
    assert studies.study_ids(store) == ["old"]


def test_schema_newer_than_code_is_refused(any_db_url: str) -> None:
    store = open_store(any_db_url)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    dbmod._checked.clear()
    with pytest.raises(SchemaError, match="newer than this caviar"):
        open_store(any_db_url)


def test_submit_creates_round_zero_and_round_creation_is_idempotent(any_db_url: str) -> None:
    store = open_store(any_db_url)
    spec = load_study(STUDY)
    study_id, ids = submit(store, spec)
    assert ids == [f"{study_id}-r0-t{i}" for i in range(3)]
    assert reads.counts_by_status(store, study_id)["queued"] == 3
    # Creating round 0 again changes nothing.
    assert not rounds.create_round(store, study_id, 0, {}, None, [(f"{study_id}-r0-t9", 9, {}, 1)])
    assert reads.count_trials(store, study_id) == 3
    # Advancing before the round is finished queues nothing.
    assert advance_study(store, study_id) == []


def test_lease_claim_finish_once_and_attempt_cap(any_db_url: str) -> None:
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study(STUDY))
    first = lease.claim_trial(store, ids[0], "w1")
    assert first is not None and first.attempt == 1
    # A second delivery does not claim a running trial with a live lease.
    assert lease.claim_trial(store, ids[0], "w2") is None
    # The result is recorded once: a second write is refused.
    assert lease.finish_trial(store, ids[0], 1, "complete", {"val_loss": 0.5})
    assert not lease.finish_trial(store, ids[0], 1, "complete", {"val_loss": 0.25})
    assert reads.trial(store, ids[0]).val_loss == 0.5
    assert lease.claim_trial(store, ids[0], "w2") is None  # finished: never run again
    # A requeued trial's old lease cannot write; the new attempt can.
    c1 = lease.claim_trial(store, ids[1], "w1")
    assert lease.requeue_trial(store, ids[1])
    c2 = lease.claim_trial(store, ids[1], "w2")
    assert c2 is not None and c2.attempt == 2
    assert not lease.finish_trial(store, ids[1], c1.attempt, "complete", {"val_loss": 9.0})
    assert not lease.epoch_tick(store, ids[1], c1.attempt, {"epoch": 0, "val_loss": 1.0})
    # Past the cap, a claim marks the trial failed instead of running it.
    assert lease.requeue_trial(store, ids[1])
    assert lease.claim_trial(store, ids[1], "w3", max_attempts=2) is None
    row = reads.trial(store, ids[1])
    assert row.status == "failed" and "attempt cap" in row.error


def test_epochs_are_stored_once_and_heartbeat_uses_the_db_clock(any_db_url: str) -> None:
    store = open_store(any_db_url)
    _study_id, ids = submit(store, load_study(STUDY))
    claim = lease.claim_trial(store, ids[0], "w")
    entry = {"epoch": 0, "train_loss": 1.0, "val_loss": math.nan, "val_accuracy": 0.5, "learning_rate": 0.1}
    assert lease.epoch_tick(store, ids[0], claim.attempt, entry)
    assert lease.epoch_tick(store, ids[0], claim.attempt, {**entry, "train_loss": 2.0})
    rows = reads.epochs_of(store, [ids[0]])[ids[0]]
    assert len(rows) == 1 and rows[0]["train_loss"] == 1.0 and rows[0]["val_loss"] is None
    age = lease.heartbeat_age(store, ids[0])
    assert age is not None and 0 <= age < 30


def test_stale_running_trials_are_requeued_then_failed_at_the_cap(any_db_url: str, backdate) -> None:
    store = open_store(any_db_url)
    _study_id, ids = submit(store, load_study(STUDY))
    lease.claim_trial(store, ids[0], "dead-worker")
    assert lease.stale_running(store, 60.0) == []
    backdate(store, 120)
    stale = lease.stale_running(store, 60.0)
    assert [r["id"] for r in stale] == [ids[0]]
    assert lease.reap_stale(store, 60.0, max_attempts=2) == ([ids[0]], [])
    assert reads.trial(store, ids[0]).status == "queued"
    lease.claim_trial(store, ids[0], "dead-worker")  # attempt 2 also dies
    assert lease.reap_stale(store, 60.0, max_attempts=2) == ([], [])  # its heartbeat is fresh
    backdate(store, 120)
    assert lease.reap_stale(store, 60.0, max_attempts=2) == ([], [ids[0]])
    row = reads.trial(store, ids[0])
    assert row.status == "failed" and "stopped responding" in row.error
    assert fleet.running_by_worker(store) == {}


def _advance_in_child(args: tuple[str, str]) -> list[str]:
    url, study_id = args
    store = open_store(url, retry_seconds=30)
    return advance_study(store, study_id)


def test_concurrent_advance_creates_the_next_round_once(any_db_url: str) -> None:
    # Given a study whose round 0 is finished
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study(STUDY))
    for i, tid in enumerate(ids):
        _finish(store, tid, 0.1 * (i + 1))
    # When four processes advance it at the same time
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_advance_in_child, [(any_db_url, study_id)] * 4)
    # Then round 1 exists once, and exactly one process got its trial ids to dispatch
    winners = [r for r in results if r]
    assert len(winners) == 1 and len(winners[0]) == 3
    assert [r.round_index for r in rounds.rounds(store, study_id)] == [0, 1]
    assert reads.count_trials(store, study_id) == 6


def test_execute_trial_runs_a_study_to_completion(any_db_url: str) -> None:
    store = open_store(any_db_url)
    study_id, queue = submit(store, load_study(STUDY))
    seen: list[str] = []
    while queue:
        tid = queue.pop(0)
        seen.append(tid)
        queue += execute_trial(store, tid, worker="test")
    assert studies.require_study(store, study_id).state == "complete"
    counts = reads.counts_by_status(store, study_id)
    assert counts["complete"] == 6 and sum(counts.values()) == 6
    # Each trial stored once, with a learning curve of epochs_run rows; a re-delivery changes nothing.
    for row in reads.trial_rows(store, study_id):
        assert row["attempts"] == 1 and row["epochs_run"] == 3
        assert len(reads.epochs_of(store, [row["id"]])[row["id"]]) == 3
    before = reads.trial_rows(store, study_id)
    assert execute_trial(store, seen[0], worker="again") == []
    assert reads.trial_rows(store, study_id) == before
    assert reads.count_trials(store, study_id) == 6
    assert all(reads.epochs_of(store, seen).values())


def test_a_trial_that_raises_is_failed_and_the_study_goes_on(any_db_url: str) -> None:
    # batch_size 4096 exceeds iris's training set: the engine raises BadInput for those trials.
    text = (
        STUDY.replace("learning_rate = { log = [1e-3, 1e-1] }", "batch_size = { choice = [16, 4096] }")
        .replace("batch_size = 16\n", "")
        .replace("trials_per_round = 3", "trials_per_round = 2")
        .replace("keep_top = 2", "keep_top = 1")
    )
    spec = load_study(text)
    store = open_store(any_db_url)
    study_id, queue = submit(store, spec)
    while queue:
        queue += execute_trial(store, queue.pop(0), worker="test")
    rows = {r["params"]["batch_size"]: r for r in reads.trial_rows(store, study_id)}
    assert rows[4096]["status"] == "failed" and "batch_size" in rows[4096]["error"]
    assert rows[16]["status"] == "complete"
    assert studies.require_study(store, study_id).state == "complete"


def test_cancel_stops_running_trials_and_cancels_queued_ones(any_db_url: str) -> None:
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study(STUDY))
    claim = lease.claim_trial(store, ids[0], "w")
    assert studies.cancel_study(store, study_id) == 2
    assert not lease.epoch_tick(store, ids[0], claim.attempt, {"epoch": 0})
    assert reads.counts_by_status(store, study_id)["cancelled"] == 2
    assert studies.require_study(store, study_id).state == "cancelled"
    assert reads.queued_trial_ids(store) == []


def test_unknown_study_lists_the_ids_that_exist(any_db_url: str) -> None:
    store = open_store(any_db_url)
    study_id, _ = submit(store, load_study(STUDY))
    with pytest.raises(BadInput, match=study_id):
        studies.require_study(store, "no-such-study")


def test_round_results_give_nan_for_failed_trials(any_db_url: str) -> None:
    store = open_store(any_db_url)
    study_id, ids = submit(store, load_study(STUDY))
    _finish(store, ids[0], 0.5)
    claim = lease.claim_trial(store, ids[1], "w")
    lease.finish_trial(store, ids[1], claim.attempt, "failed", error="boom")
    results = rounds.round_results(store, study_id, "val_loss")
    assert results[0][0][1] == 0.5 and math.isnan(results[0][1][1])


def test_unreachable_postgres_error_masks_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://bob:s3cret-pw@127.0.0.1:1/caviar")
    message = str(info.value)
    assert "s3cret-pw" not in message and "***" in message and "\n" not in message


def test_unwritable_sqlite_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


def test_database_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAVIAR_DATABASE_URL", raising=False)
    assert dbmod.database_url(None) == "sqlite:///./caviar.db"
    monkeypatch.setenv("CAVIAR_DATABASE_URL", "postgresql://u:p@h/d")
    assert dbmod.database_url(None) == "postgresql+psycopg://u:p@h/d"
    assert dbmod.database_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(BadInput):
        dbmod.database_url("mysql://u@h/d")
