"""The objective value object: direction, "smaller is better" values, and plain-string storage."""

from __future__ import annotations

import json
import math

import pytest

from core.search import OBJECTIVES, Objective, importance, load_study, minimizing, parse_study

STUDY = """
[study]
name = "o"
dataset = "digits"
objective = "{objective}"
strategy = "random"
seed = 0
[space]
learning_rate = {{ log = [1e-4, 1e-1] }}
"""


def test_members_are_the_stored_strings():
    assert OBJECTIVES == ("val_loss", "val_accuracy") == tuple(Objective)
    for name in OBJECTIVES:
        o = Objective(name)
        assert o == name and str(o) == name and f"{o}" == name and json.dumps(o) == f'"{name}"'
    with pytest.raises(ValueError):
        Objective("loss")


def test_direction_and_other():
    loss, acc = Objective.VAL_LOSS, Objective.VAL_ACCURACY
    assert (loss.maximize, loss.direction, loss.other) == (False, "minimize", acc)
    assert (acc.maximize, acc.direction, acc.other) == (True, "maximize", loss)


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_failed_and_diverged_values_are_worst(bad):
    for o in Objective:
        assert o.minimizing(bad) == math.inf
        assert not o.better(bad, 1e6) and not o.better(bad, bad)
        assert o.better(0.5, bad)


def test_minimizing_and_better():
    loss, acc = Objective.VAL_LOSS, Objective.VAL_ACCURACY
    assert loss.minimizing(0.3) == 0.3 and acc.minimizing(0.9) == -0.9 and acc.minimizing(1) == -1.0
    assert loss.better(0.1, 0.2) and not loss.better(0.2, 0.1) and not loss.better(0.2, 0.2)
    assert acc.better(0.9, 0.8) and not acc.better(0.8, 0.9)
    assert sorted([0.7, None, 0.9, math.nan, 0.8], key=acc.minimizing)[:3] == [0.9, 0.8, 0.7]


def test_the_study_spec_holds_an_objective_and_stores_the_plain_string():
    for name in OBJECTIVES:
        spec = load_study(STUDY.format(objective=name))
        assert type(spec.objective) is Objective and spec.objective == name
        assert spec.maximize is spec.objective.maximize is (name == "val_accuracy")
        stored = spec.to_dict()["study"]["objective"]
        assert type(stored) is str and stored == name
        assert parse_study(json.loads(json.dumps(spec.to_dict()))) == spec
        assert minimizing(spec, 0.25) == spec.objective.minimizing(0.25)


def test_importance_follows_the_objective_and_its_override():
    spec = load_study(STUDY.format(objective="val_accuracy"))
    params = spec.space.sample(40, 0)
    acc = [None if p["learning_rate"] > 1e-2 else 0.9 for p in params]
    loss = [None if p["learning_rate"] > 1e-2 else -0.9 for p in params]
    # an accuracy of 0.9 is a loss of -0.9: the same ranking, the same shares
    assert importance(spec, params, acc) == importance(spec.space, params, loss)
    assert importance(spec.space, params, acc, maximize=True) == importance(spec, params, acc)
