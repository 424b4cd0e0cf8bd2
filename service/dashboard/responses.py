"""JSON responses, the dashboard's errors, and query parameters checked like CLI options.

Every JSON body is strict (:func:`service.output.dumps`: NaN and infinities are ``null``). Bad input is a
400 whose ``error`` names the field, the value and what is allowed (the CLI's :class:`BadInput` text),
with ``field``, ``value`` and ``allowed`` beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from core.errors import BadInput
from service.errors import mask_url
from service.output import dumps, json_safe

__all__ = ["JSON", "NotFound", "Conflict", "error", "bad_input", "query_int", "query_choice", "query_text"]


class JSON(Response):
    """A strict JSON response (``application/json``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


class NotFound(Exception):
    """No such study, trial or session: a 404 (the JSON ``error`` for the API, the 404 page for pages)."""


class Conflict(Exception):
    """The request cannot apply in the current state (a live runner holds the session): a 409."""


def error(status: int, message: str, **extra: Any) -> JSON:
    """``{"error": message, ...extra}`` with ``status``; every URL in the message masked."""
    return JSON({"error": mask_url(message), **extra}, status_code=status)


def bad_input(exc: BadInput) -> JSON:
    """400 with the CLI's one-line message and its parts."""
    return error(
        400, str(exc), field=exc.field, value=json_safe(exc.value) if not isinstance(exc.value, str)
        else mask_url(exc.value), allowed=exc.allowed,
    )


def query_text(request: Request, name: str, max_length: int = 200) -> str | None:
    """A text query parameter (None when absent or empty)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise BadInput(name, raw[:40] + "...", f"expected at most {max_length} characters")
    return raw


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in ``[low, high]`` (``default`` when absent)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(name, raw, f"expected an integer in [{low}, {high}]") from None
    if not low <= value <= high:
        raise BadInput(name, raw, f"expected an integer in [{low}, {high}]")
    return value


def query_choice(request: Request, name: str, default: str | None, choices: Sequence[str]) -> str | None:
    """A query parameter that must be one of ``choices`` (``default`` when absent)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise BadInput(name, raw, "expected one of " + ", ".join(choices))
    return raw
