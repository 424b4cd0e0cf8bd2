"""The one exception type for bad input, shared by every layer of caviar.

The CLI turns :class:`BadInput` into a one-line message and exit code 2.
"""

from __future__ import annotations

from typing import Any


class BadInput(ValueError):
    """A value a user gave is not allowed.

    Args:
        field: where the value came from, e.g. ``"learning_rate"`` or ``"[space] learning_rate"``.
        value: the offending value, as given.
        allowed: what would have been accepted, in words.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: {value!r} is not allowed; {allowed}")
