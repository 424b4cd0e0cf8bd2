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

__all__ = ["BadInput", "CaviarError", "BrokerUnavailable", "mask_url", "check_url_password", "describe"]


class CaviarError(RuntimeError):
    """A runtime failure of the service; the message is one line with passwords masked."""


class BrokerUnavailable(CaviarError):
    """The broker could not be reached."""


# The userinfo of a URL runs to the last "@" of its token, so a password holding an unencoded "@" or "/"
# is masked whole (such a URL is refused as input anyway: see check_url_password).
_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S*)@(?P<rest>[^@\s]*)"
)
# Passwords given as query parameters or key=value connection settings.
_PARAM_PASSWORD = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|sslpassword|secret|token)=(?P<value>[^&\s'\"]+)"
)
_USERINFO_ONLY = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>\S*)@(?P<rest>[^@\s]*)")


def mask_url(text: str) -> str:
    """Replace every password in ``text`` with ``***``: in a URL's userinfo (whatever characters it
    holds), and in ``password=``-like query parameters or connection settings.

    >>> mask_url("postgresql+psycopg://bob:s3cret@db:5432/x")
    'postgresql+psycopg://bob:***@db:5432/x'
    >>> mask_url("redis://:p@ss/w@queue:6379/0 and postgresql://u@h/db?password=x&sslmode=require")
    'redis://:***@queue:6379/0 and postgresql://u@h/db?password=***&sslmode=require'
    """
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@{m['rest']}", text)
    return _PARAM_PASSWORD.sub(lambda m: f"{m['key']}=***", text)


def check_url_password(field: str, url: str) -> None:
    """Refuse a URL whose password holds an unencoded ``@``, ``/``, ``?`` or ``#``.

    Drivers split such a URL in the wrong place and then print part of the password as a host name.

    Raises:
        BadInput: naming ``field``, the URL masked, and how to encode the password.
    """
    match = _USERINFO_ONLY.match(url.strip())
    if match is None:
        return
    userinfo = match["userinfo"]
    if "@" in userinfo or "/" in userinfo or "?" in userinfo or "#" in userinfo:
        raise BadInput(
            field, mask_url(url),
            "expected a percent-encoded password (@ as %40, / as %2F, ? as %3F, # as %23)",
        )


def describe(exc: BaseException) -> str:
    """One line for ``exc``: its type and first message line, passwords masked."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return mask_url(text)
