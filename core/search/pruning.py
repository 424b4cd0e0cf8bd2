"""Pruning (multi-fidelity): most of a round's trials train briefly, the promising ones to the end.

A study file's ``[pruning]`` section:

.. code-block:: toml

    [pruning]
    kind = "halving"     # "halving" | "asha" | "none" (the default: every trial trains all its epochs)
    min_epochs = 1       # the first rung
    reduction = 3        # keep the best 1/3 at each rung

``halving`` folds successive halving into every round: the rungs are ``min_epochs · reduction^i``
epochs up to ``[fixed] epochs`` (the last rung); all of a round's configurations train to the first rung,
then the best ``max(1, n // reduction)`` of the ``n`` that reached it continue, resumed from their
checkpoint, to the next, and the others stop there with status ``pruned``. A run stopped at a rung is an
exact prefix of the full run (the learning rate depends on the epoch, not on the planned length), so a
promoted trial ends bit for bit as if it had never paused. Promotion is :func:`promote`, a pure function of
the rung's results, so a study stays deterministic on any path.

``asha`` (asynchronous successive halving, Li et al. 2020) has no barrier between rungs: whenever a trial
reaches a rung, any trial waiting there that ranks in the best ``n // reduction`` of the ``n`` that have
reached it so far continues at once; when nothing of the round is left running, those still waiting are
pruned. It keeps every worker busy, but which trials continue depends on the order in which results
arrive, so an ``asha`` study is not reproducible run to run (``halving`` is).

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import BadInput

__all__ = ["KINDS", "Pruning", "parse_pruning", "promote", "promote_async"]

#: What ``kind`` may be.
KINDS = ("none", "halving", "asha")
_KEYS = ("kind", "min_epochs", "reduction")


@dataclass(frozen=True)
class Pruning:
    """A study's pruning rule.

    Attributes:
        kind: ``"none"``, ``"halving"`` or ``"asha"``.
        min_epochs: epochs of the first rung.
        reduction: at each rung the best ``1 / reduction`` continue.
        epochs: the full training length (``[fixed] epochs``), the last rung.
    """

    kind: str = "none"
    min_epochs: int = 1
    reduction: int = 3
    epochs: int = 0

    @property
    def active(self) -> bool:
        return self.kind != "none"

    @property
    def rungs(self) -> list[int]:
        """Epochs at each rung, the last being ``epochs``.

        ``min_epochs · reduction^i`` while that stays below ``epochs`` divided by the reduction, then
        ``epochs`` itself, so the last step is at least a reduction's worth (no rung just short of the end).

        Example:
            >>> Pruning("halving", 1, 3, 30).rungs, Pruning("halving", 1, 3, 27).rungs
            ([1, 3, 9, 30], [1, 3, 9, 27])
            >>> Pruning("halving", 2, 2, 9).rungs, Pruning().rungs
            ([2, 4, 9], [])
        """
        if not self.active:
            return []
        out, r = [], self.min_epochs
        while r * self.reduction <= self.epochs:
            out.append(r)
            r *= self.reduction
        return [*out, self.epochs]

    def next_rung(self, epochs: int) -> int | None:
        """The rung after ``epochs`` (None after the last)."""
        later = [r for r in self.rungs if r > epochs]
        return later[0] if later else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "min_epochs": self.min_epochs, "reduction": self.reduction}


def parse_pruning(table: Mapping[str, Any], epochs: int, epochs_searched: bool) -> Pruning:
    """Validate a ``[pruning]`` section against the study's training length.

    Args:
        table: the section (empty: no pruning).
        epochs: the trials' ``epochs`` (``[fixed]``, or the default).
        epochs_searched: True when ``epochs`` is a searched key (pruning then has no fixed last rung).

    Raises:
        BadInput: an unknown key or kind, ``min_epochs`` not below ``epochs``, ``reduction`` < 2.
    """
    for key in table:
        if key not in _KEYS:
            raise BadInput(f"[pruning] {key}", key, "unknown key; expected one of " + ", ".join(_KEYS))
    kind = table.get("kind", "none")
    if not isinstance(kind, str) or kind not in KINDS:
        raise BadInput("[pruning] kind", kind, "expected one of " + ", ".join(KINDS))
    min_epochs = table.get("min_epochs", 1)
    reduction = table.get("reduction", 3)
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 2:
        raise BadInput("[pruning] reduction", reduction, "expected an integer >= 2")
    if kind == "none":
        return Pruning("none", int(min_epochs) if isinstance(min_epochs, int) else 1, reduction, epochs)
    if epochs_searched:
        raise BadInput("[space] epochs", "searched", "expected [fixed] epochs with [pruning]: its last rung")
    if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or not 1 <= min_epochs < epochs:
        raise BadInput(
            "[pruning] min_epochs", min_epochs, f"expected an integer in [1, epochs - 1 = {epochs - 1}]"
        )
    return Pruning(kind, min_epochs, reduction, epochs)


def promote_async(reached: Sequence[tuple[int, float]], waiting: Sequence[int], reduction: int) -> list[int]:
    """ASHA's rule at one rung: which waiting trials continue now.

    Args:
        reached: (trial index, smaller-is-better value at the rung) of every trial that has reached the rung
            so far (waiting there or gone on).
        waiting: the indices among them still waiting at the rung.
        reduction: the rung's reduction factor.

    Returns:
        The waiting trials ranked in the best ``n // reduction`` of ``reached`` (none while ``n`` is below
        the reduction), best first.

    Example:
        >>> promote_async([(0, 0.5), (1, 0.2)], [0, 1], 3)          # two results: too few to choose
        []
        >>> promote_async([(0, 0.5), (1, 0.2), (2, 0.9)], [0, 2], 3)  # trial 1 is best but has gone on
        []
        >>> promote_async([(0, 0.5), (1, 0.2), (2, 0.9)], [1, 2], 3)
        [1]
    """
    top = [i for i, _ in _ranked(reached)[: len(reached) // reduction]]
    wait = set(waiting)
    return [i for i in top if i in wait]


def _ranked(results: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted(results, key=lambda iv: (iv[1] if math.isfinite(iv[1]) else math.inf, iv[0]))


def promote(results: Sequence[tuple[int, float]], reduction: int) -> list[int]:
    """Which trials of a rung continue: the best ``max(1, n // reduction)`` of the ``n`` that reached it.

    Args:
        results: (trial index, smaller-is-better value at the rung) per trial that reached it; a NaN or
            infinite value ranks last.
        reduction: the rung's reduction factor.

    Returns:
        The promoted trial indices, best first; ties go to the lower trial index.

    Example:
        >>> promote([(0, 0.9), (1, 0.5), (2, float("nan")), (3, 0.7), (4, 0.5), (5, 2.0)], 3)
        [1, 4]
    """
    if not results:
        return []
    return [i for i, _ in _ranked(results)[: max(1, len(results) // reduction)]]
