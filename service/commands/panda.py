"""``caviar panda ...``: one model babysat, changed while it trains, rolled back, forked, replayed.

A session is a one-trial study of its own kind: ``caviar status`` lists it, ``caviar plot`` draws it.
Requests (``set``, ``pause``, ``rollback``, ``stop``) are checked, then written to the store; the runner
(this process, a detached one, or a Celery worker) applies them at its next epoch boundary.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.errors import BadInput
from service.cli import EXIT_ERROR, EXIT_INTERRUPTED, app, err
from service.commands._options import DbOption
from service.output import check_format, dumps, format_value, render, stdout_console

if TYPE_CHECKING:
    from service.store import Store

panda = typer.Typer(
    name="panda",
    help="Panda mode: babysit one model; change it while it trains, roll back, fork, replay exactly.",
    no_args_is_help=True,
)
app.add_typer(panda, name="panda")

SessionArgument = Annotated[str, typer.Argument(help="Session id (see `caviar panda list`).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="KEY=VALUE (repeatable): a hyperparameter, as `caviar train` takes it."),
]
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Train in a background process; this command returns at once.")
]
BrokerOption = Annotated[
    str | None,
    typer.Option("--broker", help="Train on a Celery worker through this broker (redis://...)."),
]
QueueOption = Annotated[str | None, typer.Option("--queue", help="The workers' queue (with --broker).")]
ShowFormat = Annotated[str, typer.Option("--format", help="Output: table or json.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No per-epoch lines.")]


def _pairs(items: list[str] | None, field: str = "--set") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(field, item, "KEY=VALUE, e.g. learning_rate=0.01")
        out[key.strip()] = value.strip()
    return out


def _store(db: str | None, *, create: bool = False) -> Store:
    from service.store import open_store

    return open_store(db, create=create)


def _check_broker(broker: str | None, detach: bool) -> None:
    if broker is not None and detach:
        raise BadInput("--detach", "with --broker", "one of --detach or --broker (a worker runs it detached)")
    if broker is not None:
        from service.broker import broker as installed

        installed().check(broker)  # before anything is written


def _epoch_line(entry: dict[str, Any]) -> None:
    err.print(
        f"epoch {entry['epoch']}  lr {format_value(entry.get('learning_rate'))}  "
        f"train_loss {format_value(entry.get('train_loss'))}  "
        f"val_loss {format_value(entry.get('val_loss'))}  "
        f"val_accuracy {format_value(entry.get('val_accuracy'))}",
        markup=False, highlight=False,
    )


def _launch(
    store: Store, session_id: str, *, detach: bool, broker: str | None, quiet: bool,
    steal_after: float | None = None,
) -> int:
    """Run the session here (Ctrl-C pauses it), detached, or on the workers; the exit code."""
    from service.panda import launch

    if broker is not None:
        launch.send_to_broker(store, session_id, broker)
        err.print(f"sent {session_id} to the workers; follow it: caviar panda watch {session_id}",
                  markup=False)
        return 0
    if detach:
        log = Path(".caviar") / "panda" / f"{session_id}.log"
        pid = launch.detach(store.url, session_id, log, steal_after=steal_after)
        err.print(f"training in process {pid} (log {log}); follow it: caviar panda watch {session_id}",
                  markup=False)
        return 0
    try:
        state = launch.run_here(store, session_id, steal_after=steal_after,
                                on_epoch=None if quiet else _epoch_line)
    except KeyboardInterrupt:
        err.print(f"paused {session_id}; go on with: caviar panda resume {session_id}", markup=False)
        return EXIT_INTERRUPTED
    if state is None:
        err.print(f"{session_id}: another runner holds it", markup=False)
        return EXIT_ERROR
    err.print(f"{session_id}: {state}", markup=False)
    return EXIT_ERROR if state == "failed" else 0


def _single_thread(detach: bool = False, broker: str | None = None) -> None:
    """Train in this process as runners do: one BLAS and Numba thread (a thread count changes the
    rounding of the sums, and so the run)."""
    if not detach and broker is None:
        from service.settings import single_thread_env

        single_thread_env()  # re-executes before anything is written


@panda.command()
def start(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="A named dataset (digits, mnist1d, ...).")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A CSV or NPZ file.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="The CSV file's label column.")] = None,
    sets: SetOption = None,
    name: Annotated[str, typer.Option("--name", help="The session's name.")] = "panda",
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Rows held out for validation.")
    ] = 0.2,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the train/validation split.")] = 0,
    lr_find: Annotated[
        bool, typer.Option("--lr-find", help="First a learning-rate range test; its suggestion is used "
                           "unless --set learning_rate is given.")
    ] = False,
    detach: DetachOption = False,
    broker: BrokerOption = None,
    queue: QueueOption = None,
    paused: Annotated[
        bool, typer.Option("--paused", help="Record it paused: queue changes (set --at-epoch), then resume.")
    ] = False,
    db: DbOption = None,
    quiet: QuietOption = False,
) -> None:
    """Start a session and print its id.

    It trains here (Ctrl-C pauses it), with --detach in the background, or with --broker on a worker;
    with --paused it waits for `caviar panda resume`.

    Example:
        caviar panda start --dataset digits --set learning_rate=0.03 --set epochs=40 --detach
    """
    from service.panda.session import check_start, source_of, start_session

    _single_thread(detach, broker)
    _check_broker(broker, detach)
    values = _pairs(sets)
    if not 0.01 <= val_fraction <= 0.9:
        raise BadInput("--val-fraction", val_fraction, "in [0.01, 0.9]")
    source = source_of(dataset, str(data) if data is not None else None, target, val_fraction, split_seed)
    check_start(source, values, name)  # before the store is opened: bad input writes nothing
    store = _store(db, create=True)
    try:
        def point(rate: float, loss: float) -> None:
            if not quiet:
                err.print(f"lr-find: learning_rate {rate:.3g}  val_loss {format_value(loss)}", markup=False)

        session_id = start_session(store, source=source, sets=values, name=name, queue=queue,
                                   lr_find=lr_find, on_lr_point=point, paused=paused)
        sys.stdout.write(session_id + "\n")
        sys.stdout.flush()
        if paused:
            err.print(f"{session_id}: paused; start it with: caviar panda resume {session_id}", markup=False)
            code = 0
        else:
            code = _launch(store, session_id, detach=detach, broker=broker, quiet=quiet)
    finally:
        store.dispose()
    if code:
        raise typer.Exit(code)


@panda.command()
def watch(
    session: SessionArgument,
    db: DbOption = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between reads of the store.")] = 0.5,
) -> None:
    """Follow a session live: curves, epoch, learning rate, ETA, hint; q leaves (it goes on)."""
    from service.panda.session import record
    from service.panda.watch import watch as live

    if not 0.05 <= interval <= 60:
        raise BadInput("--interval", interval, "seconds in [0.05, 60]")
    store = _store(db)
    try:
        from service.store import panda as pdb

        trial_id = _trial(store, session)

        def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return record(store, session), pdb.curve(store, trial_id)

        last = live(read, interval=interval, console=stdout_console())
    finally:
        store.dispose()
    err.print(f"{session}: {last['state']} at epoch {last['epoch']}", markup=False)


def _trial(store: Store, session_id: str) -> str:
    from service.panda.session import require_session

    return require_session(store, session_id).trial.id


@panda.command("set")
def set_(
    session: SessionArgument,
    values: Annotated[list[str], typer.Argument(help="KEY=VALUE ...")],
    at_epoch: Annotated[
        int | None,
        typer.Option("--at-epoch", help="Apply after this many epochs (default: the next boundary)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Change hyperparameters at the next epoch boundary (or after --at-epoch N).

    Structural keys (layers, hidden_units, norm, groups, activation, optimizer, dtype) need a fork.
    """
    from service.panda.control import set_values

    store = _store(db)
    try:
        done = set_values(store, session, _pairs(values, "KEY=VALUE"), at_epoch=at_epoch)
    finally:
        store.dispose()
    when = f"after epoch {at_epoch}" if at_epoch is not None else "at the next epoch boundary"
    if done["state"] != "running":
        when += f" once it resumes (it is {done['state']}: caviar panda resume {session})"
    err.print(f"{session}: {dumps(done['values'])} {when}", markup=False)


