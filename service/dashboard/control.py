"""State changes from the dashboard: cancel a study; set, pause, resume, stop, roll back or fork a panda
session. Only with ``--allow-control`` and the token (checked by :mod:`service.dashboard.app`).

Each action goes through the very functions the CLI calls (:func:`service.store.studies.cancel_study`,
:mod:`service.panda.control`, :func:`service.panda.session.fork_session`), so the same input is refused
with the same message and nothing is written; only the field is named as the JSON body names it
(``--at-epoch`` is ``at_epoch``, ``--set learning_rate`` is ``values.learning_rate``). Resume and fork
start a runner as ``caviar panda resume/fork --detach`` do (a detached process on this machine, logging
to ``.caviar/panda/ID.log``), or send the session to the workers when it has a broker queue and the
dashboard a broker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import BadInput
from service.dashboard.reproduce import set_text
from service.dashboard.responses import Conflict, NotFound
from service.errors import CaviarError
from service.store import FINAL_STUDY, Store, studies
from service.store import panda as db

__all__ = ["parse_body", "api_field", "Control"]

_FLAGS = {
    "--at-epoch": "at_epoch", "--to-epoch": "to_epoch", "--from-epoch": "from_epoch", "--name": "name",
    "KEY=VALUE": "values", "--set": "values", "set": "values",
}


def api_field(field: str) -> str:
    """The JSON body's name of a CLI field (``--set lr`` is ``values.lr``)."""
    if field in _FLAGS:
        return _FLAGS[field]
    for prefix in ("--set ", "set "):
        if field.startswith(prefix):
            return "values." + field[len(prefix):]
    return field


def _api_error(exc: BadInput) -> BadInput:
    return BadInput(api_field(exc.field), exc.value, exc.allowed)


def parse_body(raw: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object (empty when there is no body), with only ``allowed`` keys.

    Raises:
        BadInput: not a JSON object, or another key.
    """
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("body", raw[:60].decode("utf-8", "replace"), "expected a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput("body", body, "expected a JSON object")
    for key in body:
        if key not in allowed:
            raise BadInput(key, body[key], "expected only the fields " + (", ".join(allowed) or "(none)"))
    return body


def _values(body: dict[str, Any]) -> dict[str, str]:
    raw = body.get("values")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput("values", raw, 'expected an object of hyperparameters, e.g. {"learning_rate": "0.01"}')
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadInput(f"values.{key}", value, "expected a value as text or a number")
        out[str(key)] = value.strip() if isinstance(value, str) else set_text(value)
    return out


def _epoch(body: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    value = body.get(key)
    if value is None:
        if required:
            raise BadInput(key, None, "expected a number of epochs (an integer >= 0)")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        allowed = "expected a number of epochs (an integer >= 0)" + ("" if required else " or null")
        raise BadInput(key, value, allowed)
    return value


class Control:
    """The actions, on the store caviar writes through.

    Args:
        store: a writing handle (:func:`service.store.open_store`).
        stale_after: seconds after which a runner's heartbeat counts as dead (``resume`` takes it over).
        broker_url: the dashboard's broker, for sessions that train on the workers.
        logs: where detached runners log.
    """

    def __init__(self, store: Store, *, stale_after: float, broker_url: str | None, logs: Path) -> None:
        self.store, self.stale_after, self.broker_url, self.logs = store, stale_after, broker_url, logs

    def _session(self, session_id: str) -> db.SessionView:
        view = db.session_view(self.store, session_id)
        if view is None:
            raise NotFound(f"no panda session {session_id!r} in this database")
        return view

    def cancel(self, study_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar cancel ID``: queued trials cancelled, running ones stop at their next epoch."""
        study = studies.get_study(self.store, study_id)
        if study is None:
            raise NotFound(f"no study {study_id!r} in this database")
        if study.state in FINAL_STUDY:
            return {"id": study_id, "state": study.state, "cancelled": False, "queued_cancelled": 0,
                    "message": f"study {study_id} is already {study.state}"}
        n = studies.cancel_study(self.store, study_id)
        state = studies.get_study(self.store, study_id)
        return {"id": study_id, "state": state.state if state else None, "cancelled": True,
                "queued_cancelled": n, "message": f"study {study_id} cancelled ({n} queued trials cancelled)"}

    def _run(self, session_id: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._session(session_id)
        try:
            done = fn(self.store, session_id, *args, **kwargs)
        except BadInput as exc:
            raise _api_error(exc) from None
        return {"id": session_id, **done}

    def set(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar panda set ID K=V ... [--at-epoch N]``."""
        from service.panda.control import set_values

        return self._run(session_id, set_values, _values(body), at_epoch=_epoch(body, "at_epoch"))

    def pause(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar panda pause ID [--at-epoch N]``."""
        from service.panda.control import pause

        return self._run(session_id, pause, at_epoch=_epoch(body, "at_epoch"))

    def stop(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar panda stop ID``."""
        from service.panda.control import stop

        return self._run(session_id, stop)

    def rollback(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar panda rollback ID --to-epoch N [--set K=V ...]``."""
        from service.panda.control import rollback

        to_epoch = _epoch(body, "to_epoch", required=True)
        return self._run(session_id, rollback, to_epoch, _values(body))

    def resume(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar panda resume ID --detach`` (or on the workers, for a session with a broker queue)."""
        from service.panda.control import prepare_resume

        self._session(session_id)
        try:
            ready = prepare_resume(self.store, session_id, self.stale_after)
        except BadInput as exc:
            raise _api_error(exc) from None
        except CaviarError as exc:
            raise Conflict(str(exc)) from None
        return {"id": session_id, **self._launch(session_id, ready.steal_after)}

    def fork(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``caviar panda fork ID --from-epoch N [--set K=V ...] [--name NAME] --detach``; the new id."""
        from service.panda.session import fork_session

        self._session(session_id)
        from_epoch = _epoch(body, "from_epoch", required=True)
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise BadInput("name", name, "expected a session name (text) or null")
        try:
            new_id = fork_session(self.store, session_id, int(from_epoch or 0), _values(body), name=name)
        except BadInput as exc:
            raise _api_error(exc) from None
        return {"id": new_id, "parent": session_id, "from_epoch": from_epoch, **self._launch(new_id, None)}

    def _launch(self, session_id: str, steal_after: float | None) -> dict[str, Any]:
        from service.panda import launch

        view = self._session(session_id)
        if view.study.queue is not None and self.broker_url:
            launch.send_to_broker(self.store, session_id, self.broker_url)
            return {"runner": "workers", "pid": None, "log": None}
        log = self.logs / f"{session_id}.log"
        pid = launch.detach(self.store.url, session_id, log, steal_after=steal_after)
        return {"runner": "detached", "pid": pid, "log": str(log)}
