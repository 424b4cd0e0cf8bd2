"""A study checked against its data before anything is written: the pure feasibility rules
(core.search.feasibility), the service's check (service.study_file.check_study_data), and every
unusable-data case through the installed `caviar validate`, `run` and `submit`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.data import DataShape
from core.errors import BadInput
from core.search import load_study
from core.search.feasibility import check_feasible, check_trial_memory
from service.study_file import check_study_data, load_study_file

CAVIAR = str(Path(sys.executable).with_name("caviar"))

#: iris with the default val_fraction: 120 training rows.
IRIS = DataShape(rows_train=120, rows_val=30, features=4, classes=3)


def study(fixed: str = "", space: str = 'learning_rate = { log = [1e-3, 1e-1] }',
          source: str = 'dataset = "iris"') -> str:
    """A small valid study file's text with the given ``[fixed]`` and ``[space]`` lines."""
    return f"""
[study]
name = "checks"
{source}
objective = "val_loss"
strategy = "random"
seed = 0

[strategy]
trials = 2

[fixed]
epochs = 1
{fixed}

[space]
{space}
"""


def refusal(text: str, shape: DataShape = IRIS, **kwargs: object) -> BadInput:
    with pytest.raises(BadInput) as info:
        check_feasible(load_study(text), shape, **kwargs)  # type: ignore[arg-type]
    return info.value


# ---- batch size against the training split ---------------------------------------------------------


def test_a_batch_up_to_the_training_split_is_feasible() -> None:
    check_feasible(load_study(study("batch_size = 120")), IRIS)
    check_feasible(load_study(study(space="batch_size = { choice = [16, 120] }")), IRIS)
    check_feasible(load_study(study(space="batch_size = { int = [2, 120], log = true }")), IRIS)


@pytest.mark.parametrize(
    ("fixed", "space", "field", "value"),
    [
        ("batch_size = 121", None, "[fixed] batch_size", 121),
        ("", "batch_size = { choice = [16, 500, 32] }", "[space] batch_size", 500),
        ("", "batch_size = { int = [16, 121] }", "[space] batch_size", [16, 121]),
    ],
)
def test_a_batch_that_can_exceed_the_training_split_is_refused(
    fixed: str, space: str | None, field: str, value: object
) -> None:
    text = study(fixed) if space is None else study(fixed, space)
    exc = refusal(text)
    assert (exc.field, exc.value) == (field, value)
    assert "120 rows" in exc.allowed


def test_the_default_batch_is_checked_too() -> None:
    small = DataShape(rows_train=40, rows_val=10, features=2, classes=2)
    exc = refusal(study(), small)
    assert (exc.field, exc.value) == ("[fixed] batch_size", 64)
    assert "40 rows" in exc.allowed and "default" in exc.allowed


@pytest.mark.parametrize(
    ("fixed", "space", "field"),
    [
        ("batch_size = 1", None, "[fixed] batch_size"),  # the default norm is batch
        ('batch_size = 1\nnorm = "switchable"', None, "[fixed] batch_size"),
        ('norm = "batch"', "batch_size = { choice = [1, 16] }", "[space] batch_size"),
        ("", "batch_size = { int = [1, 32] }", "[space] batch_size"),
        ("batch_size = 1", 'norm = { choice = ["none", "switchable"] }', "[fixed] batch_size"),
    ],
)
def test_a_batch_of_one_where_batch_statistics_are_possible_is_refused(
    fixed: str, space: str | None, field: str
) -> None:
    exc = refusal(study(fixed) if space is None else study(fixed, space))
    assert exc.field == field and "at least 2" in exc.allowed


@pytest.mark.parametrize(
    ("fixed", "space"),
    [
        ('batch_size = 1\nnorm = "layer"', None),
        ("batch_size = 1", 'norm = { choice = ["none", "weight", "group"] }'),
        ('norm = "none"', "batch_size = { int = [1, 32] }"),
        ("", "batch_size = { int = [2, 32] }"),
    ],
)
def test_a_batch_of_one_without_batch_statistics_is_feasible(fixed: str, space: str | None) -> None:
    check_feasible(load_study(study(fixed) if space is None else study(fixed, space)), IRIS)


