"""A per-epoch progress bar for commands that train, shown only to a person at a terminal.

Use it as the ``on_epoch`` callback of :func:`core.nn.train`::

    with EpochProgress(config["epochs"], enabled=fmt == "table") as progress:
        result = train(config, data, on_epoch=progress)

When its console is not a terminal, ``NO_COLOR`` is set (any non-empty value), or ``enabled`` is False
(``--format json``, ``--quiet``), it prints nothing.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service.output import interactive, make_console

__all__ = ["EpochProgress"]


class EpochProgress:
    """A transient rich bar advanced once per epoch, showing the latest validation figures.

    Args:
        epochs: the planned number of epochs (the bar's length).
        enabled: False to stay silent; the bar is also silent whenever its console is not a terminal or
            ``NO_COLOR`` is set.
        description: the label in front of the bar.
        console: the console to draw on (default: stdout).
    """

    def __init__(
        self,
        epochs: int,
        *,
        enabled: bool = True,
        description: str = "training",
        console: Console | None = None,
    ) -> None:
        self.epochs = epochs
        self.description = description
        self.console = console or make_console()
        self.active = enabled and interactive(self.console)
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> EpochProgress:
        if self.active:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            # Until the first epoch ends the engine may still be compiling or loading kernels.
            self._task = self._progress.add_task(self.description, total=self.epochs, figures="starting…")
        return self

    def __call__(self, entry: dict[str, Any]) -> None:
        """Advance by one epoch; ``entry`` is the engine's history entry. Never cancels the run."""
        if self._progress is None:
            return
        loss = entry.get("val_loss")
        acc = entry.get("val_accuracy")
        parts = []
        if isinstance(loss, float):
            parts.append(f"val_loss {loss:.4f}" if math.isfinite(loss) else f"val_loss {loss}")
        if isinstance(acc, float):
            parts.append(f"val_acc {acc:.2%}")
        self._progress.update(self._task, advance=1, figures="  ".join(parts))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
