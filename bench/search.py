"""Benchmark of search strategies against Optuna at equal trial budgets: real training and test functions.

Two suites, one command each:

    python bench/search.py real --seeds 20                 # digits and mnist1d, the real engine
    python bench/search.py synthetic --seeds 50            # six test functions with exact regret
    python bench/search.py real --seeds 2 --datasets digits --strategies c2f-4,tpe   # a quick look

Strategies (``--strategies``, default all but grid and sobol):

- ``c2f-4``, ``c2f-12``: caviar's coarse-to-fine (version 2, its defaults) in rounds of 4 and of 12;
- ``c2f-v1``: version 1 (nested zoom) in rounds of 12, keep_top 3, margin 0.5 (the earlier tuned setting);
- ``random`` (and ``grid``, ``sobol`` on the real suite): caviar's one-round strategies;
- ``tpe``: Optuna's ``TPESampler`` with its defaults, asked one trial at a time (told before the next);
- ``tpe-4``, ``tpe-12``: the same sampler asked a whole round at once (4 or 12 pending trials: Optuna's
  constant liar), then told the round: what a pool of workers behind a round barrier gets;
- ``gp``: Optuna's ``GPSampler`` with its defaults, one trial at a time.

Every strategy sees the same space on the same scales (Optuna: ``log=True`` for log keys and log-int
keys, ``1 − β`` on a log scale for ``one_minus_log``) and trial ``i`` of seed ``s`` trains with the same
seed whatever the strategy, so strategies differ only in the configurations they choose. Each run takes
the largest budget of ``--budgets``; a smaller budget's result is the best of the run's first trials (every
strategy here plans without knowing the budget, so that is exactly a run with the smaller budget).
A diverged trial counts as the worst result so far for Optuna, as it does for caviar's model.

The tables give, per suite entry and strategy, the median best value (real: validation loss; synthetic:
regret ``f(best) − f*``), its interquartile range, and against sequential TPE (and, for ``c2f-T``,
against ``tpe-T``) the paired win rate over seeds (ties count half) and the two-sided Wilcoxon
signed-rank p-value.
"""

from __future__ import annotations

import os

# Single-threaded BLAS/Numba per process, set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_functions import FUNCTIONS  # noqa: E402

from core.hparams import resolve  # noqa: E402
from core.search import Choice, Int, Log, OneMinusLog, SearchSpace, load_study, plan_round  # noqa: E402

#: The real suite's search space: seven hyperparameters on the chapter's scales (α = 10^r,
#: β1 = 1 − 10^r, log-scale sizes), some mattering much more than others.
SPACE = """
learning_rate = { log = [1e-4, 1.0] }
beta1 = { one_minus_log = [0.8, 0.999] }
hidden_units = { int = [16, 512], log = true }
layers = { int = [1, 3] }
lr_decay = { uniform = [0.0, 1.0] }
batch_size = { int = [16, 256], log = true }
norm = { choice = ["batch", "layer", "none"] }
"""

#: Held constant in every real trial (epochs comes from --epochs).
FIXED = 'optimizer = "adam"'

#: Each caviar strategy: (study-file strategy, [strategy] table; {budget} is the run's budget).
CAVIAR = {
    "c2f-4": ("coarse-to-fine", "rounds = {rounds4}\ntrials_per_round = 4"),
    "c2f-12": ("coarse-to-fine", "rounds = {rounds12}\ntrials_per_round = 12"),
    "c2f-v1": (
        "coarse-to-fine",
        "version = 1\nrounds = {rounds12}\ntrials_per_round = 12\nkeep_top = 3\nmargin = 0.5",
    ),
    "random": ("random", "trials = {budget}"),
    "sobol": ("sobol", "trials = {budget}"),
    # 4 learning rates x 2 beta1 x 2 widths x 3 norms = 48, the other keys at their centre (real suite only).
    "grid": (
        "grid",
        "points_per_dim = { learning_rate = 4, beta1 = 2, hidden_units = 2, layers = 1, lr_decay = 1, "
        "batch_size = 1 }",
    ),
}
#: Optuna strategies: (sampler, trials asked per round).
OPTUNA = {"tpe": ("tpe", 1), "tpe-4": ("tpe", 4), "tpe-12": ("tpe", 12), "gp": ("gp", 1)}
ALL = ("c2f-4", "c2f-12", "c2f-v1", "random", "tpe", "tpe-4", "tpe-12", "gp", "sobol", "grid")
DEFAULT = ("c2f-4", "c2f-12", "c2f-v1", "random", "tpe", "tpe-4", "tpe-12", "gp")
#: The paired reference of each strategy besides sequential TPE (equal round size).
PEER = {"c2f-4": "tpe-4", "c2f-12": "tpe-12"}

