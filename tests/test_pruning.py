"""``[pruning] kind = "halving"``: most trials stop at a rung, the promising ones train to the end, bit
for bit as if they had never paused; the same trials and results on the local pool and on Celery workers;
Ctrl-C and resume re-run no finished rung; bad input refused naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis_server import RedisServer
from worker_procs import run_cli, study_state, trial_rows, wait_for, worker_env, worker_pool

from core.errors import BadInput
from core.search import load_study
from core.search.pruning import Pruning, promote, promote_async
from service.store import checkpoints, open_store, reads, studies

STUDY = """
[study]
name = "prune"
dataset = "iris"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 3

[strategy]
rounds = 2
trials_per_round = 6
startup = 6

{pruning}

[fixed]
epochs = 9
batch_size = 16
layers = 1

[space]
learning_rate = {{ log = [1e-3, 1e-1] }}
hidden_units = {{ int = [4, 32], log = true }}
"""
HALVING = '[pruning]\nkind = "halving"\nmin_epochs = 1\nreduction = 3'


def _run(tmp_path: Path, name: str, text: str, env: dict[str, str] | None = None) -> tuple[str, list[dict]]:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    db = f"sqlite:///{tmp_path / name}.db"
    done = run_cli("run", str(path), "-w", "2", "--db", db, "--format", "json", env=env or _local_env())
    assert done.returncode == 0, done.stderr[-2000:]
    study_id = json.loads(done.stdout)["id"]
    return db, trial_rows(db, study_id)


def _local_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("CAVIAR_BROKER_URL", "CAVIAR_DATABASE_URL")}


def _key(r: dict) -> tuple[int, int]:
    return r["round_index"], r["trial_index"]


def test_rungs_and_promotion_rule():
    p = Pruning("halving", 1, 3, 9)
    assert p.rungs == [1, 3, 9] and p.next_rung(1) == 3 and p.next_rung(9) is None
    assert Pruning("halving", 2, 2, 20).rungs == [2, 4, 8, 20]
    # the best n // reduction continue (at least one); NaN last; ties to the lower index; pure
    results = [(3, 0.2), (0, 0.5), (1, 0.2), (2, float("nan")), (4, 0.9), (5, 0.1), (6, 0.3)]
    assert promote(results, 3) == [5, 1] == promote(list(reversed(results)), 3)
    assert promote([(0, float("nan"))], 3) == [0] and promote([], 2) == []
    # ASHA: the waiting trials among the best n // reduction reached so far
    reached = [(0, 0.4), (1, 0.1), (2, 0.3), (3, 0.9), (4, 0.2), (5, 0.8)]
    assert promote_async(reached, [0, 2, 3], 3) == [] and promote_async(reached, [4, 3], 3) == [4]
    assert promote_async(reached[:2], [1], 3) == []


@pytest.mark.parametrize(
    "pruning, field, allowed",
    [
        ('kind = "hyper"', "[pruning] kind", "halving"),
        ('kind = "halving"\nmin_epochs = 9', "[pruning] min_epochs", "[1, epochs - 1 = 8]"),
        ('kind = "halving"\nmin_epochs = 0', "[pruning] min_epochs", "[1, epochs - 1 = 8]"),
        ('kind = "halving"\nreduction = 1', "[pruning] reduction", ">= 2"),
        ('kind = "halving"\nrungs = 3', "[pruning] rungs", "min_epochs"),
    ],
)
def test_bad_pruning_is_refused_naming_the_key(pruning, field, allowed):
    with pytest.raises(BadInput) as err:
        load_study(STUDY.format(pruning="[pruning]\n" + pruning))
    assert err.value.field == field and allowed in err.value.allowed


def test_bad_pruning_exits_2_from_the_cli_and_writes_nothing(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.format(pruning='[pruning]\nkind = "halving"\nreduction = 1'))
    done = run_cli("run", str(path), "--db", f"sqlite:///{tmp_path / 'c.db'}", env=_local_env())
    assert done.returncode == 2 and "[pruning] reduction" in done.stderr and not (tmp_path / "c.db").exists()


def test_halving_prunes_most_trials_and_the_full_ones_match_an_unpruned_run(tmp_path: Path):
    db, rows = _run(tmp_path, "halving", STUDY.format(pruning=HALVING))
    _db, plain = _run(tmp_path, "plain", STUDY.format(pruning=""))
    by = {_key(r): r for r in rows}
    statuses = [r["status"] for r in rows]
    assert statuses.count("complete") == 2 and statuses.count("pruned") == 10  # 6 -> 2 -> 1 per round
    assert sorted(r["epochs_run"] for r in rows if r["status"] == "pruned") == [1] * 8 + [3] * 2
    # A pruned trial keeps its curve up to where it stopped; no checkpoint outlives its trial
    store = open_store(db)
    curves = reads.epochs_of(store, [r["id"] for r in rows])
    assert all(len(curves[r["id"]]) == r["epochs_run"] for r in rows)
    assert checkpoints.stored_bytes(store) == 0
    (sid,) = studies.study_ids(store)
    assert studies.require_study(store, sid).state == "complete"
    store.dispose()
    # Round 0 is the same configurations with and without pruning: its fully trained trial ends bit for
    # bit as in the unpruned study, though it paused twice; every pruned trial's curve is a prefix there
    plain_by = {_key(r): r for r in plain}
    full = [k for k, r in by.items() if k[0] == 0 and r["status"] == "complete"]
    assert len(full) == 1 and by[full[0]]["val_loss"] == plain_by[full[0]]["val_loss"]
    assert by[full[0]]["attempts"] == 3  # one attempt per rung
    plain_store = open_store(_db)
    plain_curves = reads.epochs_of(plain_store, [r["id"] for r in plain])
    plain_store.dispose()
    for k, r in by.items():
        if k[0] == 0:
            head = plain_curves[plain_by[k]["id"]][: r["epochs_run"]]
            assert [e["val_loss"] for e in curves[r["id"]]] == [e["val_loss"] for e in head]
    # And the epochs trained are well under a third of the unpruned study's
    assert sum(r["epochs_run"] for r in rows) <= sum(r["epochs_run"] for r in plain) / 3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_halving_on_celery_workers_matches_the_local_pool(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    text = STUDY.format(pruning=HALVING)
    _db, local = _run(tmp_path, "local", text)
    path = tmp_path / "remote.toml"
    path.write_text(text)
    env = worker_env(redis_server.url, pg_url)
    done = run_cli("submit", str(path), env=env)
    assert done.returncode == 0, done.stderr
    study_id = done.stdout.strip()
    with worker_pool(env, tmp_path) as start:
        workers = [start("one"), start("two")]
        wait_for(lambda: study_state(pg_url, study_id) in ("complete", "failed"), 240, "the study",
                 workers=workers)
    assert study_state(pg_url, study_id) == "complete"
    remote = {_key(r): r for r in trial_rows(pg_url, study_id)}
    local_by = {_key(r): r for r in local}
    assert set(remote) == set(local_by)
    for k, r in remote.items():
        mine = local_by[k]
        assert (r["status"], r["epochs_run"], r["params"], r["seed"]) == (
            mine["status"], mine["epochs_run"], mine["params"], mine["seed"]
        )
        assert r["val_loss"] == pytest.approx(mine["val_loss"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_mid_rung_then_resume_reruns_no_finished_rung(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    text = STUDY.format(pruning=HALVING.replace("min_epochs = 1", "min_epochs = 20")).replace(
        "epochs = 9", "epochs = 180"
    )
    _db, expected = _run(tmp_path, "reference", text)
    path = tmp_path / "s.toml"
    path.write_text(text)
    db = f"sqlite:///{tmp_path / 'int.db'}"
    caviar = str(Path(sys.executable).parent / "caviar")
    proc = subprocess.Popen([caviar, "run", str(path), "-w", "2", "--db", db], cwd=tmp_path, env=_local_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sid, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline:  # interrupt once a rung has been decided and the next one runs
        time.sleep(0.1)
        if (tmp_path / "int.db").exists():
            store = open_store(db)
            ids = studies.study_ids(store)
            if ids:
                sid = ids[0]
                counts = reads.counts_by_status(store, sid)
                store.dispose()
                if counts.get("pruned", 0) >= 4 and counts.get("running", 0):
                    break
            else:
                store.dispose()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    before = {r["id"]: (r["status"], r["finished_at"], r["attempts"]) for r in trial_rows(db, sid)}
    done_before = {i: v for i, v in before.items() if v[0] in ("pruned", "complete")}
    assert done_before, before
    resumed = run_cli("resume", sid, "-w", "2", "--db", db, env=_local_env())
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = {r["id"]: r for r in trial_rows(db, sid)}
    # Finished rungs are not re-run, and the study ends as the uninterrupted one did
    assert all((after[i]["status"], after[i]["finished_at"], after[i]["attempts"]) == v
               for i, v in done_before.items())
    want = {_key(r): (r["status"], r["epochs_run"], r["val_loss"], r["params"]) for r in expected}
    got = {_key(r): (r["status"], r["epochs_run"], r["val_loss"], r["params"]) for r in after.values()}
    assert got == want


def test_asha_promotes_without_a_barrier_and_keeps_one_full_trial_per_round(tmp_path: Path):
    # ASHA's choices depend on the order results arrive in, so this checks what holds in any order.
    db, rows = _run(tmp_path, "asha", STUDY.format(pruning=HALVING.replace("halving", "asha")))
    _db, plain = _run(tmp_path, "plain", STUDY.format(pruning=""))
    assert {r["status"] for r in rows} <= {"complete", "pruned"}
    for k in (0, 1):
        mine = [r for r in rows if r["round_index"] == k]
        assert len(mine) == 6 and any(r["status"] == "complete" for r in mine)
        assert all(r["epochs_run"] in (1, 3, 9) for r in mine)
    assert sum(r["epochs_run"] for r in rows) <= sum(r["epochs_run"] for r in plain) / 2
    # A fully trained round-0 trial (round 0's configurations are the same) ends as in the unpruned study
    plain_by = {_key(r): r for r in plain}
    for r in rows:
        if r["round_index"] == 0 and r["status"] == "complete":
            assert r["val_loss"] == plain_by[_key(r)]["val_loss"]
    store = open_store(db)
    assert checkpoints.stored_bytes(store) == 0
    store.dispose()
