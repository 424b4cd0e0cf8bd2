"""A panda session's timeline: its first configuration and the changes that took effect since.

A change takes effect at an epoch *boundary*: ``Change(epoch=k, values)`` changes the configuration that
trains epochs k+1, k+2, ... (k epochs are done when it applies). The configuration training any epoch is
therefore a pure function of the timeline, and so is the whole run: the engine resumes bit for bit from a
checkpoint, so a session trained in pieces, interrupted, rolled back or replayed from its log is the same
run.

The learning-rate schedule restarts at a change of a schedule key (``learning_rate``, ``lr_decay``,
``lr_decay_kind``, ``lr_step_epochs``): the next epoch trains at the new ``learning_rate``, and decays from
there. A change of the decay alone keeps the rate the next epoch would have had (it becomes the new
``learning_rate``), so turning the decay off holds the rate where it is instead of jumping back up.

A rollback to epoch N restores the state after epoch N *and* the configuration that trained epoch N: the
changes that took effect at N or later are undone, then the rollback's own values apply at N.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import hparams
from core.errors import BadInput
from core.nn.schedule import learning_rate

__all__ = [
    "MUTABLE",
    "STRUCTURAL",
    "FIXED",
    "SCHEDULE",
    "Change",
    "Phase",
    "LogEntry",
    "Timeline",
    "build_timeline",
    "parse_values",
]

#: Keys a running session may change at an epoch boundary.
MUTABLE = (
    "learning_rate", "lr_decay", "lr_decay_kind", "lr_step_epochs", "momentum", "beta1", "beta2", "epsilon",
    "epochs", "batch_size", "bn_momentum", "bn_inference",
)
#: Keys that define the network or its state's shape: changed only by a fork.
STRUCTURAL = ("layers", "hidden_units", "norm", "groups", "activation", "optimizer", "dtype")
#: Keys fixed for a session (a fork may set them).
FIXED = ("seed",)
#: The learning-rate schedule's keys: a change of any restarts the schedule.
SCHEDULE = ("learning_rate", "lr_decay", "lr_decay_kind", "lr_step_epochs")


def parse_values(
    items: Mapping[str, Any], *, strings: bool = True, structural: bool = False, field_prefix: str = "--set"
) -> dict[str, Any]:
    """Check the keys and values of a change.

    Args:
        items: key -> value (command-line text with ``strings``, typed values otherwise).
        structural: allow :data:`STRUCTURAL` and :data:`FIXED` keys (a fork).
        field_prefix: how the field is named in errors (``--set learning_rate``).

    Raises:
        BadInput: an unknown key, a key that cannot change in place (naming ``fork``), or a bad value.

    Example:
        >>> parse_values({"learning_rate": "0.01", "epochs": "40"})
        {'learning_rate': 0.01, 'epochs': 40}
    """
    out: dict[str, Any] = {}
    for key, raw in items.items():
        name = f"{field_prefix} {key}"
        if key not in hparams.HPARAMS:
            raise BadInput(name, key, "expected a hyperparameter that can change: " + ", ".join(MUTABLE))
        if not structural and key in STRUCTURAL + FIXED:
            raise BadInput(
                name, raw,
                f"{key} cannot change while a model trains (it defines the network); start a new branch "
                f"with: caviar panda fork ID --from-epoch N --set {key}=VALUE",
            )
        spec = hparams.HPARAMS[key]
        try:
            out[key] = spec.parse(str(raw)) if strings else spec.check(raw)
        except BadInput as exc:
            raise BadInput(name, raw, exc.allowed) from None
    return out


@dataclass(frozen=True)
class Change:
    """Values that took effect after ``epoch`` epochs (they train epoch ``epoch + 1`` on)."""

    epoch: int
    values: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe."""
        return {"epoch": self.epoch, "values": dict(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Change:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["epoch"]), dict(d["values"]))


@dataclass(frozen=True)
class Phase:
    """Epochs ``start + 1`` to ``end`` train with ``config``, the schedule counting from ``schedule_from``."""

    start: int
    end: int
    config: dict[str, Any]
    schedule_from: int


@dataclass(frozen=True)
class LogEntry:
    """One applied request of a session's log, in the order applied.

    ``action`` is ``"set"`` (``values`` at ``epoch``) or ``"rollback"`` (from ``epoch`` back to
    ``to_epoch``, then ``values`` at ``to_epoch``).
    """

    action: str
    epoch: int
    values: Mapping[str, Any] = field(default_factory=dict)
    to_epoch: int | None = None


