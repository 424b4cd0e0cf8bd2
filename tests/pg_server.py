"""A real PostgreSQL server for tests: its own cluster in a temp dir, on a free port, trust auth.

``CAVIAR_TEST_POSTGRES_URL`` (a server URL whose user may CREATE DATABASE) is used when set. Otherwise
the binaries come from ``PATH`` (``initdb``/``pg_ctl``), ``/usr/lib/postgresql/*/bin`` or the
``pgserver`` wheel. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (or ``pgserver``, created the way the pgserver wheel does) and every server
command runs as that user. The machine's own PostgreSQL is never used.

:class:`PostgresServer` has ``stop()``/``start()``/``restart()`` that keep the port and data, for
fault tests. Fixtures: ``pg_server`` (session) and ``pg_url`` (a fresh, empty database per test).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "pg_bindir", "free_port", "create_database", "pg_server", "pg_url"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bindir() -> Path | None:
    """A directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    try:
        import pgserver._commands as pgc

        candidates.append(Path(pgc.POSTGRES_BIN_PATH))
    except Exception:  # noqa: BLE001 - the wheel is optional; any import problem means "not available"
        pass
    for d in candidates:
        if all((d / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _system_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "pgserver"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    entry = pwd.getpwnam("pgserver")
    return entry.pw_uid, entry.pw_gid


class PostgresServer:
    """One PostgreSQL cluster on a fixed port; ``stop``/``start``/``restart`` keep its data and port.

    Args:
        bindir: where ``initdb``, ``pg_ctl`` and ``postgres`` are.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="caviar-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user = "postgres"
        self._owner = _system_user()
        if self._owner is not None:
            os.chown(self.root, *self._owner)
        self._initdb()

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kwargs = {}
        if self._owner is not None:
            kwargs = {"user": self._owner[0], "group": self._owner[1], "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], check=check, capture_output=True, text=True,
            timeout=timeout, cwd=self.root, **kwargs,
        )

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                  "--no-sync")

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database (psycopg 3 driver)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """URL of database ``name`` on this server."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.root} -F -c max_connections=200"
        try:
            self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start"
            )
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log[-2000:]}") from None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects clients; ``immediate`` is a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def running(self) -> bool:
        """True when the server answers."""
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def cleanup(self) -> None:
        """Stop the server and delete its files."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def create_database(server_url: str, prefix: str = "caviar_test") -> str:
    """Create a fresh, empty database next to ``server_url``'s and return its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


class _External:
    """A server given by ``CAVIAR_TEST_POSTGRES_URL`` (cannot be stopped by tests)."""

    def __init__(self, url: str) -> None:
        from service.store.db import normalize_url

        self.url = normalize_url(url)

    def database_url(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def stop(self, mode: str = "fast") -> None:
        pytest.skip("the PostgreSQL server from CAVIAR_TEST_POSTGRES_URL cannot be stopped by tests")

    start = restart = stop  # type: ignore[assignment]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | _External]:
    """A PostgreSQL server for the whole test session (skipped on a laptop without one, failed in CI)."""
    external = os.environ.get("CAVIAR_TEST_POSTGRES_URL")
    if external:
        yield _External(external)
        return
    bindir = pg_bindir()
    if bindir is None:
        message = "no PostgreSQL binaries (initdb, pg_ctl) on PATH, in /usr/lib/postgresql or from pgserver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer | _External) -> str:
    """URL of a fresh, empty database on the session's server."""
    return create_database(pg_server.url)
