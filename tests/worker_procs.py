"""Real ``caviar worker`` subprocesses for the fault and end-to-end tests.

Each worker runs in its own session (``start_new_session=True``) so a test can kill the whole worker,
parent and pool children, with ``os.killpg``; :func:`worker_pool` kills whatever is left in ``finally``.
Timeouts are short (a few seconds) so that recovery paths run within a test's budget.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

#: The CLI as a subprocess: the installed console script's code, with this interpreter.
CAVIAR = [sys.executable, "-c", "from service.cli import main; main()"]

#: Short timeouts for tests (production defaults are an hour, 55 minutes, 5 minutes and 30 s).
TEST_TIMEOUTS = {
    "CAVIAR_VISIBILITY_TIMEOUT": "20",
    "CAVIAR_TASK_TIME_LIMIT": "18",
    "CAVIAR_STALE_AFTER": "3",
    "CAVIAR_REAP_INTERVAL": "1",
}


def worker_env(broker_url: str, db_url: str, **overrides: str) -> dict[str, str]:
    """Environment for a worker or CLI subprocess: the broker, the store and the test timeouts."""
    env = dict(os.environ)
    for var in ("CELERY_BROKER_URL", "CAVIAR_REEXEC"):
        env.pop(var, None)
    env.update(TEST_TIMEOUTS)
    env.update(CAVIAR_BROKER_URL=broker_url, CAVIAR_DATABASE_URL=db_url, PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


class WorkerProcess:
    """One ``caviar worker`` subprocess, logging to a file.

    Args:
        env: its environment (see :func:`worker_env`).
        name: its worker name (``--name``).
        log_dir: where ``<name>.log`` goes.
        concurrency: pool processes.
    """

    def __init__(
        self, env: dict[str, str], name: str, log_dir: Path, concurrency: int = 1, args: tuple[str, ...] = ()
    ) -> None:
        self.env = env
        self.args = args
        self.name = name
        self.concurrency = concurrency
        self.log_path = log_dir / f"{name.split('@')[0]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed when the process is reaped
        self.proc = subprocess.Popen(
            [*CAVIAR, "worker", "-c", str(self.concurrency), "--name", self.name, "--loglevel", "INFO",
             *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pool_children(self) -> list[int]:
        """Pids of the prefork pool processes."""
        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def killpg(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the worker and its pool)."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Kill the whole group if anything of it is left, and reap it."""
        if self.proc is None:
            return
        self.killpg(signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@contextmanager
def worker_pool(env: dict[str, str], log_dir: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Yield ``start(name, concurrency=1, args=(), **env_overrides) -> WorkerProcess``; kill every worker
    at exit."""
    started: list[WorkerProcess] = []

    def start(name: str, concurrency: int = 1, args: tuple[str, ...] = (), **overrides: str) -> WorkerProcess:
        worker = WorkerProcess({**env, **overrides}, f"{name}@test", log_dir, concurrency, args).start()
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def wait_for(
    predicate: Callable[[], T], timeout: float, what: str, *, workers: list[WorkerProcess] = (), interval=0.2
) -> T:  # type: ignore[assignment]
    """Poll ``predicate`` until it returns a truthy value; fail with the workers' logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name} ---\n{w.log()[-4000:]}" for w in workers)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
        time.sleep(interval)


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``caviar ARGS`` and return the completed process (text output)."""
    return subprocess.run(
        [*CAVIAR, *args], env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def trial_rows(db_url: str, study_id: str) -> list[dict[str, Any]]:
    """Every trial of the study, as plain dicts, read with a fresh store handle."""
    from service.store import open_store, reads

    store = open_store(db_url)
    try:
        return reads.trial_rows(store, study_id)
    finally:
        store.dispose()


def study_state(db_url: str, study_id: str) -> str | None:
    from service.store import open_store, studies

    store = open_store(db_url)
    try:
        study = studies.get_study(store, study_id)
        return None if study is None else study.state
    finally:
        store.dispose()


def free_port_url(password: str) -> str:
    """A Redis URL with ``password`` on a port where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://:{password}@127.0.0.1:{port}/0"
