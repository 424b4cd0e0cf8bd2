"""Reading a study file from disk (the I/O half; :func:`core.search.load_study` parses the text), and
checking a study against its data before anything is written (:func:`check_study_data`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import BadInput
from core.search import StudySpec, load_study

if TYPE_CHECKING:
    from core.data import DataShape

__all__ = ["check_study_data", "load_study_file"]

#: Fields of :func:`core.data.describe_dataset`'s errors that a study file sets, by their study-file name.
_STUDY_FIELDS = {"data": "[study] data", "target": "[study] target", "dataset": "[study] dataset"}


def load_study_file(path: str | Path) -> StudySpec:
    """Read and validate a study file.

    A relative ``data = "..."`` path is taken relative to the study file's folder, so a study and its
    data can travel together; the spec's ``data`` is then the absolute path (``raw`` keeps the text).

    Raises:
        BadInput: the file is missing or unreadable (field ``"FILE"``), or its content is invalid.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark some editors write is not TOML
    except FileNotFoundError:
        raise BadInput("FILE", str(path), "expected an existing study file (.toml)") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise BadInput(
            "FILE", str(path), f"expected a readable UTF-8 study file ({type(exc).__name__})"
        ) from None
    spec = load_study(text)
    if spec.data is not None and not Path(spec.data).is_absolute():
        # Absolute but not resolved: a symlink keeps its own name (and extension) for later re-reads.
        spec = dataclasses.replace(spec, data=os.path.abspath(p.parent / spec.data))
    return spec


def check_study_data(spec: StudySpec) -> DataShape:
    """Check a study against its data: readable, with its label column, and able to serve every trial.

    The data's header and sizes are read cheaply (:func:`core.data.describe_dataset`: no features parsed,
    nothing trained or compiled), under ``CAVIAR_DATA_ROOT`` when it is set; then ``[fixed]`` and the
    searched ranges are checked against them and against ``CAVIAR_MAX_TRIAL_MEMORY``
    (:func:`core.search.feasibility.check_feasible`). ``validate``, ``run`` and ``submit`` call it right
    after reading the study file, before any store is opened.

    Returns:
        The data's sizes.

    Raises:
        BadInput: naming the study-file key (``[study] data``, ``[fixed] batch_size``, ``[space] ...``).
    """
    from core.data import describe_dataset
    from core.search.feasibility import check_feasible
    from service.settings import MAX_TRIAL_MEMORY_ENV, data_root, max_trial_memory

    root, limit = data_root(), max_trial_memory()
    try:
        shape = describe_dataset(
            spec.dataset, path=spec.data, target=spec.target, val_fraction=spec.val_fraction, root=root
        )
    except BadInput as exc:
        field = _STUDY_FIELDS.get(exc.field)
        if field is None:
            raise
        raise BadInput(field, exc.value, exc.allowed) from None
    check_feasible(spec, shape, memory_limit=limit, limit_name=MAX_TRIAL_MEMORY_ENV)
    return shape
