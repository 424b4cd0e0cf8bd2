"""Multi-fidelity time-to-quality: caviar with and without ``[pruning]`` against Optuna + PyTorch, in one run.

    python bench/fidelity.py --seeds 10                         # digits and mnist1d
    python bench/fidelity.py --seeds 2 --datasets digits        # a quick look
    python bench/fidelity.py table a.json b.json                # one table from several runs' --json

Methods, each with 2 worker processes, the same space, one fixed train/validation split per dataset
(``split_seed`` 0: the seeds vary the search, not the validation rows):

- ``caviar-halving``: ``caviar run``'s path (local pool, SQLite store) with coarse-to-fine v2 in rounds of 4
  and ``[pruning] kind = "halving"``, min_epochs 1, reduction 3;
- ``caviar-halving-12``: the same in rounds of 12;
- ``caviar``: coarse-to-fine v2 without pruning;
- ``top-k``: train all 48 random configurations 1 epoch on caviar's engine, keep the best 6, train those to
  the end (resumed from their 1-epoch checkpoint);
- ``optuna-torch-hb`` / ``optuna-torch``: Optuna's TPESampler (defaults) with ``HyperbandPruner`` (defaults,
  reporting the validation loss every epoch) / with no pruner, training in **PyTorch** (one thread per
  process, the same architecture, split and epochs); two processes share the study through a journal file;
- ``optuna-caviar-hb`` / ``optuna-caviar``: the same Optuna runs training with caviar's engine instead, to
  separate the engine's share of the time from the search's.

Two phases. First the **target**: per dataset, the median over seeds of the best validation loss of
``optuna-torch`` at 48 full trials (the reference runs). Then every method runs with a budget of
``--factor`` × 48 configurations (top-k: 48) and stops once it has both finished its first 48
configurations and reached the target. Per method and seed: the best validation loss within the first 48
configurations and the epochs they took (equal budgets), the wall time until the best so far reached the
target (time to quality: infinite when the extended budget never reached it), the epochs until then, and the
seconds spent training against the wall time of both processes (where the time goes). Printed: medians over
seeds, time-to-quality ratios to ``optuna-torch-hb``, and the epochs ratio of ``caviar-halving`` to
``caviar`` at the target.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.hparams import resolve  # noqa: E402

#: The searched space: the search benchmark's (bench/search.py), with the learning rate capped at 0.1 as in
#: the example studies.
SPACE = """
learning_rate = { log = [1e-4, 1e-1] }
beta1 = { one_minus_log = [0.8, 0.999] }
hidden_units = { int = [16, 512], log = true }
layers = { int = [1, 3] }
lr_decay = { uniform = [0.0, 1.0] }
batch_size = { int = [16, 256], log = true }
norm = { choice = ["batch", "layer", "none"] }
"""
TRIALS = 48
TOP_K = 6
#: Every seed is judged on the same validation rows of a dataset.
SPLIT_SEED = 0
METHODS = (
    "caviar-halving",
    "caviar-halving-12",
    "caviar",
    "top-k",
    "optuna-torch-hb",
    "optuna-torch",
    "optuna-caviar-hb",
    "optuna-caviar",
)


def study_text(
    dataset: str, seed: int, epochs: int, pruning: bool, per_round: int = 4, factor: int = 1
) -> str:
    prune = '[pruning]\nkind = "halving"\nmin_epochs = 1\nreduction = 3\n' if pruning else ""
    rounds = factor * TRIALS // per_round
    return (
        f'[study]\nname = "fidelity"\ndataset = "{dataset}"\nobjective = "val_loss"\n'
        f'strategy = "coarse-to-fine"\nseed = {seed}\nsplit_seed = {SPLIT_SEED}\n'
        f"[strategy]\nrounds = {rounds}\ntrials_per_round = {per_round}\n"
        f'{prune}[fixed]\nepochs = {epochs}\noptimizer = "adam"\n[space]\n{SPACE}'
    )


# --- caviar through the product (local pool, SQLite) ------------------------------------------------------


class _Reached(Exception):
    """Raised from ``run_local``'s callback: the study has reached the target after its first 48."""


