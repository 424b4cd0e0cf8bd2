"""A study file that searches around a panda session's configuration.

The region is centred on the session's values, on the scales a person tunes them on: the learning rate
on a log scale (a decade either side), β (momentum, Adam's β1) on a log scale of 1 − β (the averaging
window: a third to three times as long), widths and batch sizes on a log scale (half to double), the
depth one layer either side. Everything else is held at the session's value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from core import hparams

__all__ = ["study_text"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def space(config: Mapping[str, Any], n_train: int | None = None) -> dict[str, str]:
    """The searched keys and their distributions as TOML inline tables."""
    out: dict[str, str] = {}
    lr = float(config["learning_rate"])
    out["learning_rate"] = f"{{ log = [{_toml(lr / 10)}, {_toml(min(lr * 10, 10.0))}] }}"
    beta_key = {"momentum": "momentum", "adam": "beta1"}.get(config["optimizer"])
    if beta_key is not None:
        window = 1.0 - float(config[beta_key])
        low, high = _clip(1 - 3 * window, 0.0, 0.999), _clip(1 - window / 3, 0.5, 0.9999)
        if high > low > 0:
            out[beta_key] = f"{{ one_minus_log = [{_toml(round(low, 6))}, {_toml(round(high, 6))}] }}"
    h = int(config["hidden_units"])
    h_low, h_high = max(1, h // 2), min(4096, h * 2)
    if config["norm"] == "group":
        h_low = h_high = h  # groups must divide the width
    if h_high > h_low:
        out["hidden_units"] = f"{{ int = [{h_low}, {h_high}], log = true }}"
    layers = int(config["layers"])
    out["layers"] = f"{{ int = [{max(1, layers - 1)}, {min(16, layers + 1)}] }}"
    b = int(config["batch_size"])
    b_high = min(b * 2, n_train) if n_train else b * 2
    b_low = max(2 if config["norm"] in ("batch", "switchable") else 1, b // 2)
    if b_high > b_low:
        out["batch_size"] = f"{{ int = [{b_low}, {b_high}], log = true }}"
    d = float(config["lr_decay"])
    if d > 0 and config["lr_decay_kind"] != "none":
        out["lr_decay"] = f"{{ uniform = [0.0, {_toml(min(2 * d, 100.0))}] }}"
    return out


def study_text(
    config: Mapping[str, Any],
    *,
    name: str,
    source: Mapping[str, Any],
    n_train: int | None = None,
    rounds: int = 12,
    trials_per_round: int = 4,
) -> str:
    """TOML text of a coarse-to-fine study centred on ``config``.

    Args:
        config: the session's configuration as it is now (a full one).
        name: the study's name.
        source: ``dataset`` or ``data`` (+ ``target``), ``val_fraction``, ``split_seed``: the session's data.
        n_train: training rows (caps the batch size).

    Example:
        >>> text = study_text(hparams.resolve({"learning_rate": 0.01}), name="p", source={"dataset": "iris"})
        >>> "learning_rate = { log = [0.001, 0.1] }" in text
        True
    """
    config = hparams.resolve(dict(config))
    searched = space(config, n_train)
    lines = ["[study]", f"name = {_toml(name)}"]
    for key in ("dataset", "data", "target", "val_fraction", "split_seed"):
        if source.get(key) is not None:
            lines.append(f"{key} = {_toml(source[key])}")
    lines += [
        'objective = "val_loss"', 'strategy = "coarse-to-fine"', f"seed = {int(config['seed'])}", "",
        "[strategy]", f"rounds = {rounds}", f"trials_per_round = {trials_per_round}", "",
        "[fixed]  # the session's values",
    ]
    for key, value in config.items():
        if key in searched or key == "seed" or (isinstance(value, float) and math.isnan(value)):
            continue
        if value != hparams.DEFAULTS[key] or key in ("epochs", "optimizer", "norm"):
            lines.append(f"{key} = {_toml(value)}")
    lines += ["", "[space]  # centred on the session's values"]
    lines += [f"{key} = {dist}" for key, dist in searched.items()]
    return "\n".join(lines) + "\n"
