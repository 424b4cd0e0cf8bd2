"""The reaper, one pass at a time, on a real store and a real redis-server (no worker running)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis_server import RedisServer

from service.orchestrate import submit
from service.store import lease, open_store, reads, rounds, studies
from service.study_file import load_study_file
from workers.app import make_app
from workers.broker import message_ids
from workers.reaper import reap_once
from workers.settings import WorkerSettings

QUICK = Path(__file__).resolve().parent.parent / "examples" / "quick.toml"


@pytest.fixture
def setup(redis_server: RedisServer, tmp_path: Path):
    settings = WorkerSettings(broker_url=redis_server.url, stale_after=60, max_attempts=2)
    store = open_store(f"sqlite:///{tmp_path}/caviar.db")
    try:
        yield store, make_app(settings), settings, redis_server.client()
    finally:
        store.dispose()



def test_lost_messages_are_resent(setup, backdate) -> None:
    store, app, settings, client = setup
    # Given a submitted round whose messages never reached the broker (lost with a Redis restart)
    study_id, ids = submit(store, load_study_file(QUICK), queue=settings.queue)
    backdate(store, 30)
    # When the reaper runs
    report = reap_once(store, app, settings, max_attempts=settings.max_attempts)
    # Then every queued trial has a message again, and a second pass sends nothing more
    assert sorted(report.resent) == sorted(ids)
    assert message_ids(client, settings.queue) == set(ids)
    assert not reap_once(store, app, settings, max_attempts=settings.max_attempts)
    assert client.llen(settings.queue) == len(ids)


def test_stale_trials_requeued_then_failed_at_the_cap(setup, backdate) -> None:
    store, app, settings, client = setup
    study_id, ids = submit(store, load_study_file(QUICK), queue=settings.queue)
    # Given a trial whose worker died on attempt 1 (claimed, then silent for longer than stale_after)
    claim = lease.claim_trial(store, ids[0], "dead@host")
    assert claim is not None and claim.attempt == 1
    backdate(store, 120)
    client.delete(settings.queue)
    # When the reaper runs, it is re-queued and re-sent
    report = reap_once(store, app, settings, max_attempts=2)
    assert report.requeued == [ids[0]]
    assert reads.trial(store, ids[0]).status == "queued"
    assert ids[0] in message_ids(client, settings.queue)
    # And when attempt 2 dies the same way, it fails at the cap of 2
    assert lease.claim_trial(store, ids[0], "dead@host").attempt == 2
    backdate(store, 120)
    report = reap_once(store, app, settings, max_attempts=2)
    assert report.failed == [ids[0]]
    row = reads.trial(store, ids[0])
    assert row.status == "failed" and row.attempts == 2 and "cap" in row.error


def test_finished_round_left_unadvanced_is_advanced(setup) -> None:
    store, app, settings, client = setup
    study_id, ids = submit(store, load_study_file(QUICK), queue=settings.queue)
    # Given round 0 fully recorded by workers that died before advancing the study
    for i, trial_id in enumerate(ids):
        claim = lease.claim_trial(store, trial_id, "w@host")
        assert lease.finish_trial(store, trial_id, claim.attempt, "complete", {"val_loss": 1.0 + i})
    assert rounds.latest_round(store, study_id) == 0
    # When the reaper runs, round 1 is created and its trials are sent
    report = reap_once(store, app, settings, max_attempts=settings.max_attempts)
    assert rounds.latest_round(store, study_id) == 1
    assert len(report.advanced) == 4
    assert set(report.advanced) <= message_ids(client, settings.queue)
    # And a second reaper (another worker) does not create it again
    assert not reap_once(store, app, settings, max_attempts=settings.max_attempts).advanced


def test_a_local_study_is_left_to_its_own_pool(setup, backdate) -> None:
    store, app, settings, client = setup
    # Given a study of the local pool (caviar run) sharing the workers' database, one trial stale
    study_id, ids = submit(store, load_study_file(QUICK))
    assert lease.claim_trial(store, ids[0], "local:laptop:1:2") is not None
    backdate(store, 120)
    # When a worker's reaper runs
    report = reap_once(store, app, settings)
    # Then it neither re-queues nor sends anything of that study
    assert not report
    assert reads.trial(store, ids[0]).status == "running"
    assert client.llen(settings.queue) == 0


def test_a_lost_message_is_found_despite_stale_unacked_entries(setup, backdate) -> None:
    store, app, settings, client = setup
    # Given one queued trial whose message was lost, and a dead worker's unacked entries for others
    study_id, ids = submit(store, load_study_file(QUICK), queue=settings.queue)
    backdate(store, 30)
    # (one for each other trial, and one for a trial of another study that finished but was never acked)
    for tid in [*ids[1:], "other-study-r0-t0"]:
        client.hset("unacked", f"tag-{tid}", json.dumps([{"headers": {"id": tid}}, "", settings.queue]))
    # When the reaper runs, the one lost message is re-sent (counts alone would have hidden it)
    report = reap_once(store, app, settings)
    assert report.resent == [ids[0]]


def test_a_study_that_no_longer_parses_does_not_stop_the_others(setup) -> None:
    store, app, settings, client = setup
    # Given two broker studies with round 0 finished, one of whose stored spec no longer parses
    broken, broken_ids = submit(store, load_study_file(QUICK), queue=settings.queue)
    good, good_ids = submit(store, load_study_file(QUICK), queue=settings.queue)
    for trial_id in broken_ids + good_ids:
        claim = lease.claim_trial(store, trial_id, "w@host")
        assert lease.finish_trial(store, trial_id, claim.attempt, "complete", {"val_loss": 1.0})
    from service import orchestrate
    from service.store.models import Study

    def corrupt(s):  # type: ignore[no-untyped-def]
        row = s.get(Study, broken)
        row.spec = {**row.spec, "space": {"learning_rate": {"log": [1.0, 0.1]}}}

    store.run(corrupt)
    orchestrate._specs.clear()  # as a fresh worker process would
    # When the reaper runs
    report = reap_once(store, app, settings)
    # Then the good study advanced and the broken one is failed with the reason
    assert rounds.latest_round(store, good) == 1 and report.advanced
    assert report.broken == [broken]
    row = studies.require_study(store, broken)
    assert row.state == "failed" and "cannot advance" in row.error