def run_caviar(
    dataset: str,
    seed: int,
    epochs: int,
    pruning: bool,
    per_round: int = 4,
    target: float | None = None,
    factor: int = 1,
) -> dict[str, Any]:
    from core.search import load_study
    from service.local import run_local
    from service.orchestrate import submit
    from service.store import FINISHED, TrialStatus, open_store, reads

    base_rounds = TRIALS // per_round
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/c.db")
        spec = load_study(study_text(dataset, seed, epochs, pruning, per_round, factor))
        start = time.perf_counter()
        study_id, ids = submit(store, spec)
        last: dict[str, float] = {}  # a trial's result counts when its last execution (rung) ends

        def on_finished(tid: str) -> None:
            last[tid] = time.perf_counter()
            if target is None:
                return
            rows = reads.trial_rows(store, study_id)
            first = [r for r in rows if r["round_index"] < base_rounds]
            done = len(first) == TRIALS and all(TrialStatus(r["status"]) in FINISHED for r in first)
            reached = any(
                r["status"] == "complete" and r["val_loss"] is not None and r["val_loss"] <= target
                for r in rows
            )
            if done and reached:
                raise _Reached

        with contextlib.suppress(_Reached):
            run_local(store, study_id, ids, workers=2, on_finished=on_finished)
        seconds = time.perf_counter() - start
        rows = {r["id"]: r for r in reads.trial_rows(store, study_id)}
        store.dispose()
    trace = sorted(
        (last[tid] - start, r["val_loss"], int(r["round_index"] < base_rounds))
        for tid, r in rows.items()
        if tid in last and r["status"] == "complete" and r["val_loss"] is not None
    )
    # Per round: epochs trained and the best fully trained loss (epochs-to-target, exact per round).
    n_rounds = max(r["round_index"] for r in rows.values()) + 1
    round_epochs = [
        sum(r["epochs_run"] or 0 for r in rows.values() if r["round_index"] == k) for k in range(n_rounds)
    ]
    round_best = [
        min(
            (
                r["val_loss"]
                for r in rows.values()
                if r["round_index"] == k and r["status"] == "complete" and r["val_loss"] is not None
            ),
            default=math.inf,
        )
        for k in range(n_rounds)
    ]
    return {
        "trace": trace,
        "epochs": sum(round_epochs[:base_rounds]),
        "epochs_all": sum(round_epochs),
        "round_epochs": round_epochs,
        "round_best": round_best,
        "train_seconds": sum(r["seconds"] or 0.0 for r in rows.values()),
        "seconds": seconds,
    }


# --- train everything briefly, keep the top k --------------------------------------------------------------


def _topk_job(job: tuple[str, int, dict[str, Any], int, int, Any]) -> tuple[float, float, int, Any, float]:
    from core.data import load_dataset
    from core.nn import train

    dataset, seed, params, index, epochs, start = job
    began = time.perf_counter()
    data = load_dataset(dataset, seed=SPLIT_SEED, val_fraction=0.2, dtype="float32")
    config = resolve({**params, "optimizer": "adam", "epochs": epochs, "seed": 1000 * seed + index})
    kept: list[Any] = []
    result = train(config, data, start=start, on_checkpoint=kept.append, checkpoint_at={1})
    loss = result.val_loss if result.status == "complete" else math.inf
    return (
        time.perf_counter(),
        loss,
        result.epochs_run - (start.epoch if start else 0),
        kept[0] if kept else None,
        time.perf_counter() - began,
    )


def run_topk(dataset: str, seed: int, epochs: int) -> dict[str, Any]:
    from core.search import load_study, plan_round

    text = study_text(dataset, seed, epochs, False).replace(
        'strategy = "coarse-to-fine"', 'strategy = "random"'
    )
    text = text.replace(f"rounds = {TRIALS // 4}\ntrials_per_round = 4", f"trials = {TRIALS}")
    configs = plan_round(load_study(text), []).trials
    start = time.perf_counter()
    with mp.get_context("fork").Pool(2) as pool:
        short = pool.map(_topk_job, [(dataset, seed, p, i, 1, None) for i, p in enumerate(configs)])
        best = sorted(range(len(configs)), key=lambda i: (short[i][1], i))[:TOP_K]
        full = pool.map(_topk_job, [(dataset, seed, configs[i], i, epochs, short[i][3]) for i in best])
    trace = [(t - start, v, 1) for t, v, _, _, _ in full if math.isfinite(v)]
    epochs_total = sum(j[2] for j in short) + sum(j[2] for j in full)
    return {
        "trace": sorted(trace),
        "epochs": epochs_total,
        "epochs_all": epochs_total,
        "train_seconds": sum(j[4] for j in short) + sum(j[4] for j in full),
        "seconds": time.perf_counter() - start,
    }


