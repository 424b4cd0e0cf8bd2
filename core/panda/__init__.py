"""Panda mode's pure parts: one model babysat, changed at epoch boundaries, rolled back and forked.

- :mod:`core.panda.timeline`: which keys may change, and the configuration that trains every epoch;
- :mod:`core.panda.replay`: training a timeline between two epochs, bit for bit;
- :mod:`core.panda.retention`: which epoch checkpoints a session keeps;
- :mod:`core.panda.hints`: plateau and divergence hints (suggestions, never applied);
- :mod:`core.panda.lr_find`: a short learning-rate range test;
- :mod:`core.panda.promote`: a study file that searches around a session's configuration.
"""

from __future__ import annotations

from core.panda.hints import hint
from core.panda.replay import Outcome, advance
from core.panda.retention import kept_epochs
from core.panda.timeline import (
    FIXED,
    MUTABLE,
    STRUCTURAL,
    Change,
    LogEntry,
    Phase,
    Timeline,
    build_timeline,
    parse_values,
)

__all__ = [
    "FIXED",
    "MUTABLE",
    "STRUCTURAL",
    "Change",
    "LogEntry",
    "Outcome",
    "Phase",
    "Timeline",
    "advance",
    "build_timeline",
    "hint",
    "kept_epochs",
    "parse_values",
]
