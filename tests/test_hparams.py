"""The hyperparameter registry: one list of keys, types and ranges for the CLI, study files and engine."""

from __future__ import annotations

import pytest

from core.errors import BadInput
from core.hparams import DEFAULTS, HPARAMS, reconcile, resolve


def test_defaults_resolve_to_themselves() -> None:
    assert resolve() == DEFAULTS


def test_strings_are_parsed_to_each_keys_type() -> None:
    config = resolve(
        {"learning_rate": "3e-2", "layers": "3", "hidden_units": "64.0", "norm": "layer", "beta2": "0.99"},
        strings=True,
    )
    assert config["learning_rate"] == pytest.approx(0.03)
    assert config["layers"] == 3 and isinstance(config["layers"], int)
    assert config["hidden_units"] == 64 and isinstance(config["hidden_units"], int)
    assert config["norm"] == "layer"


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"learnin_rate": 0.1}, "learnin_rate", "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate", "(0, 10]"),
        ({"learning_rate": -1}, "learning_rate", "(0, 10]"),
        ({"batch_size": 0}, "batch_size", "[1, "),
        ({"norm": "instance"}, "norm", "batch, layer, group, switchable, weight, none"),
        ({"layers": 2.5}, "layers", "an integer"),
        ({"layers": True}, "layers", "an integer"),
        ({"momentum": 1.0}, "momentum", "[0, 1)"),
        ({"optimizer": 3}, "optimizer", "sgd, momentum, rmsprop, adam"),
        ({"norm": "group", "hidden_units": 30, "groups": 4}, "groups", "divide hidden_units=30"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(overrides: dict, field: str, fragment: str) -> None:
    with pytest.raises(BadInput) as info:
        resolve(overrides)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_unparsable_string_names_the_field() -> None:
    with pytest.raises(BadInput) as info:
        resolve({"epochs": "ten"}, strings=True)
    assert info.value.field == "epochs"
    assert "'ten'" in str(info.value)


def test_groups_not_dividing_is_fine_without_group_norm() -> None:
    assert resolve({"hidden_units": 30, "groups": 4})["hidden_units"] == 30


def test_reconcile_rounds_hidden_units_to_a_multiple_of_groups() -> None:
    fixed = reconcile({"norm": "group", "groups": 8, "hidden_units": 37})
    assert fixed["hidden_units"] == 40
    assert reconcile({"norm": "group", "groups": 8, "hidden_units": 3})["hidden_units"] == 8
    assert reconcile({"norm": "batch", "hidden_units": 37})["hidden_units"] == 37
    resolve(fixed)  # trainable


def test_every_key_has_a_valid_default() -> None:
    for name, spec in HPARAMS.items():
        assert spec.check(spec.default) == spec.default, name
