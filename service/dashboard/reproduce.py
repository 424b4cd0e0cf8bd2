"""The commands a trial page shows: ``caviar train`` flags that retrain the trial, and the save command.

A trial is its configuration (``[fixed]``, then its params, then its seed: :func:`service.execute.
trial_config`), its data and its split; training is deterministic, so ``caviar train`` with the same
dataset, ``--split-seed``, ``--val-fraction`` and ``--set`` values gives the stored ``val_loss`` bit for
bit, single-threaded as trials run (:data:`service.settings.THREAD_ENV`, given as ``env``). Floats are
written with ``repr``, which reads back to the same double.
"""

from __future__ import annotations

import shlex
from typing import Any

from core.hparams import HPARAMS
from service.settings import THREAD_ENV
from service.store.states import WITH_MODEL, TrialStatus

__all__ = ["trial_commands", "session_commands", "set_text"]



def set_text(value: Any) -> str:
    """A value as ``--set KEY=VALUE`` text that parses back to the same value."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _env() -> str:
    return " ".join(f"{k}={v}" for k, v in THREAD_ENV.items())


def trial_commands(spec: Any, study_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """``{"reproduce", "save", "env"}`` for a sweep's trial row (``save`` None without a model to save).

    A pruned or paused trial trained to its rung: its command trains that many epochs.
    """
    values: dict[str, Any] = {**spec.fixed, **dict(row["params"]), "seed": int(row["seed"])}
    if row["status"] in (TrialStatus.PRUNED, TrialStatus.PAUSED) and row.get("epochs_run"):
        values["epochs"] = int(row["epochs_run"])
    args = ["caviar", "train"]
    if spec.dataset is not None:
        args += ["--dataset", spec.dataset]
    else:
        args += ["--data", str(spec.data)]
        if spec.target is not None:
            args += ["--target", spec.target]
    args += ["--split-seed", str(int(spec.data_seed)), "--val-fraction", repr(float(spec.val_fraction))]
    for key in HPARAMS:
        if key in values:
            args += ["--set", f"{key}={set_text(values[key])}"]
    save = None
    if row["status"] in WITH_MODEL:
        save = shlex.join(["caviar", "trials", study_id, "--trial", str(row["id"]), "--save", "model.npz"])
    return {"reproduce": shlex.join(args), "save": save, "env": _env()}


def session_commands(session_id: str) -> dict[str, Any]:
    """For a panda session's trial: replay it from its log, save its model, show it."""
    return {
        "reproduce": shlex.join(["caviar", "panda", "replay", session_id]),
        "save": shlex.join(["caviar", "best", session_id, "--save", "model.npz"]),
        "show": shlex.join(["caviar", "panda", "show", session_id]),
        "env": _env(),
    }
