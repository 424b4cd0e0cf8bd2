"""``caviar trials`` and ``caviar best``: a study's trials, filtered, sorted, or just the best one."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from core.errors import BadInput
from core.search.objective import Objective
from service.cli import app
from service.commands._options import DbOption, ReadFormatOption, StudyArgument
from service.output import check_format, dumps, render


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
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
) -> None:
    """List a study's trials with their parameters and results.

    `--format json` gives a list of objects with id, round, status, attempts, params, val_loss,
    val_accuracy, seconds (and more).

    Example:
        caviar trials digits-c2f-3fa9b1 --top 10
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
    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        if top is not None and sort is None:
            sort = "objective"
        records = [
            trial_record(r)
            for r in reads.trial_rows(
                store, study, objective=row.objective, round_index=round_index, status=status, sort=sort,
                limit=top,
            )
        ]
        if fmt == "json":
            sys.stdout.write(dumps(records) + "\n")
        elif fmt == "csv":
            render([flat_trial(r) for r in records], None, "csv")
        else:
            render(_table_rows(records), _columns(records, row.objective), "table",
                   title=f"{study}: {len(records)} trials")
    finally:
        store.dispose()


@app.command()
def best(
    study: StudyArgument,
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
) -> None:
    """Show the best complete trial of a study by its objective.

    `--format json` gives one trial object (as `caviar trials` lists them).

    Example:
        caviar best digits-c2f-3fa9b1 --format json
    """
    from service.cli import fail
    from service.store import open_store, reads, studies
    from service.views import flat_trial, trial_record

    check_format(fmt)
    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        found = reads.best_trial_row(store, study, row.objective)
        if found is None:
            raise fail(f"study {study} has no complete trial yet")
        record = trial_record(found)
        if fmt == "json":
            sys.stdout.write(dumps(record) + "\n")
        elif fmt == "csv":
            render([flat_trial(record)], None, "csv")
        else:
            rows = [{"key": k, "value": v} for k, v in record.items() if k != "params"]
            rows[4:4] = [{"key": f"params.{k}", "value": v} for k, v in record["params"].items()]
            render(rows, ["key", "value"], "table", title=f"Best trial of {study} ({row.objective})")
    finally:
        store.dispose()
