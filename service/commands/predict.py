"""``caviar predict``: a saved model's predictions for the rows of a data file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from core.errors import BadInput
from service.cli import app, err
from service.output import check_format, dumps, to_csv

_FORMATS = ("csv", "json")


@app.command()
def predict(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A model file (caviar best --save).")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Rows to predict: a .csv file with a header, or a .npz file with X "
                     "(and y).", show_default=False),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="A named dataset instead of a file.", show_default=False),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="The CSV label column (default: the model's, else label); when the "
                     "file has it, the summary gives accuracy and cross-entropy.", show_default=False),
    ] = None,
    rows: Annotated[
        str, typer.Option("--rows", help="all, or train / val: the rows of the model's own split.")
    ] = "all",
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: csv or json.")] = "csv",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the predictions to this file.", show_default=False),
    ] = None,
) -> None:
    """Predict the class of every row of a data file with a saved model.

    One row per input row: `row` (its number in the file), `label` (the predicted class, by its original
    name), `target` (the file's label, when it has the column) and one `p_<class>` probability per
    class. With labels, a summary follows: accuracy and mean cross-entropy (on stderr for CSV on stdout,
    so that the CSV stays clean; on stdout with `-o`; the `summary` object in JSON). Features are given
    raw: the model file carries its input scaling.

    `--rows val` keeps the validation rows of the split the model was trained on (its file records the
    split's seed and fraction): on the study's own data its accuracy and cross-entropy are the ones the
    study stored for the trial.

    Example:
        caviar best digits-c2f-3fa9b1 --save model.npz
        caviar predict model.npz --data digits.csv --rows val -o predictions.csv
    """
    check_format(fmt, _FORMATS)
    if output is not None:
        from service.model_file import check_output

        check_output(output, "--output")
    from core.nn import Model
    from service.predict import class_values, csv_header, predict_rows, read_rows
    from service.settings import data_root

    model = Model.load(model_path)
    if data is not None and not data.exists():
        raise BadInput("--data", str(data), "expected an existing CSV or NPZ file")
    chosen = read_rows(model, data=data, dataset=dataset, target=target, rows=rows, root=data_root())
    records, summary = predict_rows(model, chosen)
    if fmt == "json":
        text = dumps({
            "model": str(model_path), "data": chosen.name, "rows": len(records),
            "classes": class_values(model), "predictions": records, "summary": summary,
        }) + "\n"
    else:
        header = csv_header(model, summary is not None)
        flat = [
            {"row": r["row"], "label": r["label"], "target": r.get("target"),
             **{h: p for h, p in zip(header[-len(r["probabilities"]):], r["probabilities"], strict=True)}}
            for r in records
        ]
        text = to_csv(flat, header)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        tail = f"; {_summary(summary)}" if summary else ""
        typer.echo(f"wrote {len(records)} predictions to {output}{tail}")
    else:
        sys.stdout.write(text)
        if summary is not None and fmt == "csv":
            err.print(_summary(summary), markup=False, highlight=False)


def _summary(summary: dict[str, object]) -> str:
    loss = summary["cross_entropy"]
    shown = f"{loss:.6g}" if isinstance(loss, float) else "not finite"
    return f"{summary['rows']} rows: accuracy {summary['accuracy']:.4%}, cross-entropy {shown}"