@panda.command()
def pause(
    session: SessionArgument,
    at_epoch: Annotated[
        int | None,
        typer.Option("--at-epoch", help="Pause after this many epochs (default: the next boundary)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Pause at the next epoch boundary, or after --at-epoch N (`resume` goes on exactly)."""
    from service.panda.control import pause as ask

    store = _store(db)
    try:
        done = ask(store, session, at_epoch=at_epoch)
    finally:
        store.dispose()
    if done["request"] is None:
        what = "paused already"
    else:
        what = f"pausing after epoch {at_epoch}" if at_epoch is not None else "pausing at the next epoch"
    err.print(f"{session}: {what}", markup=False)


@panda.command()
def stop(session: SessionArgument, db: DbOption = None) -> None:
    """Stop for good (a fork can still start from any kept epoch)."""
    from service.panda.control import stop as ask

    store = _store(db)
    try:
        done = ask(store, session)
    finally:
        store.dispose()
    err.print(f"{session}: " + ("stopped" if done["request"] is None else "stopping at the next epoch"),
              markup=False)


@panda.command()
def resume(
    session: SessionArgument,
    detach: DetachOption = False,
    broker: BrokerOption = None,
    db: DbOption = None,
    quiet: QuietOption = False,
) -> None:
    """Go on from the last checkpoint, bit-identical to a run never interrupted.

    A paused session, one whose process died, one given more epochs or rolled back after it ended.
    """
    from service.panda.control import prepare_resume
    from service.settings import Settings

    _single_thread(detach, broker)
    _check_broker(broker, detach)
    store = _store(db)
    try:
        ready = prepare_resume(store, session, Settings.from_env().stale_after)
        code = _launch(store, session, detach=detach, broker=broker, quiet=quiet,
                       steal_after=ready.steal_after)
    finally:
        store.dispose()
    if code:
        raise typer.Exit(code)


@panda.command()
def rollback(
    session: SessionArgument,
    to_epoch: Annotated[int, typer.Option("--to-epoch", help="Continue from the state after N epochs.")],
    sets: SetOption = None,
    db: DbOption = None,
) -> None:
    """Go back to epoch N's state, with --set changes applied there.

    The epochs after N leave the curve; the log keeps the rollback.
    """
    from service.panda.control import rollback as ask

    store = _store(db)
    try:
        done = ask(store, session, to_epoch, _pairs(sets))
    finally:
        store.dispose()
    when = "at the next epoch boundary" if done["state"] == "running" else (
        f"once it resumes (it is {done['state']}: caviar panda resume {session})"
    )
    err.print(f"{session}: back to epoch {to_epoch} {when}", markup=False)


@panda.command()
def fork(
    session: SessionArgument,
    from_epoch: Annotated[int, typer.Option("--from-epoch", help="Start from the state after N epochs.")],
    sets: SetOption = None,
    name: Annotated[str | None, typer.Option("--name", help="The new session's name.")] = None,
    detach: DetachOption = False,
    broker: BrokerOption = None,
    queue: QueueOption = None,
    db: DbOption = None,
    quiet: QuietOption = False,
) -> None:
    """A new session from epoch N of this one; print its id.

    --set changes apply there (structural ones too, when the weights fit); the original goes on untouched.
    """
    from service.panda.session import fork_session

    _single_thread()  # the fork's first state may be recomputed here
    _check_broker(broker, detach)
    store = _store(db)
    try:
        new_id = fork_session(store, session, from_epoch, _pairs(sets), name=name, queue=queue)
        sys.stdout.write(new_id + "\n")
        sys.stdout.flush()
        code = _launch(store, new_id, detach=detach, broker=broker, quiet=quiet)
    finally:
        store.dispose()
    if code:
        raise typer.Exit(code)


@panda.command()
def replay(session: SessionArgument, db: DbOption = None, fmt: ShowFormat = "table") -> None:
    """Re-run the session from its log, from scratch, and compare.

    Exit 1 unless every epoch's losses, the weights and the final metrics are bit-identical.
    """
    from service.panda.replay import replay_session

    check_format(fmt, ("table", "json"))
    _single_thread()
    store = _store(db)
    try:
        report = replay_session(store, session)
    finally:
        store.dispose()
    if fmt == "json":
        sys.stdout.write(dumps(report) + "\n")
    else:
        console = stdout_console()
        verdict = "identical" if report["identical"] else "DIFFERENT"
        console.print(f"{session}: replayed {report['epochs']} epochs: {verdict} "
                      f"(weights {report['weights']}, "
                      f"{len(report['curve_mismatches'])} epochs differ)", markup=False)
        if "val_loss" in report:
            console.print(f"val_loss stored {report['val_loss']['stored']!r}, "
                          f"replayed {report['val_loss']['replayed']!r}", markup=False)
    if not report["identical"]:
        raise typer.Exit(EXIT_ERROR)


@panda.command()
def show(session: SessionArgument, db: DbOption = None, fmt: ShowFormat = "table") -> None:
    """A session: state, epoch, configuration now, changes in the order applied, history, parent."""
    from service.panda.session import record

    check_format(fmt, ("table", "json"))
    store = _store(db)
    try:
        r = record(store, session)
    finally:
        store.dispose()
    if fmt == "json":
        sys.stdout.write(dumps(r) + "\n")
        return
    console = stdout_console()
    parent = f"  fork of {r['parent']['id']} at epoch {r['parent']['epoch']}" if r["parent"] else ""
    console.print(
        f"[bold]{r['id']}[/bold]  {r['name']}  {r['state']}  epoch {r['epoch']}/{r['epochs']}{parent}"
    )
    console.print(f"config: {dumps(r['config'])}", markup=False)
    if r["changes"]:
        render(r["changes"], ["epoch", "key", "value"], "table", title="Changes", console=console)
    if r["pending"]:
        console.print(f"pending: {dumps(r['pending'])}", markup=False)
    render(r["history"][-10:], ["epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate"], "table",
           title="Last epochs", console=console)
    if r["children"]:
        console.print("forks: " + ", ".join(f"{c['id']} @ {c['epoch']}" for c in r["children"]), markup=False)
    if r["hint"]:
        console.print(f"hint: {r['hint']}", markup=False)


@panda.command("list")
def list_(
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", help="Output: table, json or csv.")] = "table",
) -> None:
    """Every panda session, oldest first."""
    from service.panda.session import list_rows
    from service.store.db import MissingDatabase

    check_format(fmt)
    try:
        store = _store(db)
    except MissingDatabase:
        rows: list[dict[str, Any]] = []
    else:
        try:
            rows = list_rows(store)
        finally:
            store.dispose()
    render(rows, None, fmt, title="Panda sessions")


@panda.command()
def promote(
    session: SessionArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="The study file to write (.toml).")],
    name: Annotated[str | None, typer.Option("--name", help="The study's name.")] = None,
    db: DbOption = None,
) -> None:
    """Write a coarse-to-fine study file that searches around the session's current configuration."""
    from core.panda.promote import study_text
    from core.search import load_study
    from service.panda.session import record, training_rows

    if output.suffix.lower() != ".toml":
        raise BadInput("--output", str(output), "a file name ending in .toml")
    if not output.absolute().parent.is_dir():
        raise BadInput("--output", str(output), "a file in an existing directory")
    store = _store(db)
    try:
        r = record(store, session)
    finally:
        store.dispose()
    text = study_text(r["config"], name=name or f"{r['name']}-study", source=r["source"],
                      n_train=training_rows(r["source"]))
    load_study(text)  # what is written must load
    output.write_text(text)
    err.print(f"wrote {output}: caviar run {output}", markup=False)