# --- Optuna, training in PyTorch or in caviar's engine -----------------------------------------------------


def _suggest(trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "beta1": 1.0 - trial.suggest_float("one_minus_beta1", 1e-3, 0.2, log=True),
        "hidden_units": trial.suggest_int("hidden_units", 16, 512, log=True),
        "layers": trial.suggest_int("layers", 1, 3),
        "lr_decay": trial.suggest_float("lr_decay", 0.0, 1.0),
        "batch_size": trial.suggest_int("batch_size", 16, 256, log=True),
        "norm": trial.suggest_categorical("norm", ["batch", "layer", "none"]),
    }


def _torch_train(params: dict[str, Any], data: Any, epochs: int, seed: int, report) -> tuple[float, int]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    X = torch.from_numpy(np.ascontiguousarray(data.X_train, dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
    Xv = torch.from_numpy(np.ascontiguousarray(data.X_val, dtype=np.float32))
    yv = torch.from_numpy(np.asarray(data.y_val, dtype=np.int64))
    layers: list[nn.Module] = []
    width = X.shape[1]
    for _ in range(params["layers"]):
        layers.append(nn.Linear(width, params["hidden_units"], bias=params["norm"] != "batch"))
        if params["norm"] == "batch":
            layers.append(nn.BatchNorm1d(params["hidden_units"], momentum=0.1))
        elif params["norm"] == "layer":
            layers.append(nn.LayerNorm(params["hidden_units"]))
        layers.append(nn.ReLU())
        width = params["hidden_units"]
    layers.append(nn.Linear(width, int(data.n_classes)))
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=params["learning_rate"], betas=(params["beta1"], 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1.0 + params["lr_decay"] * e))
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    batch = min(params["batch_size"], len(X))
    val = math.inf
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch):
            idx = order[i : i + batch]
            if len(idx) < 2 and params["norm"] == "batch":
                continue
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(Xv), yv))
        if not math.isfinite(val):
            return math.inf, epoch + 1
        if report(val, epoch + 1):
            return val, -(epoch + 1)  # pruned: negative epochs mark it
    return val, epochs


def _caviar_train(params: dict[str, Any], data: Any, epochs: int, seed: int, report) -> tuple[float, int]:
    from core.nn import train

    config = resolve({**params, "optimizer": "adam", "epochs": epochs, "seed": seed})
    pruned = []

    def on_epoch(entry: dict[str, Any]) -> bool:
        if report(entry["val_loss"], entry["epoch"]):
            pruned.append(entry["epoch"])
            return False
        return True

    result = train(config, data, on_epoch=on_epoch)
    if pruned:
        return result.history[-1]["val_loss"], -pruned[0]
    return (result.val_loss if result.status == "complete" else math.inf), result.epochs_run


def _optuna_worker(args: tuple[str, str, int, int, str, bool, str, int, float, float | None, int]) -> None:
    import optuna
    import torch

    torch.set_num_threads(1)  # one thread per process, as caviar's workers
    from core.data import load_dataset

    journal, dataset, seed, epochs, engine, hyperband, out, worker, start, target, budget = args
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    pruner = optuna.pruners.HyperbandPruner() if hyperband else optuna.pruners.NopPruner()
    study = optuna.load_study(
        study_name="fidelity",
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed * 10 + worker),
        pruner=pruner,
    )
    data = load_dataset(dataset, seed=SPLIT_SEED, val_fraction=0.2, dtype="float32")
    fn = _torch_train if engine == "torch" else _caviar_train
    lines = []
    while True:
        trials = study.get_trials(deepcopy=False)
        if len(trials) >= budget:
            break
        if target is not None and _reached(trials, target):
            break
        trial = study.ask()
        if trial.number >= budget:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        params = _suggest(trial)

        def report(value: float, epoch: int, trial=trial) -> bool:
            if not math.isfinite(value):
                return False
            trial.report(value, epoch)
            return hyperband and trial.should_prune()

        began = time.time()
        value, epochs_run = fn(params, data, epochs, 1000 * seed + trial.number, report)
        train_s = time.time() - began
        if epochs_run < 0:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value if math.isfinite(value) else 10.0)
        lines.append(
            json.dumps(
                {
                    "t": time.time() - start,
                    "v": value,
                    "pruned": epochs_run < 0,
                    "epochs": abs(epochs_run),
                    "n": trial.number,
                    "train_s": train_s,
                }
            )
        )
    Path(out).write_text("\n".join(lines))


