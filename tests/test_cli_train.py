"""`caviar train` through the installed console script: results, saved files and bad input."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.data import load_named

_BIN = Path(sys.executable).parent / "caviar"
CAVIAR = str(_BIN) if _BIN.exists() else shutil.which("caviar")

#: Few epochs and a small net keep each training run to a second or two (after the compile cache is warm).
FAST = ["--set", "epochs=3", "--set", "hidden_units=32"]


def caviar(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert CAVIAR, "the caviar console script is not installed (pip install -e .)"
    return subprocess.run([CAVIAR, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def _iris_csv(path: Path) -> Path:
    raw = load_named("iris")
    lines = ["species,sepal_l,sepal_w,petal_l,petal_w"]
    lines += [f"{raw.classes[c]},{','.join(str(v) for v in x)}" for x, c in zip(raw.X, raw.y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- bad input: exit 2, one line naming the field and the value, no traceback ------------------


def _bad_input_cases(tmp: Path) -> list[tuple[list[str], list[str]]]:
    bad_csv = tmp / "bad.csv"
    bad_csv.write_text("a,b,label\n1,2,x\n3,4,y\n5,six,x\n")
    no_label = tmp / "nolabel.csv"
    no_label.write_text("a,b,cls\n1,2,x\n3,4,y\n")
    # (arguments, strings the one-line message must contain)
    return [
        (["--dataset", "iris", "--set", "lr=0.1"], ["lr", "learning_rate"]),  # unknown key
        (["--dataset", "iris", "--set", "epochs=many"], ["epochs", "many", "integer"]),  # wrong type
        (["--dataset", "iris", "--set", "layers=2.5"], ["layers", "2.5"]),  # wrong type
        (["--dataset", "iris", "--set", "learning_rate=0"], ["learning_rate", "0", "(0"]),
        (["--dataset", "iris", "--set", "learning_rate=-0.1"], ["learning_rate", "-0.1"]),
        (["--dataset", "iris", "--set", "batch_size=0"], ["batch_size", "0"]),
        (["--dataset", "iris", "--set", "batch_size=121"], ["batch_size", "121", "120"]),  # > training set
        (["--dataset", "iris", "--set", "norm=group", "--set", "groups=5"], ["groups", "5", "hidden_units"]),
        (["--dataset", "iris", "--set", "norm=instance"], ["norm", "instance", "batch"]),
        (["--dataset", "iris", "--set", "learning_rate"], ["--set", "KEY=VALUE"]),  # no '='
        (["--dataset", "cifar10"], ["dataset", "cifar10", "digits"]),
        (["--data", str(tmp / "missing.csv")], ["data", "missing.csv"]),
        (["--data", str(bad_csv)], ["bad.csv", "row 3", "column 2", "not a number"]),  # malformed; no content
        (["--data", str(no_label)], ["target", "label", "3 columns"]),  # absent label column
        (["--data", str(no_label), "--target", "species"], ["target", "species"]),
        (["--dataset", "iris", "--format", "xml"], ["--format", "xml"]),
        (["--dataset", "iris", "--target", "y"], ["--target"]),
        (["--dataset", "iris", "--val-fraction", "1.5"], ["val_fraction", "1.5"]),
        (["--dataset", "iris", "--save", str(tmp / "no" / "such" / "dir.npz")], ["--save"]),
        ([], ["--dataset", "--data"]),  # neither
        (["--dataset", "iris", "--data", str(bad_csv)], ["--dataset", "--data"]),  # both
    ]


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    for args, needles in _bad_input_cases(tmp_path):
        proc = caviar("train", *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stdout == "", (args, proc.stdout)
        for needle in needles:
            assert needle in lines[0], (args, needle, lines[0])


# ---- real runs ---------------------------------------------------------------------------------


def test_digits_json_is_one_object_with_the_result() -> None:
    proc = caviar("train", "--dataset", "digits", "--set", "epochs=3", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # exactly one JSON value, no progress bar in the way
    for key in ("status", "val_loss", "val_accuracy", "train_loss", "epochs_run", "seconds",
                "samples_per_second", "history", "dataset", "config"):
        assert key in report
    assert report["status"] == "complete"
    assert report["epochs_run"] == 3 and len(report["history"]) == 3
    assert report["config"]["epochs"] == 3 and report["config"]["optimizer"] == "adam"
    assert report["dataset"] == {
        "name": "digits", "n_train": 1438, "n_val": 359, "n_features": 64, "n_classes": 10,
        "classes": list(range(10)),
    }
    assert 0.5 < report["val_accuracy"] <= 1.0  # three epochs of Adam already learn digits
    assert report["samples_per_second"] > 0
    for entry in report["history"]:
        assert {"epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"} <= set(entry)


def test_same_seed_same_result() -> None:
    args = ("train", "--dataset", "wine", *FAST, "--set", "seed=7", "--format", "json")
    first, second = json.loads(caviar(*args).stdout), json.loads(caviar(*args).stdout)
    assert [e["val_loss"] for e in first["history"]] == [e["val_loss"] for e in second["history"]]


def test_table_output_without_a_terminal_has_no_bar_or_escapes() -> None:
    proc = caviar("train", "--dataset", "iris", *FAST, "--set", "batch_size=16")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out and "3/3" not in out  # no colours, no "epochs done/total" bar
    assert "complete" in out and "val_accuracy" in out and "per epoch" in out
    assert "iris: 120 training / 30 validation rows, 4 features, 3 classes" in out


def test_progress_bar_is_drawn_on_a_terminal() -> None:
    # Given stdout on a pseudo-terminal, when training runs, the per-epoch bar is drawn there
    parent, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        [CAVIAR, "train", "--dataset", "iris", *FAST], stdout=child, stderr=subprocess.PIPE, env=env
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    assert proc.wait(timeout=300) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "3/3" in screen  # the bar's "epochs done/total"
    assert "complete" in screen


def test_diverged_run_is_a_result_with_exit_0() -> None:
    # A huge plain-SGD step on an unnormalized deep net overflows within a few epochs (seeded, so always)
    args = ["--dataset", "iris", "--set", "learning_rate=10", "--set", "optimizer=sgd", "--set", "norm=none",
            "--set", "layers=3", "--set", "epochs=5"]
    proc = caviar("train", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "diverged"
    assert report["val_loss"] is None and report["val_accuracy"] is None
    assert report["epochs_run"] == len(report["history"]) < 5
    table = caviar("train", *args)
    assert table.returncode == 0 and "diverged" in table.stdout and "NaN or infinite" in table.stdout


def test_csv_round_trip_and_save(tmp_path: Path) -> None:
    csv = _iris_csv(tmp_path / "iris.csv")
    model = tmp_path / "model.npz"
    proc = caviar("train", "--data", str(csv), "--target", "species", *FAST, "--format", "json",
                  "--save", str(model))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["dataset"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert report["dataset"]["n_train"] == 120 and report["dataset"]["n_features"] == 4
    assert report["saved"]["path"] == str(model)
    with np.load(model, allow_pickle=False) as arrays:
        names = set(arrays.files)
        assert {"input_mean", "input_scale", "classes"} <= names
        assert arrays["classes"].tolist() == ["setosa", "versicolor", "virginica"]
        assert arrays["input_mean"].shape == arrays["input_scale"].shape == (4,)
        assert set(report["saved"]["arrays"]) == names
        # the network's own arrays (names documented in core.nn.model): 4 -> 32 -> 32 -> 3 with batch norm
        assert [arrays[f"W{i}"].shape for i in range(3)] == [(4, 32), (32, 32), (32, 3)]
        assert {"gamma0", "beta0", "running_mean0", "running_var0", "b2", "meta"} <= names
        assert json.loads(arrays["meta"].item())["classes"] == ["setosa", "versicolor", "virginica"]


def test_npz_round_trip(tmp_path: Path) -> None:
    raw = load_named("wine")
    data = tmp_path / "wine.npz"
    np.savez(data, X=raw.X, y=np.array(raw.classes)[raw.y])
    proc = caviar("train", "--data", str(data), *FAST, "--format", "json", "--split-seed", "3")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["dataset"]["classes"] == ["class_0", "class_1", "class_2"]
    assert report["dataset"]["n_features"] == 13
    assert report["dataset"]["n_train"] + report["dataset"]["n_val"] == 178
