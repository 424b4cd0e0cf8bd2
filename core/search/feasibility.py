"""Whether a study can train on its data: ``[fixed]`` and every searched range against the data's sizes.

A study file is valid on its own (:mod:`core.search.study`); this module checks it against a
:class:`~core.data.DataShape` (the split's sizes, read cheaply by :func:`core.data.describe_dataset`)
and, optionally, against a memory cap, so that a study no trial of which could train, or some of
whose trials could not, is refused before anything is written. A searched value that only some
configurations violate (a ``batch_size`` choice above the training split) is refused too: a study
that fails some of its trials for a reason known up front would waste them.

Every refusal is a :class:`~core.errors.BadInput` naming ``"[fixed] key"`` or ``"[space] key"``.
Pure: no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from core.data.shape import DataShape
from core.errors import BadInput
from core.hparams import DEFAULTS, reconcile
from core.search.distributions import Choice, Distribution, Int

__all__ = ["check_feasible", "check_trial_memory", "possible_values", "worst_case_config"]

#: Norms that take statistics over the mini-batch: a batch of one sample has none.
BATCH_STAT_NORMS = ("batch", "switchable")
#: Keys whose values decide the size of a configuration's training memory.
SIZE_KEYS = ("hidden_units", "layers", "batch_size", "dtype", "norm")


def _where(spec: Any, key: str) -> str:
    """The field that sets ``key``: its section and name (``[fixed]`` too when it is a default)."""
    return f"[space] {key}" if key in spec.space.dims else f"[fixed] {key}"


def _origin(spec: Any, key: str) -> str:
    """Where ``key``'s value comes from: ``[space] key``, ``[fixed] key`` or ``the default``."""
    return _where(spec, key) if key in spec.space.dims or key in spec.fixed else "the default"


def possible_values(spec: Any, key: str) -> list[Any] | Distribution:
    """The values ``key`` can take in the study's trials: the fixed value (or the default) as a list,
    a searched choice's values, or the searched distribution itself for a numeric range."""
    dist = spec.space.dims.get(key)
    if dist is None:
        return [spec.fixed.get(key, DEFAULTS[key])]
    if isinstance(dist, Choice):
        return list(dist.choices)
    return dist


def _max_value(values: list[Any] | Distribution) -> Any:
    if isinstance(values, list):
        return max(values)
    return values.region()[1]  # a numeric distribution's region is [low, high]


def _can_be(values: list[Any] | Distribution, value: Any) -> bool:
    if isinstance(values, list):
        return value in values
    low, high = values.region()
    return low <= value <= high


def _check_batch(spec: Any, shape: DataShape) -> None:
    n = shape.rows_train
    batches = possible_values(spec, "batch_size")
    where = _where(spec, "batch_size")
    split = f"the training split, {n} rows (val_fraction {spec.val_fraction:g})"
    if isinstance(batches, Int):
        if batches.high > n:
            raise BadInput(where, batches.region(), f"expected a range whose values are at most {split}")
    else:
        too_big = [b for b in batches if b > n]
        if too_big:
            if "batch_size" in spec.space.dims:
                raise BadInput(where, too_big[0], f"expected every choice to be at most {split}")
            default = "" if "batch_size" in spec.fixed else f"; {too_big[0]} is the default: set batch_size"
            raise BadInput(where, too_big[0], f"expected at most {split}{default}")
    if not _can_be(batches, 1):
        return
    norms = possible_values(spec, "norm")
    stat_norms = [m for m in BATCH_STAT_NORMS if _can_be(norms, m)]
    if stat_norms:
        raise BadInput(
            where, 1 if isinstance(batches, list) else batches.region(),
            f"expected a batch size of at least 2 with norm = {stat_norms[0]} ({_origin(spec, 'norm')}): "
            "batch statistics of one sample do not exist",
        )


