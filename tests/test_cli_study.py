"""The installed ``caviar`` command on whole studies: run, read commands, bad input and faults,
and an interrupted run resumed to exactly the trials of an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CAVIAR = str(Path(sys.executable).parent / "caviar")

STUDY = """
[study]
name = "cli-test"
dataset = "iris"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 11

[strategy]
rounds = 2
trials_per_round = 4
keep_top = 2
startup = 4

[fixed]
epochs = {epochs}
batch_size = 16
layers = 1

[space]
learning_rate = {{ log = [1e-3, 1e-1] }}
hidden_units = {{ int = [4, 32], log = true }}
norm = {{ choice = ["batch", "none"] }}
"""

TRIAL_FIELDS = {"id", "round", "status", "attempts", "params", "val_loss", "val_accuracy", "seconds"}


def caviar(
    *args: str, cwd: Path, db: str | None = None, check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; check its exit code unless ``check`` is None."""
    env = {k: v for k, v in os.environ.items() if k not in ("CAVIAR_DATABASE_URL", "CAVIAR_BROKER_URL")}
    if db is not None:
        env["CAVIAR_DATABASE_URL"] = db
    proc = subprocess.run([CAVIAR, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_run_then_every_read_command(tmp_path: Path, any_db_url: str) -> None:
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY.format(epochs=4))
    # When a study runs on the embedded default
    out = caviar("run", str(study_file), "--workers", "2", "--format", "json", cwd=tmp_path, db=any_db_url)
    record = json.loads(out.stdout)
    sid = record["id"]
    # Then it completed two rounds of four trials, each round with its region
    assert record["state"] == "complete"
    assert [r["index"] for r in record["rounds"]] == [0, 1]
    assert record["counts"]["complete"] + record["counts"]["diverged"] + record["counts"]["failed"] == 8
    assert set(record["rounds"][0]["region"]) == {"learning_rate", "hidden_units", "norm"}

    status = json.loads(caviar("status", sid, "--format", "json", cwd=tmp_path, db=any_db_url).stdout)
    assert {"id", "name", "state", "rounds", "counts", "best"} <= set(status)
    assert status["state"] == "complete" and status["name"] == "cli-test"
    listing = json.loads(caviar("status", "--format", "json", cwd=tmp_path, db=any_db_url).stdout)
    assert [s["id"] for s in listing] == [sid]

    trials = json.loads(caviar("trials", sid, "--format", "json", cwd=tmp_path, db=any_db_url).stdout)
    assert len(trials) == 8 and all(set(t) >= TRIAL_FIELDS for t in trials)
    assert len({t["id"] for t in trials}) == 8
    top = json.loads(
        caviar("trials", sid, "--top", "3", "--format", "json", cwd=tmp_path, db=any_db_url).stdout
    )
    losses = [t["val_loss"] for t in top]
    assert losses == sorted(losses) and len(top) == 3
    best = json.loads(caviar("best", sid, "--format", "json", cwd=tmp_path, db=any_db_url).stdout)
    assert best["id"] == top[0]["id"] == status["best"]["id"]
    assert best["val_loss"] == min(t["val_loss"] for t in trials if t["status"] == "complete")
    round1 = json.loads(
        caviar("trials", sid, "--round", "1", "--format", "json", cwd=tmp_path, db=any_db_url).stdout
    )
    assert {t["round"] for t in round1} == {1} and len(round1) == 4

    text = caviar("trials", sid, "--format", "csv", cwd=tmp_path, db=any_db_url).stdout
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 8 and "param.learning_rate" in rows[0]
    table = caviar("trials", sid, cwd=tmp_path, db=any_db_url).stdout
    assert best["id"] in table

    shares = json.loads(caviar("importance", sid, "--format", "json", cwd=tmp_path, db=any_db_url).stdout)
    names = [r["hyperparameter"] for r in shares["importance"]]
    assert sorted(names) == ["hidden_units", "learning_rate", "norm"]
    assert all(0 <= r["share"] <= 1 for r in shares["importance"])

    caviar("export", sid, "-o", str(tmp_path / "t.csv"), cwd=tmp_path, db=any_db_url)
    caviar("export", sid, "-o", str(tmp_path / "t.json"), "--curves", cwd=tmp_path, db=any_db_url)
    assert len(list(csv.DictReader((tmp_path / "t.csv").open()))) == 8
    exported = json.loads((tmp_path / "t.json").read_text())
    assert len(exported["trials"]) == 8
    assert all(len(t["epochs"]) == t["epochs_run"] for t in exported["trials"] if t["status"] == "complete")

    caviar("plot", sid, "-o", str(tmp_path / "study.png"), cwd=tmp_path, db=any_db_url)
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_draws_the_study_with_plot_and_refuses_a_bad_picture_name(tmp_path: Path) -> None:
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY.format(epochs=1).replace("rounds = 2", "rounds = 1"))
    proc = caviar("run", str(study_file), "-w", "1", "--plot", "nope.jpg", cwd=tmp_path, check=2)
    assert "--plot" in proc.stderr and ".png" in proc.stderr and not (tmp_path / "caviar.db").exists()
    proc = caviar("run", str(study_file), "-w", "1", "--plot", str(tmp_path / "s.png"), cwd=tmp_path)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "wrote" in proc.stderr


def test_unknown_study_exits_2_listing_ids(tmp_path: Path) -> None:
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY.format(epochs=1).replace("rounds = 2", "rounds = 1"))
    sid = json.loads(caviar("run", str(study_file), "-w", "1", "--format", "json", cwd=tmp_path).stdout)["id"]
    for verb in ("status", "trials", "best", "importance", "plot", "resume", "cancel"):
        proc = caviar(verb, "nope", cwd=tmp_path, check=2)
        assert sid in proc.stderr and "Traceback" not in proc.stderr, verb
    proc = caviar("export", "nope", "-o", "x.csv", cwd=tmp_path, check=2)
    assert sid in proc.stderr


