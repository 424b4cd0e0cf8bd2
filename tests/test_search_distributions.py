"""Distributions: unit-interval maps, the chapter's sampling scales (7.2), and narrowing in unit space."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.search import Choice, Int, Log, OneMinusLog, SearchSpace, Uniform

N = 30_000
# Five standard errors of a proportion near 1/2 with N draws: a fixed-seed check that is not fragile.
TOL = 5 * math.sqrt(0.25 / N)


def draws(key: str, table: dict, seed: int) -> list:
    return [p[key] for p in SearchSpace.from_dict({key: table}).sample(N, seed)]


def test_log_puts_equal_mass_in_each_decade():
    # Given α = 10^r, r ~ U[-4, -1]
    values = np.array(draws("learning_rate", {"log": [1e-4, 1e-1]}, seed=1))
    # Then each of the three decades holds a third of the draws
    decades = np.floor(np.log10(values)).clip(-4, -2)
    for d in (-4, -3, -2):
        assert abs(np.mean(decades == d) - 1 / 3) < TOL
    # ... while a uniform draw would put 90% in the top decade
    assert np.mean(values > 1e-2) < 0.4


def test_one_minus_log_puts_half_of_0_9_to_0_999_above_0_99():
    values = np.array(draws("beta1", {"one_minus_log": [0.9, 0.999]}, seed=2))
    assert values.min() >= 0.9 and values.max() <= 0.999
    assert abs(np.mean(values > 0.99) - 0.5) < TOL
    # and 1 - β is log-uniform: a quarter of the draws have 1 - β < 10^-2.5
    assert abs(np.mean(values > 1 - 10**-2.5) - 0.25) < TOL


def test_uniform_int_and_choice_give_equal_mass_per_value():
    space = SearchSpace.from_dict({"layers": {"int": [1, 4]}, "norm": {"choice": ["batch", "layer", "none"]}})
    ps = space.sample(N, seed=3)
    for v in (1, 2, 3, 4):
        assert abs(np.mean([p["layers"] == v for p in ps]) - 0.25) < TOL
    for c in ("batch", "layer", "none"):
        assert abs(np.mean([p["norm"] == c for p in ps]) - 1 / 3) < TOL
    assert all(isinstance(p["layers"], int) for p in ps)


def test_log_int_gives_equal_mass_per_octave():
    values = np.array(draws("hidden_units", {"int": [32, 512], "log": True}, seed=4))
    low, high = np.mean(values < 64), np.mean(values >= 256)
    assert abs(low - high) < 2 * TOL
    assert 0.2 < low < 0.3


@pytest.mark.parametrize(
    "dist, values",
    [
        (Uniform(0.0, 2.0), [0.0, 0.5, 2.0]),
        (Log(1e-4, 1e-1), [1e-4, 3e-3, 1e-1]),
        (OneMinusLog(0.9, 0.999), [0.9, 0.99, 0.999]),
        (Int(1, 16), [1, 7, 16]),
        (Int(32, 512, log=True), [32, 100, 512]),
        (Choice(("a", "b", "c")), ["a", "b", "c"]),
    ],
)
def test_unit_maps_round_trip(dist, values):
    for v in values:
        u = dist.to_unit(v)
        assert 0.0 <= u <= 1.0
        back = dist.from_unit(u)
        assert back == pytest.approx(v, rel=1e-12) if isinstance(v, float) else back == v
    # u is monotone in the value for ordered kinds
    if not isinstance(dist, Choice):
        us = [dist.to_unit(v) for v in values]
        assert us == sorted(us)


def test_zoom_happens_in_r_not_in_alpha():
    # Given the best learning rates 10^-3 and 10^-2 and a margin of 0.5 of their span in r
    narrowed = Log(1e-5, 1e-1).narrow([1e-3, 1e-2], margin=0.5)
    # Then the region is [10^-3.5, 10^-1.5], an interval of r (in α it would be [0, 0.0145])
    assert narrowed.low == pytest.approx(10**-3.5)
    assert narrowed.high == pytest.approx(10**-1.5)
    # and it is clipped to the parent
    clipped = Log(1e-5, 1e-1).narrow([1e-2, 1e-1], margin=1.0)
    assert clipped.high == pytest.approx(1e-1) and clipped.low == pytest.approx(1e-3)


def test_narrow_one_minus_log_int_and_choice():
    b = OneMinusLog(0.9, 0.999).narrow([0.99, 0.999], margin=0.0)
    assert (b.low, b.high) == (pytest.approx(0.99), pytest.approx(0.999))
    i = Int(1, 16).narrow([4, 6], margin=0.5)
    assert (i.low, i.high) == (3, 7)
    assert Int(1, 16).narrow([5, 5], margin=0.5).collapsed
    c = Choice(("batch", "layer", "none")).narrow(["none", "batch", "none"], margin=0.25)
    assert c.choices == ("batch", "none")


def test_collapse_is_reported():
    assert Uniform(0.3, 0.3).collapsed and not Uniform(0.3, 0.4).collapsed
    assert Choice(("a",)).collapsed
    space = SearchSpace({"a": Uniform(1.0, 1.0), "b": Choice(("x",))})
    assert space.collapsed and space.cardinality() == 1
