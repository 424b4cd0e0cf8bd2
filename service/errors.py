"""The service's errors, and turning any error into one line a person can act on, secrets masked.

Two kinds of failure reach a person, and the CLI maps each to an exit code:

- :class:`BadInput` (from :mod:`core.errors`): a value the user gave is not allowed; exit 2, nothing
  written.
- :class:`CaviarError` and its subclasses: the service could not do what was asked (a database or broker
  unreachable, a schema that does not fit); exit 1.

Repository functions raise only these (or let a programming error through): no driver or SQLAlchemy
exception escapes them.
"""

from __future__ import annotations

import re

from core.errors import BadInput

__all__ = ["BadInput", "CaviarError", "BrokerUnavailable", "mask_url", "describe"]


class CaviarError(RuntimeError):
    """A runtime failure of the service; the message is one line with passwords masked."""


class BrokerUnavailable(CaviarError):
    """The broker could not be reached."""


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]*)@")


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``.

    >>> mask_url("postgresql+psycopg://bob:s3cret@db:5432/x")
    'postgresql+psycopg://bob:***@db:5432/x'
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def describe(exc: BaseException) -> str:
    """One line for ``exc``: its type and first message line, passwords masked."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return mask_url(text)
