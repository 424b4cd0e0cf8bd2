"""The training-memory estimate (core.nn.memory) against what the engine really allocates, the cap's
settings, and a sampled trial above the cap recorded failed before it trains."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core.data import load_dataset
from core.errors import BadInput
from core.hparams import resolve
from core.nn.memory import estimate_bytes, format_bytes, parameter_count
from core.search import load_study
from service.settings import default_max_trial_memory, max_trial_memory, parse_bytes, usable_cores

#: (dataset, configuration) pairs measured against the engine: every kind of parameter block.
MEASURED = [
    ("digits", {"layers": 2, "hidden_units": 256, "batch_size": 64}),
    ("digits", {"layers": 3, "hidden_units": 128, "batch_size": 200, "norm": "switchable",
                "dtype": "float64"}),
    ("wine", {"layers": 1, "hidden_units": 512, "batch_size": 16, "norm": "weight"}),
    ("iris", {"layers": 2, "hidden_units": 8, "batch_size": 8, "norm": "group", "groups": 4}),
]


@pytest.mark.parametrize(
    ("name", "overrides"), MEASURED, ids=[f"{n}-{c.get('norm', 'batch')}" for n, c in MEASURED]
)
def test_estimate_is_within_a_factor_of_two_of_what_training_allocates(name: str, overrides: dict) -> None:
    from core.nn import train, warmup

    config = resolve({**overrides, "epochs": 1})
    warmup((config["dtype"],))  # compile outside the measurement
    data = load_dataset(name, dtype=config["dtype"])
    # What training holds: every array it allocates (numpy reports them to tracemalloc), at its peak,
    # plus the split data it trains on, which the caller allocated.
    held = sum(a.nbytes for a in (data.X_train, data.y_train, data.X_val, data.y_val))
    tracemalloc.start()
    try:
        train(config, data)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    real = peak + held
    shape = data.shape
    estimate = estimate_bytes(config, shape.features, shape.classes, shape.rows_train, shape.rows_val)
    assert real / 2 <= estimate <= real * 2, (format_bytes(estimate), format_bytes(real))


@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group", "switchable", "weight"])
def test_parameter_count_is_the_engine_s_layout(norm: str) -> None:
    from core.nn import Model

    config = resolve({"layers": 3, "hidden_units": 24, "norm": norm, "groups": 4})
    assert parameter_count(config, 13, 5) == Model.init(config, 13, 5).layout.size


def test_estimate_grows_with_size_and_dtype() -> None:
    base = {"layers": 2, "hidden_units": 128, "batch_size": 64}
    sizes = (784, 10, 4000, 1000)
    small = estimate_bytes(base, *sizes)
    for key, value in (("layers", 4), ("hidden_units", 256), ("batch_size", 256)):
        assert estimate_bytes({**base, key: value}, *sizes) > small, key
    wide = estimate_bytes({**base, "dtype": "float64"}, *sizes)
    assert 1.8 * small < wide <= 2 * small
    # the example: 16 layers of 4096 units in float64 is about 11 GB of parameters and state
    huge = estimate_bytes({"layers": 16, "hidden_units": 4096, "dtype": "float64"}, *sizes)
    assert 10e9 < huge < 16e9


def test_sizes_parse_in_decimal_and_binary_units() -> None:
    assert parse_bytes("4GiB") == 4 * 2**30
    assert parse_bytes("500MB") == 500 * 10**6
    assert parse_bytes("1048576") == 2**20
    assert parse_bytes(" 1.5 gib ") == 3 * 2**29
    for bad in ("", "0", "-1GB", "lots", "5PB", "inf", "nan", "1e400"):
        with pytest.raises(BadInput) as info:
            parse_bytes(bad)
        assert info.value.field == "CAVIAR_MAX_TRIAL_MEMORY"


def test_the_cap_defaults_to_half_the_memory_per_usable_core(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    monkeypatch.delenv("CAVIAR_MAX_TRIAL_MEMORY", raising=False)
    assert max_trial_memory() == default_max_trial_memory() == int(physical * 0.5) // usable_cores()
    monkeypatch.setenv("CAVIAR_MAX_TRIAL_MEMORY", "3GiB")
    assert max_trial_memory() == 3 * 2**30
    monkeypatch.setenv("CAVIAR_MAX_TRIAL_MEMORY", "three")
    with pytest.raises(BadInput):
        max_trial_memory()


STUDY = """
[study]
name = "memory-cap"
dataset = "iris"
objective = "val_loss"
strategy = "random"
seed = 1

[strategy]
trials = 2

[fixed]
epochs = 2
layers = 1
batch_size = 16

[space]
hidden_units = { choice = [4, 2048] }
"""


def test_a_sampled_trial_above_the_cap_is_failed_with_the_reason_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.execute import execute_trial
    from service.orchestrate import submit
    from service.store import open_store, reads, studies

    # Given a cap between what the two configurations of the space need (as on a worker with less
    # memory than the machine that validated the study)
    spec = load_study(STUDY)
    shape = load_dataset("iris").shape
    sizes = (shape.features, shape.classes, shape.rows_train, shape.rows_val)
    small = estimate_bytes(resolve({"layers": 1, "batch_size": 16, "hidden_units": 4}), *sizes)
    big = estimate_bytes(resolve({"layers": 1, "batch_size": 16, "hidden_units": 2048}), *sizes)
    monkeypatch.setenv("CAVIAR_MAX_TRIAL_MEMORY", str((small + big) // 2))
    store = open_store(f"sqlite:///{tmp_path / 'caviar.db'}")
    study_id, ids = submit(store, spec)
    # When every trial runs
    queue = list(ids)
    while queue:
        queue += execute_trial(store, queue.pop(0), worker="w")
    # Then the large one failed before training, saying why; the small one trained; the study ended
    rows = {reads.trial(store, i).params["hidden_units"]: reads.trial(store, i) for i in ids}
    assert set(rows) == {4, 2048}
    assert rows[4].status == "complete"
    failed = rows[2048]
    assert failed.status == "failed" and failed.val_loss is None
    assert "CAVIAR_MAX_TRIAL_MEMORY" in failed.error and "hidden_units = 2048" in failed.error
    assert not reads.epochs_of(store, [failed.id]).get(failed.id)  # not one epoch trained
    assert studies.require_study(store, study_id).state == "complete"
    assert np.isfinite(rows[4].val_loss)
