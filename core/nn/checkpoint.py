"""Epoch checkpoints: the whole state of a training run between two epochs, as plain arrays.

Between epochs a run is its parameters, the inference statistics of batch and switchable norm, the
optimizer's two moments and its step count; everything else in a
:class:`~core.nn.kernels.Workspace` is recomputed from those inside every mini-batch. The learning
rate depends only on the epoch number and each epoch's shuffle only on (seed, epoch), so a run resumed
from the checkpoint of epoch ``k`` (:func:`core.nn.train` with ``start=``) is bit for bit the run that
was never stopped.

A checkpoint serialises to NPZ bytes (:meth:`Checkpoint.to_bytes`), read back with
``allow_pickle=False``: arrays and integers only, never pickle.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from core.errors import BadInput
from core.nn.kernels import Workspace

__all__ = ["Checkpoint", "capture", "restore"]

#: The arrays a checkpoint holds, in the Workspace's field names.
STATE = ("params", "running", "m1", "m2", "step")


@dataclass(frozen=True)
class Checkpoint:
    """The state after ``epoch`` epochs (1-based: ``epoch = 3`` means three epochs are done).

    Attributes:
        epoch: epochs completed.
        params: (P,) flat parameters.
        running: (2, L, H) inference mean and variance.
        m1, m2: (P,) optimizer moments (zeros for an optimizer that has none).
        step: (1,) int64 optimizer steps taken.
    """

    epoch: int
    params: np.ndarray
    running: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    step: np.ndarray

    def to_bytes(self) -> bytes:
        """NPZ bytes (uncompressed: parameters barely compress, and writing must stay cheap).

        Example:
            >>> c = Checkpoint(2, np.ones(3, np.float32), np.zeros((2, 1, 1)), np.zeros(3), np.zeros(3),
            ...                np.array([7]))
            >>> back = Checkpoint.from_bytes(c.to_bytes())
            >>> back.epoch, back.step.tolist(), back.params.dtype.name
            (2, [7], 'float32')
        """
        buf = io.BytesIO()
        np.savez(buf, epoch=np.array([self.epoch], dtype=np.int64), **{k: getattr(self, k) for k in STATE})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Read :meth:`to_bytes`'s output (no pickle); BadInput if it is not a checkpoint."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: np.array(z[k]) for k in ("epoch", *STATE)}
        except (OSError, ValueError, KeyError) as exc:
            raise BadInput("checkpoint", f"{len(data)} bytes", f"NPZ bytes of a checkpoint ({exc})") from None
        return cls(int(arrays.pop("epoch")[0]), **arrays)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return sum(getattr(self, k).nbytes for k in STATE)


def capture(ws: Workspace, epoch: int) -> Checkpoint:
    """Copies of a training workspace's state after ``epoch`` epochs."""
    return Checkpoint(epoch, *(np.array(getattr(ws, k), copy=True) for k in STATE))


def restore(ws: Workspace, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` into a training workspace of the same network, in place.

    Raises:
        BadInput: the checkpoint belongs to another architecture or dtype.
    """
    for k in STATE:
        have, want = getattr(checkpoint, k), getattr(ws, k)
        if have.shape != want.shape or have.dtype != want.dtype:
            raise BadInput(
                f"checkpoint {k}", f"{have.dtype}{list(have.shape)}",
                f"{want.dtype}{list(want.shape)} (the network this run trains)",
            )
        want[...] = have
