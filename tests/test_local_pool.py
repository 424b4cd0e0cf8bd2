"""The local pool of ``caviar run`` when one of its processes dies: only that trial's attempt counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from worker_procs import trial_rows, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CAVIAR = str(Path(sys.executable).parent / "caviar")

#: Two trials of a few seconds each, run side by side by two pool processes.
STUDY = """
[study]
name = "pool"
dataset = "digits"
objective = "val_loss"
strategy = "random"
seed = 3

[strategy]
trials = 2

[fixed]
epochs = 150
layers = 2
hidden_units = 128
batch_size = 64
norm = "none"

[space]
learning_rate = { log = [1e-3, 1e-2] }
"""


def _both_running(db_url: str, study_id: str) -> list[dict] | None:
    rows = trial_rows(db_url, study_id)
    running = [r for r in rows if r["status"] == "running" and r["worker"]]
    return running if len(running) == 2 else None


def test_a_dead_pool_process_charges_only_its_own_trial(tmp_path: Path) -> None:
    # Given `caviar run` with two processes, each running one trial
    (tmp_path / "s.toml").write_text(STUDY)
    db_url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAVIAR_")}
    env["CAVIAR_DATABASE_URL"] = db_url
    proc = subprocess.Popen(
        [CAVIAR, "run", "s.toml", "-w", "2", "--format", "json"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        from service.store import open_store
        from service.store.studies import study_ids

        def study_id() -> str | None:
            if not (tmp_path / "c.db").exists():
                return None
            store = open_store(db_url)
            try:
                ids = study_ids(store)
            finally:
                store.dispose()
            return ids[0] if ids else None

        sid = wait_for(study_id, 120, "the study to be created")
        running = wait_for(lambda: _both_running(db_url, sid), 180, "both trials to run")
        # When the kernel kills one pool process (as the OOM killer would)
        victim = running[0]
        os.kill(int(victim["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # Then the study completes; the victim ran twice, its neighbour's interrupted attempt was given back
    assert proc.returncode == 0, err[-3000:]
    rows = {r["id"]: r for r in trial_rows(db_url, sid)}
    assert {r["status"] for r in rows.values()} == {"complete"}
    neighbour = next(tid for tid in rows if tid != victim["id"])
    assert rows[victim["id"]]["attempts"] == 2
    assert rows[neighbour]["attempts"] == 1