#: Loss of a diverged real trial until a finished one exists (chance level for 10 classes).
CHANCE_LOSS = math.log(10.0)

_data_cache: dict[str, Any] = {}


# --- what a trial is, per suite ----------------------------------------------------------------------


def dataset(name: str):
    """The dataset, loaded once per process (split seed 0 for every strategy and seed)."""
    from core.data import load_dataset

    if name not in _data_cache:
        _data_cache[name] = load_dataset(name, seed=0, val_fraction=0.2, dtype="float32")
    return _data_cache[name]


def trial_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index, 7]).generate_state(1)[0] % (2**31 - 1))


class Task:
    """One (suite entry, seed): the space, the fixed keys, and a trial's value (smaller is better)."""

    def __init__(self, suite: str, entry: str, seed: int, epochs: int) -> None:
        self.suite, self.entry, self.seed, self.epochs = suite, entry, seed, epochs
        if suite == "real":
            self.space_text = SPACE
            self.fixed_text = f"epochs = {epochs}\n{FIXED}"
        else:
            fn = FUNCTIONS[entry]
            self.space_text = "\n".join(f"{k} = {_toml(v)}" for k, v in fn.space().to_dict().items())
            self.fixed_text = ""

    def study(self, strategy: str, table: str) -> str:
        source = f'dataset = "{self.entry}"' if self.suite == "real" else 'dataset = "iris"'
        return (
            f'[study]\nname = "bench"\n{source}\nobjective = "val_loss"\nstrategy = "{strategy}"\n'
            f"seed = {self.seed}\n[strategy]\n{table}\n[fixed]\n{self.fixed_text}\n"
            f"[space]\n{self.space_text}\n"
        )

    def value(self, params: dict[str, Any], fixed: dict[str, Any], index: int) -> float:
        """Real: the final validation loss (NaN when diverged); synthetic: the regret."""
        if self.suite == "synthetic":
            return FUNCTIONS[self.entry].regret(params)
        from core.nn import train

        config = resolve({**fixed, **params, "seed": trial_seed(self.seed, index)})
        result = train(config, dataset(self.entry))
        return result.val_loss if result.status == "complete" else math.nan


def _toml(table: dict[str, Any]) -> str:
    (kind, bounds), *_ = table.items()
    return "{ " + f"{kind} = [{bounds[0]!r}, {bounds[1]!r}]" + " }"


# --- running a strategy ------------------------------------------------------------------------------


def run_caviar(task: Task, name: str, budget: int) -> list[float]:
    strategy, table = CAVIAR[name]
    table = table.format(budget=budget, rounds4=math.ceil(budget / 4), rounds12=math.ceil(budget / 12))
    spec = load_study(task.study(strategy, table))
    previous: list[list[tuple[dict, float]]] = []
    values: list[float] = []
    while (plan := plan_round(spec, previous)) is not None:
        results = []
        for t in plan.trials:
            v = task.value(t, spec.fixed, len(values))
            values.append(v)
            results.append((t, v))
        previous.append(results)
    return values


def suggest(trial, key: str, d) -> Any:
    """The same scales in Optuna's terms: log α, log (1 − β), log-scale integers, categorical choices."""
    if isinstance(d, Log):
        return trial.suggest_float(key, d.low, d.high, log=True)
    if isinstance(d, OneMinusLog):
        return 1.0 - trial.suggest_float(f"one_minus_{key}", 1.0 - d.high, 1.0 - d.low, log=True)
    if isinstance(d, Int):
        return trial.suggest_int(key, d.low, d.high, log=d.log)
    if isinstance(d, Choice):
        return trial.suggest_categorical(key, list(d.choices))
    return trial.suggest_float(key, d.low, d.high)


