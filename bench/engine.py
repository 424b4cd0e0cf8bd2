"""Benchmark: caviar's Numba engine against PyTorch on the CPU, and against the sgemm ceiling.

Both engines train the same network (Linear without bias → BatchNorm1d → ReLU, twice, then a
Linear with bias and softmax cross-entropy; Adam, lr 1e-3) on the same synthetic data, with the
same batch size, epochs and loop shape (shuffle each epoch, gather a mini-batch, forward,
backward, step). Each setting runs in a fresh child process so that the BLAS and Numba thread
counts are fixed before Python starts: ``1`` thread, then all cores.

The ceiling is what the training step's own matrix products allow: the 8 GEMMs of one step
(3 forward, 3 weight gradients, 2 input gradients; FLOPs per sample ≈ 6·P_w − 2·d0·d1) are timed
alone, single-threaded, through the same BLAS our kernels call (numba's ``np.dot``), in the same
run. ceiling samples/s = achieved GFLOP/s of those GEMMs ÷ FLOPs per sample; "share" is our
samples/s over that ceiling. A large square sgemm is timed too, for reference.

Usage::

    python bench/engine.py            # full table (a few minutes)
    python bench/engine.py --quick    # batch 128 only, fewer samples
    python bench/engine.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

SHAPES = {"64-128-128-10": (64, 128, 10), "784-256-256-10": (784, 256, 10)}
BATCHES = (64, 128, 512)
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def synthetic(n: int, d0: int, classes: int, seed: int = 0) -> SimpleNamespace:
    """Separable-ish data from a random linear teacher: (n, d0) float32 and labels 0..classes−1."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d0)).astype(np.float32)
    teacher = rng.standard_normal((d0, classes)).astype(np.float32)
    y = np.argmax(X @ teacher + 0.5 * rng.standard_normal((n, classes)), axis=1).astype(np.int64)
    nval = 256
    return SimpleNamespace(X_train=X, y_train=y, X_val=X[:nval].copy(), y_val=y[:nval].copy(),
                           n_classes=classes, classes=list(range(classes)))


def run_caviar(data: SimpleNamespace, hidden: int, batch: int, epochs: int) -> float:
    """Training samples/s of core.nn.train (compilation excluded, validation excluded)."""
    from core import hparams
    from core.nn import train, warmup

    warmup(("float32",))
    config = hparams.resolve({
        "layers": 2, "hidden_units": hidden, "norm": "batch", "activation": "relu", "optimizer": "adam",
        "learning_rate": 1e-3, "batch_size": batch, "epochs": epochs,
    })
    result = train(config, data)
    assert result.status == "complete", result.status
    return float(result.samples_per_second)


def run_torch(data: SimpleNamespace, hidden: int, batch: int, epochs: int, threads: int) -> float:
    """Training samples/s of the equivalent PyTorch loop (one untimed warm-up epoch first)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d0, classes = data.X_train.shape[1], data.n_classes
    model = torch.nn.Sequential(
        torch.nn.Linear(d0, hidden, bias=False), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden, bias=False), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, classes),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.from_numpy(data.X_train)
    y = torch.from_numpy(data.y_train)
    n = X.shape[0]
    loss_fn = torch.nn.functional.cross_entropy

    def epoch() -> None:
        perm = torch.randperm(n)
        for start in range(0, n - batch + 1, batch):
            idx = perm[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()

    model.train()
    epoch()
    t = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return epochs * (n // batch) * batch / (time.perf_counter() - t)


def flops_per_sample(d0: int, hidden: int, classes: int) -> float:
    """≈ 6·P_w − 2·d0·d1: forward, weight gradients and input gradients but the first layer's."""
    pw = d0 * hidden + hidden * hidden + hidden * classes
    return 6.0 * pw - 2.0 * d0 * hidden


def gemm_ceiling(d0: int, hidden: int, classes: int, batch: int,
                 min_seconds: float = 0.3) -> dict[str, float]:
    """Time the 8 GEMMs of one training step, single-threaded, through numba's np.dot."""
    from numba import njit

    @njit(cache=False)
    def step_gemms(x, w0, w1, w2, z0, z1, z2, g0, g1, g2, d1, d2, reps):
        for _ in range(reps):
            np.dot(x, w0, z0)
            np.dot(z0, w1, z1)
            np.dot(z1, w2, z2)
            np.dot(z1.T, z2, g2)
            np.dot(z2, w2.T, d2)
            np.dot(z0.T, d2, g1)
            np.dot(d2, w1.T, d1)
            np.dot(x.T, d1, g0)

    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    args = (r(batch, d0), r(d0, hidden), r(hidden, hidden), r(hidden, classes), r(batch, hidden),
            r(batch, hidden), r(batch, classes), r(d0, hidden), r(hidden, hidden), r(hidden, classes),
            r(batch, hidden), r(batch, hidden))
    step_gemms(*args, 1)
    reps = 8
    while True:
        t = time.perf_counter()
        step_gemms(*args, reps)
        dt = time.perf_counter() - t
        if dt >= min_seconds:
            break
        reps *= 2
    best = dt
    for _ in range(2):
        t = time.perf_counter()
        step_gemms(*args, reps)
        best = min(best, time.perf_counter() - t)
    samples_per_s = reps * batch / best
    return {"ceiling": samples_per_s, "gflops": samples_per_s * flops_per_sample(d0, hidden, classes) / 1e9}


