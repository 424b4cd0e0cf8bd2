"""Importance: functional ANOVA of a random forest recovers which dimension matters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import BadInput
from core.search import CoarseToFine, SearchSpace, importance, load_study

SPACE = SearchSpace.from_dict(
    {
        "learning_rate": {"log": [1e-4, 1e-1]},
        "momentum": {"uniform": [0.0, 0.9]},
        "lr_decay": {"uniform": [0.0, 1.0]},
        "norm": {"choice": ["batch", "layer", "none"]},
    }
)


def f(p: dict) -> float:
    """The learning rate dominates, momentum matters a little, lr_decay and norm not at all."""
    r = math.log10(p["learning_rate"])
    return (r + 2.5) ** 2 + 0.3 * p["momentum"]


@pytest.mark.parametrize("seed", range(3))
def test_dominant_dimension_gets_most_of_the_variance(seed):
    params = SPACE.sample(120, seed)
    shares = importance(SPACE, params, [f(p) for p in params], seed=seed)
    assert set(shares) == set(SPACE.names)
    assert all(0.0 <= s <= 1.0 for s in shares.values()) and sum(shares.values()) <= 1.0 + 1e-9
    assert shares["learning_rate"] > 0.6
    assert shares["learning_rate"] > shares["momentum"] > shares["lr_decay"]
    assert shares["lr_decay"] < 0.05 and shares["norm"] < 0.05


def test_a_categorical_dimension_can_dominate():
    params = SPACE.sample(120, 5)
    shares = importance(SPACE, params, [3.0 * (p["norm"] == "none") + 0.1 * p["lr_decay"] for p in params])
    assert shares["norm"] > 0.7 and shares["learning_rate"] < 0.05


def test_diverged_trials_are_worst_and_accuracy_direction_is_handled():
    params = SPACE.sample(80, 6)
    # loss: diverges (NaN) when the learning rate is high, which is what makes it matter
    loss = [math.nan if p["learning_rate"] > 1e-2 else 1.0 for p in params]
    assert importance(SPACE, params, loss)["learning_rate"] > 0.6
    spec = load_study(
        '[study]\nname = "a"\ndataset = "iris"\nobjective = "val_accuracy"\nstrategy = "random"\nseed = 0\n'
        "[space]\nlearning_rate = { log = [1e-4, 1e-1] }\nmomentum = { uniform = [0.0, 0.9] }\n"
        'lr_decay = { uniform = [0.0, 1.0] }\nnorm = { choice = ["batch", "layer", "none"] }\n'
    )
    acc = [None if p["learning_rate"] > 1e-2 else 0.9 for p in params]
    assert importance(spec, params, acc)["learning_rate"] > 0.6


def test_constant_objective_and_too_few_trials():
    params = SPACE.sample(10, 0)
    assert set(importance(SPACE, params, [1.0] * 10).values()) == {0.0}
    with pytest.raises(BadInput) as info:
        importance(SPACE, params[:3], [1.0, 2.0, 3.0])
    assert info.value.field == "trials"


def test_narrow_important_keeps_irrelevant_dimensions_wide():
    # Given coarse-to-fine that narrows only the dimensions that matter
    kw = dict(rounds=2, trials_per_round=32, keep_top=6, margin=0.0, seed=3)
    both = {}
    for narrow in ("all", "important"):
        c2f = CoarseToFine(SPACE, narrow=narrow, **kw)
        trials = c2f.next_round([])
        c2f.next_round([(t, f(t)) for t in trials])
        both[narrow] = c2f.regions[1]
    # Then the learning rate is zoomed either way, and lr_decay (irrelevant) stays whole only with "important"
    assert both["important"]["lr_decay"] == [0.0, 1.0]
    assert both["important"]["norm"] == ["batch", "layer", "none"]
    assert both["all"]["lr_decay"] != [0.0, 1.0]
    lr_lo, lr_hi = both["important"]["learning_rate"]
    assert np.log10(lr_hi) - np.log10(lr_lo) < 2.0
