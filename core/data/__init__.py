"""Datasets for training: named ones bundled with our dependencies, and the user's CSV or NPZ files.

>>> from core.data import describe_dataset, load_dataset
>>> data = load_dataset("iris", seed=0)
>>> data.X_train.shape, data.X_val.shape, data.n_classes
((120, 4), (30, 4), 3)
>>> describe_dataset("iris")
DataShape(rows_train=120, rows_val=30, features=4, classes=3)
"""

from __future__ import annotations

from core.data.dataset import Dataset, describe_dataset, load_dataset
from core.data.files import (
    DEFAULT_TARGET,
    check_data_path,
    encode_labels,
    fingerprint,
    load_file,
    read_csv,
    read_features,
    read_npz,
)
from core.data.named import DATASETS, RawData, load_named
from core.data.shape import DataShape
from core.data.split import check_val_fraction, fit_standardizer, split_sizes, stratified_split

__all__ = [
    "DATASETS",
    "DEFAULT_TARGET",
    "DataShape",
    "Dataset",
    "RawData",
    "check_data_path",
    "check_val_fraction",
    "describe_dataset",
    "encode_labels",
    "fingerprint",
    "fit_standardizer",
    "load_dataset",
    "load_file",
    "load_named",
    "read_csv",
    "read_features",
    "read_npz",
    "split_sizes",
    "stratified_split",
]
