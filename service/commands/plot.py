"""``caviar plot``: a picture of a study (objective against each hyperparameter, learning curves)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from core.errors import BadInput
from service.cli import app, err
from service.commands._options import DbOption, ReadFormatOption, StudyArgument
from service.output import check_format, dumps, render


def check_png(path: Path, field: str) -> Path:
    """``path`` if it names a PNG file in an existing directory (else BadInput naming ``field``)."""
    if path.suffix.lower() != ".png":
        raise BadInput(field, str(path), "expected a file name ending in .png")
    if not path.absolute().parent.is_dir():
        raise BadInput(field, str(path), "expected a file in an existing directory")
    return path


@app.command()
def plot(
    study: StudyArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="PNG file to write (default: STUDY.png).")
    ] = None,
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
) -> None:
    """Draw the study: its objective against each searched hyperparameter, points coloured by round,
    the best trial starred, the learning curves of the top trials, and each round's region per
    hyperparameter (a bar per round: the regions moving, shrinking, growing and restarting).

    Example:
        caviar plot digits-c2f-3fa9b1 -o digits.png
    """
    from service.plot import plot_study
    from service.store import open_store, studies

    check_format(fmt)
    path = check_png(output or Path(f"{study}.png"), "--output")
    store = open_store(db, create=False)
    try:
        from service.store.states import StudyKind

        if studies.require_study(store, study).kind == StudyKind.PANDA:
            from service.panda.plot import plot_session

            plot_session(store, study, path)  # the curve with every change marked, forks on the same axes
        else:
            plot_study(store, study, path)
    finally:
        store.dispose()
    record = {"study": study, "file": str(path)}
    if fmt == "json":
        sys.stdout.write(dumps(record) + "\n")
    elif fmt == "csv":
        render([record], None, "csv")
    else:
        err.print(f"wrote {path}", markup=False)
