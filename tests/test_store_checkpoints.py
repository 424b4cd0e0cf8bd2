"""Trial checkpoints in the store, on real SQLite files and PostgreSQL: written under the lease with their
curve, one per trial, none once finished; a worker killed mid-trial is resumed from its checkpoint and
the trial ends bit for bit as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.search import load_study
from service.execute import execute_trial
from service.orchestrate import submit
from service.store import checkpoints, lease, open_store, reads

ROOT = Path(__file__).resolve().parents[1]

STUDY = """
[study]
name = "ckpt"
dataset = "digits"
objective = "val_loss"
strategy = "random"
seed = 4

[strategy]
trials = 1

[fixed]
epochs = {epochs}
layers = 2
hidden_units = 64
batch_size = 32
optimizer = "adam"
lr_decay = 0.2

[space]
learning_rate = {{ log = [1e-3, 1e-2] }}
"""


def entry(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.0, "val_accuracy": 0.5,
            "learning_rate": 0.01, "seconds": 0.1}


def test_one_checkpoint_per_trial_under_the_lease_and_none_once_finished(any_db_url: str, backdate) -> None:
    store = open_store(any_db_url)
    _sid, (tid,) = submit(store, load_study(STUDY.format(epochs=10)))
    claim = lease.claim_trial(store, tid, "w1")
    assert claim.resume_epoch == 0
    for epoch in (1, 2, 3, 4):
        saved = (epoch, f"state {epoch}".encode()) if epoch in (2, 4) else None
        assert lease.epoch_tick(store, tid, claim.attempt, entry(epoch), checkpoint=saved)
    assert checkpoints.latest(store, tid) == (4, b"state 4")
    assert checkpoints.stored_bytes(store) == len(b"state 4") == checkpoints.stored_bytes(store, _sid)
    # A worker presumed dead: the next attempt resumes at 4, keeping the curve up to it
    backdate(store, 600)
    again = lease.claim_trial(store, tid, "w2", steal_after=60)
    assert (again.attempt, again.resume_epoch) == (2, 4)
    assert [e["epoch"] for e in reads.epochs_of(store, [tid])[tid]] == [1, 2, 3, 4]
    # The old attempt can no longer write a checkpoint
    assert not lease.epoch_tick(store, tid, claim.attempt, entry(5), checkpoint=(5, b"old"))
    assert checkpoints.latest(store, tid) == (4, b"state 4")
    assert lease.finish_trial(store, tid, again.attempt, "complete", {"val_loss": 0.5}, drop_checkpoints=True)
    assert checkpoints.latest(store, tid) is None and checkpoints.stored_bytes(store) == 0


KILLED = """
import os, sys
from service.execute import execute_trial
from service.store import open_store
execute_trial(open_store(sys.argv[1]), sys.argv[2], worker="doomed")
"""


def test_a_worker_killed_mid_trial_resumes_from_its_checkpoint_bit_for_bit(tmp_path: Path, backdate) -> None:
    text = STUDY.format(epochs=40)
    # The reference: one uninterrupted run
    ref = open_store(f"sqlite:///{tmp_path / 'ref.db'}")
    _s, (ref_id,) = submit(ref, load_study(text))
    execute_trial(ref, ref_id, worker="w")
    expected = reads.trial(ref, ref_id)
    curve = [(e["epoch"], e["train_loss"], e["val_loss"]) for e in reads.epochs_of(ref, [ref_id])[ref_id]]
    assert expected.status == "complete" and len(curve) == 40

    # The same trial in a process that stores a checkpoint every epoch and is SIGKILLed mid-trial
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(url)
    _s, (tid,) = submit(store, load_study(text))
    env = {**os.environ, "CAVIAR_CHECKPOINT_SECONDS": "1e-9"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, url, tid], cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (checkpoints.latest(store, tid) or (0,))[0] < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = checkpoints.latest(store, tid)[0]
    assert 5 <= killed_at < 40 and reads.trial(store, tid).status == "running"

    # A new attempt takes over, resumes at the checkpoint and ends exactly as the uninterrupted run
    backdate(store, 600)
    execute_trial(store, tid, worker="rescuer", steal_after=60)
    got = reads.trial(store, tid)
    assert (got.status, got.attempts, got.worker) == ("complete", 2, "rescuer")
    assert (got.val_loss, got.val_accuracy, got.train_loss, got.epochs_run) == (
        expected.val_loss, expected.val_accuracy, expected.train_loss, expected.epochs_run
    )
    assert [(e["epoch"], e["train_loss"], e["val_loss"]) for e in reads.epochs_of(store, [tid])[tid]] == curve
    assert checkpoints.latest(store, tid) is None