# ---- memory -----------------------------------------------------------------------------------------


def test_a_fixed_configuration_above_the_memory_cap_is_refused() -> None:
    text = study('layers = 16\nhidden_units = 4096\ndtype = "float64"')
    exc = refusal(text, memory_limit=2**30, limit_name="CAVIAR_MAX_TRIAL_MEMORY")
    assert (exc.field, exc.value) == ("[fixed] hidden_units", 4096)
    assert "1.0 GiB" in exc.allowed and "CAVIAR_MAX_TRIAL_MEMORY" in exc.allowed
    check_feasible(load_study(text), IRIS)  # no cap, no refusal
    check_feasible(load_study(text), IRIS, memory_limit=2**40)


def test_a_space_whose_largest_configuration_is_above_the_cap_is_refused() -> None:
    space = 'hidden_units = { int = [16, 4096], log = true }\ndtype = { choice = ["float32", "float64"] }'
    exc = refusal(study("layers = 8", space), memory_limit=2**30)
    assert exc.field == "[space] hidden_units" and exc.value == [16, 4096]
    assert "dtype = float64" in exc.allowed and "hidden_units = 4096" in exc.allowed
    # the same space in float32 alone fits a cap the float64 corner does not
    narrow = 'hidden_units = { int = [16, 4096], log = true }\ndtype = { choice = ["float32"] }'
    check_feasible(load_study(study("layers = 8", narrow)), IRIS, memory_limit=4 * 2**30)
    with pytest.raises(BadInput):
        check_feasible(load_study(study("layers = 8", space)), IRIS, memory_limit=4 * 2**30)


def test_one_configuration_s_memory_is_checked_against_the_cap() -> None:
    from core.hparams import resolve

    check_trial_memory(resolve({}), IRIS, 2**30)
    with pytest.raises(BadInput) as info:
        big = resolve({"hidden_units": 4096, "layers": 4})
        check_trial_memory(big, IRIS, 2**20, "CAVIAR_MAX_TRIAL_MEMORY")
    assert info.value.field == "trial memory" and "CAVIAR_MAX_TRIAL_MEMORY" in info.value.allowed


# ---- the service's check ----------------------------------------------------------------------------


