"""Which epoch checkpoints a panda session keeps.

Any epoch's state can be recomputed exactly from an earlier checkpoint (training is deterministic), so
the session keeps few: the last few epochs (a rollback usually goes back a little), every ``every``-th
epoch (any other epoch is at most ``every - 1`` epochs of recomputation away), and every epoch a rollback
or a fork refers to.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KEEP_LAST", "KEEP_EVERY", "kept_epochs"]

#: The most recent epochs kept.
KEEP_LAST = 3
#: Every this-many-th epoch is kept.
KEEP_EVERY = 10


def kept_epochs(
    epochs: Iterable[int], current: int, protected: Iterable[int] = (), *, last: int = KEEP_LAST,
    every: int = KEEP_EVERY,
) -> set[int]:
    """The checkpoints to keep of ``epochs``, when the session is at ``current``.

    Example:
        >>> sorted(kept_epochs(range(1, 26), 25, protected=[7]))
        [7, 10, 20, 23, 24, 25]
    """
    keep = set(protected)
    return {e for e in epochs if e > current - last or e % every == 0 or e in keep}
