"""The service's settings: every default in one place, each with a line of documentation.

Values a person may change come from the environment (``CAVIAR_*``) through :meth:`Settings.from_env`;
the rest are constants. The broker's own settings (URL, queue, time limits) extend these in
:mod:`workers.settings`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from core.errors import BadInput

__all__ = [
    "DEFAULT_STALE_AFTER",
    "DEFAULT_MAX_ATTEMPTS",
    "LOCAL_RETRY_SECONDS",
    "WORKER_RETRY_SECONDS",
    "THREAD_ENV",
    "Settings",
    "env_seconds",
    "env_count",
    "usable_cores",
    "single_thread_env",
]

#: Seconds without a heartbeat after which a running trial counts as abandoned and is run again, on the
#: local pool and on workers alike (``CAVIAR_STALE_AFTER``). Heartbeats come once per epoch: keep it above
#: your longest epoch.
DEFAULT_STALE_AFTER = 300.0
#: Attempts of a trial before it is marked failed, so a trial that kills its process every time cannot
#: loop forever (``CAVIAR_MAX_ATTEMPTS``).
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds a local pool process keeps retrying a database write that failed (SQLite busy, a restart).
LOCAL_RETRY_SECONDS = 60.0
#: Seconds a worker process keeps retrying a database operation while the database is unreachable.
WORKER_RETRY_SECONDS = 120.0
#: Environment that keeps BLAS and Numba single-threaded: one process per core is faster.
THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
#: Set in a re-executed process so that it never re-executes again.
_REEXEC_MARK = "CAVIAR_REEXEC"


def env_seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds from the environment variable ``name`` (or ``default``).

    Raises:
        BadInput: the value is not a number of seconds > 0.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(name, raw, "expected a number of seconds > 0") from None
    if not 0 < value < float("inf"):
        raise BadInput(name, raw, "expected a number of seconds > 0")
    return value


def env_count(name: str, default: int) -> int:
    """An integer >= 1 from the environment variable ``name`` (or ``default``).

    Raises:
        BadInput: the value is not an integer >= 1.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(name, raw, "expected an integer >= 1") from None
    if value < 1:
        raise BadInput(name, raw, "expected an integer >= 1")
    return value


@dataclass(frozen=True)
class Settings:
    """What every way of running trials shares.

    Attributes:
        stale_after: see :data:`DEFAULT_STALE_AFTER`.
        max_attempts: see :data:`DEFAULT_MAX_ATTEMPTS`.
    """

    stale_after: float = DEFAULT_STALE_AFTER
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if not 0 < self.stale_after < float("inf"):
            raise BadInput("stale_after", self.stale_after, "expected a number of seconds > 0")
        if self.max_attempts < 1:
            raise BadInput("CAVIAR_MAX_ATTEMPTS", self.max_attempts, "expected an integer >= 1")

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``CAVIAR_STALE_AFTER`` and ``CAVIAR_MAX_ATTEMPTS``."""
        return cls(
            stale_after=env_seconds("CAVIAR_STALE_AFTER", DEFAULT_STALE_AFTER),
            max_attempts=env_count("CAVIAR_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS),
        )


def usable_cores() -> int:
    """CPU cores this process may use: a container's or ``taskset``'s CPU set, not the host's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def single_thread_env() -> None:
    """Make this process single-threaded for BLAS and Numba, re-executing it if needed.

    Thread pools size themselves when numpy, scipy and numba load, which the CLI may already have done
    (other commands import them), so when :data:`THREAD_ENV` is not set the process starts afresh with it
    (``os.execve``: same pid, same arguments). Forked children inherit it.
    """
    if all(os.environ.get(k) == v for k, v in THREAD_ENV.items()):
        return
    if os.environ.get(_REEXEC_MARK) == "1":  # never loop, whatever happened to the environment
        os.environ.update(THREAD_ENV)
        return
    env = {**os.environ, **THREAD_ENV, _REEXEC_MARK: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-c", "from service.cli import main; main()", *sys.argv[1:]]
    os.execve(sys.executable, args, env)
