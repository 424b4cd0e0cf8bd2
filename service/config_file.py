"""The optional config file for the database, the broker and the queue, and the one precedence rule.

The file is ``caviar.toml`` in the working directory (top-level keys), or else the ``[tool.caviar]``
table of ``pyproject.toml`` in the working directory; only ``db``, ``broker`` and ``queue`` are allowed,
each a non-empty string::

    db = "postgresql://caviar@db.internal/caviar"
    broker = "redis://queue.internal:6379/0"
    queue = "gpu"

Each setting is, in this order of precedence: its command-line flag, its environment variable
(``CAVIAR_DATABASE_URL``, ``CAVIAR_BROKER_URL``, ``CAVIAR_QUEUE``), the file, the default.
:func:`resolve` is the one place that applies this rule. CLI options let Click read the flag and the
environment variable (so ``--help`` names the variable) and fill what is left through
:func:`option_value`; :class:`workers.settings.WorkerSettings` resolves the broker and the queue here
too.

The file is read when a value is looked up in it (when neither the flag nor the variable gave one), and
checked whole then: invalid TOML, an unknown key or a value that is not a non-empty string is
:class:`~core.errors.BadInput` (exit 2) naming the file and the key, with any URL's password masked.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BadInput
from service.errors import check_url_password, mask_url
from service.settings import BROKER_URL_ENV, DEFAULT_BROKER_URL, DEFAULT_QUEUE, QUEUE_ENV

__all__ = [
    "CONFIG_FILE",
    "PYPROJECT",
    "KEYS",
    "FLAGS",
    "ConfigFile",
    "Resolved",
    "load",
    "resolve",
    "option_value",
]

#: The config file of its own, looked for in the working directory first.
CONFIG_FILE = "caviar.toml"
#: Else this file's ``[tool.caviar]`` table, in the working directory.
PYPROJECT = "pyproject.toml"
#: The settings a config file may hold, in the order they are shown.
KEYS = ("db", "broker", "queue")
#: The command-line flag of each setting, as ``caviar config`` takes it (``worker`` names the queue
#: ``-Q/--queues``).
FLAGS = {"db": "--db", "broker": "--broker", "queue": "--queue"}
#: Settings whose values are URLs: their passwords are never shown.
_URLS = ("db", "broker")


def _env_and_default(key: str) -> tuple[str, str]:
    if key == "db":
        from service.store.db import DEFAULT_URL, ENV_VAR  # the store's own constants, imported late

        return ENV_VAR, DEFAULT_URL
    if key == "broker":
        return BROKER_URL_ENV, DEFAULT_BROKER_URL
    if key == "queue":
        return QUEUE_ENV, DEFAULT_QUEUE
    raise ValueError(f"unknown setting {key!r}; expected one of {', '.join(KEYS)}")


@dataclass(frozen=True)
class ConfigFile:
    """A config file found in the working directory, checked.

    Attributes:
        path: the file (absolute).
        table: ``None`` for ``caviar.toml``, ``"tool.caviar"`` for ``pyproject.toml``.
        values: the settings it gives (a subset of :data:`KEYS`).
    """

    path: Path
    table: str | None
    values: Mapping[str, str]

    @property
    def label(self) -> str:
        """The file as messages name it: its path, with ``[tool.caviar]`` for ``pyproject.toml``."""
        return str(self.path) if self.table is None else f"{self.path} [{self.table}]"


@dataclass(frozen=True)
class Resolved:
    """One setting's effective value and where it came from.

    Attributes:
        key: ``db``, ``broker`` or ``queue``.
        value: the value (a URL with its password: show :attr:`shown`).
        source: ``flag``, ``env``, ``file`` or ``default``.
        origin: the flag, the environment variable's name, the file's :attr:`ConfigFile.label`, or None
            for the default.
    """

    key: str
    value: str
    source: str
    origin: str | None

    @property
    def shown(self) -> str:
        """The value with any password masked."""
        return mask_url(self.value)

    def describe(self) -> str:
        """``flag --db``, ``env CAVIAR_DATABASE_URL``, ``file /path/caviar.toml`` or ``default``."""
        return self.source if self.origin is None else f"{self.source} {self.origin}"


def _parse(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(
            str(path), "invalid TOML", f"expected a valid TOML file ({mask_url(str(exc))})"
        ) from None
    except UnicodeDecodeError:
        raise BadInput(str(path), "not UTF-8", "expected a TOML file in UTF-8") from None
    except OSError as exc:
        raise BadInput(str(path), "unreadable", f"expected a readable file ({exc.strerror})") from None


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date or time"


def _check(label: str, table: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise BadInput(label, key, "expected only the keys " + ", ".join(KEYS))
        field = f"{label}: {key}"
        if not isinstance(value, str):
            shown = value if isinstance(value, (bool, int, float)) else mask_url(str(value))
            raise BadInput(
                field, shown, f'expected a string in quotes (e.g. {key} = "..."), not {_kind(value)}'
            )
        if not value.strip():
            raise BadInput(field, value, "expected a non-empty string")
        if key in _URLS:
            check_url_password(field, value)  # raises with the URL masked
        values[key] = value.strip()
    return values


def load(cwd: Path | None = None) -> ConfigFile | None:
    """The config file of the working directory (or ``cwd``), checked; None when there is none.

    ``caviar.toml`` wins; ``pyproject.toml`` counts only when it has a ``[tool.caviar]`` table.

    Raises:
        BadInput: the file is not valid TOML, or holds an unknown key or a value that is not a non-empty
            string (naming the file and the key; a URL's password is masked).
    """
    where = Path.cwd() if cwd is None else Path(cwd).absolute()
    own = where / CONFIG_FILE
    if own.exists():
        return ConfigFile(own, None, _check(str(own), _parse(own)))
    project = where / PYPROJECT
    if not project.is_file():
        return None
    tool = _parse(project).get("tool")
    section = tool.get("caviar") if isinstance(tool, dict) else None
    if section is None:
        return None
    label = f"{project} [tool.caviar]"
    if not isinstance(section, dict):
        raise BadInput(
            label, mask_url(str(section)), f"expected a table of db, broker and queue, not {_kind(section)}"
        )
    return ConfigFile(project, "tool.caviar", _check(label, section))


def resolve(
    key: str, flag: str | None = None, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Resolved:
    """``key``'s effective value: ``flag`` > its environment variable > the config file > the default.

    An empty flag or variable counts as not given (as Click treats an empty variable).

    Args:
        key: ``db``, ``broker`` or ``queue``.
        flag: the command-line value, if any.
        environ: the environment (default: ``os.environ``).
        cwd: the directory to look for the file in (default: the working directory).

    Raises:
        BadInput: the config file is bad (see :func:`load`); it is read only when needed.
    """
    env, default = _env_and_default(key)
    if flag:
        return Resolved(key, flag, "flag", FLAGS[key])
    environ = os.environ if environ is None else environ
    if environ.get(env):
        return Resolved(key, environ[env], "env", env)
    found = load(cwd)
    if found is not None and key in found.values:
        return Resolved(key, found.values[key], "file", found.label)
    return Resolved(key, default, "default", None)


def option_value(key: str, given: str | None) -> str | None:
    """For a CLI option whose flag and environment variable Click has read: ``given``, else the config
    file's value, else None (the command then applies its own default, e.g. ``run``'s local pool)."""
    if given is not None:
        return given
    found = resolve(key)
    return found.value if found.source in ("env", "file") else None
