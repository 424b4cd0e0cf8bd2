"""Throughput of caviar's distributed path, and a comparison with Optuna on the same work.

Three measurements, each through a real Redis and a real PostgreSQL (a fresh database is created on
the server and dropped afterwards; a dedicated Redis database number and queue are used):

(a) **empty trials/s**: a study of many 1-epoch trials on iris with 4 hidden units (about a millisecond
    of training each), run by one ``caviar worker`` with 2 pool processes. What is measured is the per-trial
    overhead of the whole path: broker round trip, claim, one heartbeat/curve row, recording, round
    bookkeeping. Timed from submit to the study's completion (workers already started).
(b) **speed-up from 1 to 2 worker processes** on a real digits study (random search over learning rate and
    hidden units, 40 epochs per trial): the same study with ``-c 1`` and ``-c 2``.
(c) **Optuna on a shared PostgreSQL**: the same trials (caviar's configurations and seeds from (b),
    enqueued with ``study.enqueue_trial``), the same objective (caviar's Numba engine, ``core.nn.train``,
    digits, 40 epochs), in the same number of processes (2), each calling ``study.optimize`` on an RDB
    storage in its own database. Run twice: bare (nothing written while a trial trains), and with
    ``trial.report`` every epoch plus Optuna's heartbeat thread (a stored learning curve and stale-trial
    detection, the guarantees caviar's per-epoch heartbeat gives). Optuna's processes are timed from the
    moment all of them are ready (engine warmed, data loaded), like caviar's already-running workers.

Every measurement is repeated (``--repeat``, interleaved) and the median reported: the machine may be
shared, and its load moves single runs by a factor of two.

Usage::

    python bench/throughput.py                       # the machine's Redis and PostgreSQL
    python bench/throughput.py --broker redis://127.0.0.1:6379/15 \\
        --db postgresql+psycopg://postgres@127.0.0.1:5432/test --empty-trials 600 --digits-trials 24
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAVIAR = [sys.executable, "-c", "from service.cli import main; main()"]
QUEUE = "caviar-bench"
#: Worker log level (INFO logs every task: slower, but shows per-task times in the worker logs).
LOGLEVEL = os.environ.get("BENCH_LOGLEVEL", "WARNING")

EMPTY_STUDY = """
[study]
name = "bench-empty"
dataset = "iris"
objective = "val_loss"
strategy = "random"
seed = 0

[strategy]
trials = {trials}

[fixed]
epochs = 1
layers = 1
hidden_units = 4
batch_size = 32
norm = "none"

[space]
learning_rate = {{ log = [1e-3, 1e-1] }}
"""

DIGITS_EPOCHS = 40
DIGITS_STUDY = """
[study]
name = "bench-digits"
dataset = "digits"
objective = "val_loss"
strategy = "random"
seed = 0

[strategy]
trials = {trials}

[fixed]
epochs = {epochs}
layers = 2
batch_size = 64
optimizer = "adam"
norm = "batch"

[space]
learning_rate = {{ log = [1e-3, 1e-1] }}
hidden_units = {{ int = [64, 512], log = true }}
"""


# --- servers ------------------------------------------------------------------------------------------


def create_database(server_url: str) -> tuple[str, str]:
    """Create a fresh database next to ``server_url``'s; return (its URL, its name)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    name = f"caviar_bench_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False), name


