"""plan_round's answers pinned: a study in a database must resume with exactly the trials it started with.

The version 1 digests (grid, random, sobol and coarse-to-fine with ``version = 1``) were computed with
the code as it stood before strategies became objects behind one interface, and still hold: version 1
is kept, unchanged, for the studies that ask for it. Its "defaults" case names the old defaults
(3 rounds of 16) explicitly, since the defaults are now version 2's (12 rounds of 4).

Coarse-to-fine version 2 (the trust region and its model) became the default with new plans, pinned
below as they were first computed; any change to a digest changes what a resumed study runs, so it
must be deliberate. (They include a Gaussian-process fit, so they pin this platform's floating point:
a different BLAS may move a Thompson-sampling pick.)
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from core.search import load_study, plan_round

SPACE = """
learning_rate = { log = [1e-4, 1e-1] }
beta1 = { one_minus_log = [0.9, 0.999] }
hidden_units = { int = [8, 256], log = true }
norm = { choice = ["batch", "layer", "group", "none"] }
"""


def study(
    strategy: str = "coarse-to-fine",
    knobs: str = "",
    fixed: str = "",
    objective: str = "val_loss",
    seed: int = 0,
) -> str:
    return (
        f'[study]\nname = "t"\ndataset = "digits"\nobjective = "{objective}"\nstrategy = "{strategy}"\n'
        f"seed = {seed}\n[strategy]\n{knobs}\n[fixed]\n{fixed}\n[space]\n{SPACE}"
    )


def synthetic(p: dict) -> float:
    """A smooth bowl with its minimum inside the space (norm != layer costs 2)."""
    return (
        (math.log10(p["learning_rate"]) + 2.3) ** 2
        + 0.3 * (math.log10(1 - p["beta1"]) + 1.8) ** 2
        + 0.5 * (math.log(p["hidden_units"] / 90)) ** 2
        + 2.0 * (p["norm"] != "layer")
    )


def mixed(p: dict) -> float | None:
    """The bowl, with failed (None), diverged (NaN) and infinite results where the settings are extreme."""
    if p["learning_rate"] > 3e-2:
        return math.nan
    if p["hidden_units"] < 12:
        return None
    if p["beta1"] > 0.998:
        return math.inf
    return synthetic(p)


def accuracy(p: dict) -> float | None:
    v = mixed(p)
    return v if v is None or not math.isfinite(v) else 1.0 / (1.0 + v)


def _round10(v):
    # Regions are not rounded like trials are; 10 digits keep the digest free of last-bit libm noise.
    return float(f"{v:.10g}") if isinstance(v, float) else v


def replay(text: str, objective) -> tuple[list[int], str]:
    """Every round of the study, each trial scored by ``objective``: (trials per round, digest)."""
    spec = load_study(text)
    previous: list = []
    rounds = []
    while (plan := plan_round(spec, previous)) is not None:
        region = {k: [_round10(x) for x in v] for k, v in plan.region.items()}
        rounds.append([plan.index, region, plan.trials])
        previous.append([(t, objective(t)) for t in plan.trials])
    digest = hashlib.sha256(json.dumps(rounds).encode()).hexdigest()[:16]
    return [len(r[2]) for r in rounds], digest


KNOBS = "version = 1\nrounds = 4\ntrials_per_round = 12\nkeep_top = 3\nmargin = 0.5"

#: (case, study text, objective, trials per round, digest)
PINS = [
    ("grid", study("grid", "points_per_dim = 2"), synthetic, [32], "0929768d3f8c543b"),
    (
        "grid per key",
        study("grid", "points_per_dim = { learning_rate = 3, beta1 = 2, hidden_units = 4 }", "groups = 8"),
        synthetic,
        [96],
        "8efb7449435ebf42",
    ),
    ("random", study("random", "trials = 40", "groups = 8", seed=3), synthetic, [40], "a40181a29c9d16dd"),
    ("sobol", study("sobol", "trials = 33", seed=5), synthetic, [33], "41426c9e718b7422"),
    (
        "coarse-to-fine v1 defaults",
        study(knobs="version = 1\nrounds = 3\ntrials_per_round = 16", seed=1),
        synthetic,
        [16, 16, 16],
        "b5305e06f8164dd9",
    ),
    ("coarse-to-fine mixed results", study(knobs=KNOBS, seed=7), mixed, [12, 12, 12, 12], "e7b6317b4580b2ce"),
    (
        "coarse-to-fine accuracy",
        study(knobs=KNOBS + '\nsampler = "sobol"', seed=7, objective="val_accuracy"),
        accuracy,
        [12, 12, 12, 12],
        "d361ba930b2a56f2",
    ),
    (
        "coarse-to-fine patience",
        study(knobs="version = 1\nrounds = 10\ntrials_per_round = 4\nkeep_top = 2\n"
              "margin = 1.0\npatience = 1", seed=2),
        lambda p: 0.0,
        [4, 4],
        "32efa7c01dd7fed1",
    ),
]


@pytest.mark.parametrize("case, text, objective, sizes, digest", PINS, ids=[p[0] for p in PINS])
def test_plans_are_pinned(case, text, objective, sizes, digest):
    assert replay(text, objective) == (sizes, digest)


def test_first_trials_are_pinned():
    spec = load_study(study(knobs=KNOBS, seed=7))
    first = plan_round(spec, [])
    second = plan_round(spec, [[(t, mixed(t)) for t in first.trials]])
    assert (first.trials[0], second.index, second.trials[0]) == (
        {"learning_rate": 0.003987754732, "beta1": 0.9509642682, "hidden_units": 12, "norm": "group"},
        1,
        {"learning_rate": 0.006829401805, "beta1": 0.9790785749, "hidden_units": 9, "norm": "layer"},
    )
