"""The optional config file (``caviar.toml``, else ``[tool.caviar]`` in ``pyproject.toml``) for ``db``,
``broker`` and ``queue``: precedence flag > environment variable > file > default, ``caviar config``,
bad files (exit 2 naming the file and the key, no password), and the values reaching real commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import pytest
from redis_server import RedisServer
from worker_procs import CAVIAR, free_port_url, study_state, wait_for

from core.errors import BadInput
from service.config_file import load, resolve

SECRET = "Zq9-s3cret"

#: A one-round, two-trial study on iris: a few seconds on a local pool or a worker.
STUDY = """
[study]
name = "cfg"
dataset = "iris"
objective = "val_loss"
strategy = "random"
seed = 0

[strategy]
trials = 2

[fixed]
epochs = 2
hidden_units = 16
batch_size = 16

[space]
learning_rate = { log = [1e-3, 1e-1] }
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAVIAR_", "CELERY_"))}
    env.update(PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def caviar(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAVIAR, *args], cwd=cwd, env=env if env is not None else clean_env(), capture_output=True,
        text=True, timeout=timeout,
    )


def config_rows(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, dict]:
    proc = caviar("config", "--format", "json", *args, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return {row["setting"]: row for row in json.loads(proc.stdout)}


# ---- the rule, as a function ----------------------------------------------------------------------------


def test_resolve_applies_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "caviar.toml").write_text('queue = "from-file"\n')
    env = {"CAVIAR_QUEUE": "from-env"}
    assert resolve("queue", "from-flag", environ=env, cwd=tmp_path).source == "flag"
    assert resolve("queue", None, environ=env, cwd=tmp_path).value == "from-env"
    found = resolve("queue", None, environ={}, cwd=tmp_path)
    assert (found.value, found.source, found.origin) == ("from-file", "file", str(tmp_path / "caviar.toml"))
    empty = resolve("queue", "", environ={"CAVIAR_QUEUE": ""}, cwd=tmp_path)
    assert empty.value == "from-file"  # an empty flag or variable is not given
    default = resolve("broker", None, environ={}, cwd=tmp_path)
    assert (default.value, default.source, default.origin) == ("redis://localhost:6379/0", "default", None)
    assert resolve("db", None, environ={}, cwd=tmp_path).value == "sqlite:///./caviar.db"


def test_caviar_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.caviar]\nqueue = "pp"\n')
    found = load(tmp_path)
    assert found is not None and found.values == {"queue": "pp"} and found.label.endswith("[tool.caviar]")
    (tmp_path / "caviar.toml").write_text('broker = "redis://q:6379/1"\n')
    found = load(tmp_path)
    assert found is not None and found.values == {"broker": "redis://q:6379/1"} and found.table is None
    # caviar.toml is the whole file then: pyproject's queue no longer counts
    assert resolve("queue", environ={}, cwd=tmp_path).source == "default"


def test_pyproject_without_a_caviar_table_is_no_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.ruff]\nline-length = 99\n')
    assert load(tmp_path) is None


# ---- caviar config --------------------------------------------------------------------------------------


def test_config_shows_each_value_and_its_source(tmp_path: Path) -> None:
    rows = config_rows(tmp_path)
    assert {k: (r["value"], r["source"]) for k, r in rows.items()} == {
        "db": ("sqlite:///./caviar.db", "default"),
        "broker": ("redis://localhost:6379/0", "default"),
        "queue": ("caviar", "default"),
    }
    (tmp_path / "caviar.toml").write_text(
        f'db = "postgresql://bob:{SECRET}@db.internal/caviar"\nqueue = "q"\n'
    )
    env = clean_env(CAVIAR_BROKER_URL=f"redis://:{SECRET}@queue:6379/0")
    rows = config_rows(tmp_path, "--queue", "flagged", env=env)
    assert rows["db"] == {"setting": "db", "value": "postgresql://bob:***@db.internal/caviar",
                          "source": "file", "origin": str(tmp_path / "caviar.toml")}
    assert rows["broker"] == {"setting": "broker", "value": "redis://:***@queue:6379/0",
                              "source": "env", "origin": "CAVIAR_BROKER_URL"}
    assert rows["queue"] == {"setting": "queue", "value": "flagged", "source": "flag", "origin": "--queue"}

    table = caviar("config", cwd=tmp_path, env={**env, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert SECRET not in table.stdout + table.stderr
    assert f"file {tmp_path / 'caviar.toml'}" in table.stdout and "env CAVIAR_BROKER_URL" in table.stdout
    assert "precedence: flag > environment variable > config file > default" in table.stdout


def test_config_reads_tool_caviar_in_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.caviar]\nbroker = "redis://:{SECRET}@q:6379/0"\n'
    )
    rows = config_rows(tmp_path)
    assert rows["broker"]["source"] == "file"
    assert rows["broker"]["origin"] == f"{tmp_path / 'pyproject.toml'} [tool.caviar]"
    assert rows["broker"]["value"] == "redis://:***@q:6379/0"
    table = caviar("config", cwd=tmp_path, env=clean_env(COLUMNS="200"))
    assert "[tool.caviar]" in table.stdout and SECRET not in table.stdout


