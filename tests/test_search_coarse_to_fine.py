"""Coarse-to-fine version 2 (the trust region and its model): what it promises, checked over many seeds.

Every check here is deterministic (fixed seeds, a pure planner), so a pass is not luck: the counts are
what these seeds give, with a margin for a different BLAS moving a pick.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.search import CoarseToFine, Proposal, SearchSpace, Stop, load_study, parse_stored, plan_round
from core.search.strategies.coarse_to_fine import Tuning, _choice_probs
from core.search.strategies.trust_region import Controller, RegionState, advance

ROOT = Path(__file__).resolve().parents[1]

SPACE = SearchSpace.from_dict(
    {
        "learning_rate": {"log": [1e-4, 1e-1]},
        "beta1": {"one_minus_log": [0.9, 0.999]},
        "hidden_units": {"int": [8, 256], "log": True},
        "lr_decay": {"uniform": [0.0, 1.0]},
        "norm": {"choice": ["batch", "layer", "group", "none"]},
    }
)
#: The bowl's minimum, in unit coordinates of the numeric keys (off-centre on every axis), norm = "layer".
OPT_UNIT = {"learning_rate": 0.566, "beta1": 0.4, "hidden_units": 0.7, "lr_decay": 0.27}


def optimum() -> dict:
    u = np.array([OPT_UNIT.get(k, 0.5) for k in SPACE.names])
    return {**SPACE.from_unit(u), "norm": "layer"}


def bowl(p: dict) -> float:
    """Squared unit-space distance to the optimum, plus 0.5 for a wrong normalization."""
    u = dict(zip(SPACE.names, SPACE.to_unit(p), strict=True))
    return sum((u[k] - o) ** 2 for k, o in OPT_UNIT.items()) + 0.5 * (p["norm"] != "layer")


def contains(region: dict, point: dict) -> bool:
    for k, d in SPACE.dims.items():
        r = region[k]
        if d.kind == "choice":
            if point[k] not in r:
                return False
        elif not r[0] <= point[k] <= r[1]:
            return False
    return True


def run(strategy, objective) -> tuple[list[Proposal], list[list[tuple[dict, float]]], Stop]:
    plans, rounds = [], []
    while isinstance(plan := strategy.plan(rounds), Proposal):
        plans.append(plan)
        rounds.append([(t, objective(t)) for t in plan.trials])
    return plans, rounds, plan


@pytest.mark.parametrize("per_round, near", [(4, 0.1), (12, 0.2)])
def test_on_a_bowl_the_final_region_holds_the_optimum_in_nearly_every_seed(per_round, near):
    # Measured with 48 trials: the final region held the optimum in 37 of 40 seeds in rounds of 4 and 36
    # of 40 in rounds of 12 (the misses are near-misses around a best trial already close); the best
    # trial came within 0.1 unit in 40 of 40 (rounds of 4), within 0.2 in 38 of 40 (rounds of 12: only
    # three rounds after the wide one).
    opt, held, close = optimum(), 0, 0
    for seed in range(40):
        c2f = CoarseToFine(SPACE, rounds=48 // per_round, trials_per_round=per_round, seed=seed)
        plans, rounds, stop = run(c2f, bowl)
        assert stop.reason == "rounds" and sum(map(len, rounds)) == 48
        held += contains(plans[-1].region.region(), opt)
        close += min(v for r in rounds for _, v in r) < near**2
    assert held >= 35, f"the final region held the optimum in {held} of 40 seeds"
    assert close >= 37, f"the best trial came within {near} unit of the optimum in {close} of 40 seeds"


def test_the_side_doubles_after_successes_halves_after_failures_and_restarts_when_too_small():
    c = Controller(init_length=0.8, min_length=0.1, success_streak=2, failure_streak=2)
    s = advance(RegionState(0.8), [5.0], True, c)  # a wide round sets the best, changes no streak
    assert (s.length, s.best, s.successes, s.failures) == (0.8, 5.0, 0, 0)
    s = advance(advance(s, [4.0], False, c), [3.0], False, c)
    assert s.length == 1.6 and s.best == 3.0
    s = advance(s, [3.0], False, c)  # no improvement: one failure, not yet a halving
    assert (s.length, s.failures) == (1.6, 1)
    for expected in (0.8, 0.4, 0.2):
        s = advance(advance(s, [9.0], False, c), [3.0], False, c)
        assert s.length == expected
    assert not s.restart
    s = advance(s, [9.0], False, c)  # the second failure in a row: 0.2 -> 0.1, still allowed
    assert (s.length, s.restart) == (0.1, False)
    s = advance(advance(s, [9.0], False, c), [9.0], False, c)  # 0.1 -> 0.05 < min: restart
    assert s.restart and s.restarts == 1 and s.length == 0.8 and s.best == math.inf and s.epoch == s.rounds


def test_a_region_stuck_on_a_plateau_restarts_wide_then_moves_to_a_better_basin():
    # A wrong basin: every configuration scores the same except a far corner found only after a restart.
    def far(p: dict) -> bool:
        return p["learning_rate"] > 0.03 and p["lr_decay"] > 0.8

    c2f = CoarseToFine(SPACE, rounds=40, trials_per_round=4, seed=3)
    plans, rounds, _ = run(c2f, lambda p: 0.1 if far(p) else 1.0)
    widths = [np.prod([b - a for a, b in zip(*_unit_box(p.region), strict=True)]) for p in plans]
    whole = [k for k, p in enumerate(plans) if np.isclose(widths[k], 1.0)]
    startup = c2f.startup_trials // 4
    assert whole[:startup] == list(range(startup))
    restarts = [k for k in whole if k >= startup]
    assert restarts, "the region never restarted on a plateau"
    k = restarts[0]
    assert all(widths[j + 1] < widths[j] for j in range(startup, k - 1)), "a failing region must shrink"
    hit = next(j for j, r in enumerate(rounds) if any(far(p) for p, _ in r))
    assert hit < len(plans) - 1, "the far corner was never found"
    later = [plans[j].region.region() for j in range(hit + 1, len(plans)) if not np.isclose(widths[j], 1.0)]
    assert later and all(r["learning_rate"][1] > 0.03 and r["lr_decay"][1] > 0.8 for r in later[:3])


def test_a_region_grows_again_after_improving_rounds():
    c2f = CoarseToFine(SPACE, rounds=14, trials_per_round=4, seed=5)
    calls = iter(range(10**6))
    plans, _, _ = run(c2f, lambda p: 1.0 / (1 + next(calls)))  # every trial beats every earlier one
    widths = [np.prod([b - a for a, b in zip(*_unit_box(p.region), strict=True)]) for p in plans]
    grew = [
        k for k in range(1, len(widths)) if widths[k] > 1.5 * widths[k - 1] and not np.isclose(widths[k], 1)
    ]
    assert grew, f"no region grew after three successes: {widths}"


def _unit_box(region: SearchSpace) -> tuple[list[float], list[float]]:
    """The region's numeric intervals in unit coordinates, scaled so that the whole space is [0, 1]."""
    lows, highs = [], []
    for k, d in region.dims.items():
        whole = SPACE.dims[k]
        if d.kind == "choice":
            continue
        (a, b), (lo, hi) = (whole.to_unit(x) for x in whole.region()), (whole.to_unit(x) for x in d.region())
        lows.append((lo - a) / (b - a))
        highs.append((hi - a) / (b - a))
    return lows, highs


