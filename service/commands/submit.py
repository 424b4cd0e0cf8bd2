"""``caviar submit``: record a study, queue its first round on the broker, print the study id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli import app, err
from service.commands._options import broker_option, db_option, quiet_option

SubmitBrokerOption = broker_option()
SubmitDbOption = db_option("Database URL the workers use")
QuietOption = quiet_option("the study id")


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Study file (TOML).")],
    broker: SubmitBrokerOption = None,
    db: SubmitDbOption = None,
    quiet: QuietOption = False,
) -> None:
    """Submit a study to the workers and exit; print its id. Workers advance it round by round.

    The study id is the one line on stdout; a line on stderr says how many trials were sent and how to
    follow the study. With -q/--quiet only the study id (and errors) print.

    Example:
        caviar submit examples/digits.toml --broker redis://:pw@queue:6379/0 --db postgresql://u:pw@db/caviar
    """
    from service.broker import broker as installed_broker
    from service.store import open_store
    from service.study_file import check_study_data, load_study_file

    spec = load_study_file(file)  # bad input exits 2 before anything is written
    check_study_data(spec)  # data that cannot serve its trials too
    chosen = installed_broker()
    chosen.check(broker)  # and a broker that cannot take it, before the store is opened
    store = open_store(db)
    try:
        text = file.read_text(encoding="utf-8")
        study_id, trial_ids = chosen.submit(store, spec, text=text, url=broker)
    finally:
        store.dispose()
    typer.echo(study_id)
    if not quiet:
        sent = f"study {study_id}: {len(trial_ids)} trials sent to the workers"
        err.print(f"{sent}; follow it: caviar status {study_id}", markup=False)
