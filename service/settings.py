"""The service's settings: every default in one place, each with a line of documentation.

Values a person may change come from the environment (``CAVIAR_*``) through :meth:`Settings.from_env`;
the rest are constants. The broker's own settings (URL, queue, time limits) extend these in
:mod:`workers.settings`. The database, the broker and the queue may also come from a config file
(``caviar.toml`` or ``[tool.caviar]`` in ``pyproject.toml``): see :mod:`service.config_file`, the one
place that resolves them (flag > environment variable > file > default).
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_QUEUE",
    "BROKER_URL_ENV",
    "QUEUE_ENV",
    "DEFAULT_STALE_AFTER",
    "DEFAULT_MAX_ATTEMPTS",
    "DATA_ROOT_ENV",
    "DATASET_CACHE_SIZE",
    "MAX_TRIAL_MEMORY_ENV",
    "TRIAL_MEMORY_SHARE",
    "LOCAL_RETRY_SECONDS",
    "WORKER_RETRY_SECONDS",
    "THREAD_ENV",
    "Settings",
    "env_seconds",
    "env_count",
    "usable_cores",
    "single_thread_env",
    "data_root",
    "default_max_trial_memory",
    "max_trial_memory",
    "parse_bytes",
]

#: Broker used when neither ``--broker``, ``CAVIAR_BROKER_URL`` nor the config file names one (``caviar
#: run`` without any of them uses a local pool instead).
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
#: Environment variable naming the broker (the database's, ``CAVIAR_DATABASE_URL``, is
#: :data:`service.store.db.ENV_VAR`, with its default :data:`service.store.db.DEFAULT_URL`).
BROKER_URL_ENV = "CAVIAR_BROKER_URL"
#: The queue trials are sent to and workers consume by default.
DEFAULT_QUEUE = "caviar"
#: Environment variable naming the queue.
QUEUE_ENV = "CAVIAR_QUEUE"
#: Seconds without a heartbeat after which a running trial counts as abandoned and is run again, on the
#: local pool and on workers alike (``CAVIAR_STALE_AFTER``). Heartbeats come once per epoch: keep it above
#: your longest epoch.
DEFAULT_STALE_AFTER = 300.0
#: A running trial stores a checkpoint at the first epoch end after this many seconds of training since
#: it started or stored its last one, so a new attempt (after its worker died) loses at most about this
#: much work; shorter trials store none. ``CAVIAR_CHECKPOINT_SECONDS`` overrides it.
DEFAULT_CHECKPOINT_SECONDS = 60.0
CHECKPOINT_SECONDS_ENV = "CAVIAR_CHECKPOINT_SECONDS"
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
#: When set, the only directory (with its subdirectories) data files are read from, symlinks resolved:
#: a shared worker pool reads no other path a submitted study names (``caviar validate``, ``run``,
#: ``submit`` and ``train`` check it too).
DATA_ROOT_ENV = "CAVIAR_DATA_ROOT"
#: Split, standardized datasets a process keeps (one per study and dtype it has run trials of; least
#: recently used first out), so that a long-lived worker serving many studies does not grow without bound.
DATASET_CACHE_SIZE = 4
#: The most memory one trial's training may need (its estimate, :func:`core.nn.memory.estimate_bytes`):
#: bytes, or a size such as ``4GiB`` or ``500MB``. Larger ``[fixed]`` configurations (or searched spaces
#: whose largest configuration is larger) are refused by ``validate``, ``run`` and ``submit``; a larger
#: sampled trial is recorded failed without training.
MAX_TRIAL_MEMORY_ENV = "CAVIAR_MAX_TRIAL_MEMORY"
#: Share of physical memory all of a machine's trials may take by default; each of its usable cores
#: runs one trial, so the default cap is this share divided by the number of cores.
TRIAL_MEMORY_SHARE = 0.5
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


def data_root() -> Path | None:
    """The data root from :data:`DATA_ROOT_ENV`, or None when it is unset or empty.

    Raises:
        BadInput: it is set to something that is not an existing directory.
    """
    raw = os.environ.get(DATA_ROOT_ENV, "").strip()
    if not raw:
        return None
    root = Path(raw)
    if not root.is_dir():
        raise BadInput(DATA_ROOT_ENV, raw, "expected an existing directory")
    return root


_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")


def parse_bytes(text: str, name: str = MAX_TRIAL_MEMORY_ENV) -> int:
    """A size in bytes from text: ``"4GiB"``, ``"500MB"``, ``"1.5g"``, ``"1048576"``.

    Units are case-insensitive: B, kB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB or K/M/G/T (of 1024).

    Raises:
        BadInput: named ``name``, when it is not a positive size.
    """
    match = _SIZE.match(text)
    allowed = "expected a size > 0: bytes, or a number with a unit such as 500MB or 4GiB"
    if match is None or match["unit"].lower() not in _UNITS:
        raise BadInput(name, text, allowed)
    value = float(match["number"]) * _UNITS[match["unit"].lower()]
    if not (math.isfinite(value) and value >= 1):
        raise BadInput(name, text, allowed)
    return int(value)


def default_max_trial_memory() -> int:
    """:data:`TRIAL_MEMORY_SHARE` of this machine's physical memory, divided by its usable cores."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system that reports it
        physical = 8 * 2**30
    return max(1, int(physical * TRIAL_MEMORY_SHARE) // usable_cores())


def max_trial_memory() -> int:
    """The trial memory cap in bytes: :data:`MAX_TRIAL_MEMORY_ENV`, or :func:`default_max_trial_memory`.

    Raises:
        BadInput: the variable is set to something that is not a size.
    """
    raw = os.environ.get(MAX_TRIAL_MEMORY_ENV, "").strip()
    return parse_bytes(raw) if raw else default_max_trial_memory()


def checkpoint_seconds() -> float:
    """:data:`DEFAULT_CHECKPOINT_SECONDS`, or ``CAVIAR_CHECKPOINT_SECONDS`` (seconds > 0)."""
    return env_seconds(CHECKPOINT_SECONDS_ENV, DEFAULT_CHECKPOINT_SECONDS)
