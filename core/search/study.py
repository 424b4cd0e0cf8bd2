"""The study file (TOML): parsing and validation into a :class:`StudySpec`.

A study file has exactly four sections::

    [study]     name, dataset | data (+ target for CSV), objective, strategy, seed,
                optional val_fraction (default 0.2), split_seed (default: seed) and description
    [strategy]  the chosen strategy's knobs (optional: every knob has a default)
    [fixed]     hyperparameters held constant (any `caviar train` key)
    [space]     hyperparameters searched, each with a distribution

Everything is checked here, in ``core`` (no I/O: the caller reads the file). Every problem raises
:class:`core.errors.BadInput` with the field as ``"[section] key"`` and what is allowed.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from core.errors import BadInput
from core.hparams import HPARAMS, check_config, resolve
from core.search.distributions import Choice
from core.search.objective import OBJECTIVES, Objective
from core.search.proposal import SAMPLERS
from core.search.pruning import Pruning, parse_pruning
from core.search.space import SearchSpace
from core.search.strategies import STRATEGY_TYPES, Strategy
from core.search.strategies.coarse_to_fine import NARROW, VERSIONS
from core.search.strategies.grid import grid_size

__all__ = [
    "StudySpec", "load_study", "parse_study", "parse_stored", "STRATEGIES", "OBJECTIVES", "SECTIONS",
    "MAX_TRIALS",
]

#: The sections of a study file, in order.
SECTIONS = ("study", "strategy", "fixed", "space", "pruning")
#: Strategy names.
STRATEGIES = tuple(STRATEGY_TYPES)
#: Largest trial budget a study may ask for.
MAX_TRIALS = 100_000

_STUDY_KEYS = (
    "name",
    "dataset",
    "data",
    "target",
    "objective",
    "strategy",
    "seed",
    "val_fraction",
    "split_seed",
    "description",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Each strategy's knobs and their defaults, from its options dataclass (the one place they are written).
KNOBS: dict[str, dict[str, Any]] = {name: cls.defaults() for name, cls in STRATEGY_TYPES.items()}


@dataclass(frozen=True)
class StudySpec:
    """A validated study.

    Attributes:
        name: the study's name (letters, digits, ``.``, ``_``, ``-``).
        dataset: a built-in dataset name, or None when ``data`` is given.
        data: path of a CSV or NPZ file, or None.
        target: label column of a CSV file.
        val_fraction: fraction of the data held out for validation.
        objective: :attr:`Objective.VAL_LOSS` (minimized) or :attr:`Objective.VAL_ACCURACY` (maximized).
        strategy: one of :data:`STRATEGIES`.
        seed: the study seed; every round and trial seed derives from it, and the validation split too
            unless ``split_seed`` is given.
        options: the strategy's knobs, defaults filled in.
        fixed: hyperparameters held constant, checked and normalised.
        space: the searched hyperparameters.
        description: free text.
        pruning: the ``[pruning]`` rule (:mod:`core.search.pruning`; inactive by default).
        split_seed: seeds the train/validation split instead of ``seed``, so studies that differ only in
            ``seed`` are judged on the same validation rows (None: the split follows ``seed``).
        raw: the parsed TOML table as given.
    """

    name: str
    dataset: str | None
    data: str | None
    target: str | None
    val_fraction: float
    objective: Objective
    strategy: str
    seed: int
    options: dict[str, Any]
    fixed: dict[str, Any]
    space: SearchSpace
    description: str = ""
    pruning: Pruning = field(default_factory=Pruning)
    split_seed: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # A spec built by hand may name its objective by a plain string.
        object.__setattr__(self, "objective", Objective(self.objective))

    @property
    def maximize(self) -> bool:
        """True when a larger objective is better (``val_accuracy``)."""
        return self.objective.maximize

    @property
    def data_seed(self) -> int:
        """The seed of the train/validation split."""
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def budget(self) -> int:
        """The most trials the study will run."""
        return self.strategy_obj.budget

    @cached_property
    def strategy_obj(self) -> Strategy:
        """The study's strategy, built once; shared, so use its pure :meth:`~Strategy.plan` only.

        For a strategy to drive with :meth:`~Strategy.next_round`, take :meth:`make_strategy`.
        """
        return self.make_strategy()

    def make_strategy(self) -> Strategy:
        """A fresh strategy object for this study."""
        return STRATEGY_TYPES[self.strategy].from_options(
            self.space, self.options, seed=self.seed, fixed=self.fixed
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description: the normalised study (round-trips through :func:`parse_study`)."""
        study: dict[str, Any] = {"name": self.name}
        if self.dataset is not None:
            study["dataset"] = self.dataset
        if self.data is not None:
            study["data"] = self.data
        if self.target is not None:
            study["target"] = self.target
        study.update(
            objective=self.objective.value,
            strategy=self.strategy,
            seed=self.seed,
            val_fraction=self.val_fraction,
        )
        if self.split_seed is not None:  # absent otherwise: stored as before
            study["split_seed"] = self.split_seed
        if self.description:
            study["description"] = self.description
        options = {k: v for k, v in self.options.items() if v is not None}
        out = {"study": study, "strategy": options, "fixed": dict(self.fixed), "space": self.space.to_dict()}
        if self.pruning.active:  # absent otherwise: a study without pruning is stored as before
            out["pruning"] = self.pruning.to_dict()
        return out