def _reached(trials: list[Any], target: float) -> bool:
    """The first 48 trials are finished and a completed one reached ``target``."""
    import optuna

    final = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    first = [t for t in trials if t.number < TRIALS]
    done = len(first) == TRIALS and all(t.state in final for t in first)
    best = min(
        (t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None),
        default=math.inf,
    )
    return done and best <= target


def run_optuna(
    dataset: str,
    seed: int,
    epochs: int,
    engine: str,
    hyperband: bool,
    target: float | None = None,
    factor: int = 1,
) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        journal = f"{tmp}/journal.log"
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
        optuna.create_study(study_name="fidelity", storage=storage, direction="minimize")
        start = time.time()
        procs = [
            mp.get_context("spawn").Process(
                target=_optuna_worker,
                args=(
                    (
                        journal, dataset, seed, epochs, engine, hyperband, f"{tmp}/out{w}", w, start, target,
                        factor * TRIALS,
                    ),
                ),
            )
            for w in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        seconds = time.time() - start
        rows = [
            json.loads(line)
            for w in range(2)
            for line in Path(f"{tmp}/out{w}").read_text().splitlines()
            if line
        ]
    trace = sorted(
        (r["t"], r["v"], int(r["n"] < TRIALS)) for r in rows if not r["pruned"] and math.isfinite(r["v"])
    )
    return {
        "trace": trace,
        "epochs": sum(r["epochs"] for r in rows if r["n"] < TRIALS),
        "epochs_all": sum(r["epochs"] for r in rows),
        "train_seconds": sum(r["train_s"] for r in rows),
        "seconds": seconds,
    }


def run(
    method: str, dataset: str, seed: int, epochs: int, target: float | None, factor: int
) -> dict[str, Any]:
    if method.startswith("caviar"):
        per_round = 12 if method.endswith("-12") else 4
        return run_caviar(dataset, seed, epochs, method != "caviar", per_round, target, factor)
    if method == "top-k":
        return run_topk(dataset, seed, epochs)
    engine = "torch" if "torch" in method else "caviar"
    return run_optuna(dataset, seed, epochs, engine, method.endswith("-hb"), target, factor)


# --- report ---------------------------------------------------------------------------------------------


def time_to(trace: list[list[float]], target: float) -> float:
    best = math.inf
    for t, v, *_ in sorted(trace):
        best = min(best, v)
        if best <= target:
            return t
    return math.inf


def best_of_first(row: dict[str, Any]) -> float:
    """Best fully trained loss among the first 48 configurations."""
    return min((v for _, v, first in row["trace"] if first), default=math.inf)


def epochs_to(row: dict[str, Any], target: float) -> float:
    """Epochs a caviar study trained up to the end of the first round whose best reached ``target``."""
    spent, best = 0, math.inf
    for e, b in zip(row.get("round_epochs", []), row.get("round_best", []), strict=True):
        spent, best = spent + e, min(best, b)
        if best <= target:
            return float(spent)
    return math.inf


def targets(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per dataset: the median over seeds of the reference runs' best (optuna-torch, 48 full trials)."""
    ref: dict[str, list[float]] = {}
    for r in rows:
        if r.get("phase") == "ref":
            ref.setdefault(r["dataset"], []).append(best_of_first(r))
    return {d: float(np.median(v)) for d, v in ref.items()}


def report(rows: list[dict[str, Any]], datasets: list[str], methods: list[str]) -> str:
    out = [
        "| dataset | method | median best of 48 | median epochs of 48 | median time to target | reached | "
        "vs optuna-torch-hb | training share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    target_of = targets(rows)
    runs = [r for r in rows if r.get("phase") != "ref"]
    # Without extended optuna-torch runs, its reference runs (48 trials, no extension) stand for it.
    for d in datasets:
        if not any(r["dataset"] == d and r["method"] == "optuna-torch" for r in runs):
            runs += [r for r in rows if r.get("phase") == "ref" and r["dataset"] == d]
    for d in datasets:
        if d not in target_of:
            continue
        target = target_of[d]
        ttq: dict[str, float] = {}
        for m in methods:
            sel = [r for r in runs if r["dataset"] == d and r["method"] == m]
            if sel:
                ttq[m] = float(np.median([time_to(r["trace"], target) for r in sel]))
        base = ttq.get("optuna-torch-hb", math.nan)
        for m in methods:
            sel = [r for r in runs if r["dataset"] == d and r["method"] == m]
            if not sel:
                continue
            reached = sum(math.isfinite(time_to(r["trace"], target)) for r in sel)
            ratio = base / ttq[m] if math.isfinite(ttq[m]) and math.isfinite(base) else math.nan
            share = np.median([r["train_seconds"] / (2 * r["seconds"]) for r in sel])
            out.append(
                f"| {d} | {m} | {np.median([best_of_first(r) for r in sel]):.4f} | "
                f"{np.median([r['epochs'] for r in sel]):.0f} | {ttq[m]:.1f} s | {reached}/{len(sel)} | "
                f"{ratio:.1f}× | {share:.0%} |"
            )
        n_ref = sum(1 for r in rows if r.get("phase") == "ref" and r["dataset"] == d)
        out.append(f"| {d} | target: median best of optuna-torch at 48, {n_ref} seeds | {target:.4f} |||||")
        plain = [epochs_to(r, target) for r in runs if r["dataset"] == d and r["method"] == "caviar"]
        for m in ("caviar-halving", "caviar-halving-12"):
            pruned = [epochs_to(r, target) for r in runs if r["dataset"] == d and r["method"] == m]
            if pruned and plain:
                a, b = float(np.median(pruned)), float(np.median(plain))
                out.append(
                    f"| {d} | median epochs to target, {m} / caviar | {a:.0f} / {b:.0f} = {a / b:.2f} "
                    "| | | | | |"
                )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in and args_in[0] == "table":  # python bench/fidelity.py table A.json B.json: runs merged
        rows = [r for path in args_in[1:] for r in json.loads(Path(path).read_text())]
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
        print(f"# bench/fidelity.py {' '.join(args_in)}: seeds {sorted({r['seed'] for r in rows})}")
        print(report(rows, datasets, methods))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="digits,mnist1d")
    p.add_argument("--methods", default=",".join(m for m in METHODS if m != "optuna-torch"))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", dest="first_seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--factor", type=int, default=3, help="the extended budget, in multiples of 48")
    p.add_argument("--reference", type=Path, help="take the reference runs from this --json instead")
    p.add_argument("--json", type=Path, help="write every run here (after each one)")
    args = p.parse_args(argv)
    datasets, methods = args.datasets.split(","), args.methods.split(",")
    from core.nn import warmup

    warmup(("float32",))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()

    def record(r: dict[str, Any]) -> None:
        rows.append(r)
        print(
            f"  {r['phase']:3} {r['dataset']:8} {r['method']:17} seed {r['seed']:2}: best of 48 "
            f"{best_of_first(r):.4f}, {r['epochs']} epochs, {r['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(rows))

    if args.reference:
        rows.extend(r for r in json.loads(args.reference.read_text()) if r.get("phase") == "ref")
    else:
        for seed in seeds:
            for d in datasets:
                record({"dataset": d, "method": "optuna-torch", "seed": seed, "phase": "ref",
                        **run("optuna-torch", d, seed, args.epochs, None, 1)})
    target_of = targets(rows)
    print(f"# targets: {target_of}", file=sys.stderr, flush=True)
    for seed in seeds:
        for d in datasets:
            for m in methods:
                record({"dataset": d, "method": m, "seed": seed, "phase": "run",
                        **run(m, d, seed, args.epochs, target_of[d], args.factor)})
    import optuna
    import torch

    print(f"# bench/fidelity.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(
        f"# {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, 2 processes per method, "
        f"{time.perf_counter() - began:.0f} s; optuna {optuna.__version__}, torch {torch.__version__}; "
        f"{TRIALS} configurations (up to {args.factor * TRIALS} to reach the target), {args.epochs} epochs "
        "of adam"
    )
    print(report(rows, datasets, [m for m in METHODS if any(r["method"] == m for r in rows)]))


if __name__ == "__main__":
    main()
