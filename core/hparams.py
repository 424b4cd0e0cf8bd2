"""The hyperparameters caviar knows: one registry for `caviar train --set`, study files and the engine.

Every key a user may set, its type, default and allowed values live here and nowhere else.
:func:`resolve` turns user overrides (typed values from TOML, or strings from the command line)
into a complete, validated configuration, raising :class:`core.errors.BadInput` that names the
field, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import BadInput

__all__ = ["HParam", "HPARAMS", "DEFAULTS", "resolve", "check_config", "reconcile"]


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its type and the values the engine accepts.

    Numeric bounds are ``low``/``high``; ``low_open``/``high_open`` exclude the bound itself.
    ``choices`` lists the allowed strings of a categorical key.
    """

    name: str
    kind: type  # float, int or str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """Describe the allowed values in words, for error messages and help."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else _fmt(self.low)
        high = "inf" if self.high is None else _fmt(self.high)
        what = "an integer" if self.kind is int else "a number"
        return f"{what} in {lo}{low}, {high}{hi}"

    def parse(self, raw: str) -> Any:
        """Convert a command-line string to this key's type, then check it."""
        text = raw.strip()
        try:
            if self.kind is int:
                as_float = float(text)
                if not as_float.is_integer():
                    raise ValueError
                value: Any = int(as_float)
            elif self.kind is float:
                value = float(text)
            else:
                value = text
        except ValueError:
            raise BadInput(self.name, raw, f"expected {self.allowed()}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Check a typed value (as TOML gives it) and return it normalised to this key's type."""
        if self.kind is str:
            if not isinstance(value, str) or value not in self.choices:
                raise BadInput(self.name, value, f"expected {self.allowed()}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(self.name, value, f"expected {self.allowed()}")
        if self.kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise BadInput(self.name, value, f"expected {self.allowed()}")
                value = int(value)
        else:
            value = float(value)
            if value != value:  # NaN
                raise BadInput(self.name, value, f"expected {self.allowed()}")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise BadInput(self.name, value, f"expected {self.allowed()}")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise BadInput(self.name, value, f"expected {self.allowed()}")
        return value


def _fmt(x: float) -> str:
    return f"{x:g}"


_ALL = [
    HParam("learning_rate", float, 3e-3, "initial learning rate α0", 0.0, 10.0, low_open=True),
    HParam("optimizer", str, "adam", "update rule", choices=("sgd", "momentum", "rmsprop", "adam")),
    HParam(
        "momentum", float, 0.9, "β of the momentum optimizer (an average: v = βv + (1-β)g)", 0.0, 1.0,
        high_open=True,
    ),
    HParam("beta1", float, 0.9, "Adam's first-moment decay β1", 0.0, 1.0, high_open=True),
    HParam("beta2", float, 0.999, "Adam's and RMSprop's second-moment decay β2", 0.0, 1.0, high_open=True),
    HParam("epsilon", float, 1e-8, "Adam's and RMSprop's ε (outside the root)", 0.0, 1.0, low_open=True),
    HParam("layers", int, 2, "number of hidden layers", 1, 16),
    HParam("hidden_units", int, 128, "units in each hidden layer", 1, 4096),
    HParam("activation", str, "relu", "hidden activation", choices=("relu", "tanh", "sigmoid")),
    HParam(
        "norm", str, "batch", "normalization of each hidden layer",
        choices=("batch", "layer", "group", "switchable", "weight", "none"),
    ),
    HParam("groups", int, 4, "groups of hidden units for norm=group (must divide hidden_units)", 1, 4096),
    HParam("bn_momentum", float, 0.1, "running-statistics momentum (PyTorch's)", 0.0, 1.0, low_open=True),
    HParam(
        "bn_inference", str, "running", "batch-norm statistics at inference",
        choices=("running", "population"),
    ),
    HParam("lr_decay", float, 0.0, "learning-rate decay rate", 0.0, 100.0),
    HParam(
        "lr_decay_kind", str, "inverse_time", "learning-rate schedule",
        choices=("none", "inverse_time", "exponential", "step"),
    ),
    HParam("lr_step_epochs", int, 10, "epochs per step of lr_decay_kind=step", 1, 100_000),
    HParam("batch_size", int, 64, "mini-batch size (at most the training-set size)", 1, 1_000_000),
    HParam("epochs", int, 30, "training epochs", 1, 100_000),
    HParam("seed", int, 0, "random seed (initialisation and shuffling)", 0, 2**31 - 1),
    HParam("dtype", str, "float32", "floating-point precision", choices=("float32", "float64")),
]

#: Every hyperparameter by name, in a stable order.
HPARAMS: dict[str, HParam] = {h.name: h for h in _ALL}

#: The default configuration: `caviar train --dataset digits` with nothing set.
DEFAULTS: dict[str, Any] = {h.name: h.default for h in _ALL}


def _unknown(key: str, field: str) -> BadInput:
    return BadInput(field, key, "expected a hyperparameter, one of " + ", ".join(HPARAMS))


def resolve(overrides: Mapping[str, Any] | None = None, *, strings: bool = False) -> dict[str, Any]:
    """Return the full, validated configuration: defaults updated by ``overrides``.

    Args:
        overrides: key -> value. With ``strings=True`` values are command-line text to parse.
        strings: parse values from text (``--set KEY=VALUE``) instead of checking typed values.

    Raises:
        BadInput: an unknown key, a value of the wrong type or out of range, or a combination the
            engine cannot train (``groups`` not dividing ``hidden_units`` with ``norm = "group"``).
    """
    config = dict(DEFAULTS)
    for key, value in (overrides or {}).items():
        spec = HPARAMS.get(key)
        if spec is None:
            raise _unknown(key, key)
        config[key] = spec.parse(value) if strings else spec.check(value)
    check_config(config)
    return config


def check_config(config: Mapping[str, Any]) -> None:
    """Check the constraints between keys. Raises :class:`BadInput`."""
    if config["norm"] == "group" and config["hidden_units"] % config["groups"] != 0:
        raise BadInput(
            "groups",
            config["groups"],
            f"with norm=group, groups must divide hidden_units={config['hidden_units']}",
        )


def reconcile(config: Mapping[str, Any]) -> dict[str, Any]:
    """Make a sampled configuration trainable, for search.

    A search may sample ``hidden_units`` and ``norm = "group"`` independently; then ``hidden_units``
    is rounded to the nearest multiple of ``groups`` (at least ``groups``), so no trial fails on a
    combination nobody chose on purpose. ``caviar train`` does not reconcile: it reports the error.
    """
    out = dict(config)
    if out.get("norm") == "group":
        groups = int(out.get("groups", DEFAULTS["groups"]))
        units = int(out.get("hidden_units", DEFAULTS["hidden_units"]))
        if units % groups:
            out["hidden_units"] = max(groups, groups * round(units / groups))
    return out
