"""ONNX export (:mod:`core.nn.onnx_export`, ``caviar export-model``): onnxruntime against caviar's inference.

Every norm kind, several activations and both dtypes: a small network is trained for a few epochs,
exported, run by onnxruntime on RAW features and compared with :meth:`Model.predict_proba` (the
oracle, itself tested against PyTorch in ``test_nn_network.py``). Each model is compared once as
trained and once with its norm parameters and statistics randomized, so that a mixed-up γ, β,
running statistic or switchable weight cannot hide behind values still near their initialisation.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from worker_procs import CAVIAR

from core import hparams
from core.data import load_dataset, load_named
from core.errors import BadInput
from core.nn import Model, predict_proba, train
from core.nn.onnx_export import MIN_OPSET, describe_onnx, to_onnx

ATOL = 1e-5

#: (id, dataset, overrides): every norm kind, every activation, both dtypes, 1 and 2 hidden layers.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("none-relu-f32", "iris", {"norm": "none", "activation": "relu", "layers": 1}),
    ("none-sigmoid-f64", "digits", {"norm": "none", "activation": "sigmoid", "dtype": "float64"}),
    ("batch-relu-f32", "digits", {"norm": "batch", "activation": "relu"}),
    ("batch-tanh-f64-population", "iris",
     {"norm": "batch", "activation": "tanh", "dtype": "float64", "bn_inference": "population"}),
    ("layer-tanh-f32", "digits", {"norm": "layer", "activation": "tanh"}),
    ("layer-relu-f64", "iris", {"norm": "layer", "activation": "relu", "dtype": "float64"}),
    ("group-relu-f32", "digits", {"norm": "group", "activation": "relu", "groups": 4}),
    ("group-sigmoid-f64", "iris",
     {"norm": "group", "activation": "sigmoid", "groups": 2, "layers": 1, "dtype": "float64"}),
    ("switchable-relu-f32", "digits", {"norm": "switchable", "activation": "relu"}),
    ("switchable-tanh-f64", "iris", {"norm": "switchable", "activation": "tanh", "dtype": "float64"}),
    ("weight-relu-f32", "digits", {"norm": "weight", "activation": "relu"}),
    ("weight-sigmoid-f64", "iris", {"norm": "weight", "activation": "sigmoid", "dtype": "float64"}),
]

_models: dict[str, Model] = {}


def _model(case_id: str) -> Model:
    """The trained model of one case (trained once per test session)."""
    if case_id not in _models:
        _, name, overrides = next(c for c in CASES if c[0] == case_id)
        config = hparams.resolve({"epochs": 4, "hidden_units": 16, "layers": 2, "batch_size": 32,
                                  "learning_rate": 0.01, **overrides})
        result = train(config, load_dataset(name, seed=0, dtype=config["dtype"]))
        assert result.status == "complete" and result.model is not None
        _models[case_id] = result.model
    return _models[case_id]


def _raw(model: Model) -> np.ndarray:
    """Every row of the model's dataset as RAW (unstandardized) features, float64."""
    name = "iris" if model.layout.n_features == 4 else "digits"
    return np.asarray(load_named(name).X, dtype=np.float64)


def _perturbed(model: Model, seed: int = 1) -> Model:
    """A copy with γ, β, switchable λ, weight-norm g and the inference statistics randomized."""
    rng = np.random.default_rng(seed)
    params, running = model.params.copy(), model.running.copy()
    lay = model.layout
    for layer in range(lay.layers):
        for slot, draw in (("gamma", lambda n: rng.uniform(0.5, 1.5, n)),
                           ("beta", lambda n: rng.normal(0, 0.5, n)),
                           ("g", lambda n: rng.uniform(0.5, 2.0, n)),
                           ("lambda_mean", lambda n: rng.normal(0, 1.5, n)),
                           ("lambda_var", lambda n: rng.normal(0, 1.5, n))):
            block = lay.block(params, layer, slot)
            if block is not None:
                block[...] = draw(block.shape)
    running[0] += rng.normal(0, 0.5, running[0].shape).astype(running.dtype)
    running[1] *= rng.uniform(0.5, 2.0, running[1].shape).astype(running.dtype)
    return dataclasses.replace(model, params=params, running=running)


