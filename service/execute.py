"""Running one trial: the code shared by the local process pool and Celery workers.

:func:`execute_trial` claims the trial (a lease: status ``running`` and the attempt number), trains
it with a heartbeat and a learning-curve row written every epoch (the last epoch's with the result),
records the outcome once, and advances the study. A long trial also stores a checkpoint now and then
(:data:`~service.settings.DEFAULT_CHECKPOINT_SECONDS`), and a new attempt of a trial whose worker died
resumes from it, bit for bit. A trial takes two transactions when nothing is
due (claim; result, last epoch and the round's progress) plus one per earlier epoch. Every step is
idempotent, so a trial delivered twice runs and is stored once, and a worker that dies mid-trial
leaves a stale heartbeat for a reaper (or ``caviar resume``) to requeue.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

from service.errors import describe
from service.orchestrate import advance_study, is_panda, study_of, study_spec
from service.settings import DATASET_CACHE_SIZE, DEFAULT_MAX_ATTEMPTS
from service.store import Store, StoreError, StudyState, TrialStatus, checkpoints, lease, reads, studies

__all__ = ["check_data_unchanged", "execute_trial", "trial_config", "trial_dataset"]

_datasets: OrderedDict[tuple[Any, ...], Any] = OrderedDict()  # least recently used first
_datasets_lock = threading.Lock()


def trial_config(spec: Any, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The full training configuration of a trial: ``[fixed]``, then the trial's params, then its seed."""
    from core.hparams import resolve

    return resolve({**spec.fixed, **params, "seed": seed})


def _file_version(path: str | None) -> tuple[int, int] | None:
    """A data file's modification time and size (None for a named dataset or a missing file)."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None  # loading names the problem
    return stat.st_mtime_ns, stat.st_size


#: (study id, data file version) pairs whose file was checked against the study's fingerprint.
_verified: set[tuple[str, tuple[int, int] | None]] = set()


def check_data_unchanged(store: Store, study_id: str, spec: Any) -> None:
    """Refuse a data file that changed since the study was created (its size and SHA-256 differ).

    The file is hashed once per process and file version, so a long study pays for it once.

    Raises:
        BadInput: the file's fingerprint differs from the one stored with the study.
    """
    if spec.data is None:
        return
    key = (study_id, _file_version(spec.data))
    if key in _verified:
        return
    study = studies.get_study(store, study_id)
    expected = study.data_fingerprint if study is not None else None
    if expected is not None:
        from core.data import fingerprint
        from core.errors import BadInput
        from service.settings import data_root

        if fingerprint(spec.data, data_root()) != expected:
            raise BadInput(
                "data", spec.data,
                "expected the file this study was created with (its size or SHA-256 changed since)",
            )
    _verified.add(key)


def trial_dataset(spec: Any, dtype: str) -> Any:
    """The study's dataset in ``dtype``, loaded once per process while its file is unchanged.

    Trials of a study share it. The :data:`~service.settings.DATASET_CACHE_SIZE` most recently used
    datasets are kept; a data file's modification time and size are part of the key, so a changed file
    is read again. Files are read only under ``CAVIAR_DATA_ROOT`` when it is set.
    """
    from service.settings import data_root

    root = data_root()
    key = (spec.dataset, spec.data, spec.target, spec.data_seed, spec.val_fraction, dtype,
           _file_version(spec.data), str(root))
    with _datasets_lock:
        data = _datasets.get(key)
        if data is not None:
            _datasets.move_to_end(key)
    if data is None:
        from core.data import load_dataset

        data = load_dataset(
            spec.dataset, path=spec.data, target=spec.target, seed=spec.data_seed,
            val_fraction=spec.val_fraction, dtype=dtype, root=root,
        )
        with _datasets_lock:
            _datasets[key] = data
            _datasets.move_to_end(key)
            while len(_datasets) > DATASET_CACHE_SIZE:
                _datasets.popitem(last=False)
    return data


class _Checkpoints:
    """When a running trial stores a checkpoint: at the first epoch end ``every`` seconds after it
    started or stored its last one (never after the last epoch: the result covers that), and, when the
    attempt ends at a ``[pruning]`` rung (``rung``), after its last epoch, to resume from. It is the
    engine's ``checkpoint_at``, so the state is copied only when one is due."""

    def __init__(self, epochs: int, every: float, rung: bool = False) -> None:
        self.epochs, self.every, self.rung = epochs, every, rung
        self.due = time.monotonic() + every
        self.pending: Any = None
        self.final: Any = None
        self.used = False  # this attempt stored one

    def __contains__(self, epoch: object) -> bool:
        if not isinstance(epoch, int):
            return False
        return (self.rung and epoch == self.epochs) or (epoch < self.epochs and time.monotonic() >= self.due)

    def keep(self, checkpoint: Any) -> None:
        if checkpoint.epoch == self.epochs:
            self.final = checkpoint
        else:
            self.pending = checkpoint

    def final_bytes(self) -> tuple[int, bytes] | None:
        """The rung checkpoint (epoch, NPZ bytes) of an attempt that ends at a rung."""
        return (self.final.epoch, self.final.to_bytes()) if self.final is not None else None

    def take(self) -> tuple[int, bytes] | None:
        """The due checkpoint as (epoch, NPZ bytes), for the epoch's tick to store; None if none is due."""
        if self.pending is None:
            return None
        checkpoint, self.pending = self.pending, None
        self.used = True
        self.due = time.monotonic() + self.every
        return checkpoint.epoch, checkpoint.to_bytes()