STUDY = """[study]
name = "replay"
dataset = "digits"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 11
[strategy]
rounds = 10
trials_per_round = 3
[space]
learning_rate = { log = [1e-4, 1e-1] }
beta1 = { one_minus_log = [0.9, 0.999] }
hidden_units = { int = [8, 256], log = true }
layers = { int = [1, 3] }
norm = { choice = ["batch", "layer", "group", "none"] }
"""

REPLAY = """
import json, sys
from core.search import load_study, plan_round
text, rounds = json.load(sys.stdin)
plan = plan_round(load_study(text), [[(p, v) for p, v in r] for r in rounds])
print(json.dumps({"index": plan.index, "region": plan.region, "trials": plan.trials}))
"""


def test_any_process_plans_the_same_round_from_the_stored_results():
    def value(p: dict) -> float:
        return (
            bowl({**p, "lr_decay": 0.27})
            + 0.05 * p["layers"]
            + (math.nan if p["learning_rate"] > 0.05 else 0)
        )

    spec = load_study(STUDY)
    rounds: list[list[tuple[dict, float]]] = []
    plans = []
    while (plan := plan_round(spec, rounds)) is not None:
        plans.append(plan)
        rounds.append([(t, value(t)) for t in plan.trials])
    assert len(plans) == 10 and any(math.isnan(v) for r in rounds for _, v in r)
    again = []
    for k in range(len(plans)):
        again.append(plan_round(load_study(STUDY), rounds[:k]))
    assert [(p.region, p.trials) for p in again] == [(p.region, p.trials) for p in plans]
    # A fresh interpreter (what a worker or a resumed run is) from results as the store gives them back.
    for k in (2, 6, 9):
        stored = [[(p, None if math.isnan(v) else v) for p, v in r] for r in rounds[:k]]
        out = subprocess.run(
            [sys.executable, "-c", REPLAY],
            input=json.dumps([STUDY, stored]),
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        got = json.loads(out.stdout)
        assert got == json.loads(
            json.dumps({"index": k, "region": plans[k].region, "trials": plans[k].trials})
        )


@pytest.mark.parametrize("per_round", [1, 2, 3, 5, 8, 16])
def test_no_configuration_twice_and_better_than_random_at_any_round_size(per_round):
    budget = 32 if per_round < 4 else 48
    wins = 0
    for seed in range(8):
        c2f = CoarseToFine(SPACE, rounds=math.ceil(budget / per_round), trials_per_round=per_round, seed=seed)
        _, rounds, _ = run(c2f, bowl)
        keys = [SPACE.key(p) for r in rounds for p, _ in r]
        assert len(keys) == len(set(keys)) and all(len(r) == per_round for r in rounds)
        rng = np.random.default_rng(seed)
        random_best = min(bowl({**SPACE.from_unit(rng.random(len(SPACE))), "norm": "layer"}) for _ in keys)
        wins += min(v for r in rounds for _, v in r) < random_best
    # Random search here even gets the right normalization for free; coarse-to-fine must still win.
    assert wins >= 7, f"coarse-to-fine beat random search in {wins} of 8 seeds"


def test_a_small_discrete_space_is_used_up_without_repeats_then_stops():
    space = SearchSpace.from_dict(
        {
            "layers": {"int": [1, 3]},
            "norm": {"choice": ["batch", "layer", "none"]},
            "batch_size": {"choice": [32, 64]},
        }
    )
    c2f = CoarseToFine(space, rounds=20, trials_per_round=4, seed=0)
    _, rounds, stop = run(
        c2f, lambda p: abs(p["layers"] - 2) + (p["norm"] != "layer") + 0.1 * (p["batch_size"] == 32)
    )
    keys = [space.key(p) for r in rounds for p, _ in r]
    assert len(keys) == len(set(keys)) == 18 and stop.reason == "exhausted"


def test_choices_are_never_dropped():
    good = [{"norm": "layer"}] * 9 + [{"norm": "batch"}]
    probs = _choice_probs(SPACE, [{**optimum(), **g} for g in good])[SPACE.names.index("norm")]
    assert probs.argmax() == SPACE.dims["norm"].choices.index("layer") and (probs > 0.02).all()
    c2f = CoarseToFine(SPACE, rounds=12, trials_per_round=4, seed=1)
    plans, rounds, _ = run(c2f, bowl)
    assert all(p.region.region()["norm"] == list(SPACE.dims["norm"].choices) for p in plans)


def test_every_example_and_an_old_style_study_file_still_validate():
    from service.study_file import load_study_file

    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        spec = load_study_file(path)
        assert spec.strategy_obj.budget > 0
    # The knobs of a study written for version 1, with keep_top above the new default round size.
    old = STUDY.replace(
        "trials_per_round = 3", "trials_per_round = 16\nkeep_top = 6\nmargin = 0.5\npatience = 3"
    )
    spec = load_study(old)
    assert (spec.options["version"], spec.options["keep_top"], spec.strategy_obj.budget) == (2, 6, 160)
    assert plan_round(spec, []) is not None


def test_a_study_stored_before_version_2_resumes_with_version_1():
    stored = load_study(STUDY.replace("trials_per_round = 3", "trials_per_round = 6")).to_dict()
    assert stored["strategy"]["version"] == 2
    del stored["strategy"]["version"]
    spec = parse_stored(stored)
    v1 = load_study(STUDY.replace("trials_per_round = 3", "trials_per_round = 6\nversion = 1"))
    first = plan_round(v1, [])
    assert plan_round(spec, []).trials == first.trials
    results = [[(t, bowl({**t, "lr_decay": 0.27})) for t in first.trials]]
    assert plan_round(spec, results).region == plan_round(v1, results).region


@pytest.mark.parametrize(
    "tuning",
    [Tuning(acquisition="ei"), Tuning(shape="lengthscale"), Tuning(shape="both", transform="standard")],
    ids=["ei", "lengthscale", "both-standard"],
)
def test_the_measured_alternatives_still_plan_deterministically(tuning):
    def plan_all():
        c2f = CoarseToFine(SPACE, rounds=5, trials_per_round=4, seed=2, tuning=tuning)
        plans, rounds, _ = run(c2f, bowl)
        return [(p.region.region(), p.trials) for p in plans], rounds

    first, rounds = plan_all()
    assert plan_all()[0] == first and len(first) == 5
    keys = [SPACE.key(p) for r in rounds for p, _ in r]
    assert len(keys) == len(set(keys))
