"""``service.api``: the Python query API over a real study (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from core.errors import BadInput
from core.search import load_study
from service import api
from service.execute import execute_trial
from service.orchestrate import submit
from service.store import open_store

STUDY = """
[study]
name = "api-test"
dataset = "iris"
objective = "val_accuracy"
strategy = "random"
seed = 5

[strategy]
trials = 4

[fixed]
epochs = 2
batch_size = 16
hidden_units = 8
layers = 1

[space]
learning_rate = { log = [1e-3, 1e-1] }
"""


@pytest.fixture
def finished_study(any_db_url: str) -> tuple[str, str]:
    url = any_db_url
    store = open_store(url)
    study_id, queue = submit(store, load_study(STUDY))
    while queue:
        queue += execute_trial(store, queue.pop(0), worker="test")
    store.dispose()
    return url, study_id


def test_api_records(finished_study: tuple[str, str]) -> None:
    url, sid = finished_study
    [summary] = api.studies(db=url)
    assert summary["id"] == sid and summary["state"] == "complete" and summary["counts"]["complete"] == 4
    rows = api.trials(sid, db=url)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert all(set(r["params"]) == {"learning_rate"} for r in rows)
    best = api.best(sid, db=url)
    # The objective is val_accuracy: the best has the highest.
    assert best["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert api.trials(sid, db=url, status="failed") == []
    assert len(api.trials(sid, db=url, round=0)) == 4
    curves = api.curves([best["id"]], db=url)
    assert [e["epoch"] for e in curves[best["id"]]] == sorted(e["epoch"] for e in curves[best["id"]])
    assert len(curves[best["id"]]) == best["epochs_run"]


def test_trials_frame(finished_study: tuple[str, str]) -> None:
    url, sid = finished_study
    frame = api.trials_frame(sid, db=url)
    assert len(frame) == 4 and "param.learning_rate" in frame.columns
    assert frame["val_loss"].notna().all()


def test_unknown_study(finished_study: tuple[str, str]) -> None:
    url, sid = finished_study
    with pytest.raises(BadInput, match=sid):
        api.trials("missing", db=url)
