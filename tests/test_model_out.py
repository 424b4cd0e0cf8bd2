"""The model out of a study: ``Model.save``/``load``, ``caviar best --save`` (retrained and checked bit for
bit against the stored val_loss, or resumed from a checkpoint), ``caviar predict`` on the study's own data,
a panda session's model, and bad input.

Every figure is compared exactly: a saved model's accuracy and cross-entropy on its validation rows are the
ones the study stored, with ``==``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from worker_procs import CAVIAR, trial_rows

from core import hparams
from core.data import load_dataset, load_named, stratified_split
from core.errors import BadInput
from core.nn import Model, train

pytestmark = pytest.mark.timeout(300)

NORMS = ("none", "batch", "layer", "group", "switchable", "weight")

STUDY = """
[study]
name = "iris-out"
data = "iris.csv"
target = "species"
objective = "val_loss"
strategy = "random"
seed = 5

[strategy]
trials = 4

[fixed]
epochs = 12
layers = 1
batch_size = 16

[space]
learning_rate = { log = [1e-3, 1e-1] }
norm = { choice = ["batch", "layer", "none", "weight"] }
"""


#: The same study on the named dataset.
NAMED = STUDY.replace('data = "iris.csv"\ntarget = "species"', 'dataset = "iris"')


def cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAVIAR_BROKER_URL", "CAVIAR_DATABASE_URL")}
    return subprocess.run([*CAVIAR, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(*args: str, cwd: Path) -> str:
    done = cli(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def write_iris_csv(path: Path, target: str = "species", rows: slice = slice(None)) -> None:
    """Iris as a CSV file with its class names as labels (the label column in the middle)."""
    raw = load_named("iris")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sepal_length", "sepal_width", target, "petal_length", "petal_width"])
        for x, y in list(zip(raw.X, raw.y, strict=True))[rows]:
            cells = [repr(float(v)) for v in x]
            w.writerow([*cells[:2], raw.classes[int(y)], *cells[2:]])


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


# --- the file format (core) ---------------------------------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
def test_save_load_gives_the_same_model_and_its_validation_loss_from_raw_rows(tmp_path, norm):
    dtype = "float64" if norm == "weight" else "float32"
    config = hparams.resolve({"norm": norm, "epochs": 4, "layers": 2, "hidden_units": 8, "groups": 2,
                              "dtype": dtype})
    iris = load_dataset("iris", seed=0, dtype=dtype)
    result = train(config, iris)
    path = tmp_path / "m.npz"
    result.model.save(path)
    back = Model.load(path)
    assert np.array_equal(back.params, result.model.params) and back.params.dtype == result.model.params.dtype
    assert np.array_equal(back.running, result.model.running)
    assert back.classes == ["setosa", "versicolor", "virginica"] and back.config == result.model.config
    # raw features: the file carries the scaling, so the raw validation rows give the training's figures
    raw = load_named("iris")
    _train_idx, val_idx = stratified_split(raw.y, 0.2, 0)
    loss, accuracy = back.evaluate(raw.X[val_idx], raw.y[val_idx])
    assert (loss, accuracy) == (result.val_loss, result.val_accuracy)
    proba = back.predict_proba(raw.X[val_idx])
    assert np.array_equal(proba, result.model.predict_proba(raw.X[val_idx]))
    assert back.predict(raw.X[val_idx]) == [back.classes[i] for i in proba.argmax(axis=1)]
    assert np.array_equal(back.standardize(raw.X[val_idx]), iris.X_val.astype(back.dtype))


def test_load_refuses_what_is_not_a_model_and_never_unpickles(tmp_path, iris):
    model = train(hparams.resolve({"epochs": 1, "hidden_units": 4, "layers": 1}), iris).model
    good = model.to_arrays()
    cases: dict[str, Any] = {
        "missing.npz": None,
        "text.npz": b"not a zip",
        "nometa.npz": {k: v for k, v in good.items() if k != "meta"},
        "format.npz": {**good, "meta": np.array(json.dumps({"format": "other", "config": {}}))},
        "short.npz": {k: v for k, v in good.items() if k != "W1"},
        "shape.npz": {**good, "W0": good["W0"][:2]},
        "pickled.npz": {**good, "classes": np.array([object(), "x"], dtype=object)},
    }
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, dict):
            with open(path, "wb") as f:
                np.savez(f, **content)
        with pytest.raises(BadInput) as caught:
            Model.load(path)
        assert str(path) in str(caught.value), name
    with pytest.raises(BadInput, match="a directory"):
        Model.load(tmp_path)
    with pytest.raises(BadInput, match="3 columns|4 columns"):
        model.predict_proba(np.zeros((2, 3)))


# --- caviar best --save, caviar predict ---------------------------------------------------------------

@pytest.fixture
def finished(tmp_path: Path, any_db_url: str) -> tuple[Path, str, str, list[dict[str, Any]]]:
    """A finished study on a CSV file (on SQLite and on PostgreSQL), and its trials."""
    write_iris_csv(tmp_path / "iris.csv")
    (tmp_path / "s.toml").write_text(STUDY)
    done = json.loads(ok("run", "s.toml", "-w", "2", "--db", any_db_url, "--format", "json", cwd=tmp_path))
    return tmp_path, any_db_url, done["id"], trial_rows(any_db_url, done["id"])


def test_best_save_then_predict_reports_the_stored_figures(finished):
    cwd, db, sid, rows = finished
    best = json.loads(ok("best", sid, "--save", "m.npz", "--db", db, "--format", "json", cwd=cwd))
    stored = min((r for r in rows if r["status"] == "complete"), key=lambda r: r["val_loss"])
    assert best["id"] == stored["id"]
    saved = best["saved"]
    assert saved["val_loss"] == stored["val_loss"] and saved["resumed_from"] == 0 and saved["epochs"] == 12
    assert saved["source"]["trial"] == stored["id"] and saved["source"]["data"]["target"] == "species"

    # the study's own data, its validation rows: the stored accuracy and loss, exactly
    out = json.loads(ok("predict", "m.npz", "--data", "iris.csv", "--rows", "val", "--format", "json",
                        cwd=cwd))
    assert out["summary"] == {
        "rows": 30, "accuracy": stored["val_accuracy"], "cross_entropy": stored["val_loss"]}
    assert out["classes"] == ["setosa", "versicolor", "virginica"] and out["rows"] == 30
    first = out["predictions"][0]
    assert first["label"] in out["classes"] and first["target"] in out["classes"]
    assert sum(first["probabilities"]) == pytest.approx(1, abs=1e-5)
    val_rows = [p["row"] for p in out["predictions"]]
    lines = (cwd / "iris.csv").read_text().splitlines()
    labels = [r[2] for r in csv.reader(lines)][1:]
    assert [labels[i - 1] for i in val_rows] == [p["target"] for p in out["predictions"]]
    accuracy = np.mean([p["label"] == p["target"] for p in out["predictions"]])
    assert accuracy == stored["val_accuracy"]

    # the ONNX file of the same model gives the same probabilities from the same raw rows
    import onnxruntime

    ok("export-model", "m.npz", "-o", "m.onnx", cwd=cwd)
    features = np.array([[float(v) for v in r[:2] + r[3:]] for r in csv.reader(lines[1:])], dtype=np.float32)
    session = onnxruntime.InferenceSession(str(cwd / "m.onnx"), providers=["CPUExecutionProvider"])
    onnx_proba = session.run(["probabilities"], {"features": features[np.array(val_rows) - 1]})[0]
    ours = [p["probabilities"] for p in out["predictions"]]
    np.testing.assert_allclose(onnx_proba, ours, rtol=0, atol=1e-5)

    # CSV: one row per input row, the summary on stderr; -o writes a file and says so
    done = cli("predict", "m.npz", "--data", "iris.csv", cwd=cwd)
    table = list(csv.DictReader(done.stdout.splitlines()))
    assert done.returncode == 0 and len(table) == 150
    assert list(table[0]) == ["row", "label", "target", "p_setosa", "p_versicolor", "p_virginica"]
    assert "150 rows: accuracy" in done.stderr
    said = ok("predict", "m.npz", "--data", "iris.csv", "--rows", "val", "-o", "p.csv", cwd=cwd)
    assert "wrote 30 predictions to p.csv" in said
    assert len(list(csv.DictReader((cwd / "p.csv").read_text().splitlines()))) == 30

    # without the label column: predictions only
    no_labels = cwd / "features.csv"
    no_labels.write_text("\n".join(",".join(r[:2] + r[3:]) for r in csv.reader(lines)) + "\n")
    done = cli("predict", "m.npz", "--data", "features.csv", "--format", "json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    plain = json.loads(done.stdout)
    assert plain["summary"] is None and "target" not in plain["predictions"][0]
    assert [p["label"] for p in plain["predictions"]] == [p["label"] for p in json.loads(ok(
        "predict", "m.npz", "--data", "iris.csv", "--format", "json", cwd=cwd))["predictions"]]

    # any trial, by id, through caviar trials
    other = next(r for r in rows if r["id"] != stored["id"] and r["status"] == "complete")
    listed = json.loads(ok("trials", sid, "--trial", other["id"], "--save", "o.npz", "--db", db,
                           "--format", "json", cwd=cwd))
    assert [t["id"] for t in listed] == [other["id"]] and listed[0]["saved"]["val_loss"] == other["val_loss"]
    assert Model.load(cwd / "o.npz").source["trial"] == other["id"]


def test_save_refuses_a_result_it_cannot_reproduce(tmp_path: Path):
    from sqlalchemy import create_engine, text

    write_iris_csv(tmp_path / "iris.csv")
    (tmp_path / "s.toml").write_text(STUDY)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    sid = json.loads(ok("run", "s.toml", "-w", "2", "--db", db, "--format", "json", cwd=tmp_path))["id"]
    best = json.loads(ok("best", sid, "--db", db, "--format", "json", cwd=tmp_path))
    # the stored result no longer matches what this machine computes (as if the CPU or a library changed)
    engine = create_engine(db)
    with engine.begin() as c:
        c.execute(text("UPDATE trials SET val_loss = val_loss * (1 + 1e-12) WHERE id = :i"),
                  {"i": best["id"]})
    engine.dispose()
    done = cli("best", sid, "--save", "m.npz", "--db", db, cwd=tmp_path)
    assert done.returncode == 1 and not (tmp_path / "m.npz").exists()
    assert repr(best["val_loss"]) in done.stderr and "the data or the machine" in done.stderr
    assert repr(best["val_loss"] * (1 + 1e-12)) in done.stderr


def test_a_trial_paused_at_a_rung_is_saved_from_its_checkpoint(tmp_path: Path):
    from core.search import load_study
    from service.execute import execute_trial
    from service.orchestrate import submit
    from service.store import checkpoints, open_store, reads

    text = NAMED + (
        '\n[pruning]\nkind = "halving"\nmin_epochs = 3\nreduction = 2\n')
    db = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(db)
    try:
        sid, ids = submit(store, load_study(text))
        execute_trial(store, ids[0], worker="test")  # trains to its first rung and waits for the others
        row = reads.trial(store, ids[0])
        assert row.status == "paused" and checkpoints.latest(store, ids[0])[0] == 3
    finally:
        store.dispose()
    listed = json.loads(ok("trials", sid, "--trial", ids[0], "--save", "r.npz", "--db", db,
                           "--format", "json", cwd=tmp_path))
    saved = listed[0]["saved"]
    assert saved["resumed_from"] == 3 and saved["epochs"] == 3 and saved["val_loss"] == row.val_loss
    # the checkpoint's model is the one retraining gives
    data = load_dataset("iris", seed=5)
    retrained = train({**Model.load(tmp_path / "r.npz").config, "epochs": 3}, data)
    assert np.array_equal(retrained.model.params, Model.load(tmp_path / "r.npz").params)


def test_a_panda_sessions_model_at_its_last_or_any_epoch(tmp_path: Path):
    env = ("--db", f"sqlite:///{tmp_path / 'c.db'}")
    sid = ok("panda", "start", "--dataset", "iris", "--set", "epochs=6", "--set", "hidden_units=16",
             "--set", "batch_size=16", "-q", *env, cwd=tmp_path).strip()
    history = json.loads(ok("panda", "show", sid, "--format", "json", *env, cwd=tmp_path))["history"]
    for epoch, name in ((None, "last.npz"), (3, "e3.npz")):
        args = ("--epoch", str(epoch)) if epoch else ()
        saved = json.loads(ok("best", sid, "--save", name, *args, *env, "--format", "json",
                              cwd=tmp_path))["saved"]
        want = history[(epoch or 6) - 1]
        assert saved["epochs"] == (epoch or 6) and saved["val_loss"] == want["val_loss"]
        out = json.loads(ok("predict", name, "--dataset", "iris", "--rows", "val", "--format", "json",
                            cwd=tmp_path))
        assert out["summary"]["cross_entropy"] == want["val_loss"]
        assert out["summary"]["accuracy"] == want["val_accuracy"]
    done = cli("best", sid, "--save", "x.npz", "--epoch", "7", *env, cwd=tmp_path)
    assert done.returncode == 2 and "--epoch" in done.stderr and not (tmp_path / "x.npz").exists()


# --- bad input ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("model")
    write_iris_csv(cwd / "iris.csv")
    data = load_dataset(path=cwd / "iris.csv", target="species", seed=0)
    model = train(hparams.resolve({"epochs": 2, "hidden_units": 8, "layers": 1}), data).model
    model.source = {"data": {"split_seed": 0, "val_fraction": 0.2, "rows": 150, "target": "species"}}
    model.save(cwd / "m.npz")
    write_iris_csv(cwd / "short.csv", rows=slice(0, 120))
    (cwd / "wide.csv").write_text("a,b,c,d,e,species\n1,2,3,4,5,setosa\n")
    (cwd / "unseen.csv").write_text("a,b,c,d,species\n1,2,3,4,setosa\n1,2,3,4,daisy\n")
    (cwd / "nolabel.csv").write_text("a,b,c,d\n1,2,3,4\n")
    return cwd


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("predict", "nothere.npz", "--data", "iris.csv"), "model"),
        (("predict", "iris.csv", "--data", "iris.csv"), "model"),
        (("predict", "m.npz", "--data", "nothere.csv"), "--data"),
        (("predict", "m.npz"), "--data"),
        (("predict", "m.npz", "--data", "wide.csv"), "--data"),
        (("predict", "m.npz", "--data", "unseen.csv"), "row 2 label"),
        (("predict", "m.npz", "--data", "short.csv", "--rows", "val"), "--rows"),
        (("predict", "m.npz", "--data", "nolabel.csv", "--rows", "val"), "--rows"),
        (("predict", "m.npz", "--data", "iris.csv", "--rows", "test"), "--rows"),
        (("predict", "m.npz", "--data", "iris.csv", "--format", "xml"), "--format"),
        (("predict", "m.npz", "--data", "iris.csv", "-o", "no/such/dir/p.csv"), "--output"),
    ],
)
def test_predict_bad_input_exits_2_with_the_field_and_writes_nothing(saved_model: Path, args, field):
    before = sorted(p.name for p in saved_model.iterdir())
    done = cli(*args, cwd=saved_model)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert field in done.stderr and done.stdout == ""
    assert "daisy" not in done.stderr  # file content is not repeated
    assert sorted(p.name for p in saved_model.iterdir()) == before


def test_save_bad_input_exits_2_and_writes_nothing(tmp_path: Path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    (tmp_path / "s.toml").write_text(NAMED)
    sid = json.loads(ok("run", "s.toml", "-w", "1", "--db", db, "--format", "json", cwd=tmp_path))["id"]
    for args, field in [
        (("trials", sid, "--save", "m.npz"), "--save"),  # four trials listed, not one
        (("trials", sid, "--trial", "nope", "--save", "m.npz"), "--trial"),
        (("best", sid, "--save", "m.npz", "--epoch", "2"), "--epoch"),
        (("best", sid, "--epoch", "2"), "--epoch"),
        (("best", sid, "--save", "no/dir/m.npz"), "--save"),
        (("best", sid, "--save", "."), "--save"),
    ]:
        done = cli(*args, "--db", db, cwd=tmp_path)
        assert done.returncode == 2 and field in done.stderr, (args, done.stderr)
    assert not list(tmp_path.glob("*.npz"))
