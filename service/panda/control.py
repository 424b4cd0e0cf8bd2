"""The requests a person sends to a panda session: set, pause, resume, stop, rollback.

Each is checked here, against the session as it stands, before anything is written (bad input exits 2
and changes nothing). A running session's runner applies them at its next epoch boundary (or at
``--at-epoch``); a session no process runs takes them when it is resumed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from core.errors import BadInput
from core.panda import parse_values
from service.errors import CaviarError
from service.panda.runner import timeline_of
from service.panda.session import check_batch, last_good_epoch, require_session
from service.store import Store
from service.store import panda as db
from service.store.lease import heartbeat_age
from service.store.states import PandaAction, PandaState, TrialStatus

__all__ = ["set_values", "pause", "stop", "rollback", "prepare_resume", "runner_alive", "Resume"]


def _epoch(store: Store, view: db.SessionView) -> int:
    return last_good_epoch(db.curve(store, view.trial.id))


def set_values(
    store: Store, session_id: str, sets: Mapping[str, str], *, at_epoch: int | None = None
) -> dict[str, Any]:
    """Ask for ``sets`` at the next epoch boundary (or after ``at_epoch`` epochs).

    Raises:
        BadInput: a stopped session; an unknown key, a structural key (pointing to ``fork``), a bad value;
            an ``at_epoch`` already passed.
    """
    view = require_session(store, session_id)
    state = PandaState.of(view.trial.status)
    if state == PandaState.STOPPED:
        raise BadInput("session", session_id, "a session that is not stopped (fork it to go on)")
    if not sets:
        raise BadInput("KEY=VALUE", "none", "at least one change, e.g. learning_rate=0.001")
    values = parse_values(dict(sets), field_prefix="set")
    epoch = _epoch(store, view)
    if at_epoch is not None and at_epoch < epoch:
        raise BadInput("--at-epoch", at_epoch, f"at least {epoch}, the epochs done (to go back: rollback)")
    timeline = timeline_of(store, view)
    when = epoch if at_epoch is None else at_epoch
    try:
        config = timeline.changed(when, values).state_at(when)[0]
    except BadInput as exc:
        raise BadInput(f"set {exc.field.removeprefix('--set ')}", exc.value, exc.allowed) from None
    check_batch(config, view.session.source, "set batch_size")
    request = db.add_request(store, session_id, PandaAction.SET, values, at_epoch=at_epoch)
    return {"request": request, "values": values, "at_epoch": at_epoch, "state": state}


def pause(store: Store, session_id: str, *, at_epoch: int | None = None) -> dict[str, Any]:
    """Ask a session to pause at its next epoch boundary, or after ``at_epoch`` epochs (a paused
    session then pauses there once resumed). A no-op for a paused session without ``at_epoch``.

    Raises:
        BadInput: a session that has ended, or an ``at_epoch`` already passed.
    """
    view = require_session(store, session_id)
    state = PandaState.of(view.trial.status)
    if state == PandaState.PAUSED and at_epoch is None:
        return {"request": None, "state": state}
    if state not in (PandaState.RUNNING, PandaState.PAUSED):
        raise BadInput("session", session_id, f"a running or paused session (it is {state})")
    if at_epoch is not None:
        epoch = _epoch(store, view)
        if at_epoch <= epoch:
            raise BadInput("--at-epoch", at_epoch, f"more than {epoch}, the epochs done")
    request = db.add_request(store, session_id, PandaAction.PAUSE, at_epoch=at_epoch)
    return {"request": request, "state": state, "at_epoch": at_epoch}


def stop(store: Store, session_id: str) -> dict[str, Any]:
    """Stop for good: a running session at its next boundary, an idle one now."""
    view = require_session(store, session_id)
    state = PandaState.of(view.trial.status)
    if state == PandaState.STOPPED:
        return {"request": None, "state": state}
    if view.trial.status == TrialStatus.RUNNING:
        return {"request": db.add_request(store, session_id, PandaAction.STOP), "state": state}
    if db.stop_idle(store, session_id, view.trial.id):
        return {"request": None, "state": PandaState.STOPPED}
    raise BadInput("session", session_id, f"a session that can stop (it is {state})")


def rollback(store: Store, session_id: str, to_epoch: int, sets: Mapping[str, str]) -> dict[str, Any]:
    """Ask to go back to the state after ``to_epoch`` epochs, then apply ``sets`` there.

    Raises:
        BadInput: an epoch the session has not reached, a bad change, a stopped session.
    """
    view = require_session(store, session_id)
    state = PandaState.of(view.trial.status)
    if state == PandaState.STOPPED:
        raise BadInput("session", session_id, "a session that is not stopped (fork it to go on)")
    epoch = _epoch(store, view)
    if not 0 <= to_epoch <= epoch:
        raise BadInput("--to-epoch", to_epoch, f"an epoch in [0, {epoch}] the session has reached")
    values = parse_values(dict(sets))
    try:
        config = timeline_of(store, view).rolled_back(to_epoch, values).state_at(to_epoch)[0]
    except BadInput as exc:
        raise BadInput(f"--set {exc.field.removeprefix('--set ')}", exc.value, exc.allowed) from None
    check_batch(config, view.session.source)
    request = db.add_request(store, session_id, PandaAction.ROLLBACK, values, to_epoch=to_epoch)
    return {"request": request, "to_epoch": to_epoch, "values": values, "state": state}


def runner_alive(worker: str | None) -> bool | None:
    """Whether a local runner (``panda:HOST:PID``) is alive: None when it is not on this host (or not a
    local runner), so only its heartbeat can tell."""
    if not worker or not worker.startswith("panda:"):
        return None
    _, host, pid = worker.rsplit(":", 2) if worker.count(":") >= 2 else ("", "", "")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Resume:
    """What :func:`prepare_resume` decided: ``steal_after`` for the claim (None: claim a queued trial)."""

    def __init__(self, steal_after: float | None) -> None:
        self.steal_after = steal_after


def prepare_resume(store: Store, session_id: str, stale_after: float) -> Resume:
    """Make a session ready for a runner to claim: reopen a paused one, one extended past its end or one
    rolled back after diverging; take over one whose runner died.

    Raises:
        BadInput: nothing to resume (complete with nothing pending, diverged without a rollback, stopped).
        CaviarError: a live runner holds it.
    """
    view = require_session(store, session_id)
    status = TrialStatus(view.trial.status)
    pending = db.pending(store, session_id)
    if status == TrialStatus.QUEUED:
        return Resume(None)
    if status == TrialStatus.RUNNING:
        alive = runner_alive(view.trial.worker)
        age = heartbeat_age(store, view.trial.id) or 0.0
        if alive is False:
            return Resume(0.0)
        if alive is None and age > stale_after:
            return Resume(stale_after)
        raise CaviarError(
            f"session {session_id} is running ({view.trial.worker}, heartbeat {age:.0f} s ago); "
            "pause or stop it first"
        )
    if status == TrialStatus.COMPLETE:
        epoch = _epoch(store, view)
        longer = any(
            r.action == PandaAction.ROLLBACK
            or (r.action == PandaAction.SET and int(r.values.get("epochs", 0)) > epoch)
            for r in pending
        )
        if not longer:
            raise BadInput(
                "session", session_id,
                f"a session with epochs left (complete at {epoch}: set epochs=N, or roll back, first)",
            )
    elif status == TrialStatus.DIVERGED:
        if not any(r.action == PandaAction.ROLLBACK for r in pending):
            raise BadInput(
                "session", session_id,
                "a session that did not diverge (roll back first: caviar panda rollback ID --to-epoch N)",
            )
    elif status not in (TrialStatus.PAUSED, TrialStatus.FAILED):
        raise BadInput("session", session_id, f"a session that can resume (it is {PandaState.of(status)})")
    if status == TrialStatus.FAILED:
        _reopen_failed(store, session_id, view.trial.id)
    elif not db.reopen(store, session_id, view.trial.id):
        return prepare_resume(store, session_id, stale_after)  # it changed meanwhile: decide again
    return Resume(None)


def _reopen_failed(store: Store, session_id: str, trial_id: str) -> None:
    from sqlalchemy import update

    from service.store.models import Study, Trial
    from service.store.states import StudyState

    def go(s: Any) -> None:
        s.execute(
            update(Trial).where(Trial.id == trial_id, Trial.status == TrialStatus.FAILED)
            .values(status=TrialStatus.QUEUED, rung_base=Trial.attempts, worker=None, heartbeat_at=None,
                    finished_at=None, error=None)
        )
        s.execute(
            update(Study).where(Study.id == session_id).values(state=StudyState.RUNNING, finished_at=None)
        )

    store.run(go)