def test_bad_study_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.format(epochs=3).replace('{ log = [1e-3, 1e-1] }', '{ log = [-1, 1e-1] }'))
    proc = caviar("run", str(bad), cwd=tmp_path, check=2)
    assert "learning_rate" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    caviar("run", str(tmp_path / "missing.toml"), cwd=tmp_path, check=2)
    assert list(tmp_path.iterdir()) == [bad]  # no caviar.db, no WAL file


def test_database_faults_are_one_line_with_passwords_masked(tmp_path: Path) -> None:
    proc = caviar("status", "--db", "postgresql://bob:s3cret-pw@127.0.0.1:1/caviar", cwd=tmp_path, check=1)
    assert "s3cret-pw" not in proc.stderr and "bob:***@" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = caviar("status", "--db", f"sqlite:///{tmp_path}/no/such/dir/x.db", cwd=tmp_path, check=1)
    assert "does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = caviar("status", "--db", "mysql://u:pw@h/d", cwd=tmp_path, check=2)
    assert ":pw@" not in proc.stderr


def test_db_upgrade_from_any_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    proc = caviar("db", "upgrade", "--db", url, cwd=Path("/"))
    assert "upgraded from empty" in proc.stderr
    assert "caviar" in caviar("db", "current", "--db", url, cwd=Path("/")).stdout


def _results(db: str, cwd: Path, sid: str) -> dict[tuple[int, int], tuple]:  # type: ignore[type-arg]
    trials = json.loads(caviar("trials", sid, "--format", "json", cwd=cwd, db=db).stdout)
    assert len({t["id"] for t in trials}) == len(trials)
    return {
        (t["round"], t["index"]): (
            t["id"].removeprefix(sid), t["status"], json.dumps(t["params"], sort_keys=True), t["val_loss"],
            t["val_accuracy"], t["train_loss"], t["epochs_run"],
        )
        for t in trials
    }


@pytest.mark.slow
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY.format(epochs=200))
    # An uninterrupted run, for reference.
    ref_db = f"sqlite:///{tmp_path / 'ref.db'}"
    out = caviar("run", str(study_file), "-w", "2", "--format", "json", cwd=tmp_path, db=ref_db).stdout
    ref = json.loads(out)
    expected = _results(ref_db, tmp_path, ref["id"])
    assert len(expected) == 8

    # The same study, interrupted with SIGINT (as Ctrl-C sends it) once some trials have finished.
    db = f"sqlite:///{tmp_path / 'int.db'}"
    env = {k: v for k, v in os.environ.items() if k != "CAVIAR_BROKER_URL"}
    env["CAVIAR_DATABASE_URL"] = db
    proc = subprocess.Popen([CAVIAR, "run", str(study_file), "-w", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from service.store import open_store, reads, studies

    sid = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if not (tmp_path / "int.db").exists():
            continue
        store = open_store(db)
        ids = studies.study_ids(store)
        if ids:
            sid = ids[0]
            counts = reads.counts_by_status(store, sid)
            # Interrupt early: after two of eight trials, at least three trial-lengths of work remain.
            if counts["complete"] + counts["diverged"] >= 2:
                store.dispose()
                break
        store.dispose()
    assert sid is not None
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"caviar resume {sid}" in err
    store = open_store(db)
    counts = reads.counts_by_status(store, sid)
    assert counts["running"] == 0 and 2 <= counts["complete"] + counts["diverged"] < 8
    before = {r["id"]: (r["started_at"], r["finished_at"], r["attempts"])
              for r in reads.trial_rows(store, sid) if r["status"] in ("complete", "diverged")}
    store.dispose()

    # Resuming finishes the study without re-running a finished trial.
    caviar("resume", sid, "-w", "2", cwd=tmp_path, db=db)
    store = open_store(db)
    rows = reads.trial_rows(store, sid)
    after = {r["id"]: (r["started_at"], r["finished_at"], r["attempts"]) for r in rows}
    assert all(after[i] == before[i] for i in before)
    assert studies.require_study(store, sid).state == "complete"
    assert all(a[2] == 1 for a in after.values())
    store.dispose()
    assert _results(db, tmp_path, sid) == expected


def test_cancel_stops_a_running_study(tmp_path: Path) -> None:
    study_file = tmp_path / "study.toml"
    # Long trials (seconds each), so the cancel lands while round 0 still has queued trials: at 300
    # epochs an iris trial took a third of a second and the study could finish before `caviar cancel`.
    study_file.write_text(STUDY.format(epochs=20_000))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    env = {k: v for k, v in os.environ.items() if k != "CAVIAR_BROKER_URL"}
    env["CAVIAR_DATABASE_URL"] = db
    proc = subprocess.Popen([CAVIAR, "run", str(study_file), "-w", "1"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from service.store import open_store, reads, studies

    sid = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sid is None:
        time.sleep(0.2)
        if (tmp_path / "c.db").exists():
            store = open_store(db)
            if studies.study_ids(store) and reads.counts_by_status(store)["running"]:
                sid = studies.study_ids(store)[0]
            store.dispose()
    assert sid is not None
    caviar("cancel", sid, cwd=tmp_path, db=db)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "cancelled" in err
    status = json.loads(caviar("status", sid, "--format", "json", cwd=tmp_path, db=db).stdout)
    assert status["state"] == "cancelled"
    assert status["counts"]["queued"] == 0 and status["counts"]["running"] == 0
    assert status["counts"]["cancelled"] >= 3  # the running trial stopped, the queued ones never ran
    caviar("resume", sid, cwd=tmp_path, db=db, check=2)
