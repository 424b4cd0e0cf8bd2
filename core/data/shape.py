""":class:`DataShape`: the sizes of a dataset that decide whether a configuration can train on it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DataShape"]


@dataclass(frozen=True)
class DataShape:
    """A split dataset's sizes, known without loading or training (see :func:`core.data.describe_dataset`).

    Attributes:
        rows_train: rows of the training split (the most a mini-batch can hold).
        rows_val: rows of the validation split.
        features: input features D.
        classes: classes C.
    """

    rows_train: int
    rows_val: int
    features: int
    classes: int

    def to_dict(self) -> dict[str, int]:
        """JSON-safe form."""
        return {
            "rows_train": self.rows_train,
            "rows_val": self.rows_val,
            "features": self.features,
            "classes": self.classes,
        }
