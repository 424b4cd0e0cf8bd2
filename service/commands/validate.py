"""`caviar validate FILE`: check a study file and summarise it, without running anything."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core.errors import BadInput
from core.search import StudySpec
from service.cli import app
from service.study_file import check_study_data, load_study_file

if TYPE_CHECKING:
    from core.data import DataShape

_FORMATS = ("table", "json")


def summary(spec: StudySpec, shape: DataShape | None = None) -> dict[str, Any]:
    """JSON-safe summary of a validated study: what `caviar validate --format json` prints.

    ``options`` are read back from the strategy object the study runs with, defaults filled in;
    ``data_shape`` (with ``shape``) gives the split's sizes the study was checked against.
    """
    info: dict[str, Any] = {
        "valid": True,
        "name": spec.name,
        "dataset": spec.dataset,
        "data": spec.data,
        "target": spec.target,
        "objective": spec.objective.value,
        "direction": spec.objective.direction,
        "strategy": spec.strategy,
        "options": dataclasses.asdict(spec.strategy_obj.options),
        "budget": spec.budget,
        "seed": spec.seed,
        "val_fraction": spec.val_fraction,
        "space": {
            k: {"distribution": d.describe(), "region": d.region()} for k, d in spec.space.dims.items()
        },
        "fixed": spec.fixed,
        "pruning": {**spec.pruning.to_dict(), "rungs": spec.pruning.rungs},
    }
    if shape is not None:
        info["data_shape"] = shape.to_dict()
    return info


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Study file (TOML).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")] = "table",
) -> None:
    """Check a study file and print its strategy, trial budget, searched space and fixed keys.

    The data is checked too (its header and size, cheaply): a missing file, an absent label column, a
    batch_size above the training split, batch_size 1 with batch or switchable norm, or a configuration
    above CAVIAR_MAX_TRIAL_MEMORY is refused.

    Exit 0 when valid; 2 with one line naming the section and key when not.

    Example: caviar validate examples/digits.toml --format json
    """
    if format not in _FORMATS:
        raise BadInput("--format", format, "expected one of " + ", ".join(_FORMATS))
    spec = load_study_file(file)
    shape = check_study_data(spec)
    info = summary(spec, shape)
    if format == "json":
        typer.echo(json.dumps(info, indent=2))
        return
    out = Console(highlight=False, soft_wrap=True)
    where = spec.dataset or f"{spec.data}" + (f" (target {spec.target})" if spec.target else "")
    knobs = ", ".join(f"{k}={v}" for k, v in info["options"].items() if v is not None)
    out.print(f"study {spec.name}: valid", markup=False)
    out.print(f"  data       {where}, val_fraction {spec.val_fraction:g}", markup=False)
    out.print(
        f"  rows       {shape.rows_train:,} training / {shape.rows_val:,} validation, {shape.features} "
        f"features, {shape.classes} classes", markup=False,
    )
    out.print(f"  objective  {spec.objective} ({info['direction']})", markup=False)
    out.print(f"  strategy   {spec.strategy} ({knobs})", markup=False)
    out.print(f"  budget     at most {info['budget']} trials, seed {spec.seed}", markup=False)
    if spec.pruning.active:
        rungs = ", ".join(map(str, spec.pruning.rungs))
        out.print(
            f"  pruning    {spec.pruning.kind}: rungs at {rungs} epochs, the best 1/{spec.pruning.reduction} "
            "continue at each", markup=False,
        )
    table = Table("searched", "distribution", "region")
    for k, d in spec.space.dims.items():
        table.add_row(k, d.describe(), str(d.region()))
    out.print(table)
    if spec.fixed:
        fixed = Table("fixed", "value")
        for k, v in spec.fixed.items():
            fixed.add_row(k, str(v))
        out.print(fixed)