def load_study(text: str) -> StudySpec:
    """Parse and validate a study file's TOML text.

    Raises:
        BadInput: invalid TOML, or any invalid section, key or value (field ``"[section] key"``).
    """
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput("study file", "TOML", f"expected valid TOML ({exc})") from None
    return parse_study(table)


def _int(field_name: str, value: Any, low: int, high: int | None = None) -> int:
    ok = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )
    if not ok:
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise BadInput(field_name, value, f"expected an integer {rng}")
    return int(value)


def _float(field_name: str, value: Any, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(field_name, value, f"expected a number {what}")
    if not low <= value <= high:
        raise BadInput(field_name, value, f"expected a number {what}")
    return float(value)


def _one_of(field_name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise BadInput(field_name, value, "expected one of " + ", ".join(allowed))
    return value


def _str(field_name: str, value: Any, what: str = "a string") -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(field_name, value, f"expected {what}")
    return value


def _section(table: Mapping[str, Any], name: str, required: bool) -> dict[str, Any]:
    if name not in table:
        if required:
            raise BadInput(f"[{name}]", "missing", f"a study file needs a [{name}] section")
        return {}
    value = table[name]
    if not isinstance(value, Mapping):
        raise BadInput(f"[{name}]", value, "expected a table (a [section])")
    return dict(value)


def _datasets() -> tuple[str, ...]:
    from core.data import DATASETS

    return tuple(DATASETS)


def _parse_study_section(s: dict[str, Any]) -> dict[str, Any]:
    for key in s:
        if key not in _STUDY_KEYS:
            raise BadInput(f"[study] {key}", key, "unknown key; expected one of " + ", ".join(_STUDY_KEYS))
    for key in ("name", "objective", "strategy", "seed"):
        if key not in s:
            raise BadInput(f"[study] {key}", "missing", "required")
    name = s["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):  # fullmatch: "$" accepts a final newline
        raise BadInput(
            "[study] name", name, "expected 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    dataset, data, target = s.get("dataset"), s.get("data"), s.get("target")
    if (dataset is None) == (data is None):
        raise BadInput(
            "[study] dataset",
            dataset if dataset is not None else data,
            'expected exactly one of dataset = NAME or data = "path.csv|path.npz"',
        )
    if dataset is not None:
        dataset = _one_of("[study] dataset", dataset, _datasets())
        if target is not None:
            raise BadInput("[study] target", target, 'only with data = "path.csv"')
    else:
        data = _str("[study] data", data, "a path to a .csv or .npz file")
        suffix = data.lower().rsplit(".", 1)[-1] if "." in data else ""
        if suffix not in ("csv", "npz"):
            raise BadInput("[study] data", data, "expected a path ending in .csv or .npz")
        if suffix == "csv":
            if target is None:
                raise BadInput(
                    "[study] target", "missing", "required with a CSV file: the label column's name"
                )
            target = _str("[study] target", target, "the label column's name")
        elif target is not None:
            raise BadInput("[study] target", target, "only with a CSV file (an NPZ file holds X and y)")
    description = s.get("description", "")
    if not isinstance(description, str):
        raise BadInput("[study] description", description, "expected a string")
    return {
        "name": name,
        "dataset": dataset,
        "data": data,
        "target": target,
        "objective": Objective(_one_of("[study] objective", s["objective"], OBJECTIVES)),
        "strategy": _one_of("[study] strategy", s["strategy"], STRATEGIES),
        "seed": _int("[study] seed", s["seed"], 0, 2**31 - 1),
        "val_fraction": _float(
            "[study] val_fraction", s.get("val_fraction", 0.2), 0.01, 0.9, "in [0.01, 0.9]"
        ),
        "split_seed": (
            None if s.get("split_seed") is None else _int("[study] split_seed", s["split_seed"], 0, 2**31 - 1)
        ),
        "description": description,
    }


def _parse_options(strategy: str, given: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    knobs = KNOBS[strategy]
    for key in given:
        if key not in knobs:
            owner = [s for s, k in KNOBS.items() if key in k]
            hint = f" (a knob of {', '.join(owner)})" if owner else ""
            raise BadInput(
                f"[strategy] {key}",
                key,
                f"unknown for strategy {strategy}{hint}; expected one of {', '.join(knobs)}",
            )
    o = {**knobs, **given}
    f = "[strategy] "
    if strategy == "grid":
        ppd = o["points_per_dim"]
        numeric = [k for k, d in space.dims.items() if not isinstance(d, Choice)]
        if isinstance(ppd, Mapping):
            for k, v in ppd.items():
                if k not in space.dims:
                    raise BadInput(
                        f"{f}points_per_dim.{k}", k, "expected a searched key: " + ", ".join(space.names)
                    )
                if isinstance(space.dims[k], Choice):
                    raise BadInput(f"{f}points_per_dim.{k}", v, "a choice is enumerated whole; leave it out")
                _int(f"{f}points_per_dim.{k}", v, 1, 1000)
            missing = [k for k in numeric if k not in ppd]
            if missing:
                raise BadInput(f"{f}points_per_dim", ", ".join(missing), "give a count for every numeric key")
            o["points_per_dim"] = {k: int(ppd[k]) for k in numeric}
        else:
            o["points_per_dim"] = _int(f"{f}points_per_dim", ppd, 1, 1000)
        size = grid_size(space, o["points_per_dim"])
        if size > MAX_TRIALS:
            raise BadInput(f"{f}points_per_dim", ppd, f"the grid has {size} points; at most {MAX_TRIALS}")
    elif strategy in ("random", "sobol"):
        o["trials"] = _int(f"{f}trials", o["trials"], 1, MAX_TRIALS)
    else:
        o["rounds"] = _int(f"{f}rounds", o["rounds"], 1, 1000)
        o["trials_per_round"] = _int(f"{f}trials_per_round", o["trials_per_round"], 1, MAX_TRIALS)
        o["version"] = _int(f"{f}version", o["version"], min(VERSIONS), max(VERSIONS))
        o["keep_top"] = _int(f"{f}keep_top", o["keep_top"], 1)
        # Version 1 zooms onto the keep_top best trials, so a round must be able to supply them.
        if o["version"] == 1 and o["keep_top"] > o["trials_per_round"]:
            raise BadInput(
                f"{f}keep_top",
                o["keep_top"],
                f"expected an integer in [1, trials_per_round = {o['trials_per_round']}] with version = 1",
            )
        if o["startup"] is not None:
            o["startup"] = _int(f"{f}startup", o["startup"], 1, MAX_TRIALS)
        o["top"] = _float(f"{f}top", o["top"], 0.01, 1.0, "in [0.01, 1] (a share of the finished trials)")
        o["margin"] = _float(f"{f}margin", o["margin"], 0.0, 10.0, "in [0, 10] (a fraction of the span)")
        if o["patience"] is not None:
            o["patience"] = _int(f"{f}patience", o["patience"], 1)
        o["narrow"] = _one_of(f"{f}narrow", o["narrow"], NARROW)
        o["sampler"] = _one_of(f"{f}sampler", o["sampler"], SAMPLERS)
        if o["rounds"] * o["trials_per_round"] > MAX_TRIALS:
            raise BadInput(
                f"{f}trials_per_round",
                o["trials_per_round"],
                f"rounds x trials_per_round must be at most {MAX_TRIALS}",
            )
    return o


def _parse_fixed(fixed: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fixed.items():
        where = f"[fixed] {key}"
        hp = HPARAMS.get(key)
        if hp is None:
            raise BadInput(where, key, "expected a hyperparameter, one of " + ", ".join(HPARAMS))
        if key in space.dims:
            raise BadInput(where, key, "a key is either fixed or searched, not both")
        try:
            out[key] = hp.check(value)
        except BadInput as exc:
            raise BadInput(where, value, exc.allowed) from None
    # Constraints between keys can only be checked when none of the keys involved is searched
    # (searched combinations are reconciled per trial instead).
    if not {"norm", "hidden_units", "groups"} & set(space.dims):
        try:
            check_config(resolve(out))
        except BadInput as exc:
            raise BadInput(f"[fixed] {exc.field}", exc.value, exc.allowed) from None
    return out


def parse_stored(table: Mapping[str, Any]) -> StudySpec:
    """Parse a study as a store keeps it (:meth:`StudySpec.to_dict`), written by any caviar version.

    A normalised spec names every knob, so a coarse-to-fine study stored before ``version`` existed has
    none: it was planned by version 1 (the nested zoom) and must resume with it, not switch to the
    version-2 default halfway through.

    Example:
        >>> text = '''[study]
        ... name = "old"
        ... dataset = "digits"
        ... objective = "val_loss"
        ... seed = 0
        ... strategy = "coarse-to-fine"
        ... [space]
        ... learning_rate = { log = [1e-4, 1e-1] }
        ... '''
        >>> old = load_study(text).to_dict()
        >>> del old["strategy"]["version"]
        >>> parse_stored(old).options["version"], parse_study(old).options["version"]
        (1, 2)
    """
    table = copy.deepcopy(dict(table))
    if table.get("study", {}).get("strategy") == "coarse-to-fine":
        options = table.setdefault("strategy", {})
        if isinstance(options, dict):
            options.setdefault("version", 1)
    return parse_study(table)


def parse_study(table: Mapping[str, Any]) -> StudySpec:
    """Validate a parsed study table (as :mod:`tomllib` gives it). See :func:`load_study`."""
    if not isinstance(table, Mapping):
        raise BadInput("study file", table, "expected a TOML document")
    for key in table:
        if key not in SECTIONS:
            raise BadInput(
                f"[{key}]", key, "unknown section; expected " + ", ".join(f"[{s}]" for s in SECTIONS)
            )
    study = _parse_study_section(_section(table, "study", True))
    space = SearchSpace.from_dict(_section(table, "space", True))
    fixed = _parse_fixed(_section(table, "fixed", False), space)
    options = _parse_options(study["strategy"], _section(table, "strategy", False), space)
    pruning = parse_pruning(
        _section(table, "pruning", False), int(resolve(fixed)["epochs"]), "epochs" in space.dims
    )
    return StudySpec(
        **study,
        options=options,
        fixed=fixed,
        space=space,
        pruning=pruning,
        raw=copy.deepcopy(dict(table)),
    )
