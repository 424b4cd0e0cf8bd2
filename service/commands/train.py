"""`caviar train`: train one network on a named dataset or a data file, and report it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core import hparams
from core.errors import BadInput
from service.cli import EXIT_BAD_INPUT, app, fail
from service.commands._options import quiet_option
from service.model_file import check_output, data_source
from service.output import check_format, dumps, format_value, stdout_console
from service.progress import EpochProgress

_FORMATS = ("table", "json")

#: At most this many epochs are listed in the table (first, last and evenly spaced ones between).
_EPOCH_ROWS = 12

#: Keys always shown in the table's config line; any other key is shown when it differs from its default.
_SHOWN_KEYS = (
    "optimizer", "learning_rate", "layers", "hidden_units", "activation", "norm", "batch_size", "epochs",
)


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` → ``{KEY: VALUE}`` (later items win). Raises BadInput without ``=``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput("--set", item, "expected KEY=VALUE, e.g. --set learning_rate=0.01")
        out[key.strip()] = value
    return out


_DATASET_HELP = "A named dataset: digits, iris, wine, breast_cancer, mnist5k, mnist1d."
_DATA_HELP = (
    "Your own data: a .csv file with a header and a label column, "
    "or a .npz file with arrays X (rows, features) and y (labels)."
)

QuietOption = quiet_option("the one-line result")


@app.command()
def train(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help=_DATASET_HELP, show_default=False)
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help=_DATA_HELP, show_default=False)] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="CSV label column (default: label).", show_default=False)
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="A hyperparameter, KEY=VALUE; repeat for more.", show_default=False),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")] = "table",
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Write the trained weights to an NPZ file.", show_default=False),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of every class held out for validation.")
    ] = 0.2,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the train/validation split.")] = 0,
    quiet: QuietOption = False,
) -> None:
    """Train one network and print its validation loss and accuracy, with a per-epoch table.

    KEY is any hyperparameter: learning_rate, optimizer, momentum, beta1, beta2, epsilon, layers,
    hidden_units, activation, norm, groups, bn_momentum, bn_inference, lr_decay, lr_decay_kind,
    lr_step_epochs, batch_size, epochs, seed, dtype.

    A diverged run (NaN or infinite loss) is a result: exit 0 with status "diverged".

    With -q/--quiet no progress bar and, instead of the tables, one line: status=... val_loss=...
    val_accuracy=... train_loss=... epochs=... seconds=... (--format json is unchanged).

    Example: caviar train --dataset digits --set learning_rate=0.003 --set norm=layer --format json
    """
    check_format(fmt, _FORMATS)
    if (dataset is None) == (data is None):
        raise fail("give exactly one of --dataset NAME or --data FILE", EXIT_BAD_INPUT)
    if target is not None and data is None:
        raise BadInput("--target", target, "expected only with --data FILE (the CSV file's label column)")
    config = hparams.resolve(parse_sets(sets), strings=True)
    if save is not None:
        check_output(save)

    from core.data import load_dataset
    from service.settings import data_root

    dset = load_dataset(
        dataset, path=data, target=target, seed=split_seed, val_fraction=val_fraction, dtype=config["dtype"],
        root=data_root(),
    )
    n_train = len(dset.y_train)
    if config["batch_size"] > n_train:
        raise BadInput(
            "batch_size", config["batch_size"], f"expected at most the training-set size, {n_train} rows"
        )

    from core.nn import train as train_network

    with EpochProgress(config["epochs"], enabled=fmt == "table" and not quiet, console=Console()) as progress:
        result = train_network(config, dset, on_epoch=progress)

    source = {"data": data_source(dataset, data, target, split_seed, val_fraction, n_train + len(dset.y_val)),
              "val_loss": result.val_loss, "val_accuracy": result.val_accuracy}
    saved = None
    if save is not None:
        # train() gave the model its input scaling and classes; the file also says where it came from
        result.model.source = source
        saved = result.model.save(save)
    report = {**result.to_dict(), "dataset": dset.describe(), "config": config}
    if save is not None:
        report["saved"] = {"path": str(save), "arrays": saved}
    if fmt == "json":
        typer.echo(dumps(report))
    elif quiet:
        typer.echo(_one_line(report))
    else:
        _print_table(report)


def _percent(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, float) and math.isfinite(value) else format_value(value)


def _seconds(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else format_value(value)


def _one_line(report: dict[str, Any]) -> str:
    """``--quiet``'s result: ``status=complete val_loss=0.1234 val_accuracy=96.67% ...`` (no styling)."""
    return " ".join([
        f"status={report['status']}",
        f"val_loss={format_value(report.get('val_loss'))}",
        f"val_accuracy={_percent(report.get('val_accuracy'))}",
        f"train_loss={format_value(report.get('train_loss'))}",
        f"epochs={format_value(report.get('epochs_run'))}",
        f"seconds={_seconds(report.get('seconds'))}",
    ])


def _print_table(report: dict[str, Any]) -> None:
    out = stdout_console()
    info, config = report["dataset"], report["config"]
    out.print(
        f"{info['name']}: {info['n_train']:,} training / {info['n_val']:,} validation rows, "
        f"{info['n_features']} features, {info['n_classes']} classes",
        markup=False,
    )
    shown = [k for k in config if k in _SHOWN_KEYS or config[k] != hparams.DEFAULTS[k]]
    out.print("config: " + " ".join(f"{k}={format_value(config[k])}" for k in shown), markup=False)

    status = report["status"]
    style = {"complete": "bold green", "diverged": "bold red", "cancelled": "bold yellow"}.get(status, "bold")
    summary = Table(header_style="bold")
    for name in ("status", "val_loss", "val_accuracy", "train_loss", "epochs", "seconds", "samples/s"):
        summary.add_column(name, justify="left" if name == "status" else "right")
    summary.add_row(
        f"[{style}]{status}[/]",
        format_value(report.get("val_loss")),
        _percent(report.get("val_accuracy")),
        format_value(report.get("train_loss")),
        format_value(report.get("epochs_run")),
        _seconds(report.get("seconds")),
        format_value(report.get("samples_per_second")),
    )
    out.print(summary)
    if status == "diverged":
        out.print(
            "[bold red]the loss became NaN or infinite[/]: try a smaller learning_rate, or norm=batch",
        )

    history: list[dict[str, Any]] = report.get("history") or []
    if history:
        picks = sorted({round(i * (len(history) - 1) / (_EPOCH_ROWS - 1)) for i in range(_EPOCH_ROWS)})
        title = "per epoch" if len(picks) == len(history) else (
            f"per epoch ({len(picks)} of {len(history)} shown; --format json lists all)"
        )
        epochs = Table(title=title, title_justify="left", header_style="bold")
        for name in ("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"):
            epochs.add_column(name, justify="right")
        for i in picks:
            entry = history[i]
            epochs.add_row(
                format_value(entry.get("epoch")),
                format_value(entry.get("train_loss")),
                format_value(entry.get("val_loss")),
                _percent(entry.get("val_accuracy")),
                format_value(entry.get("learning_rate")),
                _seconds(entry.get("seconds"), 3),
            )
        out.print(epochs)
    if report.get("saved"):
        out.print(f"saved {report['saved']['path']}: " + ", ".join(report["saved"]["arrays"]), markup=False)
