"""Reading a study file from disk (the I/O half; :func:`core.search.load_study` parses the text)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.errors import BadInput
from core.search import StudySpec, load_study

__all__ = ["load_study_file"]


def load_study_file(path: str | Path) -> StudySpec:
    """Read and validate a study file.

    A relative ``data = "..."`` path is taken relative to the study file's folder, so a study and its
    data can travel together; the spec's ``data`` is then the absolute path (``raw`` keeps the text).

    Raises:
        BadInput: the file is missing or unreadable (field ``"FILE"``), or its content is invalid.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("FILE", str(path), "expected an existing study file (.toml)") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise BadInput(
            "FILE", str(path), f"expected a readable UTF-8 study file ({type(exc).__name__})"
        ) from None
    spec = load_study(text)
    if spec.data is not None and not Path(spec.data).is_absolute():
        spec = dataclasses.replace(spec, data=str((p.parent / spec.data).resolve()))
    return spec