@dataclass(frozen=True)
class Timeline:
    """A full first configuration (:func:`core.hparams.resolve`'s) and changes in the order they apply."""

    initial: Mapping[str, Any]
    changes: tuple[Change, ...] = ()

    def state_at(self, epoch: int) -> tuple[dict[str, Any], int]:
        """(configuration, schedule start) that train epoch ``epoch + 1``.

        Example:
            >>> t = Timeline(hparams.resolve({"learning_rate": 0.1, "lr_decay": 1.0}))
            >>> t = t.changed(3, {"lr_decay": 0.0})      # hold the rate epoch 4 would have had
            >>> config, start = t.state_at(5)
            >>> round(config["learning_rate"], 4), start  # 0.1 / (1 + 1.0 * 3)
            (0.025, 3)
        """
        config, start = dict(self.initial), 0
        for change in self.changes:
            if change.epoch > epoch:
                break
            config, start = _apply(config, start, change)
        return config, start

    def epochs_at(self, epoch: int) -> int:
        """The session's length as it stands after ``epoch`` epochs."""
        return int(self.state_at(epoch)[0]["epochs"])

    def changed(self, epoch: int, values: Mapping[str, Any]) -> Timeline:
        """This timeline with ``values`` taking effect after ``epoch`` epochs.

        Raises:
            BadInput: an earlier epoch than the last change's, ``epochs`` below the epochs done, or a
                configuration the engine refuses (``groups`` not dividing ``hidden_units``).
        """
        if self.changes and epoch < self.changes[-1].epoch:
            raise BadInput("epoch", epoch, f"at least {self.changes[-1].epoch}, the last change's epoch")
        if "epochs" in values and int(values["epochs"]) < epoch:
            raise BadInput(
                "--set epochs", values["epochs"],
                f"at least {epoch}, the epochs done (roll back to train fewer)",
            )
        change = Change(epoch, dict(values))
        _apply(self.state_at(epoch)[0], self.state_at(epoch)[1], change)  # raises for a bad combination
        return Timeline(self.initial, (*self.changes, change))

    def rolled_back(self, to_epoch: int, values: Mapping[str, Any] | None = None) -> Timeline:
        """Back to the state after ``to_epoch`` epochs, configured as it was then; then ``values``."""
        kept = Timeline(self.initial, tuple(c for c in self.changes if c.epoch < to_epoch))
        return kept.changed(to_epoch, values) if values else kept

    def inherited(self, epoch: int) -> tuple[Change, ...]:
        """The changes that shaped the first ``epoch`` epochs (what a fork from ``epoch`` inherits)."""
        return tuple(c for c in self.changes if c.epoch < epoch)

    def phases(self, start: int, end: int) -> list[Phase]:
        """The phases that train epochs ``start + 1`` to ``end``, cut at every change in between."""
        cuts = sorted({c.epoch for c in self.changes if start < c.epoch < end})
        bounds = [start, *cuts, end]
        out = []
        for a, b in zip(bounds, bounds[1:], strict=False):
            if b > a:
                config, schedule_from = self.state_at(a)
                out.append(Phase(a, b, config, schedule_from))
        return out


def _apply(config: dict[str, Any], start: int, change: Change) -> tuple[dict[str, Any], int]:
    new = {**config, **change.values}
    if any(k in change.values for k in SCHEDULE):
        if "learning_rate" not in change.values:
            # keep the rate epoch (change.epoch + 1) would have had: the new schedule starts from it
            new["learning_rate"] = learning_rate(config, change.epoch - start)
        start = change.epoch
    return hparams.resolve(new), start


def build_timeline(
    initial: Mapping[str, Any], inherited: Iterable[Change] = (), log: Sequence[LogEntry] = ()
) -> Timeline:
    """The timeline a session's log describes: a fork's inherited changes, then its log in order.

    Example:
        >>> from core.panda.timeline import LogEntry
        >>> log = [LogEntry("set", 2, {"learning_rate": 0.01}), LogEntry("rollback", 5, {}, to_epoch=2)]
        >>> build_timeline(hparams.resolve({}), (), log).changes   # the rollback undid the change at 2
        ()
    """
    timeline = Timeline(hparams.resolve(dict(initial)), tuple(inherited))
    for entry in log:
        if entry.action == "set":
            timeline = timeline.changed(entry.epoch, entry.values)
        elif entry.action == "rollback":
            assert entry.to_epoch is not None
            timeline = timeline.rolled_back(entry.to_epoch, entry.values)
        else:
            raise BadInput("log action", entry.action, "one of set, rollback")
    return timeline
