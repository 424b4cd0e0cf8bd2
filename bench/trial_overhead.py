"""Per-trial store overhead of :func:`service.execute.execute_trial`, in one process, without a broker.

A study of ``--trials`` "empty" trials (1 epoch on iris, 4 hidden units: about a millisecond of
training) is submitted to a fresh database, then every trial is run in order by ``execute_trial`` in
this process, as a worker would (claim, one heartbeat/curve row, result, round bookkeeping). Reported
per backend: trials/s, milliseconds per trial, and the SQL statements and transactions per trial
(counted with engine events). The same trials trained without any store give the training share.

Backends: SQLite (a temp file, WAL, as ``caviar run``) and PostgreSQL (a fresh database created on the
server given by ``--pg`` and dropped afterwards; asynchronous commit, as ``caviar worker`` sets it).

Usage::

    python bench/trial_overhead.py
    python bench/trial_overhead.py --trials 400 --repeat 5 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/trial_overhead.py --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The same empty study and database helpers as the end-to-end benchmark, so the two measure the same trials.
from throughput import EMPTY_STUDY as STUDY  # noqa: E402
from throughput import create_database, drop_database  # noqa: E402


def _pg_database(server_url: str) -> tuple[str, str]:
    """A fresh database on ``server_url``'s server with asynchronous commit, as ``caviar worker`` sets it."""
    from sqlalchemy.engine import make_url

    url, name = create_database(server_url)
    db = make_url(url).update_query_dict({"options": "-c synchronous_commit=off"})
    return db.render_as_string(hide_password=False), name


def run_once(url: str, n_trials: int) -> dict[str, Any]:
    """Submit a study of ``n_trials`` empty trials to ``url`` and run them all with ``execute_trial``."""
    from sqlalchemy import event

    from core.search import load_study
    from service.execute import execute_trial
    from service.orchestrate import submit
    from service.store import open_store, reads, studies

    store = open_store(url)
    counts = {"statements": 0, "transactions": 0}

    def on_statement(*_: Any) -> None:
        counts["statements"] += 1

    def on_commit(*_: Any) -> None:
        counts["transactions"] += 1

    try:
        study_id, ids = submit(store, load_study(STUDY.format(trials=n_trials)))
        execute_trial(store, ids[0], worker="bench")  # connection, caches, kernels: not timed
        event.listen(store.engine, "before_cursor_execute", on_statement)
        event.listen(store.engine, "commit", on_commit)
        queue = list(ids[1:])
        t0 = time.perf_counter()
        while queue:
            queue.extend(execute_trial(store, queue.pop(0), worker="bench"))
        seconds = time.perf_counter() - t0
        event.remove(store.engine, "before_cursor_execute", on_statement)
        event.remove(store.engine, "commit", on_commit)
        state = studies.require_study(store, study_id).state
        by_status = reads.counts_by_status(store, study_id)
    finally:
        store.dispose()
    n = n_trials - 1
    return {
        "trials": n, "seconds": seconds, "trials_per_second": n / seconds,
        "ms_per_trial": 1000 * seconds / n, "statements_per_trial": counts["statements"] / n,
        "transactions_per_trial": counts["transactions"] / n,
        "state": state, "complete": by_status["complete"],
    }


def training_only(n_trials: int) -> float:
    """Milliseconds per trial of the same trials' training alone (no store)."""
    from core.data import load_dataset
    from core.search import load_study, plan_round
    from service.execute import trial_config

    spec = load_study(STUDY.format(trials=n_trials))
    plan = plan_round(spec, [])
    assert plan is not None
    data = load_dataset("iris", seed=0)
    from core.nn import train

    configs = [trial_config(spec, p, i) for i, p in enumerate(plan.trials)]
    train(configs[0], data, on_epoch=lambda e: True)
    t0 = time.perf_counter()
    for config in configs:
        train(config, data, on_epoch=lambda e: True)
    return 1000 * (time.perf_counter() - t0) / len(configs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend (median reported)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server URL whose user may CREATE DATABASE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from core.nn import warmup

    warmup(("float32",))
    results: dict[str, Any] = {"training_ms_per_trial": training_only(args.trials)}
    for backend in args.backends.split(","):
        runs = []
        for _ in range(args.repeat):
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(run_once(f"sqlite:///{tmp}/bench.db", args.trials))
            else:
                url, name = _pg_database(args.pg)
                try:
                    runs.append(run_once(url, args.trials))
                finally:
                    drop_database(args.pg, name)
        runs.sort(key=lambda r: r["seconds"])
        median = dict(runs[(len(runs) - 1) // 2])
        median["runs_trials_per_second"] = [round(r["trials_per_second"], 1) for r in runs]
        median["median_trials_per_second"] = statistics.median(r["trials_per_second"] for r in runs)
        results[backend] = median
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"training alone: {results['training_ms_per_trial']:.2f} ms/trial")
    for backend in args.backends.split(","):
        r = results[backend]
        print(
            f"{backend:10s} {r['trials_per_second']:7.1f} trials/s  {r['ms_per_trial']:6.2f} ms/trial  "
            f"{r['statements_per_trial']:5.1f} statements  {r['transactions_per_trial']:4.1f} transactions "
            f"per trial  (runs: {r['runs_trials_per_second']}; {r['complete']} complete, study {r['state']})"
        )


if __name__ == "__main__":
    main()
