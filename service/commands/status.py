"""``caviar status``: every study, or one study's state, rounds, counts by status and best trial."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli import app
from service.commands._options import DbOption, ReadFormatOption, from_config
from service.output import check_format, dumps, format_value, render, stdout_console
from service.store.states import FINISHED

if TYPE_CHECKING:
    from service.store import Store


@app.command()
def status(
    study: Annotated[str | None, typer.Argument(help="Study id; omit to list every study.")] = None,
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
    broker: Annotated[
        str | None,
        typer.Option("--broker", envvar="CAVIAR_BROKER_URL", callback=from_config("broker"),
                     help="Also show the queue: depth, running trials per worker, stale trials."),
    ] = None,
) -> None:
    """Show every study, or one study's state, rounds, counts by status and best trial so far.

    `--format json` gives, per study, an object with id, name, state, rounds, counts and best.

    Example:
        caviar status digits-c2f-3fa9b1 --format json
    """
    from service.errors import mask_url
    from service.store import database_url, open_store, studies
    from service.store.db import MissingDatabase
    from service.summary import format_region, study_kinds
    from service.views import study_record

    check_format(fmt)
    try:
        store = open_store(db, create=False)
    except MissingDatabase:
        if study is not None:
            raise
        # Listing where nothing ran yet: no studies, and no database file left behind.
        if fmt == "json":
            sys.stdout.write("[]\n")
        else:
            render([], None, fmt, title=f"Studies in {mask_url(database_url(db))}")
        return
    try:
        if study is None:
            records = [study_record(store, s) for s in studies.list_studies(store)]
            if fmt == "json":
                sys.stdout.write(dumps(records) + "\n")
                return
            rows = [
                {
                    "id": r["id"], "name": r["name"], "state": r["state"], "strategy": r["strategy"],
                    "objective": r["objective"], "rounds": len(r["rounds"]), "trials": r["trials"],
                    "done": sum(n for s, n in r["counts"].items() if s in FINISHED),
                    "best": (r["best"] or {}).get(r["objective"]),
                    "created": r["created_at"],
                }
                for r in records
            ]
            render(rows, None, fmt, title=f"Studies in {store.safe_url}")
            if broker and fmt == "table":
                from service.broker import broker as installed_broker

                queue = installed_broker().queue_status(store, url=broker)
                stdout_console().print(f"queue: {dumps(queue)}")
            return
        record = study_record(store, studies.require_study(store, study))
        extras = _distributed(store, study)
        if broker:
            from service.broker import broker as installed_broker

            record["queue"] = installed_broker().queue_status(store, url=broker, study_id=study)
        if extras is not None:
            record["workers"] = extras
        if fmt == "json":
            sys.stdout.write(dumps(record) + "\n")
            return
        if fmt == "csv":
            rows = [
                {
                    "round": r["index"], "trials": r["trials"],
                    **{s: r["counts"].get(s, 0) for s in record["counts"]},
                    "region": dumps(r["region"]),
                }
                for r in record["rounds"]
            ]
            render(rows, None, "csv")
            return
        console = stdout_console()
        best = record["best"]
        console.print(
            f"[bold]{record['id']}[/bold]  {record['state']}  ({record['strategy']}, {record['objective']}, "
            f"dataset {record['dataset']})"
        )
        counts = "  ".join(f"{s} {n}" for s, n in record["counts"].items() if n)
        console.print(f"trials: {record['trials']}  ({counts or 'none'})")
        if best:
            console.print(
                f"best: {best['id']}  {record['objective']} {format_value(best[record['objective']])}  "
                f"params {dumps(best['params'])}"
            )
        rows = [
            {"round": r["index"], "trials": r["trials"],
             "done": sum(n for s, n in r["counts"].items() if s in FINISHED),
             "region": format_region(r["region"], study_kinds(store, study))}
            for r in record["rounds"]
        ]
        render(rows, ["round", "trials", "done", "region"], "table", title="Rounds", console=console)
        if extras:
            console.print(f"workers: {dumps(extras)}")
        if "queue" in record:
            console.print(f"queue: {dumps(record['queue'])}")
    finally:
        store.dispose()


def _distributed(store: Store, study_id: str) -> dict[str, Any] | None:
    """Running trials per worker and stale trials (by ``CAVIAR_STALE_AFTER``), when any trial is running."""
    from service.settings import Settings
    from service.store import fleet, lease

    running = fleet.running_by_worker(store, study_id)
    if not running:
        return None
    stale_after = Settings.from_env().stale_after
    stale = [r["id"] for r in lease.stale_running(store, stale_after, study_id=study_id)]
    return {"running_by_worker": {w: len(ids) for w, ids in running.items()}, "stale": stale}
