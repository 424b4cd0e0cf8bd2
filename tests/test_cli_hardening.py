"""Bad input and secrets through the installed ``caviar`` command: exit 2 naming the field, nothing
written, and no password in any output whatever form the URL takes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CAVIAR = str(Path(sys.executable).parent / "caviar")

SECRET = "Zq9-s3cret"

#: A valid one-trial study.
STUDY = """
[study]
name = "s"
dataset = "iris"
objective = "val_loss"
strategy = "random"
seed = 0

[strategy]
trials = 1

[fixed]
epochs = 1

[space]
learning_rate = { log = [1e-3, 1e-1] }
"""


def caviar(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CAVIAR_", "CELERY_"))}
    return subprocess.run(
        [CAVIAR, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=120
    )


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "url, code",
    [
        # a password with an unencoded "@" or "/": refused before any driver can split it wrongly
        (f"postgresql://bob:{SECRET}@x@127.0.0.1:{{port}}/db", 2),
        (f"postgresql://bob:{SECRET[:4]}/{SECRET[4:]}@127.0.0.1:{{port}}/db", 2),
        # a password as a query parameter: the connection fails, the line names the URL masked
        (f"postgresql://bob@127.0.0.1:{{port}}/db?password={SECRET}", 1),
        (f"postgresql://bob:{SECRET}@127.0.0.1:{{port}}/db", 1),
    ],
)
def test_no_password_in_any_url_form(tmp_path: Path, url: str, code: int) -> None:
    url = url.format(port=_closed_port())
    for args in (("status", "--db", url), ("status", "some-study", "--db", url)):
        proc = caviar(*args, cwd=tmp_path)
        assert proc.returncode == code, proc.stderr
        out = proc.stdout + proc.stderr
        assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
        for piece in (SECRET, SECRET[:4] + "/", SECRET[4:]):
            assert piece not in out, out


def test_broker_password_never_printed(tmp_path: Path) -> None:
    broker = f"redis://:{SECRET}@x@127.0.0.1:{_closed_port()}/0"
    (tmp_path / "s.toml").write_text(STUDY)
    for args in (("submit", "s.toml", "--broker", broker), ("worker", "--broker", broker)):
        proc = caviar(*args, cwd=tmp_path, env={"CAVIAR_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"})
        assert proc.returncode == 2, proc.stderr
        assert SECRET not in proc.stdout + proc.stderr and "x@127" not in proc.stderr
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize(
    "args, env, field",
    [
        (("status", "--db", "postgresql://u@127.0.0.1:99999/db"), {}, "database URL"),
        (("status", "--db", "postgresql://u@127.0.0.1:port/db"), {}, "database URL"),
        (("run", "s.toml", "--stale-after", "-1"), {}, "--stale-after"),
        (("run", "s.toml"), {"CAVIAR_STALE_AFTER": "inf"}, "CAVIAR_STALE_AFTER"),
        (("submit", "s.toml"), {"CAVIAR_VISIBILITY_TIMEOUT": "inf"}, "CAVIAR_VISIBILITY_TIMEOUT"),
        (("worker", "--name", "w" * 500), {}, "--name"),
    ],
)
def test_bad_values_exit_2_and_write_nothing(tmp_path: Path, args: tuple, env: dict, field: str) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    proc = caviar(*args, cwd=tmp_path, env={"CAVIAR_BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0",
                                              **env})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"error: {field}"), proc.stderr
    assert not (tmp_path / "caviar.db").exists()


def test_reads_in_an_empty_folder_create_no_database(tmp_path: Path) -> None:
    listing = caviar("status", "--format", "json", cwd=tmp_path)
    assert listing.returncode == 0 and listing.stdout.strip() == "[]"
    reads = (("status", "bogus"), ("trials", "bogus"), ("best", "bogus"), ("export", "bogus", "-o", "x.csv"))
    for args in reads:
        proc = caviar(*args, cwd=tmp_path)
        assert proc.returncode == 2 and "--db" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (("trials",), ("export", "some-study"), ("--no-such-option",)):
        proc = caviar(*args, cwd=tmp_path)
        assert proc.returncode == 2 and "Usage: caviar" in proc.stderr, proc.stderr


def test_error_text_is_printed_as_written(tmp_path: Path) -> None:
    # Rich would turn ":ok:" into an emoji and "[red]" into a style; errors quote user input verbatim.
    (tmp_path / "s.toml").write_text(STUDY.replace('"iris"', '":ok: [red]x[/red]"'))
    proc = caviar("validate", "s.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert ":ok: [red]x[/red]" in proc.stderr and "\N{SQUARED OK}" not in proc.stderr


def test_study_files_as_editors_write_them(tmp_path: Path) -> None:
    # A byte-order mark is accepted; a name ending in a newline is not.
    (tmp_path / "bom.toml").write_text("\ufeff" + STUDY, encoding="utf-8")
    assert caviar("validate", "bom.toml", cwd=tmp_path).returncode == 0
    (tmp_path / "nl.toml").write_text(STUDY.replace('name = "s"', 'name = "s\\n"'))
    proc = caviar("validate", "nl.toml", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: [study] name"), proc.stderr


def test_a_symlinked_data_file_keeps_its_name(tmp_path: Path) -> None:
    # Given data given as a relative symlink whose target has no .csv extension
    (tmp_path / "real").mkdir()
    rows = ["a,b,label"] + [f"{i % 7}.0,{i % 5}.0,{i % 3}" for i in range(60)]
    (tmp_path / "real" / "flowers.data").write_text("\n".join(rows) + "\n")
    (tmp_path / "flowers.csv").symlink_to(Path("real") / "flowers.data")
    study = STUDY.replace('dataset = "iris"', 'data = "flowers.csv"\ntarget = "label"')
    (tmp_path / "s.toml").write_text(study.replace("epochs = 1", "epochs = 1\nbatch_size = 8"))
    # When the study runs, the stored path is the link's, so every later read passes the extension check
    proc = caviar("run", "s.toml", "-w", "1", "--format", "json", cwd=tmp_path,
                  env={"CAVIAR_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"complete"' in proc.stdout