def drop_database(server_url: str, name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- caviar ---------------------------------------------------------------------------------------------


class Worker:
    """A ``caviar worker`` subprocess in its own session."""

    def __init__(self, env: dict[str, str], concurrency: int, log_dir: Path) -> None:
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*CAVIAR, "worker", "-c", str(concurrency), "--loglevel", LOGLEVEL],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.concurrency = concurrency

    def wait_ready(self, timeout: float = 180.0) -> None:
        import psutil

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            # Ready when the pool processes exist and the banner is written.
            children = psutil.Process(self.proc.pid).children()
            if len(children) >= self.concurrency and "[queues]" in self.log_path.read_text(errors="replace"):
                time.sleep(1.0)  # let the consumer connect
                return
            time.sleep(0.2)
        raise RuntimeError("worker not ready in time")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def run_caviar(study_text: str, *, broker: str, db: str, concurrency: int, log_dir: Path) -> dict[str, Any]:
    """Start a worker, submit the study, wait for completion; return timings and counts."""
    from core.search import load_study
    from service.store import open_store, reads, studies
    from workers.broker import redis_client
    from workers.client import submit_remote

    client = redis_client(broker)
    client.delete(QUEUE)
    client.close()
    env = dict(os.environ, CAVIAR_BROKER_URL=broker, CAVIAR_DATABASE_URL=db, CAVIAR_QUEUE=QUEUE)
    os.environ.update(CAVIAR_QUEUE=QUEUE)
    store = open_store(db)
    worker = Worker(env, concurrency, log_dir)
    try:
        worker.wait_ready()
        spec = load_study(study_text)
        t0 = time.perf_counter()
        study_id, ids = submit_remote(store, spec, broker=broker)
        while True:
            study = studies.get_study(store, study_id)
            if study is not None and study.state in ("complete", "failed", "cancelled"):
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        counts = reads.counts_by_status(store, study_id)
        best = reads.best_trial_row(store, study_id, "val_loss")
        configs = [(row["params"], row["seed"]) for row in reads.trial_rows(store, study_id)]
    finally:
        worker.stop()
        store.dispose()
    return {
        "trials": sum(counts.values()), "complete": counts["complete"], "seconds": seconds,
        "trials_per_second": sum(counts.values()) / seconds, "state": study.state,
        "best_val_loss": None if best is None else best["val_loss"], "configs": configs,
    }


# --- optuna ---------------------------------------------------------------------------------------------


def _optuna_process(
    storage: str, study_name: str, n_trials: int, report: bool, barrier: Any, out: Any
) -> None:
    import optuna
    from optuna.storages import RDBStorage

    from core.data import load_dataset
    from core.hparams import resolve
    from core.nn import train, warmup

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warmup(("float32",))
    data = load_dataset("digits", seed=0)
    # With curves, also Optuna's own heartbeat (its stale-trial detection), as caviar's workers have.
    rdb = RDBStorage(storage, heartbeat_interval=1, grace_period=10) if report else storage
    study = optuna.load_study(study_name=study_name, storage=rdb)

    def objective(trial: optuna.Trial) -> float:
        # The trials were enqueued with caviar's exact configurations, so both do the same work.
        config = resolve({
            "epochs": DIGITS_EPOCHS, "layers": 2, "batch_size": 64, "optimizer": "adam", "norm": "batch",
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
            "hidden_units": trial.suggest_int("hidden_units", 64, 512, log=True),
            "seed": int(trial.user_attrs.get("seed", trial.number)),
        })

        def on_epoch(entry: dict[str, Any]) -> None:
            # The learning curve, as caviar stores it (one write per epoch).
            trial.report(float(entry["val_loss"]), int(entry["epoch"]))

        result = train(config, data, on_epoch=on_epoch if report else None)
        return float("inf") if result.val_loss is None else float(result.val_loss)

    barrier.wait()
    study.optimize(objective, n_trials=n_trials)
    out.put(study.best_value)


