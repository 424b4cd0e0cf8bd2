"""``caviar submit``: record a study, queue its first round on the broker, print the study id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli import app


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Study file (TOML).")],
    broker: Annotated[
        str | None, typer.Option("--broker", envvar="CAVIAR_BROKER_URL", help="Redis URL (redis:// or rediss://).")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", envvar="CAVIAR_DATABASE_URL", help="Database URL the workers use.")
    ] = None,
) -> None:
    """Submit a study to the workers and exit; print its id. Workers advance it round by round.

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
        study_id, _ = chosen.submit(store, spec, text=text, url=broker)
    finally:
        store.dispose()
    typer.echo(study_id)
