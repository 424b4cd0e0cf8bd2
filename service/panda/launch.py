"""Where a session's runner runs: in this process, in a detached process, or on a Celery worker.

``caviar panda start`` and ``resume`` run the session here (Ctrl-C pauses it), or with ``--detach`` in a
new process of its own session (``python -m service.panda.launch ID``, logging to a file) so the
terminal is free for ``watch``, ``set`` and the rest; with ``--broker`` the session's trial is sent to the
workers like any trial, and a worker runs it through :func:`service.panda.runner.run_session`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.panda.runner import run_session
from service.store import Store
from service.store.states import PandaState

__all__ = ["worker_name", "run_here", "detach", "send_to_broker"]


def worker_name(pid: int | None = None) -> str:
    """The name a local runner records on its trial: ``panda:HOST:PID`` (so ``resume`` can tell whether
    it is alive)."""
    return f"panda:{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def run_here(
    store: Store, session_id: str, *, steal_after: float | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> PandaState | None:
    """Run the session in this process until it pauses or ends (see :func:`run_session`)."""
    return run_session(store, session_id, worker=worker_name(), steal_after=steal_after, on_epoch=on_epoch)


def detach(db_url: str, session_id: str, log_path: Path, *, steal_after: float | None = None) -> int:
    """Start the runner in a new process (its own session: the terminal's Ctrl-C does not reach it);
    return its pid. The database URL goes through the environment, never the command line."""
    from service.settings import THREAD_ENV

    env = {**os.environ, **THREAD_ENV, "CAVIAR_DATABASE_URL": db_url}
    args = [sys.executable, "-m", "service.panda.launch", session_id]
    if steal_after is not None:
        args += ["--steal-after", repr(steal_after)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def send_to_broker(store: Store, session_id: str, url: str | None) -> None:
    """Send the session's trial to the installed broker's workers.

    Raises:
        BrokerUnavailable: the broker cannot be reached.
    """
    from service.broker import broker
    from service.store import panda as db

    view = db.session_view(store, session_id)
    assert view is not None
    broker().send(store, [view.trial.id], url=url, queue=view.study.queue)


def _main(argv: list[str]) -> int:
    import argparse

    from service.store import open_store

    p = argparse.ArgumentParser(prog="python -m service.panda.launch", description="Run one panda session.")
    p.add_argument("session")
    p.add_argument("--steal-after", dest="steal_after", type=float, default=None)
    args = p.parse_args(argv)
    store = open_store(retry_seconds=60.0)
    state = run_here(store, args.session, steal_after=args.steal_after)
    print(f"session {args.session}: {state or 'not claimed (another runner holds it)'}", flush=True)
    return 1 if state == PandaState.FAILED else 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