def _resume_point(store: Store, claim: lease.Claim) -> Any:
    """The checkpoint a new attempt resumes from, or None (no checkpoint, or one that cannot be read:
    then the attempt trains from the start, which rewrites the same curve)."""
    if not claim.resume_epoch:
        return None
    saved = checkpoints.latest(store, claim.trial_id)
    if saved is None or saved[0] != claim.resume_epoch:
        return None
    from core.errors import BadInput
    from core.nn import Checkpoint

    try:
        return Checkpoint.from_bytes(saved[1])
    except BadInput:
        return None


def execute_trial(
    store: Store,
    trial_id: str,
    *,
    worker: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    steal_after: float | None = None,
    budget: float | None = None,
) -> list[str]:
    """Run one trial to its end and advance its study.

    Args:
        store: the study store (opened in this process).
        trial_id: the trial to run; one already finished (or running under a live lease) is skipped.
        worker: a name for whoever runs it, shown by ``caviar status``.
        max_attempts: past this many attempts the trial is marked ``failed`` instead of run.
        steal_after: also take over a running trial whose heartbeat is older than this many seconds.
        budget: seconds a panda session's runner may train before it hands the session on (a Celery task's
            time limit); a sweep's trial ignores it.

    Returns:
        Ids of trials newly queued by advancing the study (the caller dispatches them).

    Raises:
        StoreError: the database stayed unreachable (past ``store.retry_seconds``); the trial is left
            ``running`` with a stale heartbeat, for the reaper or ``caviar resume``.
    """
    study_id = study_of(trial_id)
    if is_panda(store, study_id):
        # A panda session's trial, sent to a worker (``caviar panda start --broker``): its runner claims
        # it, trains and applies the session's requests at each epoch boundary.
        from service.panda.runner import run_session
        from service.store.states import PandaState

        state = run_session(
            store, study_id, worker=worker, max_attempts=max_attempts, steal_after=steal_after, budget=budget
        )
        # its time is up, the session goes on: the caller sends the trial again
        return [trial_id] if state == PandaState.RUNNING else []
    claim = lease.claim_trial(store, trial_id, worker, max_attempts=max_attempts, steal_after=steal_after)
    if claim is None:
        row = reads.trial(store, trial_id)
        # Finished already (a duplicate delivery, or a crash after recording): the study may still need
        # advancing if the process that recorded it died before doing so.
        return advance_study(store, row.study_id) if row is not None else []
    last_epoch: list[dict[str, Any]] = []
    saving: _Checkpoints | None = None
    try:
        spec = study_spec(store, claim.study_id)
        config = trial_config(spec, claim.params, claim.seed)
        check_data_unchanged(store, claim.study_id, spec)
        data = trial_dataset(spec, config["dtype"])
        from core.search.feasibility import check_trial_memory
        from service.settings import MAX_TRIAL_MEMORY_ENV, max_trial_memory

        # refused before anything is allocated: recorded failed with the estimate and the cap
        check_trial_memory(config, data.shape, max_trial_memory(), MAX_TRIAL_MEMORY_ENV)
        from core.nn import train
        from service.settings import checkpoint_seconds

        full = int(config["epochs"])
        # With [pruning], this attempt trains to its rung: a prefix of the full run (the schedule depends
        # on the epoch, not on the planned length), paused there with a checkpoint to resume from.
        epochs = min(claim.target_epochs or full, full)
        saving = _Checkpoints(epochs, checkpoint_seconds(), rung=epochs < full)

        def on_epoch(entry: dict[str, Any]) -> bool:
            if int(entry["epoch"]) >= epochs:
                # The last epoch's row and heartbeat go with the result, in its transaction: a trial
                # with no epoch left has nothing for a cancellation to stop.
                last_epoch.append(entry)
                return True
            return lease.epoch_tick(store, trial_id, claim.attempt, entry, checkpoint=saving.take())

        result = train(
            {**config, "epochs": epochs}, data, on_epoch=on_epoch, start=_resume_point(store, claim),
            on_checkpoint=saving.keep, checkpoint_at=saving,
        )
    except StoreError:
        raise
    except Exception as exc:  # the trial failed; the study goes on
        status, metrics, error = TrialStatus.FAILED, None, describe(exc)
    else:
        status, error = TrialStatus(result.status), None
        metrics = {key: getattr(result, key, None) for key in lease.METRICS}
        if metrics.get("seconds") is not None:  # a resumed rung adds to the earlier rungs' time
            metrics["seconds"] += claim.seconds_before
        if status == TrialStatus.COMPLETE and saving.rung:
            status = TrialStatus.PAUSED  # at a rung: the rung's decision (service.store.rungs) comes next
        if status == TrialStatus.CANCELLED:
            study = studies.get_study(store, claim.study_id)
            if study is None or study.state != StudyState.CANCELLED:
                # The lease was lost (the trial was requeued): its new holder records the result.
                return advance_study(store, claim.study_id)
    paused = status == TrialStatus.PAUSED and saving is not None
    held = claim.resume_epoch > 0 or (saving is not None and saving.used)  # may hold checkpoints
    _recorded, progress = lease.finish_trial_progress(
        store, trial_id, claim.study_id, claim.attempt, status, metrics, error=error,
        last_epoch=last_epoch[-1] if last_epoch else None,
        drop_checkpoints=held and not paused, checkpoint=saving.final_bytes() if paused else None,
    )
    return advance_study(store, claim.study_id, progress)