def run_optuna(task: Task, name: str, budget: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    kind, per_round = OPTUNA[name]
    spec = load_study(task.study("random", "trials = 1"))  # for the space and the fixed keys
    space: SearchSpace = spec.space
    sampler = (
        optuna.samplers.GPSampler(seed=task.seed)
        if kind == "gp"
        else optuna.samplers.TPESampler(seed=task.seed)
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    values: list[float] = []
    while len(values) < budget:
        asked = [study.ask() for _ in range(min(per_round, budget - len(values)))]
        configs = [{k: suggest(t, k, d) for k, d in space.dims.items()} for t in asked]
        for trial, params in zip(asked, configs, strict=True):
            v = task.value(params, spec.fixed, len(values))
            values.append(v)
            finite = [x for x in values if math.isfinite(x)]
            # A diverged trial is the worst result so far (NaN would make Optuna ignore it).
            study.tell(trial, v if math.isfinite(v) else max(finite, default=CHANCE_LOSS))
    return values


def unit(job: tuple[str, str, str, int, int, int]) -> dict[str, Any]:
    suite, entry, strategy, seed, budget, epochs = job
    task = Task(suite, entry, seed, epochs)
    start = time.perf_counter()
    values = run_optuna(task, strategy, budget) if strategy in OPTUNA else run_caviar(task, strategy, budget)
    return {
        "stopped": len(values) < budget,
        "suite": suite,
        "entry": entry,
        "strategy": strategy,
        "seed": seed,
        "values": values,
        "seconds": time.perf_counter() - start,
    }


# --- statistics and tables ---------------------------------------------------------------------------


def best_within(values: list[float], budget: int) -> float:
    finite = [v for v in values[:budget] if math.isfinite(v)]
    return min(finite) if finite else math.inf


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Win rate of ``a`` over ``b`` (smaller wins, ties half) and the two-sided Wilcoxon p-value."""
    from scipy.stats import wilcoxon

    wins = float(np.mean((a < b) + 0.5 * (a == b)))
    diff = a - b
    if not np.any(diff != 0):
        return wins, 1.0
    return wins, float(wilcoxon(a, b, zero_method="wilcox").pvalue)


def table(
    rows: list[dict[str, Any]], entries: list[str], strategies: list[str], budgets: list[int], suite: str
) -> str:
    fmt = "{:.4f}" if suite == "real" else "{:.3g}"
    entry = "dataset" if suite == "real" else "function"
    head = f"| budget | {entry} | strategy | median | IQR | vs TPE: wins | p | vs TPE same round: wins | p |"
    head += " s/run |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for budget in budgets:
        for e in entries:
            best: dict[str, dict[int, float]] = {}
            secs: dict[str, float] = {}
            for s in strategies:
                # Runs long enough for this budget (a study that stopped early, e.g. exhausted, counts
                # as long enough); of two runs of one seed (tables merged from several files), the shorter.
                sel = [
                    r
                    for r in rows
                    if r["entry"] == e
                    and r["strategy"] == s
                    and (len(r["values"]) >= budget or r.get("stopped"))
                ]
                # Longest first: the shortest run long enough is kept (its seconds are this budget's).
                chosen = {r["seed"]: r for r in sorted(sel, key=lambda r: -len(r["values"]))}
                best[s] = {k: best_within(r["values"], budget) for k, r in chosen.items()}
                secs[s] = float(np.mean([r["seconds"] for r in chosen.values()])) if chosen else math.nan
            for s in strategies:
                if not best[s]:
                    continue
                v = np.array(list(best[s].values()))
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                cells = [str(budget), e, s, fmt.format(med), fmt.format(q3 - q1)]
                for ref in ("tpe", PEER.get(s)):
                    common = sorted(set(best[s]) & set(best.get(ref, {}))) if ref and ref != s else []
                    if common:
                        wins, p = paired(
                            np.array([best[s][k] for k in common]), np.array([best[ref][k] for k in common])
                        )
                        cells += [f"{wins:.2f}", f"{p:.2g}"]
                    else:
                        cells += ["", ""]
                cells.append(f"{secs[s]:.0f}")
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("table", "medians"):
        return print_tables(argv[1:], compact=argv[0] == "medians")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=("real", "synthetic"))
    p.add_argument("--datasets", default="digits,mnist1d", help="real suite: datasets")
    p.add_argument("--functions", default=",".join(FUNCTIONS), help="synthetic suite: test functions")
    p.add_argument("--strategies", default=",".join(DEFAULT), help=f"some of {', '.join(ALL)}")
    p.add_argument("--seeds", type=int, default=20, help="N seeds per (entry, strategy)")
    p.add_argument(
        "--first-seed",
        dest="first_seed",
        type=int,
        default=0,
        help="seeds first..first+N-1 (tune on other seeds than the ones you report)",
    )
    p.add_argument("--budgets", default="48,96", help="trial budgets (each run takes the largest)")
    p.add_argument("--epochs", type=int, default=8, help="real suite: epochs per trial")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write every run's values here")
    args = p.parse_args(argv)
    strategies = args.strategies.split(",")
    for s in strategies:
        if s not in ALL:
            p.error(f"unknown strategy {s}; expected some of {', '.join(ALL)}")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    entries = (args.datasets if args.suite == "real" else args.functions).split(",")
    if args.suite == "real":
        from core.nn import warmup

        warmup(("float32",))  # compile (or load) kernels once, before forking
        for d in entries:
            dataset(d)
    elif "grid" in strategies:
        p.error("grid is for the real suite (its table names the real keys)")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [
        (args.suite, e, s, seed, budgets[-1], args.epochs)
        for seed in seeds
        for e in entries
        for s in strategies
    ]
    # Slowest units first (GP, then mnist1d), to balance the pool.
    jobs.sort(key=lambda j: (j[2] != "gp", j[1] != "mnist1d"))
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with mp.get_context("fork").Pool(args.workers) as pool:
        for row in pool.imap_unordered(unit, jobs):
            rows.append(row)
            print(
                f"  {row['entry']:16} {row['strategy']:8} seed {row['seed']:3}: "
                f"best {best_within(row['values'], budgets[-1]):.4g} ({row['seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    import optuna

    print(f"# bench/search.py {' '.join(argv)}")
    print(
        f"# {datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.workers} processes, {time.perf_counter() - start:.0f} s; optuna {optuna.__version__}; "
        f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}"
        + (f"; {args.epochs} epochs of adam" if args.suite == "real" else "")
    )
    print(table(rows, entries, strategies, budgets, args.suite))
    if args.json:
        args.json.write_text(json.dumps({"argv": argv, "budgets": budgets, "rows": rows}))


def print_tables(paths: list[str], compact: bool = False) -> None:
    """``python bench/search.py table A.json B.json ...``: one table from several runs' ``--json`` files
    (e.g. the same suite run on two ranges of seeds); ``medians`` instead of ``table``: only the medians,
    a row per entry and budget, a column per strategy (the best of each row in bold)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    rows = [r for run in runs for r in run["rows"]]
    budgets = sorted({b for run in runs for b in run["budgets"]})
    for run in runs:
        print(f"# bench/search.py {' '.join(run['argv'])}")
    suite = rows[0]["suite"]
    entries = list(dict.fromkeys(r["entry"] for r in rows))
    strategies = [s for s in ALL if any(r["strategy"] == s for r in rows)]
    print(
        medians(rows, entries, strategies, budgets, suite)
        if compact
        else table(rows, entries, strategies, budgets, suite)
    )


def medians(
    rows: list[dict[str, Any]], entries: list[str], strategies: list[str], budgets: list[int], suite: str
) -> str:
    fmt = "{:.4f}" if suite == "real" else "{:.3g}"
    lines = [
        "| budget | "
        + ("dataset" if suite == "real" else "function")
        + " | "
        + " | ".join(strategies)
        + " |",
        "|---|---|" + "---|" * len(strategies),
    ]
    for budget in budgets:
        for e in entries:
            cells: dict[str, float] = {}
            for s in strategies:
                vals = [
                    best_within(r["values"], budget)
                    for r in rows
                    if r["entry"] == e
                    and r["strategy"] == s
                    and (len(r["values"]) >= budget or r.get("stopped"))
                ]
                if vals:
                    cells[s] = float(np.median(vals))
            low = min(cells.values(), default=math.nan)
            shown = [
                ("**" + fmt.format(cells[s]) + "**" if cells[s] == low else fmt.format(cells[s]))
                if s in cells
                else ""
                for s in strategies
            ]
            lines.append(f"| {budget} | {e} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
