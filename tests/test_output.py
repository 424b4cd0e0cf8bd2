"""Tests of service.output: the shared table/json/csv rendering of read commands."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from core.errors import BadInput
from service.output import check_format, dumps, format_value, render, to_csv

ROWS = [
    {"id": 1, "loss": float("nan"), "acc": np.float32(0.5), "params": {"lr": 0.1}, "note": None},
    {"id": 2, "loss": 0.25, "acc": 0.975, "params": {"lr": float("inf")}, "note": "ok"},
]


def test_json_is_strict_with_nan_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    render(ROWS, ["id", "loss"], "json")
    text = capsys.readouterr().out
    rows = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert rows[0]["loss"] is None and rows[1]["params"] == {"lr": None}
    assert rows[0]["acc"] == 0.5 and rows[0]["params"] == {"lr": 0.1}  # every key, not only the columns
    assert dumps({"a": np.arange(3), "b": np.int64(4)}) == '{"a": [0, 1, 2], "b": 4}'


def test_csv_has_a_header_and_the_chosen_columns(capsys: pytest.CaptureFixture[str]) -> None:
    render(ROWS, ["id", ("acc", "accuracy"), "params", "note"], "csv")
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["id", "acc", "params", "note"]
    assert rows[1] == ["1", "0.5", '{"lr": 0.1}', ""]
    assert json.loads(rows[2][2]) == {"lr": None}
    assert to_csv([{"x": float("nan")}]).splitlines()[1] == "nan"


def test_table_shows_headers_and_compact_values(capsys: pytest.CaptureFixture[str]) -> None:
    render(ROWS, ["id", ("acc", "accuracy"), "note"], "table", title="trials")
    out = capsys.readouterr().out
    assert "trials" in out and "accuracy" in out and "0.975" in out
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    assert format_value(None) == "-" and format_value(123456.7) == "123,457" and format_value(0.5) == "0.5"


def test_unknown_format_is_bad_input() -> None:
    with pytest.raises(BadInput) as info:
        render(ROWS, None, "yaml")
    assert info.value.field == "--format"
    assert check_format("json", ("table", "json")) == "json"
    with pytest.raises(BadInput):
        check_format("csv", ("table", "json"))