def test_config_help_states_the_precedence(tmp_path: Path) -> None:
    proc = caviar("config", "--help", cwd=tmp_path, env=clean_env(COLUMNS="200"))
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "Precedence, highest first: the flag" in text and "[tool.caviar]" in text


def test_flags_and_variables_keep_their_names(tmp_path: Path) -> None:
    for command, variables in [
        ("run", ("CAVIAR_DATABASE_URL", "CAVIAR_BROKER_URL")),
        ("submit", ("CAVIAR_DATABASE_URL", "CAVIAR_BROKER_URL")),
        ("worker", ("CAVIAR_DATABASE_URL", "CAVIAR_BROKER_URL")),
        ("status", ("CAVIAR_DATABASE_URL", "CAVIAR_BROKER_URL")),
        ("trials", ("CAVIAR_DATABASE_URL",)),
    ]:
        proc = caviar(command, "--help", cwd=tmp_path, env=clean_env(COLUMNS="200"))
        assert proc.returncode == 0, proc.stderr
        for variable in variables:
            assert f"env var: {variable}" in proc.stdout, (command, variable)
        assert "--db" in proc.stdout


# ---- bad files: exit 2, naming the file and the key, never a password -----------------------------------


BAD_FILES = [
    ("caviar.toml", 'db = "sqlite:///x.db\n', ["caviar.toml", "invalid TOML", "line 1"]),
    ("caviar.toml", f'database = "postgresql://bob:{SECRET}@h/db"\n', ["caviar.toml", "'database'",
                                                                     "db, broker, queue"]),
    ("caviar.toml", "queue = 5\n", ["caviar.toml: queue", "5", "not an integer"]),
    ("caviar.toml", f'db = ["postgresql://bob:{SECRET}@h/db"]\n', ["caviar.toml: db", "not an array", "***"]),
    ("caviar.toml", 'broker = "  "\n', ["caviar.toml: broker", "non-empty string"]),
    ("caviar.toml", f'broker = "redis://:{SECRET}@x@h:6379/0"\n', ["caviar.toml: broker", "percent-encoded"]),
    ("caviar.toml", "[db]\nurl = 'x'\n", ["caviar.toml: db", "not a table"]),
    ("pyproject.toml", '[tool]\ncaviar = "db"\n', ["pyproject.toml [tool.caviar]", "expected a table"]),
    ("pyproject.toml", '[tool.caviar]\nqueues = "a,b"\n', ["pyproject.toml [tool.caviar]", "'queues'"]),
    ("pyproject.toml", "[project\n", ["pyproject.toml", "invalid TOML"]),
]


_BAD_IDS = [f"{name}:{text.split()[0]}" for name, text, _ in BAD_FILES]


def _refused(tmp_path: Path, args: tuple[str, ...], pieces: list[str]) -> None:
    proc = caviar(*args, cwd=tmp_path)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for piece in pieces:
        assert piece in proc.stderr, (args, piece, proc.stderr)
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("name, text, pieces", BAD_FILES, ids=_BAD_IDS)
def test_a_bad_file_is_refused_naming_file_and_key(
    tmp_path: Path, name: str, text: str, pieces: list[str]
) -> None:
    # In process: the line the CLI prints is "error: " and the BadInput (the CLI's path is checked below)
    (tmp_path / name).write_text(text)
    with pytest.raises(BadInput) as caught:
        resolve("db", environ={}, cwd=tmp_path)
    line = f"error: {caught.value}"
    assert len(line.splitlines()) == 1, line
    for piece in pieces:
        assert piece in line, (piece, line)
    assert SECRET not in line


@pytest.mark.parametrize("case", [0, 1, 3, 8], ids=[_BAD_IDS[i] for i in (0, 1, 3, 8)])
def test_a_bad_file_exits_2_from_config_and_status(tmp_path: Path, case: int) -> None:
    name, text, pieces = BAD_FILES[case]
    (tmp_path / name).write_text(text)
    for args in (("config",), ("status",)):
        _refused(tmp_path, args, pieces)
    assert not (tmp_path / "caviar.db").exists()


@pytest.mark.parametrize("args", [("run", "s.toml", "--workers", "1"), ("worker",), ("submit", "s.toml"),
                                  ("db", "current"), ("panda", "list")])
