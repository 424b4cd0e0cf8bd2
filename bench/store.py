"""Store scale benchmark: a study of 100,000 trials, and the time of each read command's query.

Fills one study (3 rounds, 100,000 finished trials with params and metrics; bulk insert) on SQLite
and on PostgreSQL, then times the code each read command runs — ``status`` (the study record: counts,
per-round counts, regions, best), ``trials --top 10``, ``best`` and ``export`` (every trial to CSV) —
in-process (median of 3 runs; the command's Python start-up of about a second is not included), and
once through the installed ``caviar`` command for wall time.

PostgreSQL: ``--pg-url URL`` (a database the benchmark may fill), else a private server started with
``tests/pg_server.py`` (initdb/pg_ctl from PATH, /usr/lib/postgresql or the pgserver wheel).

    python bench/store.py                 # both backends, 100,000 trials
    python bench/store.py --trials 20000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from service.store import Store, export, open_store, reads, studies
from service.store.models import Round, Study, Trial
from service.views import study_record

ROUNDS = 3
SPACE = {
    "learning_rate": {"log": [1e-4, 1e-1]},
    "beta1": {"one_minus_log": [0.8, 0.999]},
    "hidden_units": {"int": [16, 256], "log": True},
    "norm": {"choice": ["batch", "layer", "none"]},
}


def fill(store: Store, n: int, seed: int = 0) -> str:
    """Insert one study with ``n`` finished trials over :data:`ROUNDS` rounds; return its id."""
    rng = random.Random(seed)
    sid = f"bench-{n}-{rng.randrange(16**6):06x}"
    spec = {
        "study": {"name": "bench", "dataset": "digits", "objective": "val_loss", "strategy": "coarse-to-fine",
                  "seed": 0, "val_fraction": 0.2},
        "strategy": {"rounds": ROUNDS, "trials_per_round": n // ROUNDS},
        "fixed": {"epochs": 10},
        "space": SPACE,
    }

    def study(s):  # type: ignore[no-untyped-def]
        s.add(Study(id=sid, name="bench", spec_raw=spec, spec=spec, spec_text=None, seed=0,
                    objective="val_loss", strategy="coarse-to-fine", state="complete"))
        s.flush()
        for r in range(ROUNDS):
            s.add(Round(study_id=sid, round_index=r, parent_index=r - 1 if r else None,
                        region={k: v for d in SPACE.values() for k, v in d.items() if k != "log"}))

    store.run(study)
    per_round = -(-n // ROUNDS)
    batch: list[dict] = []  # type: ignore[type-arg]

    def flush() -> None:
        store.run(lambda s: s.bulk_insert_mappings(Trial, batch))
        batch.clear()

    for i in range(n):
        r, idx = divmod(i, per_round)
        lr = 10 ** rng.uniform(-4, -1)
        status = "diverged" if lr > 0.08 and rng.random() < 0.5 else "complete"
        loss = None if status == "diverged" else abs(rng.gauss(0.3, 0.2)) + 0.05
        batch.append({
            "id": f"{sid}-r{r}-t{idx}", "study_id": sid, "round_index": r, "trial_index": idx,
            "params": {
                "learning_rate": lr, "beta1": 1 - 10 ** rng.uniform(-3, -0.7),
                "hidden_units": int(2 ** rng.uniform(4, 8)), "norm": rng.choice(["batch", "layer", "none"]),
            },
            "seed": rng.randrange(2**31), "status": status, "attempts": 1, "worker": f"w{i % 8}",
            "val_loss": loss, "val_accuracy": None if loss is None else max(0.0, 1 - loss / 2),
            "train_loss": None if loss is None else loss * 0.8, "epochs_run": 10,
            "seconds": rng.uniform(0.5, 5), "samples_per_second": rng.uniform(5e4, 5e5),
        })
        if len(batch) == 5000:
            flush()
    if batch:
        flush()
    return sid


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_reads(store: Store, sid: str, out_dir: Path) -> dict[str, float]:
    """Seconds for the code behind each read command."""
    study = studies.require_study(store, sid)

    def status() -> None:
        study_record(store, study)

    def top10() -> None:
        rows = reads.trial_rows(store, sid, objective="val_loss", sort="objective", limit=10)
        assert len(rows) == 10

    def best() -> None:
        assert reads.best_trial_row(store, sid, "val_loss") is not None

    def export_csv() -> None:
        with (out_dir / "export.csv").open("w", newline="") as f:
            export.write_export_csv(store, sid, f, list(SPACE))

    return {"status": timed(status), "trials --top 10": timed(top10), "best": timed(best),
            "export (CSV)": timed(export_csv)}


def cli_wall(url: str, sid: str, out_dir: Path) -> dict[str, float]:
    """Wall seconds of the installed command (Python start-up included), once each."""
    caviar = str(Path(sys.executable).parent / "caviar")
    cmds = {
        "status": ["status", sid],
        "trials --top 10": ["trials", sid, "--top", "10"],
        "best": ["best", sid],
        "export (CSV)": ["export", sid, "-o", str(out_dir / "cli.csv")],
    }
    out = {}
    for name, args in cmds.items():
        t = time.perf_counter()
        subprocess.run([caviar, *args, "--db", url], check=True, capture_output=True)
        out[name] = time.perf_counter() - t
    return out


def bench(url: str, n: int, label: str) -> dict[str, tuple[float, float]]:
    store = open_store(url)
    t = time.perf_counter()
    sid = fill(store, n)
    fill_s = time.perf_counter() - t
    print(f"{label}: inserted {n:,} trials in {fill_s:.1f} s ({n / fill_s:,.0f} rows/s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        inproc = time_reads(store, sid, Path(tmp))
        wall = cli_wall(url, sid, Path(tmp))
    store.dispose()
    return {k: (inproc[k], wall[k]) for k in inproc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL database to fill (default: own server)")
    args = parser.parse_args()
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            results["SQLite"] = bench(f"sqlite:///{tmp}/bench.db", args.trials, "SQLite")
        if args.backend in ("postgresql", "both"):
            server = None
            url = args.pg_url
            if url is None:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
                from pg_server import PostgresServer, create_database, pg_bindir

                bindir = pg_bindir()
                if bindir is None:
                    raise SystemExit("no PostgreSQL binaries; pass --pg-url")
                server = PostgresServer(bindir)
                server.start()
                url = create_database(server.url, prefix="caviar_bench")
            try:
                results["PostgreSQL"] = bench(url, args.trials, "PostgreSQL")
            finally:
                if server is not None:
                    server.cleanup()
    names = list(next(iter(results.values())))
    print(f"\n{args.trials:,} trials; seconds in-process (median of 3) / wall of the `caviar` command")
    print("| read | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{results[b][name][0]:.3f} / {results[b][name][1]:.2f}" for b in results]
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print(f"\ncpu: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
