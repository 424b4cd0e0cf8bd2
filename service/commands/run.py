"""``caviar run``, ``caviar resume`` and ``caviar cancel``: a study's life on the embedded default."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import BadInput
from service.cli import EXIT_INTERRUPTED, app, err
from service.commands._options import DbOption, broker_option, quiet_option
from service.store.states import FINAL_STUDY, StudyState

if TYPE_CHECKING:
    from core.search import StudySpec
    from service.settings import Settings
    from service.store import Store

_FORMATS = ("table", "json")

QuietOption = quiet_option("the final summary")
RunBrokerOption = broker_option(
    "Run on Celery workers through this Redis URL instead of a local pool", default="a local pool"
)
FormatOption = Annotated[str, typer.Option("--format", help="Output: table or json.")]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", "-w", help="Processes in the local pool (default: the number of cores)."),
]
StaleOption = Annotated[
    float | None,
    typer.Option(
        "--stale-after",
        help="Seconds without a heartbeat after which a running trial is presumed abandoned and run again "
        "(default: CAVIAR_STALE_AFTER or 300).",
    ),
]

PlotOption = Annotated[
    Path | None,
    typer.Option("--plot", help="Also draw the study to this PNG file when it ends (as `caviar plot`)."),
]
StartOption = Annotated[
    str,
    typer.Option(
        "--start-method", hidden=True,
        help="How pool processes start: fork (after compiling kernels once) or spawn (for measurements).",
    ),
]


def _check_start(method: str) -> str:
    if method not in ("fork", "spawn"):
        raise BadInput("--start-method", method, "expected fork or spawn")
    return method


def _check_workers(workers: int | None) -> int:
    from service.settings import usable_cores

    if workers is None:
        return usable_cores()
    if workers < 1:
        raise BadInput("--workers", workers, "expected a positive number of processes")
    return workers


def _settings(stale_after: float | None) -> Settings:
    from service.settings import Settings

    settings = Settings.from_env()
    if stale_after is None:
        return settings
    if not 0 < stale_after < float("inf"):
        raise BadInput("--stale-after", stale_after, "expected a number of seconds > 0")
    return dataclasses.replace(settings, stale_after=stale_after)


def _info(quiet: bool, message: str) -> None:
    """An informational line on stderr, unless --quiet."""
    if not quiet:
        err.print(message, markup=False)


def _bars(fmt: str, quiet: bool) -> bool:
    """Whether the per-round bars may be drawn: a table, not --quiet, and not NO_COLOR (the bars also
    need a terminal, which they check themselves)."""
    from service.output import no_color

    return fmt == "table" and not quiet and not no_color()


def _drive(
    store: Store, study_id: str, trial_ids: list[str], workers: int, fmt: str, settings: Settings,
    start_method: str, picture: Path | None = None, quiet: bool = False,
) -> None:
    from service.local import run_local
    from service.summary import RoundProgress, print_summary

    try:
        with RoundProgress(store, study_id, enabled=_bars(fmt, quiet)) as progress:
            state = run_local(
                store, study_id, trial_ids, workers=workers, settings=settings,
                start_method=start_method, on_finished=progress.update,
            )
    except KeyboardInterrupt:
        err.print(
            f"interrupted: finished trials are kept; continue with `caviar resume {study_id}`", markup=False
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print_summary(store, study_id, fmt)
    _draw(store, study_id, picture, quiet)
    if state != StudyState.COMPLETE:
        err.print(f"study {study_id} ended {state}", markup=False)
        raise typer.Exit(1)


def _draw(store: Store, study_id: str, picture: Path | None, quiet: bool = False) -> None:
    if picture is not None:
        from service.plot import plot_study

        plot_study(store, study_id, picture)
        _info(quiet, f"wrote {picture}")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Study file (TOML).")],
    workers: WorkersOption = None,
    db: DbOption = None,
    fmt: FormatOption = "table",
    broker: RunBrokerOption = None,
    stale_after: StaleOption = None,
    start_method: StartOption = "fork",
    picture: PlotOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run a study to completion on this machine (or on workers with --broker), then show the results.

    Prints a progress bar per round, each round's region and a leaderboard. Ctrl-C stops cleanly
    (exit 130); `caviar resume STUDY` finishes the study without re-running finished trials.

    With -q/--quiet only the final summary (each round's region and the leaderboard, or the JSON record)
    and errors print: no progress bars, no "study ...: N trials" or "wrote FILE" lines. `--broker ""`
    runs on a local pool even when CAVIAR_BROKER_URL or the config file names a broker.

    Example:
        caviar run examples/digits.toml --workers 2 --plot digits.png
    """
    from service.settings import single_thread_env

    single_thread_env()  # before numpy and numba are imported
    from service.output import check_format
    from service.study_file import check_study_data, load_study_file

    check_format(fmt, _FORMATS)
    if picture is not None:
        from service.commands.plot import check_png

        check_png(picture, "--plot")
    n = _check_workers(workers)
    _check_start(start_method)
    settings = _settings(stale_after)
    spec = load_study_file(file)  # a bad file exits 2 here, before any database is touched
    check_study_data(spec)  # and so does data that cannot serve its trials
    text = file.read_text(encoding="utf-8")
    from service.store import open_store

    if broker:
        from service.broker import broker as installed_broker

        installed_broker().check(broker)  # before the store is opened: a bad broker writes nothing
    store = open_store(db)
    try:
        if broker:
            _run_remote(store, spec, text, broker, fmt, picture, quiet)
            return
        from service.orchestrate import submit

        study_id, trial_ids = submit(store, spec, text=text)
        _info(quiet, f"study {study_id}: {len(trial_ids)} trials in round 0, {n} worker processes")
        _drive(store, study_id, trial_ids, n, fmt, settings, start_method, picture, quiet)
    finally:
        store.dispose()