def test_every_command_with_db_or_broker_refuses_a_bad_file(tmp_path: Path, args: tuple[str, ...]) -> None:
    name, text, pieces = BAD_FILES[1]  # an unknown key, whose value holds a password
    (tmp_path / name).write_text(text)
    (tmp_path / "s.toml").write_text(STUDY)
    _refused(tmp_path, args, pieces)
    assert not (tmp_path / "caviar.db").exists()  # refused before any store was opened


def test_bad_file_is_a_bad_input_in_process(tmp_path: Path) -> None:
    (tmp_path / "caviar.toml").write_text('db = 1.5\n')
    with pytest.raises(BadInput) as caught:
        resolve("db", environ={}, cwd=tmp_path)
    assert caught.value.field == f"{tmp_path / 'caviar.toml'}: db"


def test_a_bad_file_is_not_read_when_flags_and_variables_say_everything(tmp_path: Path) -> None:
    # The file is read only for a value neither the flag nor the variable gave
    (tmp_path / "caviar.toml").write_text("db = 5\n")
    proc = caviar("db", "current", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert proc.returncode == 2 and "expected an existing caviar database" in proc.stderr  # not the file


# ---- the values reach the commands ----------------------------------------------------------------------


def test_db_from_file_then_env_then_flag(tmp_path: Path) -> None:
    (tmp_path / "caviar.toml").write_text(f'db = "sqlite:///{tmp_path / "file.db"}"\n')
    proc = caviar("db", "upgrade", cwd=tmp_path)
    assert proc.returncode == 0 and "file.db" in proc.stderr, proc.stderr
    assert (tmp_path / "file.db").exists()
    env = clean_env(CAVIAR_DATABASE_URL=f"sqlite:///{tmp_path / 'env.db'}")
    proc = caviar("db", "upgrade", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "env.db" in proc.stderr, proc.stderr
    proc = caviar("db", "upgrade", "--db", f"sqlite:///{tmp_path / 'flag.db'}", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "flag.db" in proc.stderr, proc.stderr
    assert {p.name for p in tmp_path.glob("*.db")} == {"file.db", "env.db", "flag.db"}
    # and a read command reads the file's database
    proc = caviar("status", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc.stderr


def test_run_follows_a_broker_from_the_file_unless_told_otherwise(tmp_path: Path) -> None:
    # Given a config file naming a broker where nothing listens (with a password)
    broker = free_port_url(SECRET)
    (tmp_path / "caviar.toml").write_text(f'broker = "{broker}"\ndb = "sqlite:///{tmp_path / "c.db"}"\n')
    (tmp_path / "s.toml").write_text(STUDY)
    # When `run` is given no broker, it takes the file's, as it would CAVIAR_BROKER_URL, and fails (exit 1)
    proc = caviar("run", "s.toml", "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 1 and "unreachable" in proc.stderr, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "***" in proc.stderr
    # And `--broker ""` runs on a local pool all the same, in the file's database
    proc = caviar("run", "s.toml", "--workers", "1", "--broker", "", "-q", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "complete"
    assert (tmp_path / "c.db").exists()


@pytest.mark.timeout(240)
def test_submit_and_worker_take_broker_queue_and_db_from_the_file(redis_server: RedisServer,
                                                                   tmp_path: Path) -> None:
    # Given only a config file (no CAVIAR_* variable) naming a private Redis, a queue and a store
    db_url = f"sqlite:///{tmp_path / 'caviar.db'}"
    (tmp_path / "caviar.toml").write_text(
        f'broker = "{redis_server.url}"\nqueue = "from-file"\ndb = "{db_url}"\n'
    )
    (tmp_path / "s.toml").write_text(STUDY)
    env = clean_env(CAVIAR_STALE_AFTER="5")
    # When the study is submitted, its trials go to the file's queue
    proc = caviar("submit", "s.toml", "-q", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    study_id = proc.stdout.strip()
    client = redis_server.client()
    assert client.llen("from-file") == 2 and client.llen("caviar") == 0
    assert redis_server.password not in proc.stdout + proc.stderr
    # and CAVIAR_QUEUE still wins over the file
    other = caviar("submit", "s.toml", "-q", cwd=tmp_path, env={**env, "CAVIAR_QUEUE": "from-env"})
    assert other.returncode == 0, other.stderr
    assert client.llen("from-env") == 2

    # Then a worker started in that directory with no flag consumes the file's queue and store
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [*CAVIAR, "worker", "-c", "1", "--name", "file@test"], cwd=tmp_path, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for(lambda: study_state(db_url, study_id) == "complete" or worker.poll() is not None, 180,
                 "the worker to finish the study")
        assert study_state(db_url, study_id) == "complete", log_path.read_text()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
    text = log_path.read_text(errors="replace")
    assert "queue(s) from-file" in text and redis_server.password not in text
    assert client.llen("from-env") == 2  # the other queue was left alone