def run_optuna(
    db: str, configs: list[tuple[dict[str, Any], int]], processes: int, *, report: bool
) -> dict[str, Any]:
    """Optuna on an RDB storage, evaluating exactly ``configs`` (params, seed) in ``processes`` processes.

    Args:
        report: report the validation loss every epoch (``trial.report``), which stores a learning
            curve as caviar does, and run Optuna's heartbeat thread (``heartbeat_interval=1``); without
            it Optuna writes nothing while a trial trains and cannot detect a dead process.
    """
    import optuna

    storage = db
    name = f"bench-{uuid.uuid4().hex[:8]}"
    n_trials = len(configs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    for params, seed in configs:
        study.enqueue_trial(params, user_attrs={"seed": seed})
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    out = ctx.Queue()
    per = [n_trials // processes + (1 if i < n_trials % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(target=_optuna_process, args=(storage, name, per[i], report, barrier, out))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - t0
    best = min(out.get() for _ in procs)
    study = optuna.load_study(study_name=name, storage=storage)
    return {
        "trials": len(study.trials), "seconds": seconds, "trials_per_second": len(study.trials) / seconds,
        "best_val_loss": best,
    }


# --- main -----------------------------------------------------------------------------------------------


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time, with every run's seconds attached."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["runs"] = [round(r["seconds"], 3) for r in runs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server URL whose user may CREATE DATABASE")
    parser.add_argument("--empty-trials", type=int, default=600)
    parser.add_argument("--digits-trials", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every measurement, interleaved; the median is reported")
    parser.add_argument("--parts", default="a,b,c", help="which measurements: a, b, c")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    from service.errors import mask_url

    db_url, db_name = create_database(args.db)
    log_dir = Path(tempfile.mkdtemp(prefix="caviar-bench-"))
    results: dict[str, Any] = {
        "broker": mask_url(args.broker), "db": mask_url(args.db), "cores": os.cpu_count(),
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    study = DIGITS_STUDY.format(trials=args.digits_trials, epochs=DIGITS_EPOCHS)
    try:
        # Interleaved rounds, so a change in the machine's load hits every measurement alike.
        for _ in range(args.repeat):
            if "a" in parts:
                runs.setdefault("a_empty", []).append(run_caviar(
                    EMPTY_STUDY.format(trials=args.empty_trials), broker=args.broker, db=db_url,
                    concurrency=2, log_dir=log_dir,
                ))
            if "b" in parts:
                runs.setdefault("b_digits_1", []).append(
                    run_caviar(study, broker=args.broker, db=db_url, concurrency=1, log_dir=log_dir)
                )
            if "b" in parts or "c" in parts:
                caviar2 = run_caviar(study, broker=args.broker, db=db_url, concurrency=2, log_dir=log_dir)
                runs.setdefault("b_digits_2", []).append(caviar2)
            if "c" in parts:
                for key, report in (("c_optuna_2", False), ("c_optuna_2_curves", True)):
                    # Its own database: Optuna's schema has a `studies` table too.
                    optuna_url, optuna_name = create_database(args.db)
                    try:
                        runs.setdefault(key, []).append(
                            run_optuna(optuna_url, caviar2["configs"], 2, report=report)
                        )
                    finally:
                        drop_database(args.db, optuna_name)
    finally:
        drop_database(args.db, db_name)
    for key, measured in runs.items():
        results[key] = _median_run(measured)
        results[key].pop("configs", None)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"broker {results['broker']}, database {results['db']}, {results['cores']} cores, "
          f"median of {args.repeat} interleaved runs")
    print(f"{'measurement':<50} {'trials':>6} {'seconds':>8} {'trials/s':>9}  runs (s)")
    rows = [
        ("a_empty", "(a) empty trials, 1 worker x 2 processes"),
        ("b_digits_1", "(b) digits study, 1 process"),
        ("b_digits_2", "(b) digits study, 2 processes"),
        ("c_optuna_2", "(c) Optuna, same trials, 2 processes, bare"),
        ("c_optuna_2_curves", "(c) Optuna, same, + trial.report and heartbeat"),
    ]
    for key, label in rows:
        if key in results:
            r = results[key]
            spread = ", ".join(f"{x:.1f}" for x in r["runs"])
            row = f"{label:<50} {r['trials']:>6} {r['seconds']:>8.2f} {r['trials_per_second']:>9.1f}"
            print(f"{row}  {spread}")
    if "b_digits_1" in results:
        speedup = results["b_digits_1"]["seconds"] / results["b_digits_2"]["seconds"]
        print(f"speed-up from 1 to 2 processes: {speedup:.2f}x")
    for key, what in (("c_optuna_2", "bare"), ("c_optuna_2_curves", "curves + heartbeat")):
        if key in results:
            ratio = results[key]["seconds"] / results["b_digits_2"]["seconds"]
            print(f"Optuna ({what}) wall time / caviar wall time, 2 processes each: {ratio:.2f}x")


if __name__ == "__main__":
    main()