def _run_remote(
    store: Store, spec: StudySpec, text: str, broker: str, fmt: str, picture: Path | None = None,
    quiet: bool = False,
) -> None:
    from service.broker import broker as installed_broker
    from service.follow import follow
    from service.summary import RoundProgress, print_summary

    study_id, trial_ids = installed_broker().submit(store, spec, text=text, url=broker)
    _info(quiet, f"study {study_id}: {len(trial_ids)} trials sent to the workers")
    try:
        with RoundProgress(store, study_id, enabled=_bars(fmt, quiet)) as progress:
            state = follow(store, study_id, on_progress=lambda _p: progress.update())
    except KeyboardInterrupt:
        err.print(f"stopped following; study {study_id} goes on on the workers", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print_summary(store, study_id, fmt)
    _draw(store, study_id, picture, quiet)
    if state != StudyState.COMPLETE:
        raise typer.Exit(1)


@app.command()
def resume(
    study: Annotated[str, typer.Argument(help="Study id (see `caviar status`).")],
    workers: WorkersOption = None,
    db: DbOption = None,
    fmt: FormatOption = "table",
    stale_after: StaleOption = None,
    start_method: StartOption = "fork",
    picture: PlotOption = None,
    quiet: QuietOption = False,
) -> None:
    """Finish an interrupted study with a local pool, without re-running any finished trial.

    With -q/--quiet only the final summary and errors print, as for `caviar run`.

    Example:
        caviar resume digits-c2f-3fa9b1 --workers 2
    """
    from service.settings import single_thread_env

    single_thread_env()
    from service.output import check_format
    from service.store import open_store, reads, studies

    check_format(fmt, _FORMATS)
    if picture is not None:
        from service.commands.plot import check_png

        check_png(picture, "--plot")
    n = _check_workers(workers)
    _check_start(start_method)
    settings = _settings(stale_after)
    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        if row.state == StudyState.CANCELLED:
            raise BadInput("study", study, "expected a study that was not cancelled")
        if row.queue is not None:
            raise BadInput(
                "study", study,
                f"expected a study of the local pool; this one runs on the workers (queue {row.queue}), "
                "which finish it themselves",
            )
        if row.state == StudyState.COMPLETE:
            from service.summary import print_summary

            _info(quiet, f"study {study} is already complete")
            print_summary(store, study, fmt)
            _draw(store, study, picture, quiet)
            return
        queued = reads.queued_trial_ids(store, study)
        _info(quiet, f"study {study}: resuming with {len(queued)} queued trials, {n} worker processes")
        _drive(store, study, queued, n, fmt, settings, start_method, picture, quiet)
    finally:
        store.dispose()


@app.command()
def cancel(
    study: Annotated[str, typer.Argument(help="Study id.")],
    db: DbOption = None,
) -> None:
    """Cancel a study: queued trials are cancelled, running ones stop at their next epoch.

    Finished trials are kept.

    Example:
        caviar cancel digits-c2f-3fa9b1
    """
    from service.store import open_store, studies

    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        if row.state in FINAL_STUDY:
            err.print(f"study {study} is already {row.state}", markup=False)
            return
        n = studies.cancel_study(store, study)
        err.print(f"study {study} cancelled ({n} queued trials cancelled)", markup=False)
    finally:
        store.dispose()
