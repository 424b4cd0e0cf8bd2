"""``caviar trials`` and ``caviar best``: a study's trials, filtered, sorted, or just the best one."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import BadInput
from core.search.objective import Objective
from service.cli import app
from service.commands._options import DbOption, ReadFormatOption, StudyArgument
from service.output import check_format, dumps, render, stdout_console

SaveOption = Annotated[
    Path | None,
    typer.Option(
        "--save",
        help="Retrain the trial from its stored configuration, seed and data split, check its val_loss is "
        "the stored one bit for bit, and write the model (caviar-mlp-1 NPZ; see caviar predict).",
        show_default=False,
    ),
]


def _save(store: Any, trial_id: str, path: Path, *, quiet: bool, session: bool = False,
          epoch: int | None = None) -> dict[str, Any]:
    """Rebuild one trial's model (or a panda session's), write it to ``path`` and return the ``saved`` record.

    Nothing is written unless the rebuilt model reproduces the stored validation loss.
    """
    from service.model_file import session_model, trial_model
    from service.output import interactive, make_console
    from service.progress import EpochProgress

    console = make_console(stderr=True)
    if session:
        live = not quiet and interactive(console)
        spinner = console.status("recomputing the session state") if live else nullcontext()
        with spinner:
            rebuilt = session_model(store, trial_id, epoch)
    else:
        from service.store import reads

        row = reads.trial(store, trial_id)
        planned = int(row.epochs_run or 1) if row is not None else 1
        with EpochProgress(planned, enabled=not quiet, description="retraining",
                           console=console) as progress:
            rebuilt = trial_model(store, trial_id, on_epoch=progress)
    arrays = rebuilt.model.save(path)
    return {"path": str(path), "bytes": path.stat().st_size, "arrays": arrays, **rebuilt.record()}


def _print_saved(saved: dict[str, Any]) -> None:
    how = (f"resumed from its checkpoint of epoch {saved['resumed_from']}" if saved["resumed_from"]
           else "retrained from scratch")
    stdout_console().print(
        f"saved {saved['path']} ({saved['bytes']:,} bytes): {how}, {saved['epochs']} epochs in "
        f"{saved['seconds']:.1f} s; val_loss {saved['val_loss']!r} is the stored value, bit for bit",
        markup=False, highlight=False,
    )


def _check_save(save: Path | None) -> None:
    if save is not None:
        from service.model_file import check_output
        from service.settings import single_thread_env

        check_output(save)
        # trials trained single-threaded (the pool and workers set it), and the BLAS thread count
        # changes rounding: retrain the same way (re-executes this process, before anything is read)
        single_thread_env()


def _columns(records: list[dict], objective: str) -> list[str]:  # type: ignore[type-arg]
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r["params"]))
    other = Objective(objective).other
    return ["id", "round", "status", objective, other, *names, "attempts", "epochs_run", "seconds"]


def _table_rows(records: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [{**{k: v for k, v in r.items() if k != "params"}, **r["params"]} for r in records]


@app.command()
def trials(
    study: StudyArgument,
    round_index: Annotated[int | None, typer.Option("--round", help="Only this round.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only trials with this status (queued, running, complete, ...)."),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", help="The N best by the study's objective.")] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", help="objective, val_loss, val_accuracy, seconds, round, id or attempts."),
    ] = None,
    trial: Annotated[
        str | None, typer.Option("--trial", help="Only this trial (its id, as listed).", show_default=False)
    ] = None,
    save: SaveOption = None,
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
) -> None:
    """List a study's trials with their parameters and results.

    `--format json` gives a list of objects with id, round, status, attempts, params, val_loss,
    val_accuracy, seconds (and more).

    `--save FILE` writes the model of the one trial listed (pick it with `--trial ID` or `--top 1`):
    retrained from its stored configuration, seed and data split and checked against the stored
    val_loss (exit 1 with both values if it differs: the data or the machine changed).

    Example:
        caviar trials digits-c2f-3fa9b1 --top 10
        caviar trials digits-c2f-3fa9b1 --trial digits-c2f-3fa9b1-r1-t004 --save model.npz
    """
    from service.store import TrialStatus, open_store, reads, studies
    from service.views import flat_trial, trial_record

    check_format(fmt)
    if status is not None and status not in set(TrialStatus):
        raise BadInput("--status", status, "expected one of " + ", ".join(TrialStatus))
    if top is not None and top < 1:
        raise BadInput("--top", top, "expected a positive number")
    if sort is not None and sort not in reads.SORT_KEYS:
        raise BadInput("--sort", sort, "expected one of " + ", ".join(reads.SORT_KEYS))
    _check_save(save)
    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        if top is not None and sort is None:
            sort = "objective"
        records = [
            trial_record(r)
            for r in reads.trial_rows(
                store, study, objective=row.objective, round_index=round_index, status=status, sort=sort,
                limit=top if trial is None else None,
            )
        ]
        if trial is not None:
            records = [r for r in records if r["id"] == trial]
            if not records:
                raise BadInput("--trial", trial, f"the id of a trial of {study} (see caviar trials {study})")
        saved = None
        if save is not None:
            if len(records) != 1:
                listed = f"one trial to save, {len(records)} listed: give --trial ID"
                raise BadInput("--save", str(save), listed)
            saved = _save(store, records[0]["id"], save, quiet=fmt != "table")
            records[0]["saved"] = saved
        if fmt == "json":
            sys.stdout.write(dumps(records) + "\n")
        elif fmt == "csv":
            render([flat_trial(r) for r in records], None, "csv")
        else:
            render(_table_rows([{k: v for k, v in r.items() if k != "saved"} for r in records]),
                   _columns(records, row.objective), "table", title=f"{study}: {len(records)} trials")
            if saved is not None:
                _print_saved(saved)
    finally:
        store.dispose()


@app.command()
def best(
    study: StudyArgument,
    save: SaveOption = None,
    epoch: Annotated[
        int | None,
        typer.Option("--epoch", help="A panda session's model after this epoch (default: its last).",
                     show_default=False),
    ] = None,
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
) -> None:
    """Show the best complete trial of a study by its objective; `--save FILE` writes its model.

    `--format json` gives one trial object (as `caviar trials` lists them), with `saved` when `--save`
    is given. The model is retrained from the trial's stored configuration, seed and data split, and
    written only if its val_loss is the stored one bit for bit (else exit 1 with both values: the data
    or the machine changed); a trial that still holds a checkpoint resumes from it. For a panda session,
    the model is the session's state after its last epoch (or `--epoch N`), from its checkpoints.

    Example:
        caviar best digits-c2f-3fa9b1 --format json
        caviar best digits-c2f-3fa9b1 --save model.npz
    """
    from service.cli import fail
    from service.orchestrate import is_panda
    from service.store import open_store, reads, studies
    from service.views import flat_trial, trial_record

    check_format(fmt)
    if epoch is not None and save is None:
        raise BadInput("--epoch", epoch, "expected only with --save FILE (a panda session's model)")
    _check_save(save)
    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        panda = is_panda(store, study)
        if epoch is not None and not panda:
            raise BadInput("--epoch", epoch, f"expected only for a panda session; {study} is a sweep")
        if panda and save is not None:
            found = None
            record: dict[str, Any] = {"id": study, "kind": "panda"}
        else:
            found = reads.best_trial_row(store, study, row.objective)
            if found is None:
                raise fail(f"study {study} has no complete trial yet")
            record = trial_record(found)
        if save is not None:
            record["saved"] = _save(store, study if panda else record["id"], save, quiet=fmt != "table",
                                    session=panda, epoch=epoch)
        if fmt == "json":
            sys.stdout.write(dumps(record) + "\n")
        elif fmt == "csv":
            render([flat_trial(record)], None, "csv")
        else:
            if found is not None:
                rows = [{"key": k, "value": v} for k, v in record.items() if k not in ("params", "saved")]
                rows[4:4] = [{"key": f"params.{k}", "value": v} for k, v in record["params"].items()]
                render(rows, ["key", "value"], "table", title=f"Best trial of {study} ({row.objective})")
            if "saved" in record:
                _print_saved(record["saved"])
    finally:
        store.dispose()
