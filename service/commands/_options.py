"""Options shared by the study commands (this module registers no command).

``--db`` and ``--broker`` keep their environment variables (``CAVIAR_DATABASE_URL``,
``CAVIAR_BROKER_URL``); when neither the flag nor the variable is given, their callback takes the value
from the config file (:func:`service.config_file.option_value`), so every command resolves them by the
same rule: flag > environment variable > config file > default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

__all__ = [
    "DbOption",
    "BrokerOption",
    "ReadFormatOption",
    "StudyArgument",
    "db_option",
    "broker_option",
    "quiet_option",
    "from_config",
]

#: Where the help of an option tells what happens when it is not given ("\\[" keeps rich markup off).
_FROM_FILE = "else caviar.toml or \\[tool.caviar] in pyproject.toml"


def from_config(key: str) -> Callable[[str | None], str | None]:
    """A Typer callback: the option's value, or when Click found neither flag nor variable, the config
    file's ``key`` (None when the file has none)."""

    def fill(value: str | None) -> str | None:
        from service.config_file import option_value

        return option_value(key, value)

    return fill


def db_option(help: str = "Database URL") -> Any:
    """The ``--db`` option (``CAVIAR_DATABASE_URL``), ``help`` followed by where its default comes from."""
    return Annotated[
        str | None,
        typer.Option(
            "--db", envvar="CAVIAR_DATABASE_URL", callback=from_config("db"),
            help=f"{help} ({_FROM_FILE}, else sqlite:///./caviar.db).",
        ),
    ]


def broker_option(
    help: str = "Redis URL (redis:// or rediss://)", default: str = "redis://localhost:6379/0"
) -> Any:
    """The ``--broker`` option (``CAVIAR_BROKER_URL``), ``help`` followed by where its default comes
    from; ``default`` says what happens without any (for ``run``: a local pool)."""
    return Annotated[
        str | None,
        typer.Option(
            "--broker", envvar="CAVIAR_BROKER_URL", callback=from_config("broker"),
            help=f"{help} ({_FROM_FILE}, else {default}).",
        ),
    ]


def quiet_option(result: str) -> Any:
    """The ``-q/--quiet`` option; ``result`` says what still prints besides errors."""
    return Annotated[
        bool,
        typer.Option(
            "--quiet", "-q",
            help=f"No progress bars and no informational lines: only {result} and errors print "
            "(--format json is unchanged).",
        ),
    ]


DbOption = db_option()
BrokerOption = broker_option()
ReadFormatOption = Annotated[str, typer.Option("--format", help="Output: table, json or csv.")]
StudyArgument = Annotated[str, typer.Argument(help="Study id (see `caviar status`).")]
