"""Turning runtime errors into one line a person can act on, with secrets masked."""

from __future__ import annotations

import re

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
