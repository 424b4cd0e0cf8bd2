"""Epoch checkpoints: a run resumed from epoch k is bit for bit the run that was never stopped."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from core import hparams
from core.errors import BadInput
from core.nn import Checkpoint, train


def small(n: int = 96, features: int = 6, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2
    y = rng.integers(0, classes, n)
    X = (centers[y] + rng.standard_normal((n, features))).astype(np.float32)
    k = n * 3 // 4
    return SimpleNamespace(X_train=X[:k], y_train=y[:k], X_val=X[k:], y_val=y[k:], n_classes=classes)


CASES = list(
    itertools.product(
        ["batch", "layer", "group", "switchable", "weight", "none"], ["adam", "momentum", "rmsprop", "sgd"]
    )
)


@pytest.mark.parametrize("norm, optimizer", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_resumed_from_any_epoch_is_bit_identical(norm, optimizer):
    data = small()
    config = hparams.resolve(
        {"norm": norm, "optimizer": optimizer, "epochs": 6, "batch_size": 16, "hidden_units": 8, "seed": 3,
         "lr_decay": 0.3, "groups": 2, "bn_inference": "population" if norm == "batch" else "running"}
    )
    saved: dict[int, bytes] = {}
    full = train(config, data, on_checkpoint=lambda c: saved.__setitem__(c.epoch, c.to_bytes()))
    assert full.status == "complete" and sorted(saved) == [1, 2, 3, 4, 5, 6]
    for k in (1, 4, 6):
        resumed = train(config, data, start=Checkpoint.from_bytes(saved[k]))
        assert resumed.epochs_run == 6 and [h["epoch"] for h in resumed.history] == list(range(k + 1, 7))
        assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history[k:]]
        assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history[k:]]
        assert np.array_equal(resumed.model.params, full.model.params)
        assert np.array_equal(resumed.model.running, full.model.running)
        assert (resumed.val_loss, resumed.val_accuracy) == (full.val_loss, full.val_accuracy)


def test_checkpoints_only_where_asked_and_a_short_run_is_a_prefix():
    data = small()
    base = {"epochs": 5, "batch_size": 16, "hidden_units": 8, "seed": 1, "lr_decay": 0.5}
    kept: list[Checkpoint] = []
    full = train(hparams.resolve(base), data, on_checkpoint=kept.append, checkpoint_at={2, 5})
    assert [c.epoch for c in kept] == [2, 5]
    short = train(hparams.resolve({**base, "epochs": 2}), data)
    # The learning rate depends on the epoch, not on the planned length: a short run is an exact prefix.
    assert [h["train_loss"] for h in short.history] == [h["train_loss"] for h in full.history[:2]]
    assert np.array_equal(short.model.params, kept[0].params)
    # And a short run's last checkpoint continues into the long run.
    longer = train(hparams.resolve(base), data, start=kept[0])
    assert np.array_equal(longer.model.params, full.model.params)


def test_a_checkpoint_of_another_network_or_garbage_is_refused():
    data = small()
    saved: list[Checkpoint] = []
    one = hparams.resolve({"epochs": 1, "hidden_units": 8, "batch_size": 16})
    train(one, data, on_checkpoint=saved.append)
    with pytest.raises(BadInput, match="checkpoint params"):
        train(hparams.resolve({"epochs": 2, "hidden_units": 9, "batch_size": 16}), data, start=saved[0])
    with pytest.raises(BadInput, match="checkpoint epoch"):
        train(hparams.resolve({"epochs": 2, "hidden_units": 8, "batch_size": 16}), data,
              start=Checkpoint(3, *(getattr(saved[0], k) for k in ("params", "running", "m1", "m2", "step"))))
    with pytest.raises(BadInput, match="checkpoint"):
        Checkpoint.from_bytes(b"not an npz")
    assert Checkpoint.from_bytes(saved[0].to_bytes()).nbytes == saved[0].nbytes
