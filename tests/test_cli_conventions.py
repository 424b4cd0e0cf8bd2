"""The conventions every command-line tool has, through real ``caviar`` processes: ``--version``, shell
completion (Typer's, through ``main()``), ``NO_COLOR`` and terminals (on a real pseudo-terminal), and
``-q/--quiet`` on ``run``, ``train``, ``submit`` and ``worker``."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from importlib.metadata import version
from pathlib import Path

import pytest
from redis_server import RedisServer
from worker_procs import CAVIAR, study_state, wait_for

_BIN = Path(sys.executable).parent / "caviar"
#: The installed console script: completion scripts call the program by its name.
SCRIPT = str(_BIN) if _BIN.exists() else shutil.which("caviar")

#: An SGR sequence (colour, bold...): what NO_COLOR and pipes must never see.
SGR = re.compile(rb"\x1b\[[0-9;]*m")
#: Few epochs and a small net: a second or two per training once kernels are cached.
TRAIN = ["train", "--dataset", "iris", "--set", "epochs=3", "--set", "hidden_units=32"]

#: A one-round, two-trial study on iris: a few seconds on a local pool.
STUDY = """
[study]
name = "conv"
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
    """This process's environment without caviar's, Celery's or NO_COLOR variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("CAVIAR_", "CELERY_", "_CAVIAR_", "COMP_", "_TYPER_")) and k != "NO_COLOR"
    }
    env.update(PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def caviar(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAVIAR, *args], cwd=cwd, env=env if env is not None else clean_env(), capture_output=True,
        text=True, timeout=timeout,
    )


def on_terminal(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300
) -> tuple[int, bytes]:
    """Run ``args`` with stdout and stderr on a fresh pseudo-terminal; return the exit code and every
    byte written to the terminal."""
    parent, child = pty.openpty()
    proc = subprocess.Popen(
        args, cwd=cwd, env={**env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"},
        stdin=subprocess.DEVNULL, stdout=child, stderr=child, start_new_session=True,
    )
    os.close(child)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=timeout)
    finally:
        os.close(parent)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, b"".join(chunks)


# ---- --version ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_version(tmp_path: Path, flag: str) -> None:
    proc = caviar(flag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"caviar {version('caviar')}\n"
    assert proc.stderr == ""


# ---- shell completion -----------------------------------------------------------------------------------


def test_show_completion_prints_the_bash_completion_function(tmp_path: Path) -> None:
    assert SCRIPT, "the caviar console script is not installed (pip install -e .)"
    # Typer detects the shell it runs under: bash here (the trailing command keeps bash from exec'ing)
    proc = subprocess.run(
        ["bash", "--norc", "-c", f"'{SCRIPT}' --show-completion bash; exit $?"], cwd=tmp_path,
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "_caviar_completion()" in proc.stdout
    assert "_CAVIAR_COMPLETE=complete_bash" in proc.stdout
    assert "complete -o default -F _caviar_completion caviar" in proc.stdout
    # and the same script through the completion protocol itself
    source = subprocess.run(
        [SCRIPT], cwd=tmp_path, env=clean_env(_CAVIAR_COMPLETE="source_bash"), capture_output=True,
        text=True, timeout=60,
    )
    assert source.returncode == 0 and source.stdout.strip() == proc.stdout.strip()


@pytest.mark.parametrize(
    "words, cword, expected",
    [
        ("caviar tr", 1, {"train", "trials"}),
        ("caviar train --da", 2, {"--dataset", "--data"}),
        ("caviar con", 1, {"config"}),
    ],
)
def test_completion_protocol_lists_the_candidates(
    tmp_path: Path, words: str, cword: int, expected: set[str]
) -> None:
    env = clean_env(_CAVIAR_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    proc = subprocess.run([*CAVIAR], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == expected


def test_installed_completion_completes_in_bash(tmp_path: Path) -> None:
    assert SCRIPT, "the caviar console script is not installed (pip install -e .)"
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(HOME=str(home), PATH=f"{Path(SCRIPT).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        ["bash", "--norc", "-c", "caviar --install-completion; exit $?"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    script = home / ".bash_completions" / "caviar.sh"
    assert script.is_file() and f"source '{script}'" in (home / ".bashrc").read_text()
    # A new bash that sources it completes "caviar tr" as a person pressing Tab would see
    complete = (
        f"source '{script}'; COMP_WORDS=(caviar tr); COMP_CWORD=1; _caviar_completion caviar; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "--norc", "-c", complete], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["train", "trials"]


# ---- NO_COLOR, terminals and pipes ----------------------------------------------------------------------


def test_terminal_gets_colour_and_a_bar(tmp_path: Path) -> None:
    code, screen = on_terminal([*CAVIAR, *TRAIN], cwd=tmp_path, env=clean_env())
    assert code == 0, screen
    assert SGR.search(screen)  # the status in colour, the table's bold header
    assert "starting…".encode() in screen and b"3/3" in screen  # the per-epoch bar


def test_no_color_means_plain_text_and_no_bar(tmp_path: Path) -> None:
    code, screen = on_terminal([*CAVIAR, *TRAIN], cwd=tmp_path, env=clean_env(NO_COLOR="1"))
    assert code == 0, screen
    assert b"\x1b" not in screen  # no colour, no bold, no cursor movement
    assert "starting…".encode() not in screen and b"3/3" not in screen
    assert b"complete" in screen and b"val_accuracy" in screen


def test_no_color_is_any_non_empty_value(tmp_path: Path) -> None:
    # "any value" per no-color.org...
    code, screen = on_terminal([*CAVIAR, *TRAIN, "-q"], cwd=tmp_path, env=clean_env(NO_COLOR="false"))
    assert code == 0 and b"\x1b" not in screen, screen
    # ...but an empty NO_COLOR is the same as none
    code, screen = on_terminal([*CAVIAR, *TRAIN], cwd=tmp_path, env=clean_env(NO_COLOR=""))
    assert code == 0 and SGR.search(screen), screen


def test_pipe_gets_no_escape_codes(tmp_path: Path) -> None:
    proc = caviar(*TRAIN, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and "complete" in proc.stdout


def test_errors_on_a_terminal_with_no_color_are_plain(tmp_path: Path) -> None:
    code, screen = on_terminal([*CAVIAR, "train", "--dataset", "iris", "--set", "[bold]=1"], cwd=tmp_path,
                               env=clean_env(NO_COLOR="1"))
    assert code == 2 and b"\x1b" not in screen and b"[bold]" in screen, screen


def test_run_on_a_terminal_with_no_color_has_no_escapes(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    args = [*CAVIAR, "run", "s.toml", "--workers", "1"]
    code, screen = on_terminal(args, cwd=tmp_path, env=clean_env(NO_COLOR="1"))
    assert code == 0, screen
    assert b"\x1b" not in screen and b"Leaderboard" in screen  # the summary, plain


# ---- -q/--quiet -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "train", "submit", "worker"])
def test_quiet_is_documented_in_each_help(tmp_path: Path, command: str) -> None:
    proc = caviar(command, "--help", cwd=tmp_path, env=clean_env(COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    assert "--quiet" in proc.stdout and "-q" in proc.stdout
    assert "quiet" in proc.stdout.split("Options")[0].lower()  # what it keeps, in the command's own text


def test_train_quiet_prints_one_line(tmp_path: Path) -> None:
    proc = caviar(*TRAIN, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert re.fullmatch(
        r"status=complete val_loss=\S+ val_accuracy=\S+% train_loss=\S+ epochs=3 seconds=\S+\n", proc.stdout
    ), proc.stdout
    # on a terminal too: the line, and no bar
    code, screen = on_terminal([*CAVIAR, *TRAIN, "--quiet"], cwd=tmp_path, env=clean_env())
    assert code == 0 and b"3/3" not in screen and "starting…".encode() not in screen, screen
    assert screen.strip().startswith(b"status=complete"), screen


def test_train_quiet_keeps_the_json(tmp_path: Path) -> None:
    loud = caviar(*TRAIN, "--format", "json", cwd=tmp_path)
    quiet = caviar(*TRAIN, "--format", "json", "-q", cwd=tmp_path)
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    a, b = json.loads(loud.stdout), json.loads(quiet.stdout)
    assert set(a) == set(b) and a["val_loss"] == b["val_loss"] and a["config"] == b["config"]


def test_run_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    loud = caviar("run", "s.toml", "--workers", "1", "--db", "sqlite:///loud.db", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "trials in round 0" in loud.stderr
    quiet = caviar("run", "s.toml", "--workers", "1", "--db", "sqlite:///quiet.db", "-q", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "Rounds" in quiet.stdout and "Leaderboard" in quiet.stdout and "complete" in quiet.stdout
    # the same summary as without -q, study ids aside
    study = re.compile(r"conv-\S+")
    assert study.sub("ID", quiet.stdout).splitlines()[0] == study.sub("ID", loud.stdout).splitlines()[0]
    # --format json is unchanged by -q
    record = caviar("run", "s.toml", "--workers", "1", "--db", "sqlite:///j.db", "-q", "--format", "json",
                    cwd=tmp_path)
    assert record.returncode == 0 and record.stderr == "", record.stderr
    assert json.loads(record.stdout)["state"] == "complete"


def test_run_quiet_on_a_terminal_draws_no_bar(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    code, screen = on_terminal([*CAVIAR, "run", "s.toml", "--workers", "1", "-q"], cwd=tmp_path,
                               env=clean_env())
    assert code == 0, screen
    assert b"\x1b[?25l" not in screen and b"trials in round 0" not in screen  # no bar, no info line
    assert b"Leaderboard" in screen


@pytest.mark.timeout(240)
def test_submit_and_worker_quiet(redis_server: RedisServer, tmp_path: Path) -> None:
    # Given a private Redis and a SQLite store, a submitted study with and without -q
    db_url = f"sqlite:///{tmp_path / 'caviar.db'}"
    env = clean_env(CAVIAR_BROKER_URL=redis_server.url, CAVIAR_DATABASE_URL=db_url, CAVIAR_STALE_AFTER="5")
    (tmp_path / "s.toml").write_text(STUDY)
    loud = caviar("submit", "s.toml", cwd=tmp_path, env=env)
    assert loud.returncode == 0, loud.stderr
    assert re.fullmatch(r"conv-\S+\n", loud.stdout) and "2 trials sent to the workers" in loud.stderr
    quiet = caviar("submit", "s.toml", "-q", cwd=tmp_path, env=env)
    assert quiet.returncode == 0, quiet.stderr
    study_id = quiet.stdout.strip()
    assert quiet.stdout == study_id + "\n" and quiet.stderr == ""
    assert redis_server.password not in loud.stdout + loud.stderr

    # When a quiet worker (NO_COLOR with a value Celery's own flag parser would refuse) runs them
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*CAVIAR, "worker", "-c", "1", "--name", "quiet@test", "-q"], cwd=tmp_path,
            env={**env, "NO_COLOR": "always"}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for(lambda: study_state(db_url, study_id) == "complete" or proc.poll() is not None, 180,
                 "the quiet worker to finish the study")
        assert proc.poll() is None, log_path.read_text()
        assert study_state(db_url, study_id) == "complete"
        os.killpg(proc.pid, signal.SIGTERM)  # a warm shutdown: nothing is running
        proc.wait(60)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    # Then it printed no banner, no start-up line and no INFO log line, and no password
    text = log_path.read_text(errors="replace")
    assert "-------------- " not in text and "[queues]" not in text, text
    assert "process(es)" not in text and "INFO/" not in text and "ready." not in text, text
    assert redis_server.password not in text
    assert "\x1b" not in text


def test_worker_quiet_keeps_a_quieter_loglevel() -> None:
    from workers.commands import _at_least_warning

    assert _at_least_warning("INFO") == "WARNING" and _at_least_warning("debug") == "WARNING"
    assert _at_least_warning("ERROR") == "ERROR" and _at_least_warning("critical") == "critical"


def test_quiet_errors_still_print(tmp_path: Path) -> None:
    proc = caviar("train", "--dataset", "nope", "-q", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "nope" in proc.stderr
    proc = caviar("submit", "missing.toml", "-q", cwd=tmp_path)
    assert proc.returncode == 2 and "missing.toml" in proc.stderr
