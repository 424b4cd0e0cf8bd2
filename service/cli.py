"""The `caviar` command line.

Commands live in :mod:`service.commands`, one module per concept, each decorating :data:`app`; other
packages add theirs through the entry-point group ``caviar.commands`` (a callable taking :data:`app`:
``caviar worker`` comes from :mod:`workers.commands` this way). :func:`main` is the console script: it
maps errors to exit codes (0 success, 1 runtime error, 2 bad input, 130 interrupted) and prints one line
instead of a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console

from core.errors import BadInput

app = typer.Typer(
    name="caviar",
    help="caviar: distributed hyperparameter sweeps with coarse-to-fine search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Errors and diagnostics go to stderr so that `--format json` output stays parseable.
# No markup and no emoji: an error quoting user text (":ok:", "[red]") prints it as written.
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The entry-point group through which installed packages add commands.
COMMAND_ENTRY_POINTS = "caviar.commands"


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


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
        code = app(standalone_mode=False)
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