def _session(data: bytes | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings on stderr
    options.intra_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _run(data: bytes | str, X: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    proba, labels = _session(data).run(["probabilities", "label_index"], {"features": X.astype(dtype)})
    return proba, labels


def _check_matches(model: Model, data: bytes, X_raw: np.ndarray) -> float:
    """Assert onnxruntime on raw X matches caviar's probabilities and argmax; return the max difference."""
    expected = model.predict_proba(X_raw)
    proba, labels = _run(data, X_raw, model.dtype)
    assert proba.dtype == model.dtype and proba.shape == expected.shape
    assert labels.dtype == np.int64 and labels.shape == (X_raw.shape[0],)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    return float(np.abs(proba - expected).max())


def _ops(data: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(data).graph.node}


# ---- every norm kind, activation and dtype --------------------------------------------------------


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_onnxruntime_matches_caviar(case_id: str) -> None:
    model = _model(case_id)
    X = _raw(model)
    assert model.input_mean is not None  # trained models standardize: the graph must too
    for variant in (model, _perturbed(model)):
        data = to_onnx(variant)
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
        _check_matches(variant, data, X)
        # a single row and an empty batch: nothing in the graph depends on the batch size
        _check_matches(variant, data, X[:1])
        proba, labels = _run(data, X[:0], model.dtype)
        assert proba.shape == (0, model.layout.n_classes) and labels.shape == (0,)


def test_perturbation_changes_the_prediction() -> None:
    """The randomized copies really differ, so their comparison checks the norm's parameters."""
    for case_id in ("batch-relu-f32", "switchable-relu-f32", "group-relu-f32", "layer-tanh-f32"):
        model = _model(case_id)
        X = _raw(model)
        assert np.abs(model.predict_proba(X) - _perturbed(model).predict_proba(X)).max() > 1e-2, case_id


@pytest.mark.parametrize("opset", [MIN_OPSET, 18, 21])
def test_older_and_newer_opsets(opset: int) -> None:
    # ReduceMean takes its axes as an attribute before opset 18 and as an input from 18 on
    for case_id in ("layer-tanh-f32", "group-relu-f32", "switchable-tanh-f64"):
        model = _perturbed(_model(case_id))
        data = to_onnx(model, opset=opset)
        assert describe_onnx(data)["opset"] == opset
        _check_matches(model, data, _raw(model))


def test_graph_layout_per_norm() -> None:
    """Batch norm is folded into the Gemm (no BatchNormalization, no statistics); other norms compute them."""
    batch = to_onnx(_model("batch-relu-f32"))
    assert _ops(batch) == {"Sub", "Div", "Gemm", "Relu", "Softmax", "ArgMax"}
    gemms = [n for n in onnx.load_from_string(batch).graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 3  # two hidden layers and the output
    for case_id in ("none-relu-f32", "weight-relu-f32"):
        assert "ReduceMean" not in _ops(to_onnx(_model(case_id)))
    for case_id in ("layer-tanh-f32", "group-relu-f32", "switchable-relu-f32"):
        assert "ReduceMean" in _ops(to_onnx(_model(case_id))), case_id
    assert "Reshape" in _ops(to_onnx(_model("group-relu-f32")))
    assert "Sigmoid" in _ops(to_onnx(_model("none-sigmoid-f64")))
    assert "Tanh" in _ops(to_onnx(_model("layer-tanh-f32")))


def test_inputs_outputs_and_metadata() -> None:
    model = _model("switchable-tanh-f64")
    proto = onnx.load_from_string(to_onnx(model))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == list(model.classes) == ["setosa", "versicolor", "virginica"]
    assert json.loads(meta["config"]) == model.config
    assert meta["format"] == "caviar-mlp-1" and meta["input_scaling"] == "standardize"
    assert float(meta["norm_eps"]) == 1e-5
    summary = describe_onnx(proto.SerializeToString())
    assert summary["inputs"] == [{"name": "features", "type": "float64", "shape": ["N", 4]}]
    assert summary["outputs"] == [{"name": "probabilities", "type": "float64", "shape": ["N", 3]},
                                  {"name": "label_index", "type": "int64", "shape": ["N"]}]
    digits = onnx.load_from_string(to_onnx(_model("batch-relu-f32")))
    assert json.loads({p.key: p.value for p in digits.metadata_props}["classes"]) == list(range(10))
    assert digits.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_model_without_input_scaling_takes_its_inputs_as_they_are() -> None:
    model = dataclasses.replace(_model("layer-tanh-f32"), input_mean=None, input_scale=None)
    X = load_dataset("digits", seed=0).X_val  # already standardized
    data = to_onnx(model)
    proba, labels = _run(data, X, model.dtype)
    expected = predict_proba(model, X)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    first = onnx.load_from_string(data).graph.node[0]
    assert first.op_type == "Gemm" and first.input[0] == "features"
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert meta["input_scaling"] == "none"


# ---- refusals ----------------------------------------------------------------------------------------


def test_refuses_what_it_cannot_express() -> None:
    model = _model("none-relu-f32")
    cases = [
        (dataclasses.replace(model, config={**model.config, "activation": "gelu"}), {}, "activation",
         ["gelu", "relu, tanh, sigmoid"]),
        (dataclasses.replace(model, layout=dataclasses.replace(model.layout, norm="instance")), {}, "norm",
         ["instance", "batch", "switchable"]),
        (model, {"opset": MIN_OPSET - 1}, "opset", ["12", "13"]),
        (model, {"opset": 1000}, "opset", ["1000"]),
        (model, {"opset": True}, "opset", []),
        (dataclasses.replace(model, params=np.full_like(model.params, np.nan)), {}, "model", ["diverged"]),
    ]
    for bad, kwargs, field, needles in cases:
        with pytest.raises(BadInput) as info:
            to_onnx(bad, **kwargs)
        assert info.value.field == field, (field, str(info.value))
        for needle in needles:
            assert needle in str(info.value), (needle, str(info.value))


def test_missing_onnx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(BadInput, match=r"pip install 'caviar\[onnx\]'"):
        to_onnx(_model("none-relu-f32"))


# ---- the command line -----------------------------------------------------------------------------------


def _cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = CAVIAR[-1] if not prelude else f"{prelude}; {CAVIAR[-1]}"
    return subprocess.run([*CAVIAR[:-1], code, *args], capture_output=True, text=True, timeout=120)


def test_cli_export_model_end_to_end(tmp_path: Path) -> None:
    trained = _perturbed(_model("switchable-relu-f32"))
    npz, out = tmp_path / "digits.npz", tmp_path / "digits.onnx"
    trained.save(npz)
    proc = _cli("export-model", str(npz), "-o", str(out), "--opset", "18", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size > 0
    assert report["opset"] == 18 and report["norm"] == "switchable" and report["dtype"] == "float32"
    assert [v["name"] for v in report["inputs"]] == ["features"]
    assert [v["name"] for v in report["outputs"]] == ["probabilities", "label_index"]
    assert report["classes"] == list(range(10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.npz", "digits.onnx"]  # no temporary left
    loaded = Model.load(npz)
    _check_matches(loaded, out.read_bytes(), _raw(loaded))
    proba, _ = _run(str(out), _raw(loaded), loaded.dtype)  # the file itself, as a runtime opens it
    np.testing.assert_allclose(proba, trained.predict_proba(_raw(loaded)), rtol=0, atol=ATOL)

    table = _cli("export-model", str(npz), "-o", str(out))
    assert table.returncode == 0, table.stderr
    assert f"wrote {out}" in table.stdout and "label_index" in table.stdout and "int64" in table.stdout


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    npz = tmp_path / "model.npz"
    _model("none-relu-f32").save(npz)
    not_a_model = tmp_path / "notes.npz"
    not_a_model.write_text("not a model\n")
    out = tmp_path / "out.onnx"
    cases: list[tuple[list[str], str, list[str]]] = [
        ([str(not_a_model), "-o", str(out)], "", ["model", "notes.npz", "caviar-mlp-1"]),
        ([str(tmp_path / "missing.npz"), "-o", str(out)], "", ["model", "missing.npz"]),
        ([str(npz), "-o", str(out), "--opset", "7"], "", ["opset", "7"]),
        ([str(npz), "-o", str(tmp_path / "out.txt")], "", ["--output", ".onnx"]),
        ([str(npz), "-o", str(out)], "import sys; sys.modules['onnx'] = None",
         ["onnx", "pip install 'caviar[onnx]'"]),
    ]
    for args, prelude, needles in cases:
        proc = _cli("export-model", *args, prelude=prelude)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.stdout == "", (args, proc.stdout)
        for needle in needles:
            assert needle in lines[0], (args, needle, lines[0])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "notes.npz"], args
