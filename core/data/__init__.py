"""Datasets for training: named ones bundled with our dependencies, and the user's CSV or NPZ files.

>>> from core.data import load_dataset
>>> data = load_dataset("iris", seed=0)
>>> data.X_train.shape, data.X_val.shape, data.n_classes
((120, 4), (30, 4), 3)
"""

from __future__ import annotations

from core.data.dataset import Dataset, load_dataset
from core.data.files import DEFAULT_TARGET, encode_labels, load_file, read_csv, read_npz
from core.data.named import DATASETS, RawData, load_named
from core.data.split import check_val_fraction, fit_standardizer, stratified_split

__all__ = [
    "DATASETS",
    "DEFAULT_TARGET",
    "Dataset",
    "RawData",
    "check_val_fraction",
    "encode_labels",
    "fit_standardizer",
    "load_dataset",
    "load_file",
    "load_named",
    "read_csv",
    "read_npz",
    "stratified_split",
]
