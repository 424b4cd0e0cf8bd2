"""``caviar export``: every trial of a study to a CSV or JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import BadInput
from service.cli import app, err
from service.commands._options import DbOption, StudyArgument


@app.command()
def export(
    study: StudyArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write: .csv or .json.")],
    curves: Annotated[
        bool, typer.Option("--curves/--no-curves", help="Include each trial's learning curve (JSON only).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Write every trial of a study (parameters, status, metrics) to a CSV or JSON file.

    JSON holds the study record and a `trials` list (with `curves`, each trial's `epochs`);
    CSV has one row per trial with one `param.NAME` column per hyperparameter.

    Example:
        caviar export digits-c2f-3fa9b1 -o digits.csv
    """
    from service.output import dumps
    from service.store import open_store
    from service.store.export import export_records, write_export_csv
    from service.store.reads import epochs_of
    from service.store.studies import require_study
    from service.views import study_record

    kind = output.suffix.lower()
    if kind not in (".csv", ".json"):
        raise BadInput("--output", str(output), "expected a file name ending in .csv or .json")
    if not output.absolute().parent.is_dir():
        raise BadInput("--output", str(output), "expected a file in an existing directory")
    if curves and kind == ".csv":
        raise BadInput("--curves", True, "learning curves are exported to .json files only")
    store = open_store(db, create=False)
    try:
        row = require_study(store, study)
        if kind == ".csv":
            names = list(row.spec["space"])
            with output.open("w", encoding="utf-8", newline="") as f:
                n = write_export_csv(store, study, f, names)
        else:
            records = export_records(store, study)
            n = len(records)
            if curves:
                by_trial = epochs_of(store, [r["id"] for r in records])
                for r in records:
                    r["epochs"] = [
                        {k: v for k, v in e.items() if k != "trial_id"} for e in by_trial.get(r["id"], [])
                    ]
            text = dumps({**study_record(store, row), "trials": records}) + "\n"
            output.write_text(text, encoding="utf-8")
        err.print(f"wrote {n} trials of {study} to {output}", markup=False)
    finally:
        store.dispose()
