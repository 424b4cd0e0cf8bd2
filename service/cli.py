"""The `caviar` command line.

Commands live in :mod:`service.commands`, one module per concept, each decorating :data:`app`; other
packages add theirs through the entry-point group ``caviar.commands`` (a callable taking :data:`app`:
``caviar worker`` comes from :mod:`workers.commands` this way). :func:`main` is the console script: it
maps errors to exit codes (0 success, 1 runtime error, 2 bad input, 130 interrupted) and prints one line
instead of a traceback.

Conventions every command shares: ``caviar --version`` (``-V``); shell completion through Typer
(``--install-completion``, ``--show-completion``, or the ``_CAVIAR_COMPLETE`` protocol); no colour and no
progress bar when ``NO_COLOR`` is set or the output is not a terminal (:func:`service.output.make_console`);
``-q/--quiet`` on the commands that report progress; ``--db``, ``--broker`` and the queue resolved as flag >
environment variable > config file > default (:mod:`service.config_file`, shown by ``caviar config``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Annotated

import typer

from core.errors import BadInput
from service.output import make_console

#: The program's name in usage lines and in the shell-completion variable (``_CAVIAR_COMPLETE``).
PROG_NAME = "caviar"

app = typer.Typer(
    name=PROG_NAME,
    help="caviar: distributed hyperparameter sweeps with coarse-to-fine search.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

#: Errors and diagnostics go to stderr so that `--format json` output stays parseable.
# No markup and no emoji: an error quoting user text (":ok:", "[red]") prints it as written.
err = make_console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The entry-point group through which installed packages add commands.
COMMAND_ENTRY_POINTS = "caviar.commands"


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def installed_version() -> str:
    """caviar's version as installed (its package metadata)."""
    try:
        return version("caviar")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG_NAME} {installed_version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", is_eager=True, callback=_show_version, help="Print caviar's version and exit."
        ),
    ] = False,
) -> None:
    """caviar: distributed hyperparameter sweeps with coarse-to-fine search."""


def _load_commands() -> None:
    from service import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}")
    for plugin in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda ep: ep.name):
        plugin.load()(app)


_load_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit: pass it on.
        code = app(standalone_mode=False, prog_name=PROG_NAME)
        if isinstance(code, int) and code:
            sys.exit(code)
    except BadInput as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("interrupted", markup=False)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # click's usage errors and our runtime errors
        # Usage errors (a missing argument, an unknown option) exit 2 with click's usage line. Typer may
        # carry its own copy of click, so they are recognised by what they offer, not by class.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        from service.errors import describe

        err.print(f"error: {describe(exc)}", markup=False)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
