"""The embedded default: run a study to completion with a local process pool, no broker, no server.

Children run :func:`service.execute.execute_trial`, the same code Celery workers run, each with its own
database engine. Kernels are compiled (or loaded from Numba's cache) once in the parent before the pool
forks, so children start training at once (see ``shared/notes/numba.md``). Ctrl-C terminates the
children and puts their trials back in the queue; ``caviar resume`` finishes the study later.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from service.orchestrate import advance_study, study_spec
from service.store import Store, open_store, repo

__all__ = ["THREAD_ENV", "single_thread_env", "warmup_for", "run_local", "DEFAULT_STALE_AFTER"]

#: Environment variables that keep BLAS and Numba single-threaded: one process per core is faster.
THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
#: Seconds without a heartbeat after which a running trial is presumed abandoned and run again.
DEFAULT_STALE_AFTER = 60.0
#: Seconds a child keeps retrying a database write that failed (e.g. SQLite busy, PostgreSQL restart).
CHILD_RETRY_SECONDS = 60.0


def single_thread_env() -> None:
    """Make this process single-threaded for BLAS and Numba, re-executing it if needed.

    Thread pools size themselves when numpy, scipy and numba load, which the CLI may already have
    done (other commands import them), so when :data:`THREAD_ENV` is not set the process starts
    afresh with it (``os.execve``: same pid, same arguments). Forked children inherit it.
    """
    if all(os.environ.get(k) == v for k, v in THREAD_ENV.items()):
        return
    env = {**os.environ, **THREAD_ENV}
    if env.get("CAVIAR_REEXEC") == "1":  # never loop, whatever happened to the environment
        os.environ.update(THREAD_ENV)
        return
    env["CAVIAR_REEXEC"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-c", "from service.cli import main; main()", *sys.argv[1:]]
    os.execve(sys.executable, args, env)


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
    _child_store = open_store(url, retry_seconds=CHILD_RETRY_SECONDS, upgrade=False)


def _child_run(trial_id: str, worker_prefix: str) -> tuple[str, list[str]]:
    from service.execute import execute_trial

    assert _child_store is not None
    new_ids = execute_trial(_child_store, trial_id, worker=f"{worker_prefix}:{os.getpid()}")
    return trial_id, new_ids


# --- the parent side -----------------------------------------------------------------------------------


def _terminate_children() -> None:
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)


def run_local(
    store: Store,
    study_id: str,
    trial_ids: Iterable[str] = (),
    *,
    workers: int | None = None,
    start_method: str = "fork",
    stale_after: float = DEFAULT_STALE_AFTER,
    on_finished: Callable[[str], None] | None = None,
) -> str:
    """Run a study's queued trials in a local process pool until the study ends.

    Args:
        store: the parent's store (children open their own from ``store.url``).
        study_id: the study.
        trial_ids: trials to dispatch first (queued trials of the study are picked up in any case).
        workers: pool size (default: the number of cores).
        start_method: ``fork`` (after warming the kernels up here) or ``spawn``.
        stale_after: requeue running trials of this study whose heartbeat is older than this (their
            process died, e.g. a killed earlier run).
        on_finished: called in the parent with each trial id whose execution returned.

    Returns:
        The study's final state.

    Raises:
        KeyboardInterrupt: after terminating the children and requeueing their trials.
    """
    workers = workers or os.cpu_count() or 1
    spec = study_spec(store, study_id)
    if start_method == "fork":
        warmup_for(spec)
    prefix = f"local:{socket.gethostname()}:{os.getpid()}"
    context = multiprocessing.get_context(start_method)

    def new_pool() -> ProcessPoolExecutor:
        store.engine.dispose()  # no pooled connection crosses the fork
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_child_init, initargs=(store.url,)
        )

    pool = new_pool()
    pending: dict[Future[tuple[str, list[str]]], str] = {}
    inflight: set[str] = set()

    def dispatch(ids: Iterable[str]) -> None:
        for tid in ids:
            if tid not in inflight:
                inflight.add(tid)
                pending[pool.submit(_child_run, tid, prefix)] = tid

    try:
        dispatch(trial_ids)
        while True:
            if not pending:
                todo = [t for t in repo.queued_trial_ids(store, study_id) if t not in inflight]
                if not todo:
                    requeued, _failed = repo.reap_stale(store, stale_after, study_id=study_id)
                    todo = requeued or advance_study(store, study_id)
                if todo:
                    dispatch(todo)
                elif repo.counts_by_status(store, study_id)["running"]:
                    time.sleep(1.0)  # running elsewhere (or abandoned: reaped once stale)
                    continue
                else:
                    break
            done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                tid = pending.pop(future)
                inflight.discard(tid)
                try:
                    _, new_ids = future.result()
                except BrokenProcessPool:
                    # A child died (killed, out of memory): its trial is requeued and counts an attempt.
                    for f in list(pending):
                        inflight.discard(pending.pop(f))
                    pool.shutdown(wait=False, cancel_futures=True)
                    _terminate_children()
                    repo.requeue_running(store, study_id, worker_prefix=prefix, give_back_attempt=False)
                    pool = new_pool()
                    break
                if on_finished is not None:
                    on_finished(tid)
                dispatch(new_ids)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        _terminate_children()
        repo.requeue_running(store, study_id, worker_prefix=prefix, give_back_attempt=True)
        raise
    pool.shutdown(wait=True)
    study = repo.require_study(store, study_id)
    return study.state
