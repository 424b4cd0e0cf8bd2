"""``caviar panda watch``: the session live in the terminal, read from the store.

The view polls the store (the runner may be another process or another machine), redraws when an epoch
lands, and leaves on ``q`` (or Ctrl-C), or by itself once the session no longer runs. It never changes
the session: the hint is a suggestion to act on with ``caviar panda set``/``rollback``.
"""

from __future__ import annotations

import math
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["sparkline", "frame", "eta_seconds", "watch"]

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int = 60, log: bool = True) -> str:
    """The last ``width`` values as one line of bars (a gap for a missing or non-finite one).

    Example:
        >>> sparkline([1.0, 0.5, 0.25, None], log=False)
        '█▃▁ '
    """
    vals = list(values)[-width:]
    finite = [v for v in vals if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not finite:
        return " " * len(vals)
    f = (lambda v: math.log(v)) if log else (lambda v: v)
    lo, hi = f(min(finite)), f(max(finite))
    out = []
    for v in vals:
        if v is None or not math.isfinite(v) or (log and v <= 0):
            out.append(" ")
        else:
            t = 0.0 if hi == lo else (f(v) - lo) / (hi - lo)
            out.append(_BARS[min(int(t * len(_BARS)), len(_BARS) - 1)])
    return "".join(out)


def eta_seconds(history: Sequence[dict[str, Any]], epochs: int) -> float | None:
    """Seconds left at the mean pace of the last 5 epochs (None before the first)."""
    recent = [h.get("seconds") for h in history[-5:] if h.get("seconds")]
    if not recent or not history:
        return None
    return max(epochs - int(history[-1]["epoch"]), 0) * sum(recent) / len(recent)


def _fmt(x: Any, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def frame(record: dict[str, Any], curve: Sequence[dict[str, Any]]) -> Group:
    """One screen: header, the curves as bars, the last epochs, changes, the hint."""
    last = curve[-1] if curve else {}
    eta = eta_seconds(curve, int(record["epochs"])) if record["state"] == "running" else None
    head = Text.assemble(
        (f"{record['name']} ({record['id']})", "bold"), f"  {record['state']}  ",
        f"epoch {record['epoch']}/{record['epochs']}  lr {_fmt(last.get('learning_rate'))}  ",
        f"val_loss {_fmt(last.get('val_loss'))}  val_accuracy {_fmt(last.get('val_accuracy'), '.3f')}",
        f"  ETA {eta:.0f} s" if eta is not None else "",
    )
    curves = Table.grid(padding=(0, 1))
    curves.add_row("val_loss  ", sparkline([h.get("val_loss") for h in curve]))
    curves.add_row("train_loss", sparkline([h.get("train_loss") for h in curve]))
    curves.add_row("lr        ", sparkline([h.get("learning_rate") for h in curve]))
    epochs = Table("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate", box=None)
    for h in curve[-5:]:
        epochs.add_row(str(h["epoch"]), _fmt(h.get("train_loss")), _fmt(h.get("val_loss")),
                       _fmt(h.get("val_accuracy"), ".3f"), _fmt(h.get("learning_rate")))
    parts: list[Any] = [head, curves, epochs]
    if record["changes"]:
        parts.append(Text("changes: " + ", ".join(
            f"{c['key']}={c['value']}@{c['epoch']}" for c in record["changes"][-6:]
        )))
    if record["pending"]:
        parts.append(Text(f"pending: {len(record['pending'])} request(s)"))
    if record.get("hint"):
        parts.append(Text(f"hint: {record['hint']}", style="yellow"))
    parts.append(Text("q to leave (the session goes on)", style="dim"))
    return Group(*parts)


@contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A reader of single key presses (cbreak mode) when stdin is a terminal; otherwise one that sleeps."""
    if not sys.stdin.isatty() or os.name != "posix":
        yield lambda timeout: time.sleep(timeout)  # type: ignore[func-returns-value]
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="ignore") if ready else None

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def watch(
    read: Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]], *, interval: float = 0.5,
    console: Any = None,
) -> dict[str, Any]:
    """Show ``read()``'s (record, curve) live until ``q``, or until the session stops running; return
    the last record."""
    from rich.live import Live

    record, curve = read()
    with _keys() as key, Live(frame(record, curve), console=console, auto_refresh=False) as live:
        while record["state"] == "running":
            if key(interval) in ("q", "Q"):
                break
            record, curve = read()
            live.update(frame(record, curve), refresh=True)
        live.update(frame(record, curve), refresh=True)
    return record