def square_sgemm_gflops(n: int = 1024) -> float:
    from numba import njit

    @njit(cache=False)
    def mm(a, b, c, reps):
        for _ in range(reps):
            np.dot(a, b, c)

    a = np.ones((n, n), np.float32)
    c = np.empty_like(a)
    mm(a, a, c, 1)
    t = time.perf_counter()
    mm(a, a, c, 5)
    return 5 * 2 * n**3 / (time.perf_counter() - t) / 1e9


def child(args: argparse.Namespace) -> None:
    """Measure every (shape, batch) for one thread setting; print one JSON object per line."""
    threads = int(os.environ["OPENBLAS_NUM_THREADS"])
    batches = (128,) if args.quick else BATCHES
    if threads == 1:
        print(json.dumps({"kind": "sgemm", "gflops": square_sgemm_gflops()}), flush=True)
    for name, (d0, hidden, classes) in SHAPES.items():
        n = args.samples or (4096 if args.quick else (8192 if d0 > 100 else 16384))
        data = synthetic(n, d0, classes)
        for batch in batches:
            row: dict[str, Any] = {"kind": "row", "threads": threads, "shape": name, "batch": batch}
            ours, theirs = [], []
            for _ in range(args.repeats):  # interleaved, best of each: the machine may be shared
                ours.append(run_caviar(data, hidden, batch, args.epochs))
                theirs.append(run_torch(data, hidden, batch, args.epochs, threads))
            row["caviar"], row["torch"] = max(ours), max(theirs)
            if threads == 1:
                row.update(gemm_ceiling(d0, hidden, classes, batch))
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 128 only, 4096 samples")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per engine; the best counts (default 2)")
    parser.add_argument("--samples", type=int, default=0, help="training samples (default by shape)")
    parser.add_argument("--threads", default="1,all", help="thread settings, e.g. '1' or '1,all'")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows: list[dict[str, Any]] = []
    sgemm = float("nan")
    for setting in args.threads.split(","):
        threads = (os.cpu_count() or 1) if setting == "all" else int(setting)
        env = {**os.environ, **{v: str(threads) for v in _THREAD_VARS}}
        cmd = [sys.executable, __file__, "--child", "--epochs", str(args.epochs),
               "--repeats", str(args.repeats), "--samples", str(args.samples)]
        cmd += ["--quick"] if args.quick else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"benchmark child failed ({threads} threads): {proc.stderr.strip().splitlines()[-1:]}")
        for line in proc.stdout.splitlines():
            obj = json.loads(line)
            if obj["kind"] == "sgemm":
                sgemm = obj["gflops"]
            else:
                rows.append(obj)
    ceilings = {(r["shape"], r["batch"]): r for r in rows if "ceiling" in r}
    if sgemm == sgemm:  # measured in the 1-thread child only
        print(f"large sgemm (1024², 1 thread, numba np.dot): {sgemm:.0f} GFLOP/s")
    header = (f"{'threads':>7} {'shape':>15} {'batch':>5} {'caviar/s':>10} {'torch/s':>10} {'ratio':>6} "
              f"{'GEMM GF/s':>9} {'ceiling/s':>10} {'share':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        # the ceiling is a single-core figure: shown on the 1-thread rows only
        c = ceilings.get((r["shape"], r["batch"])) if r["threads"] == 1 else None
        tail = (f"{c['gflops']:>9.0f} {c['ceiling']:>10,.0f} {r['caviar'] / c['ceiling']:>6.0%}" if c
                else f"{'-':>9} {'-':>10} {'-':>6}")
        print(f"{r['threads']:>7} {r['shape']:>15} {r['batch']:>5} {r['caviar']:>10,.0f} "
              f"{r['torch']:>10,.0f} {r['caviar'] / r['torch']:>5.2f}x {tail}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"sgemm_gflops": sgemm, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
