"""Study files: parsing, every bad-input case through the installed `caviar validate`, examples."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadInput
from core.search import load_study, parse_study
from service.study_file import load_study_file

ROOT = Path(__file__).resolve().parents[1]
CAVIAR = str(Path(sys.executable).with_name("caviar"))

GOOD = """
[study]
name = "digits-c2f"
dataset = "digits"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 0

[strategy]
rounds = 3
trials_per_round = 16
keep_top = 4
margin = 0.25

[fixed]
epochs = 20
optimizer = "adam"

[space]
learning_rate = { log = [1e-4, 1e-1] }
beta1 = { one_minus_log = [0.9, 0.999] }
hidden_units = { int = [32, 512], log = true }
layers = { int = [1, 4] }
lr_decay = { uniform = [0.0, 1.0] }
batch_size = { choice = [32, 64, 128, 256] }
norm = { choice = ["batch", "layer", "group", "switchable", "weight", "none"] }
"""


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


#: (case, study text, field that the message must name, a word of what is allowed)
BAD = [
    ("unknown section", GOOD + "\n[extra]\nx = 1\n", "[extra]", "[study]"),
    ("unknown study key", edit("seed = 0", "seed = 0\ncolour = 1"), "[study] colour", "expected one of"),
    ("missing objective", edit('objective = "val_loss"\n', ""), "[study] objective", "required"),
    ("bad objective", edit('"val_loss"', '"loss"'), "[study] objective", "val_accuracy"),
    ("bad strategy", edit('strategy = "coarse-to-fine"', 'strategy = "bayes"'), "[study] strategy", "sobol"),
    ("unknown dataset", edit('"digits"', '"cifar"'), "[study] dataset", "mnist1d"),
    (
        "dataset and data",
        edit('dataset = "digits"', 'dataset = "digits"\ndata = "x.csv"'),
        "[study] dataset",
        "exactly one",
    ),
    ("csv without target", edit('dataset = "digits"', 'data = "x.csv"'), "[study] target", "label column"),
    ("negative seed", edit("seed = 0", "seed = -1"), "[study] seed", "integer"),
    (
        "bad val_fraction",
        edit("seed = 0", "seed = 0\nval_fraction = 1.5"),
        "[study] val_fraction",
        "[0.01, 0.9]",
    ),
    (
        "knob of another strategy",
        edit("margin = 0.25", "margin = 0.25\ntrials = 8"),
        "[strategy] trials",
        "random, sobol",
    ),
    (
        "keep_top > trials_per_round",
        edit("keep_top = 4", "keep_top = 17\nversion = 1"),
        "[strategy] keep_top",
        "trials_per_round",
    ),
    ("unknown version", edit("keep_top = 4", "keep_top = 4\nversion = 3"), "[strategy] version", "[1, 2]"),
    ("zero startup", edit("keep_top = 4", "keep_top = 4\nstartup = 0"), "[strategy] startup", "integer"),
    ("top above 1", edit("keep_top = 4", "keep_top = 4\ntop = 1.5"), "[strategy] top", "[0.01, 1]"),
    ("negative margin", edit("margin = 0.25", "margin = -0.1"), "[strategy] margin", "[0, 10]"),
    ("bad narrow", edit("margin = 0.25", 'margin = 0.25\nnarrow = "some"'), "[strategy] narrow", "important"),
    ("zero rounds", edit("rounds = 3", "rounds = 0"), "[strategy] rounds", "integer"),
    ("unknown fixed key", edit("epochs = 20", "epoch = 20"), "[fixed] epoch", "hidden_units"),
    ("fixed value out of range", edit("epochs = 20", "epochs = 0"), "[fixed] epochs", "[1, 100000]"),
    ("fixed bad choice", edit('optimizer = "adam"', 'optimizer = "adamw"'), "[fixed] optimizer", "rmsprop"),
    ("fixed and searched", edit("epochs = 20", 'epochs = 20\nnorm = "batch"'), "[fixed] norm", "not both"),
    ("unknown hyperparameter", edit("layers = {", "depth = {"), "[space] depth", "learning_rate"),
    (
        "seed searched",
        edit("layers = { int = [1, 4] }", "seed = { int = [1, 4] }"),
        "[space] seed",
        "[fixed]",
    ),
    (
        "unknown distribution",
        edit("lr_decay = { uniform", "lr_decay = { normal"),
        "[space] lr_decay",
        "one_minus_log",
    ),
    ("low >= high", edit("uniform = [0.0, 1.0]", "uniform = [1.0, 0.5]"), "[space] lr_decay", "low < high"),
    (
        "log with low <= 0",
        edit("log = [1e-4, 1e-1]", "log = [0.0, 1e-1]"),
        "[space] learning_rate",
        "0 < low",
    ),
    ("one_minus_log outside (0, 1)", edit("[0.9, 0.999]", "[0.9, 1.0]"), "[space] beta1", "< 1"),
    ("empty choice", edit("[32, 64, 128, 256]", "[]"), "[space] batch_size", "non-empty"),
    (
        "choice value not allowed",
        edit('"weight", "none"', '"weight", "instance"'),
        "[space] norm",
        "switchable",
    ),
    ("bound outside the engine's range", edit("int = [1, 4]", "int = [1, 40]"), "[space] layers", "[1, 16]"),
    (
        "log on a categorical key",
        edit(
            'norm = { choice = ["batch", "layer", "group", "switchable", "weight", "none"] }',
            "norm = { log = [1, 2] }",
        ),
        "[space] norm",
        "choice",
    ),
    ("float distribution on an int key", edit("int = [1, 4]", "uniform = [1, 4]"), "[space] layers", "int"),
    (
        "two distributions",
        edit("{ uniform = [0.0, 1.0] }", "{ uniform = [0.0, 1.0], log = [0.1, 1.0] }"),
        "[space] lr_decay",
        "exactly one",
    ),
    ("not TOML", "[study\nname = 1", "study file", "TOML"),
    ("negative split_seed", edit("seed = 0", "seed = 0\nsplit_seed = -1"), "[study] split_seed", "integer"),
]


@pytest.mark.parametrize("case, text, field, allowed", BAD, ids=[c[0] for c in BAD])
def test_bad_input_names_the_field(case, text, field, allowed):
    with pytest.raises(BadInput) as info:
        load_study(text)
    assert info.value.field == field
    assert allowed in info.value.allowed


def test_every_bad_case_exits_2_through_the_installed_cli(tmp_path):
    # One process per case: the installed console script, as a user runs it.
    for case, text, field, allowed in BAD:
        path = tmp_path / "study.toml"
        path.write_text(text)
        proc = subprocess.run([CAVIAR, "validate", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and field in lines[0] and allowed in lines[0], (case, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_file_exits_2(tmp_path):
    proc = subprocess.run([CAVIAR, "validate", str(tmp_path / "nope.toml")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "FILE" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_prints_a_summary(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    proc = subprocess.run([CAVIAR, "validate", str(path), "--format", "json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["budget"] == 48 and info["strategy"] == "coarse-to-fine"
    assert info["space"]["learning_rate"]["region"] == [1e-4, 1e-1]
    assert info["fixed"] == {"epochs": 20, "optimizer": "adam"}
    table = subprocess.run([CAVIAR, "validate", str(path)], capture_output=True, text=True)
    assert table.returncode == 0 and "one_minus_log" in table.stdout and "48 trials" in table.stdout


def test_spec_fields_defaults_and_round_trip():
    spec = load_study(GOOD)
    assert (spec.name, spec.dataset, spec.objective, spec.seed, spec.val_fraction) == (
        "digits-c2f",
        "digits",
        "val_loss",
        0,
        0.2,
    )
    assert spec.options["patience"] is None and spec.options["narrow"] == "all"
    assert spec.space.names[:2] == ["learning_rate", "beta1"]
    assert spec.raw["space"]["layers"] == {"int": [1, 4]}
    again = parse_study(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_split_seed_fixes_the_validation_rows_while_the_seed_varies():
    from service.execute import trial_dataset

    plain = load_study(GOOD)
    assert plain.split_seed is None and plain.data_seed == 0 and "split_seed" not in plain.to_dict()["study"]
    a = load_study(GOOD.replace("seed = 0", "seed = 5\nsplit_seed = 3", 1))
    b = load_study(GOOD.replace("seed = 0", "seed = 6\nsplit_seed = 3", 1))
    assert a.data_seed == b.data_seed == 3 and parse_study(json.loads(json.dumps(a.to_dict()))) == a
    da, db = trial_dataset(a, "float32"), trial_dataset(b, "float32")
    other = trial_dataset(load_study(GOOD.replace("seed = 0", "seed = 5", 1)), "float32")
    assert np.array_equal(da.X_val, db.X_val) and not np.array_equal(da.X_val, other.X_val)


def test_validate_summary_shows_the_options_the_run_uses():
    from service.commands.validate import summary

    spec = load_study(edit("keep_top = 4\nmargin = 0.25", "margin = 0.5"))
    info = summary(spec)
    # keep_top and patience, not in the file, show their defaults
    assert info["options"] == spec.options == dataclasses.asdict(spec.strategy_obj.options)
    assert info["options"] == {
        "rounds": 3,
        "trials_per_round": 16,
        "keep_top": 4,
        "margin": 0.5,
        "patience": None,
        "narrow": "all",
        "sampler": "random",
        "version": 2,
        "startup": None,
        "top": 0.2,
    }
    assert (info["objective"], info["direction"], info["budget"]) == ("val_loss", "minimize", 48)
    assert type(info["objective"]) is str
    assert summary(load_study(edit('"val_loss"', '"val_accuracy"')))["direction"] == "maximize"
    grid = load_study(
        edit('strategy = "coarse-to-fine"', 'strategy = "grid"').replace(
            "rounds = 3\ntrials_per_round = 16\nkeep_top = 4\nmargin = 0.25", ""
        )
    )
    assert summary(grid)["options"] == {"points_per_dim": 3}


def test_grid_budget_enumerates_choices():
    text = edit('strategy = "coarse-to-fine"', 'strategy = "grid"').replace(
        "rounds = 3\ntrials_per_round = 16\nkeep_top = 4\nmargin = 0.25", "points_per_dim = 2"
    )
    spec = load_study(text)
    assert spec.budget == 2**5 * 4 * 6


def test_relative_data_path_is_taken_from_the_study_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.toml"
    path.write_text(edit('dataset = "digits"', 'data = "table.csv"\ntarget = "label"'))
    spec = load_study_file(path)
    assert spec.data == str((tmp_path / "sub" / "table.csv").resolve())
    assert spec.raw["study"]["data"] == "table.csv"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_examples_validate(path):
    spec = load_study_file(path)
    assert spec.budget >= 1
