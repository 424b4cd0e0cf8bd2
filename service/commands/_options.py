"""Options shared by the study commands (this module registers no command)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["DbOption", "ReadFormatOption", "StudyArgument"]

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="CAVIAR_DATABASE_URL", help="Database URL (default: sqlite:///./caviar.db)."),
]
ReadFormatOption = Annotated[str, typer.Option("--format", help="Output: table, json or csv.")]
StudyArgument = Annotated[str, typer.Argument(help="Study id (see `caviar status`).")]
