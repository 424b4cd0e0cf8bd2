"""Starting and forking panda sessions, and reading them: ``show``'s record and ``list``'s rows.

A session's record is part of caviar's interface (``caviar panda show --format json``): ``id``, ``name``,
``state``, ``epoch``, ``config`` (as it is now), ``changes`` (``{epoch, key, value}`` in the order applied,
a rollback as ``{epoch, key: "rollback", value: N}`` followed by its own values at N), ``history`` (per
epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``, ``learning_rate``) and ``parent``
(``{id, epoch}`` for a fork), and more.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from core import hparams
from core.errors import BadInput
from core.panda import hint, parse_values
from service.errors import CaviarError
from service.orchestrate import trial_id as make_trial_id
from service.panda.runner import session_data, state_at, timeline_of
from service.store import Store, studies
from service.store import panda as db
from service.store.clock import as_utc
from service.store.lease import heartbeat_age
from service.store.states import PandaAction, PandaState, StudyKind, TrialStatus

__all__ = [
    "source_of", "training_rows", "check_batch", "check_start", "start_session", "fork_session",
    "require_session", "record", "list_rows",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_RULE = "expected 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"


def source_of(
    dataset: str | None, data: str | None, target: str | None, val_fraction: float, split_seed: int
) -> dict[str, Any]:
    """A session's data as stored: a named dataset or an absolute file path, and the split.

    Raises:
        BadInput: neither or both of dataset and data, a target without data, or data that cannot be read.
    """
    from core.data import describe_dataset
    from service.settings import data_root

    if (dataset is None) == (data is None):
        raise BadInput("--dataset", dataset or data, "give exactly one of --dataset NAME or --data FILE")
    if target is not None and data is None:
        raise BadInput("--target", target, "expected only with --data FILE (the CSV file's label column)")
    source: dict[str, Any] = {"val_fraction": float(val_fraction), "split_seed": int(split_seed)}
    if dataset is not None:
        source["dataset"] = dataset
    else:
        source["data"] = os.path.abspath(str(data))
        if target is not None:
            source["target"] = target
    describe_dataset(
        source.get("dataset"), path=source.get("data"), target=source.get("target"),
        val_fraction=source["val_fraction"], root=data_root(),
    )
    return source


def training_rows(source: Mapping[str, Any]) -> int:
    from core.data import describe_dataset
    from service.settings import data_root

    shape = describe_dataset(
        source.get("dataset"), path=source.get("data"), target=source.get("target"),
        val_fraction=float(source.get("val_fraction", 0.2)), root=data_root(),
    )
    return int(shape.rows_train)


def check_batch(
    config: Mapping[str, Any], source: Mapping[str, Any], field: str = "--set batch_size"
) -> None:
    """``batch_size`` fits the training set (and batch statistics need 2 rows)."""
    n = training_rows(source)
    if int(config["batch_size"]) > n:
        raise BadInput(field, config["batch_size"], f"at most the training-set size, {n} rows")
    if int(config["batch_size"]) < 2 and config["norm"] in ("batch", "switchable"):
        raise BadInput(field, config["batch_size"], f"at least 2 with norm={config['norm']}")


def _new_id(name: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower() or "panda"
    return f"{slug[:60]}-{secrets.token_hex(3)}"


def _fingerprint(source: Mapping[str, Any]) -> str | None:
    if source.get("data") is None:
        return None
    from core.data import fingerprint
    from service.settings import data_root

    return fingerprint(source["data"], data_root())


def check_start(source: Mapping[str, Any], sets: Mapping[str, str], name: str) -> dict[str, Any]:
    """The new session's full configuration, checked (before anything is opened or written).

    Raises:
        BadInput: a bad name, key or value.
    """
    if not _NAME.fullmatch(name):
        raise BadInput("--name", name, _NAME_RULE)
    try:
        config = hparams.resolve(dict(sets), strings=True)
    except BadInput as exc:
        raise BadInput(f"--set {exc.field}", exc.value, exc.allowed) from None
    check_batch(config, source)
    return config


def start_session(
    store: Store,
    *,
    source: dict[str, Any],
    sets: Mapping[str, str],
    name: str = "panda",
    queue: str | None = None,
    lr_find: bool = False,
    on_lr_point: Callable[[float, float], None] | None = None,
    paused: bool = False,
) -> str:
    """Record a new session (queued for its runner); return its id.

    Args:
        sets: ``--set`` values as text (any hyperparameter).
        lr_find: run a learning-rate range test first; its suggestion becomes ``learning_rate`` unless
            ``sets`` gives one.
        paused: record it paused, for requests (``set --at-epoch``) to be queued before it trains.

    Raises:
        BadInput: a bad name, key or value (nothing is written).
    """
    config = check_start(source, sets, name)
    found = None
    if lr_find:
        from core.panda.lr_find import lr_range, suggest

        data = session_data(source, config["dtype"])
        points = lr_range(config, data, on_point=on_lr_point)
        found = {"points": [[r, loss if loss != float("inf") else None] for r, loss in points],
                 "suggested": suggest(points), "applied": "learning_rate" not in sets}
        if found["applied"]:
            config["learning_rate"] = found["suggested"]
    for _ in range(5):
        study_id = _new_id(name)
        try:
            db.create_session(
                store, study_id=study_id, trial_id=make_trial_id(study_id, 0, 0), name=name, source=source,
                initial=config, queue=queue, lr_find=found, data_fingerprint=_fingerprint(source),
                paused=paused,
            )
            return study_id
        except studies.DuplicateStudy:
            continue
    raise CaviarError("could not allocate a unique session id")


def require_session(store: Store, session_id: str) -> db.SessionView:
    """The session's rows.

    Raises:
        BadInput: no such session (a sweep's id says so).
    """
    view = db.session_view(store, session_id)
    if view is None:
        study = studies.get_study(store, session_id)
        what = "a sweep, not a panda session (see caviar status)" if study is not None else "no such session"
        raise BadInput("session", session_id, f"a panda session id (see caviar panda list): {what}")
    return view


def last_good_epoch(history: list[dict[str, Any]]) -> int:
    """The last epoch with finite losses (a diverged epoch has no state to go back to)."""
    good = [h["epoch"] for h in history if h.get("val_loss") is not None and h.get("train_loss") is not None]
    return max(good, default=0)


def fork_session(
    store: Store,
    parent_id: str,
    from_epoch: int,
    sets: Mapping[str, str],
    *,
    name: str | None = None,
    queue: str | None = None,
) -> str:
    """A new session that starts from ``parent_id``'s state after ``from_epoch`` epochs, with ``sets``
    applied there; the parent goes on untouched. Structural keys are allowed when the weights carry over.

    Raises:
        BadInput: an epoch the parent has not reached, a bad key or value, or a structural change the
            parent's weights do not fit.
    """
    from core.nn import train

    view = require_session(store, parent_id)
    history = db.curve(store, view.trial.id)
    good = last_good_epoch(history)
    if not 0 <= from_epoch <= good:
        raise BadInput("--from-epoch", from_epoch, f"an epoch in [0, {good}] the session has reached")
    values = parse_values(dict(sets), structural=True)
    name = name or f"{view.study.name}-fork"
    if not _NAME.fullmatch(name):
        raise BadInput("--name", name, _NAME_RULE)
    timeline = timeline_of(store, view)
    inherited = timeline.inherited(from_epoch)
    from core.panda import Timeline

    mine = Timeline(timeline.initial, inherited)
    if values:
        try:
            mine = mine.changed(from_epoch, values)
        except BadInput as exc:
            raise BadInput(f"--set {exc.field.removeprefix('--set ')}", exc.value, exc.allowed) from None
    config, schedule_from = mine.state_at(from_epoch)
    check_batch(config, view.session.source)
    data = session_data(view.session.source, config["dtype"])
    state = state_at(store, view.trial.id, timeline, data, from_epoch)
    if state is not None:  # the new configuration must fit the parent's weights
        try:
            # zero epochs: restores the weights (shapes checked) and validates them
            train({**config, "epochs": from_epoch}, data, start=state, schedule_from=schedule_from)
        except BadInput as exc:
            changed = ", ".join(k for k in values if k in hparams.HPARAMS) or "the configuration"
            raise BadInput(
                "--set", changed,
                f"a change the weights of epoch {from_epoch} fit ({exc.field}: {exc.allowed}); "
                "fork --from-epoch 0 to train the new network from the start",
            ) from None
    for _ in range(5):
        study_id = _new_id(name)
        try:
            db.create_session(
                store, study_id=study_id, trial_id=make_trial_id(study_id, 0, 0), name=name,
                source=dict(view.session.source), initial=dict(timeline.initial), queue=queue,
                inherited=[c.to_dict() for c in inherited], parent=(parent_id, from_epoch),
                data_fingerprint=view.study.data_fingerprint,
                curve_rows=[h for h in history if h["epoch"] <= from_epoch],
                checkpoint=(from_epoch, state.to_bytes()) if state is not None else None,
                first_values=values or None,
            )
            return study_id
        except studies.DuplicateStudy:
            continue
    raise CaviarError("could not allocate a unique session id")


def _changes(requests: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in requests:
        if r.action == PandaAction.ROLLBACK:
            out.append({"epoch": r.applied_epoch, "key": "rollback", "value": r.to_epoch})
            epoch = r.to_epoch
        elif r.action == PandaAction.SET:
            epoch = r.applied_epoch
        else:
            out.append({"epoch": r.applied_epoch, "key": str(r.action), "value": None})
            continue
        out.extend({"epoch": epoch, "key": k, "value": v} for k, v in r.values.items())
    return out


def record(store: Store, session_id: str) -> dict[str, Any]:
    """The session as ``caviar panda show --format json`` prints it."""
    view = require_session(store, session_id)
    trial = view.trial
    history = [
        {k: h[k] for k in ("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate")}
        for h in db.curve(store, trial.id)
    ]
    epoch = history[-1]["epoch"] if history else 0
    timeline = timeline_of(store, view)
    state = PandaState.of(trial.status)
    config = timeline.state_at(epoch if state != PandaState.DIVERGED else max(epoch - 1, 0))[0]
    applied = db.applied(store, session_id)
    children = [
        {"id": c.study_id, "epoch": c.parent_epoch} for c in _children(store, session_id)
    ]
    age = heartbeat_age(store, trial.id) if trial.status == TrialStatus.RUNNING else None
    return {
        "id": session_id,
        "name": view.study.name,
        "kind": StudyKind.PANDA,
        "state": state,
        "status": trial.status,
        "epoch": epoch,
        "epochs": int(config["epochs"]),
        "config": config,
        "changes": _changes(applied),
        "inherited": list(view.session.inherited),
        "pending": [
            {"id": r.id, "action": r.action, "values": r.values, "to_epoch": r.to_epoch,
             "at_epoch": r.at_epoch}
            for r in db.pending(store, session_id)
        ],
        "history": history,
        "parent": (
            {"id": view.session.parent_id, "epoch": view.session.parent_epoch}
            if view.session.parent_epoch is not None else None
        ),
        "children": children,
        "val_loss": trial.val_loss,
        "val_accuracy": trial.val_accuracy,
        "source": view.session.source,
        "lr_find": view.session.lr_find,
        "hint": hint(history) if history else None,
        "worker": trial.worker,
        "heartbeat_age": age,
        "queue": view.study.queue,
        "checkpoints": db.checkpoint_epochs(store, trial.id),
        "error": trial.error,
        "created_at": as_utc(view.study.created_at),
    }


def _children(store: Store, session_id: str) -> list[Any]:
    from sqlalchemy import select

    from service.store.models import PandaSession

    stmt = select(PandaSession).where(PandaSession.parent_id == session_id).order_by(PandaSession.study_id)
    return list(store.run(lambda s: s.scalars(stmt).all()))


def list_rows(store: Store) -> list[dict[str, Any]]:
    """One row per session, oldest first (``caviar panda list``)."""
    rows = []
    for session_id in db.session_ids(store):
        r = record(store, session_id)
        last = r["history"][-1] if r["history"] else {}
        rows.append({
            "id": r["id"], "name": r["name"], "state": r["state"], "epoch": r["epoch"], "epochs": r["epochs"],
            "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
            "learning_rate": r["config"]["learning_rate"], "changes": len(r["changes"]),
            "parent": r["parent"]["id"] if r["parent"] else None, "created_at": r["created_at"],
        })
    return rows