def worst_case_config(spec: Any, shape: DataShape) -> dict[str, Any]:
    """``[fixed]`` over the defaults, with ``layers``, ``hidden_units`` and ``batch_size`` at their largest.

    Training memory grows with each of the three, so this is the study's largest configuration but for
    ``norm`` and ``dtype``, which :func:`check_feasible` tries in every combination the study allows.
    ``batch_size`` is capped at the training split (a larger one is refused before memory is checked).
    """
    config = {**DEFAULTS, **spec.fixed}
    for key in ("layers", "hidden_units", "batch_size"):
        config[key] = _max_value(possible_values(spec, key))
    config["batch_size"] = min(int(config["batch_size"]), shape.rows_train)
    return config


def _memory_message(
    config: Mapping[str, Any], needed: int, limit: int, limit_name: str, subject: str = "a configuration that"
) -> str:
    from core.nn.memory import format_bytes

    what = ", ".join(f"{k} = {config[k]}" for k in ("layers", "hidden_units", "batch_size", "norm", "dtype"))
    return (f"expected {subject} needs at most {format_bytes(limit)} to train ({limit_name}); "
            f"{what} needs about {format_bytes(needed)}")


def check_trial_memory(
    config: Mapping[str, Any], shape: DataShape, limit: int, limit_name: str = "the memory limit"
) -> None:
    """Refuse a configuration whose training memory estimate exceeds ``limit`` bytes.

    Raises:
        BadInput: field ``"trial memory"``, the estimate and the limit in the message.
    """
    from core.nn.memory import estimate_bytes, format_bytes

    needed = estimate_bytes(config, shape.features, shape.classes, shape.rows_train, shape.rows_val)
    if needed > limit:
        message = _memory_message(config, needed, limit, limit_name)
        raise BadInput("trial memory", format_bytes(needed), message)


def _check_memory(spec: Any, shape: DataShape, limit: int, limit_name: str) -> None:
    from core.nn.memory import estimate_bytes

    base = worst_case_config(spec, shape)
    # every combination of the categorical keys that change the layout; a few dozen sums at most
    options = {k: possible_values(spec, k) for k in ("norm", "dtype")}
    worst, needed = base, -1
    for norm, dtype in itertools.product(options["norm"], options["dtype"]):  # both are lists: categorical
        config = reconcile({**base, "norm": norm, "dtype": dtype})  # group norm may round units up
        size = estimate_bytes(config, shape.features, shape.classes, shape.rows_train, shape.rows_val)
        if size > needed:
            worst, needed = config, size
    if needed <= limit:
        return
    searched = [k for k in SIZE_KEYS if k in spec.space.dims]
    fixed = [k for k in SIZE_KEYS if k in spec.fixed]
    if searched:
        key = searched[0]
        value = spec.space.dims[key].region()
        message = _memory_message(worst, needed, limit, limit_name, "a space whose largest configuration")
    else:
        key = fixed[0] if fixed else "hidden_units"
        value = worst[key]
        message = _memory_message(worst, needed, limit, limit_name)
    raise BadInput(_where(spec, key), value, message)


def check_feasible(
    spec: Any, shape: DataShape, *, memory_limit: int | None = None, limit_name: str = "the memory limit"
) -> None:
    """Check a study's ``[fixed]`` values and searched ranges against its data (and a memory cap).

    Refused, naming the key: a ``batch_size`` above the training split (fixed, the default, a choice
    that holds one, an int range that reaches one); a batch size of 1 where batch or switchable norm
    is possible; and with ``memory_limit``, a study whose largest configuration needs more training
    memory than that many bytes (:func:`core.nn.memory.estimate_bytes`).

    Args:
        spec: a :class:`~core.search.StudySpec`.
        shape: its data's sizes (:func:`core.data.describe_dataset` with the study's ``val_fraction``).
        memory_limit: bytes a trial may need, or None for no limit.
        limit_name: what sets the limit, for the message (e.g. an environment variable).

    Raises:
        BadInput: field ``"[fixed] key"`` or ``"[space] key"``.
    """
    _check_batch(spec, shape)
    if memory_limit is not None:
        _check_memory(spec, shape, memory_limit, limit_name)

