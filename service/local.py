"""The embedded default: run a study to completion with a local process pool, no broker, no server.

Children run :func:`service.execute.execute_trial`, the same code Celery workers run, each with its own
database engine. Kernels are compiled (or loaded from Numba's cache) once in the parent before the pool
forks, so children start training at once. Between trials the parent runs the same recovery pass as the
workers' reaper (:func:`service.recovery.recover`) over its own study. Ctrl-C terminates the children
and puts their trials back in the queue; ``caviar resume`` finishes the study later.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from service.orchestrate import study_spec
from service.recovery import recover
from service.settings import LOCAL_RETRY_SECONDS, Settings, usable_cores
from service.store import Store, TrialStatus, lease, open_store, reads, studies

__all__ = ["warmup_for", "run_local"]


def warmup_for(spec: Any) -> None:
    """Compile or load the engine's kernels for every dtype the study can use, and load the study's
    dataset, before forking: children inherit both instead of each paying for them."""
    from core.nn import warmup
    from service.execute import trial_dataset

    dtypes: set[str] = set()
    if "dtype" in spec.fixed:
        dtypes.add(spec.fixed["dtype"])
    elif "dtype" in spec.space.dims:
        dtypes.update(("float32", "float64"))
    else:
        dtypes.add("float32")
    warmup(tuple(sorted(dtypes)))
    for dtype in sorted(dtypes):
        trial_dataset(spec, dtype)


# --- the child side ------------------------------------------------------------------------------------

_child_store: Store | None = None


def _child_init(url: str) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what happens to running trials.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _child_store
    _child_store = open_store(url, retry_seconds=LOCAL_RETRY_SECONDS, upgrade=False)


def _child_run(trial_id: str, worker_prefix: str, max_attempts: int) -> tuple[str, list[str]]:
    from service.execute import execute_trial

    assert _child_store is not None
    new_ids = execute_trial(
        _child_store, trial_id, worker=f"{worker_prefix}:{os.getpid()}", max_attempts=max_attempts
    )
    return trial_id, new_ids


# --- the parent side -----------------------------------------------------------------------------------


def _terminate_children() -> None:
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)


class _Pool:
    """The local pool as a :class:`service.recovery.Runner`: a process pool and the trials in flight."""

    def __init__(
        self, store: Store, study_id: str, workers: int, start_method: str, settings: Settings
    ) -> None:
        self.store = store
        self.study_id = study_id
        self.workers = workers
        self.context = multiprocessing.get_context(start_method)
        self.settings = settings
        self.prefix = f"local:{socket.gethostname()}:{os.getpid()}"
        self.pending: dict[Future[tuple[str, list[str]]], str] = {}
        self.executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        self.store.engine.dispose()  # no pooled connection crosses the fork
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=self.context, initializer=_child_init,
            initargs=(self.store.url,),
        )

    @property
    def inflight(self) -> set[str]:
        return set(self.pending.values())

    def studies(self, store: Store) -> list[str]:
        return [self.study_id]

    def dispatch(self, study_id: str, trial_ids: Sequence[str]) -> None:
        inflight = self.inflight
        for tid in trial_ids:
            if tid not in inflight:
                inflight.add(tid)
                future = self.executor.submit(_child_run, tid, self.prefix, self.settings.max_attempts)
                self.pending[future] = tid

    def undelivered(self, store: Store, study_id: str) -> list[str]:
        inflight = self.inflight
        return [t for t in reads.queued_trial_ids(store, study_id) if t not in inflight]

    def stop(self, study_id: str, *, give_back_attempt: bool) -> None:
        """Stop every child and requeue this pool's running trials of the study."""
        self.pending.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        _terminate_children()
        lease.requeue_running(
            self.store, study_id, worker_prefix=self.prefix, give_back_attempt=give_back_attempt
        )

    def restart(self, study_id: str) -> None:
        """After a child died: stop, requeue its trial (the attempt counts) and its neighbours' (theirs
        do not: the pool stopped them), start afresh.

        The child that died on its own is the one whose exit was not the pool's SIGTERM (a SIGKILL from
        the kernel's OOM killer, a segfault); if the pool's processes cannot be read, every running
        trial's attempt counts, as a trial that kills its process must reach the attempt cap.
        """
        # The executor's processes by pid: a private attribute, read defensively.
        processes = dict(getattr(self.executor, "_processes", None) or {})
        self.pending.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        _terminate_children()
        culprits = [
            f"{self.prefix}:{pid}" for pid, proc in processes.items()
            if proc.exitcode not in (None, 0, -signal.SIGTERM)
        ]
        if culprits or not processes:
            lease.requeue_running(
                self.store, study_id, give_back_attempt=False,
                **({"workers": culprits} if processes else {"worker_prefix": self.prefix}),
            )
        lease.requeue_running(self.store, study_id, worker_prefix=self.prefix, give_back_attempt=True)
        self.executor = self._new_executor()


def run_local(
    store: Store,
    study_id: str,
    trial_ids: Iterable[str] = (),
    *,
    workers: int | None = None,
    start_method: str = "fork",
    settings: Settings | None = None,
    on_finished: Callable[[str], None] | None = None,
) -> str:
    """Run a study's queued trials in a local process pool until the study ends.

    Args:
        store: the parent's store (children open their own from ``store.url``).
        study_id: the study.
        trial_ids: trials to dispatch first (queued trials of the study are picked up in any case).
        workers: pool size (default: the cores this process may use).
        start_method: ``fork`` (after warming the kernels up here) or ``spawn``.
        settings: ``stale_after`` (running trials of this study with an older heartbeat are run again:
            their process died, e.g. a killed earlier run) and ``max_attempts`` (default: from the
            environment).
        on_finished: called in the parent with each trial id whose execution returned.

    Returns:
        The study's final state.

    Raises:
        KeyboardInterrupt: after terminating the children and requeueing their trials.
    """
    settings = settings or Settings.from_env()
    spec = study_spec(store, study_id)
    if start_method == "fork":
        warmup_for(spec)
    pool = _Pool(store, study_id, workers or usable_cores(), start_method, settings)
    try:
        pool.dispatch(study_id, list(trial_ids))
        while True:
            if not pool.pending and not recover(store, pool, settings).dispatched:
                if reads.counts_by_status(store, study_id)[TrialStatus.RUNNING]:
                    time.sleep(1.0)  # running elsewhere (or abandoned: recovered once stale)
                    continue
                break
            done, _ = wait(list(pool.pending), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                tid = pool.pending.pop(future)
                try:
                    _, new_ids = future.result()
                except BrokenProcessPool:
                    # A child died (killed, out of memory): its trial is requeued and counts an attempt.
                    pool.restart(study_id)
                    break
                if on_finished is not None:
                    on_finished(tid)
                pool.dispatch(study_id, new_ids)
    except BaseException:
        pool.stop(study_id, give_back_attempt=True)
        raise
    pool.executor.shutdown(wait=True)
    return studies.require_study(store, study_id).state