def _csv(path: Path, rows: int = 50, target: str = "target") -> Path:
    path.write_text(f"a,b,{target}\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(rows)))
    return path


def test_the_service_check_reads_the_data_and_names_study_keys(tmp_path: Path) -> None:
    _csv(tmp_path / "d.csv")
    good = tmp_path / "good.toml"
    good.write_text(study("batch_size = 8", source='data = "d.csv"\ntarget = "target"'))
    assert check_study_data(load_study_file(good)) == DataShape(40, 10, 2, 2)
    missing = tmp_path / "missing.toml"
    missing.write_text(study(source='data = "nope.csv"\ntarget = "target"'))
    with pytest.raises(BadInput) as info:
        check_study_data(load_study_file(missing))
    assert info.value.field == "[study] data"
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(study("batch_size = 8", source='data = "d.csv"\ntarget = "species"'))
    with pytest.raises(BadInput) as info:
        check_study_data(load_study_file(wrong))
    assert (info.value.field, info.value.value) == ("[study] target", "species")


def test_the_service_check_reads_only_under_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _csv(root / "in.csv")
    _csv(tmp_path / "out.csv")
    for name, data in (("in", "root/in.csv"), ("out", "out.csv")):
        source = f'data = "{data}"\ntarget = "target"'
        (tmp_path / f"{name}.toml").write_text(study("batch_size = 8", source=source))
    monkeypatch.setenv("CAVIAR_DATA_ROOT", str(root))
    assert check_study_data(load_study_file(tmp_path / "in.toml")).rows_train == 40
    with pytest.raises(BadInput) as info:
        check_study_data(load_study_file(tmp_path / "out.toml"))
    assert info.value.field == "[study] data" and str(root.resolve()) in info.value.allowed
    monkeypatch.setenv("CAVIAR_DATA_ROOT", str(tmp_path / "no-such-dir"))
    with pytest.raises(BadInput) as info:
        check_study_data(load_study_file(tmp_path / "in.toml"))
    assert info.value.field == "CAVIAR_DATA_ROOT"


# ---- every unusable-data case through the installed CLI ---------------------------------------------


def _cases(tmp: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (study text, strings its one-line error must contain)."""
    _csv(tmp / "nolabel.csv", target="cls")
    (tmp / "passwd.csv").symlink_to("/etc/passwd")
    csv = 'data = "{}"\ntarget = "target"'
    return {
        "missing-file": (study(source=csv.format("missing.csv")), ["[study] data", "missing.csv"]),
        "no-label-column": (study(source=csv.format("nolabel.csv")), ["[study] target", "nolabel.csv"]),
        "fixed-batch": (study("batch_size = 200"), ["[fixed] batch_size", "200", "120 rows"]),
        "choice-batch": (
            study(space="batch_size = { choice = [16, 200] }"), ["[space] batch_size", "200", "120 rows"]
        ),
        "int-batch": (
            study(space="batch_size = { int = [16, 500] }"), ["[space] batch_size", "[16, 500]", "120 rows"]
        ),
        "batch-1-batch-norm": (study("batch_size = 1"), ["[fixed] batch_size", "1", "norm = batch"]),
        "batch-1-searched": (
            study(space='batch_size = { choice = [1, 16] }\nnorm = { choice = ["layer", "switchable"] }'),
            ["[space] batch_size", "norm = switchable", "at least 2"],
        ),
        "memory": (
            study('layers = 16\nhidden_units = 4096\ndtype = "float64"'),
            ["[fixed] hidden_units", "4096", "CAVIAR_MAX_TRIAL_MEMORY"],
        ),
        "symlink-to-system-file": (study(source=csv.format("passwd.csv")), ["[study] target", "'target'"]),
    }


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
def test_every_unusable_data_case_exits_2_from_validate_run_and_submit(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAVIAR_")}
    db = tmp_path / "caviar.db"
    env.update(CAVIAR_DATABASE_URL=f"sqlite:///{db}", CAVIAR_MAX_TRIAL_MEMORY="4GiB")
    passwd = Path("/etc/passwd").read_text()
    secrets = {w for line in passwd.splitlines() for w in line.split(":") if len(w) >= 4} - {"root"}
    for case, (text, needles) in _cases(tmp_path).items():
        path = tmp_path / f"{case}.toml"
        path.write_text(text)
        procs = {
            verb: subprocess.Popen(
                [CAVIAR, verb, str(path)], cwd=tmp_path, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for verb in ("validate", "run", "submit")
        }
        for verb, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            lines = err.strip().splitlines()
            assert proc.returncode == 2, (case, verb, err)
            assert len(lines) == 1 and out == "", (case, verb, out, err)
            for needle in needles:
                assert needle in lines[0], (case, verb, needle, lines[0])
            assert not [w for w in secrets if w in lines[0]], (case, verb, lines[0])
    assert not db.exists() and not list(tmp_path.glob("caviar.db*"))  # nothing written


def test_validate_shows_the_sizes_it_checked(tmp_path: Path) -> None:
    _csv(tmp_path / "d.csv")
    path = tmp_path / "s.toml"
    path.write_text(study("batch_size = 8", source='data = "d.csv"\ntarget = "target"'))
    proc = subprocess.run([CAVIAR, "validate", str(path), "--format", "json"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    shape = json.loads(proc.stdout)["data_shape"]
    assert shape == {"rows_train": 40, "rows_val": 10, "features": 2, "classes": 2}
