"""``caviar dashboard``'s server side, every route through Starlette's TestClient on a real store.

Studies come from the CLI (``caviar run`` on a tiny study file, ``caviar panda start``); state that must
change while a stream is open (a trial claimed, its epochs written) goes through the store's own lease
functions, as a worker writes it. Records are compared with what the CLI prints (``caviar status``,
``caviar trials``, ``caviar importance`` with ``--format json``), and the reproduce command a trial page
shows is run: it gives the stored ``val_loss`` bit for bit. The 100,000-trial study's timings are printed
(``-s``), never asserted.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from worker_procs import CAVIAR

with warnings.catch_warnings():  # Starlette prefers httpx2 and says so when it finds httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from core.search import load_study
from service.dashboard.app import create_app
from service.dashboard.security import CSP
from service.orchestrate import trial_id
from service.store import Store, studies
from service.store.models import Epoch, Round, Trial
from service.store.states import StudyState, TrialStatus

pytestmark = pytest.mark.timeout(300)

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

STUDY = """
[study]
name = "dash"
dataset = "iris"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 3

[strategy]
rounds = 2
trials_per_round = 4
keep_top = 2
startup = 4

[fixed]
epochs = 4
batch_size = 16
layers = 1

[space]
learning_rate = { log = [1e-3, 1e-1] }
hidden_units = { int = [4, 32], log = true }
beta2 = { one_minus_log = [0.9, 0.999] }
bn_momentum = { uniform = [0.05, 0.2] }
norm = { choice = ["batch", "none"] }
"""

#: A study whose trials stay queued (submitted in-process, never run), for streams and cancel.
QUEUED = STUDY.replace('name = "dash"', 'name = "queued"')

PANDA = ("panda", "start", "--dataset", "digits", "--set", "hidden_units=16", "--set", "layers=1",
         "--set", "batch_size=64", "-q")


def cli(*args: str, cwd: Path, db: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAVIAR_BROKER_URL", "CAVIAR_DASHBOARD_TOKEN")}
    env["CAVIAR_DATABASE_URL"] = db
    return subprocess.run([*CAVIAR, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(*args: str, cwd: Path, db: str) -> str:
    done = cli(*args, cwd=cwd, db=db)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def run_study(cwd: Path, db: str) -> str:
    (cwd / "study.toml").write_text(STUDY)
    return json.loads(ok("run", "study.toml", "-q", "--format", "json", cwd=cwd, db=db))["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite store with a finished sweep and a finished 4-epoch panda session, made by the CLI."""
    cwd = tmp_path_factory.mktemp("dash")
    db = f"sqlite:///{cwd / 'caviar.db'}"
    study = run_study(cwd, db)
    session = ok(*PANDA, "--set", "epochs=4", "--name", "babysat", cwd=cwd, db=db).strip()
    return {"cwd": cwd, "db": db, "study": study, "session": session}


@contextmanager
def client(db: str, **kwargs: Any) -> Iterator[TestClient]:
    kwargs.setdefault("poll_seconds", 0.2)
    with TestClient(create_app(db, **kwargs)) as c:
        yield c


def jget(c: TestClient, url: str, status: int = 200) -> Any:
    r = c.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), url
    return r.json()


def submit_queued(db: str) -> tuple[str, list[str]]:
    """A study recorded with its round 0 queued (nothing runs it), as ``caviar submit`` records one."""
    from core.search import load_study
    from service.orchestrate import submit
    from service.store import open_store

    store = open_store(db)
    try:
        return submit(store, load_study(QUEUED), text=QUEUED)
    finally:
        store.dispose()


# --- reads ---------------------------------------------------------------------------------------------


def test_read_routes_give_what_the_cli_prints(tmp_path: Path, any_db_url: str) -> None:
    study = run_study(tmp_path, any_db_url)
    status = json.loads(ok("status", study, "--format", "json", cwd=tmp_path, db=any_db_url))
    by_loss = json.loads(ok("trials", study, "--sort", "val_loss", "--format", "json", cwd=tmp_path,
                            db=any_db_url))
    by_round = json.loads(ok("trials", study, "--format", "json", cwd=tmp_path, db=any_db_url))
    ranked = json.loads(ok("importance", study, "--format", "json", cwd=tmp_path, db=any_db_url))
    with client(any_db_url) as c:
        detail = jget(c, f"/api/studies/{study}")
        added = {"space", "fixed", "budget", "direction"}
        assert {k: v for k, v in detail.items() if k not in added} == status
        assert detail["rounds"][1]["region"] and detail["objective"] == "val_loss"
        assert detail["direction"] == "minimize" and detail["budget"] == 8
        assert [(a["name"], a["kind"]) for a in detail["space"]] == [
            ("learning_rate", "log"), ("hidden_units", "int_log"), ("beta2", "one_minus_log"),
            ("bn_momentum", "float"), ("norm", "choice"),
        ]
        assert detail["space"][0]["low"] == 0.001 and detail["space"][0]["high"] == 0.1
        assert detail["space"][4]["choices"] == ["batch", "none"] and detail["space"][4]["low"] is None

        rows = jget(c, "/api/studies")["studies"]
        assert [r["id"] for r in rows] == [study]
        row = rows[0]
        assert {k: v for k, v in row.items()
                if k not in ("best", "best_trial", "progress", "age_seconds", "updated_at")} == {
            k: v for k, v in status.items() if k != "best"}
        assert row["kind"] == "sweep" and row["progress"] == {"done": 8, "total": 8}
        assert row["best"] == status["best"]["val_loss"] and row["best_trial"] == status["best"]
        assert row["age_seconds"] >= 0 and row["updated_at"] >= status["created_at"]

        page = jget(c, f"/api/studies/{study}/trials?sort=val_loss&limit=50")
        assert page["total"] == 8 and page["trials"] == by_loss
        page = jget(c, f"/api/studies/{study}/trials?sort=round")
        assert page["trials"] == by_round

        assert jget(c, f"/api/studies/{study}/importance") == ranked
        points = jget(c, f"/api/studies/{study}/points")
        assert points["total"] == 8 and not points["sampled"] and points["best"] == status["best"]["id"]
        assert [p["id"] for p in points["points"]] == [t["id"] for t in by_round]
        best = next(p for p in points["points"] if p["id"] == points["best"])
        assert best["value"] == status["best"]["val_loss"] and best["params"] == status["best"]["params"]

        top = jget(c, f"/api/studies/{study}/curves?which=top&k=3")["curves"]
        assert [t["trial"] for t in top] == [t["id"] for t in by_loss[:3]]
        assert [e["epoch"] for e in top[0]["epochs"]] == [1, 2, 3, 4]
        assert top[0]["epochs"][-1]["val_loss"] == by_loss[0]["val_loss"]
        assert jget(c, f"/api/studies/{study}/curves?which=running")["curves"] == []

        trial = jget(c, f"/api/trials/{by_loss[0]['id']}")
        assert {k: trial[k] for k in by_loss[0]} == by_loss[0]
        assert trial["study"] == study and len(trial["curve"]) == 4 and trial["attempts"] == 1
        assert trial["commands"]["reproduce"].startswith("caviar train --dataset iris --split-seed 3 ")
        assert trial["commands"]["save"] == f"caviar trials {study} --trial {trial['id']} --save model.npz"
        assert jget(c, "/api/workers") == {"workers": [], "stale": [], "stale_after": 300.0,
                                           "queue_depth": None, "broker": None, "queue": None}
        assert jget(c, "/healthz") == {"status": "ok", "db": "ok", "control": False}
        parse_metrics(c.get("/metrics").text)


def test_pages_render_the_frontend_templates_with_headers_on_every_response(world: dict[str, Any]) -> None:
    study, session = world["study"], world["session"]
    trial = f"{study}-r0-t0"
    with client(world["db"]) as c:
        for url, page in (("/", "studies"), (f"/studies/{study}", "study"), (f"/trials/{trial}", "trial"),
                          (f"/panda/{session}", "panda"), ("/workers", "workers")):
            r = c.get(url)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), url
            assert f'data-page="{page}"' in r.text and 'data-control="off"' in r.text, url
            assert TOKEN not in r.text
        assert f'data-id="{study}"' in c.get(f"/studies/{study}").text
        r = c.get(f"/studies/{session}", follow_redirects=False)  # a session's page is the panda page
        assert r.status_code == 307 and r.headers["location"] == f"/panda/{session}"
        for url in ("/studies/nope", "/trials/nope", f"/panda/{study}", "/no/such/page"):
            r = c.get(url)
            assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), url
        for url in ("/api/studies/nope", "/api/trials/nope", "/api/panda/nope", f"/api/panda/{study}",
                    "/api/nope", "/api/studies/nope/trials"):
            assert "error" in jget(c, url, 404), url
        urls = ["/", f"/studies/{study}", "/static/dashboard.css", "/static/nope.js", "/api/studies",
                f"/api/studies/{study}/trials?limit=0", "/metrics", "/healthz", "/nope",
                f"/events?study={study}&max_seconds=1"]
        for url in urls:
            r = c.get(url)
            assert r.headers["content-security-policy"] == CSP, url
            assert r.headers["x-content-type-options"] == "nosniff", url
            assert r.headers["referrer-policy"] == "no-referrer", url
        r = c.post(f"/api/studies/{study}/cancel")
        assert r.headers["content-security-policy"] == CSP and r.status_code == 403
    with client(world["db"], allow_control=True, token=TOKEN) as c:
        r = c.get(f"/studies/{study}")
        assert 'data-control="on"' in r.text and TOKEN not in r.text


def test_paging_sorting_and_bad_input(world: dict[str, Any]) -> None:
    study = world["study"]
    with client(world["db"]) as c:
        every = jget(c, f"/api/studies/{study}/trials?sort=val_loss&limit=100")["trials"]
        losses = [t["val_loss"] for t in every]
        assert losses == sorted(losses)
        pages = [jget(c, f"/api/studies/{study}/trials?sort=val_loss&offset={o}&limit=3") for o in (0, 3, 6)]
        assert [p["total"] for p in pages] == [8, 8, 8] and [p["offset"] for p in pages] == [0, 3, 6]
        assert [t["id"] for p in pages for t in p["trials"]] == [t["id"] for t in every]
        assert jget(c, f"/api/studies/{study}/trials?offset=50")["trials"] == []
        desc = jget(c, f"/api/studies/{study}/trials?sort=val_loss&order=desc&limit=100")["trials"]
        assert [t["id"] for t in desc] == [t["id"] for t in reversed(every)]
        assert [t["id"] for t in jget(c, f"/api/studies/{study}/trials?sort=objective")["trials"]] == [
            t["id"] for t in every]
        acc = [t["val_accuracy"] for t in jget(c, f"/api/studies/{study}/trials?sort=val_accuracy")["trials"]]
        assert acc == sorted(acc, reverse=True)  # as `caviar trials --sort val_accuracy`: best first
        acc = jget(c, f"/api/studies/{study}/trials?sort=val_accuracy&order=asc")["trials"]
        assert [t["val_accuracy"] for t in acc] == sorted(t["val_accuracy"] for t in acc)
        by_time = jget(c, f"/api/studies/{study}/trials?sort=seconds&order=desc")["trials"]
        secs = [t["seconds"] for t in by_time]
        assert secs == sorted(secs, reverse=True)
        rounds = jget(c, f"/api/studies/{study}/trials?sort=round&order=desc&limit=2")["trials"]
        assert [(t["round"], t["index"]) for t in rounds] == [(1, 3), (1, 2)]
        assert jget(c, f"/api/studies/{study}/trials?status=complete")["total"] == 8
        assert jget(c, f"/api/studies/{study}/trials?status=running") == {
            "total": 0, "offset": 0, "limit": 50, "sort": "objective", "order": None, "status": "running",
            "trials": []}
        for query, field in (("limit=0", "limit"), ("limit=5000", "limit"), ("offset=-1", "offset"),
                             ("offset=x", "offset"), ("sort=nope", "sort"), ("order=up", "order"),
                             ("status=done", "status")):
            body = jget(c, f"/api/studies/{study}/trials?{query}", 400)
            assert body["field"] == field and body["error"].startswith(f"{field}: ")
            assert "expected" in body["error"]
        body = jget(c, f"/api/studies/{study}/points?limit=1", 400)
        assert body["error"] == "limit: '1' is not allowed; expected an integer in [2, 100000]"
        assert jget(c, f"/api/studies/{study}/curves?which=all", 400)["field"] == "which"
        assert jget(c, "/api/studies?kind=nope", 400)["field"] == "kind"
        assert jget(c, "/api/studies?sort=nope", 400)["field"] == "sort"

        listed = jget(c, "/api/studies")["studies"]
        assert [r["id"] for r in listed] == [world["session"], study]  # newest first
        assert [r["kind"] for r in jget(c, "/api/studies?kind=panda")["studies"]] == ["panda"]
        assert [r["id"] for r in jget(c, "/api/studies?q=BABY")["studies"]] == [world["session"]]
        assert [r["id"] for r in jget(c, "/api/studies?sort=created_at&order=asc")["studies"]] == [
            study, world["session"]]
        assert jget(c, "/api/studies?state=running")["studies"] == []
        panda = next(r for r in listed if r["kind"] == "panda")
        assert panda["progress"] == {"done": 4, "total": 4} and panda["panda"]["epoch"] == 4


def test_points_keep_the_best_when_sampled(world: dict[str, Any]) -> None:
    study = world["study"]
    with client(world["db"]) as c:
        best = jget(c, f"/api/studies/{study}")["best"]
        sampled = jget(c, f"/api/studies/{study}/points?limit=4")
        assert sampled["total"] == 8 and sampled["sampled"] and 2 <= len(sampled["points"]) <= 4
        ids = [p["id"] for p in sampled["points"]]
        assert best["id"] in ids and sampled["best"] == best["id"] and len(set(ids)) == len(ids)
        every = jget(c, f"/api/studies/{study}/points?limit=8")
        assert not every["sampled"] and len(every["points"]) == 8
        for p in every["points"]:
            assert set(p) >= {"id", "round", "status", "params", "value"}
            assert set(p["params"]) == {"learning_rate", "hidden_units", "beta2", "bn_momentum", "norm"}


def test_the_reproduce_and_save_commands_give_the_stored_val_loss(world: dict[str, Any]) -> None:
    study, cwd = world["study"], world["cwd"]
    with client(world["db"]) as c:
        best = jget(c, f"/api/studies/{study}")["best"]
        commands = jget(c, f"/api/trials/{best['id']}")["commands"]
    env = {k: v for k, v in os.environ.items() if k != "CAVIAR_DATABASE_URL"}
    env["PATH"] = f"{Path(CAVIAR[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    script = f"{commands['env']} {commands['reproduce']} --format json"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["val_loss"] == best["val_loss"]  # bit for bit
    done = subprocess.run(["bash", "-c", commands["save"] + " --format json"], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env={**env, "CAVIAR_DATABASE_URL": world["db"]})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["saved"]["val_loss"] == best["val_loss"]
    assert (cwd / "model.npz").exists()


# --- metrics and health --------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text: str) -> dict[str, dict[str, Any]]:
    """The exposition text as {family: {"type", "help", "samples": [(name, labels, value)]}}; fails on any
    line that is not a HELP, a TYPE or a sample of a family declared before it."""
    families: dict[str, dict[str, Any]] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            families.setdefault(name, {"samples": []})["help"] = help_
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("gauge", "counter", "histogram"), line
            assert "help" in families.get(name, {}), f"TYPE before HELP: {line}"
            families[name]["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, _, inner, value = m.groups()
            labels: dict[str, str] = {}
            rest = inner or ""
            while rest:
                lm = _LABEL.match(rest)
                assert lm, f"bad labels in {line!r}"
                labels[lm[1]] = lm[2].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                rest = rest[lm.end():]
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            family = next((f for f in (name, base) if f in families), None)
            assert family is not None and "type" in families[family], f"sample without HELP/TYPE: {line}"
            families[family]["samples"].append((name, labels, float(value)))
    for name, f in families.items():
        if f["type"] == "histogram":
            buckets = [(s[1]["le"], s[2]) for s in f["samples"] if s[0] == name + "_bucket"]
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), "buckets are cumulative"
            assert buckets[-1][0] == "+Inf"
            count = next(s[2] for s in f["samples"] if s[0] == name + "_count")
            assert buckets[-1][1] == count
            assert [float(le) for le, _ in buckets[:-1]] == sorted(float(le) for le, _ in buckets[:-1])
    return families


def test_metrics_text_is_the_exposition_format(world: dict[str, Any]) -> None:
    with client(world["db"]) as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = parse_metrics(r.text)
    assert {"caviar_trials", "caviar_trials_running", "caviar_studies", "caviar_trial_seconds",
            "caviar_stale_trials", "caviar_dashboard_event_streams"} <= set(m)
    assert "caviar_queue_depth" not in m  # no broker configured
    trials = {(s[1]["study"], s[1]["status"]): s[2] for s in m["caviar_trials"]["samples"]}
    assert trials[(world["study"], "complete")] == 8 and trials[(world["session"], "complete")] == 1
    studies = {(s[1]["state"], s[1]["kind"]): s[2] for s in m["caviar_studies"]["samples"]}
    assert studies == {("complete", "sweep"): 1, ("complete", "panda"): 1}
    count = next(s[2] for s in m["caviar_trial_seconds"]["samples"] if s[0] == "caviar_trial_seconds_count")
    assert count == 9 and m["caviar_stale_trials"]["samples"][0][2] == 0


def test_metric_label_values_are_escaped() -> None:
    from service.dashboard.metrics import Family, escape_label

    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    text = "\n".join(Family("x_total", "gauge", "help with \\ and\nnewline").add(1, {"w": 'q"\n\\'}).lines())
    parsed = parse_metrics(text + "\n")
    assert parsed["x_total"]["samples"] == [("x_total", {"w": 'q"\n\\'}, 1.0)]
    assert "\n" not in text.splitlines()[0]


def test_healthz_reports_an_unreachable_store(tmp_path: Path) -> None:
    from service.store import open_store

    home = tmp_path / "gone"
    home.mkdir()
    db = f"sqlite:///{home / 'caviar.db'}"
    open_store(db).dispose()
    app = create_app(db)
    with TestClient(app) as c:
        assert jget(c, "/healthz")["db"] == "ok"
        app.state.dashboard.reader.engine.dispose()
        shutil.rmtree(home)
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "error" and r.json()["db"]
        assert r.headers["content-security-policy"] == CSP
        assert jget(c, "/api/studies", 503)["error"].startswith("the study store is unavailable")


def test_the_read_handle_refuses_writes(any_db_url: str) -> None:
    from sqlalchemy import update

    from service.store import open_store
    from service.store.models import Study

    open_store(any_db_url).dispose()  # an empty store, its schema made
    app = create_app(any_db_url)
    dash = app.state.dashboard
    try:
        assert dash.writer is None and dash.control is None and dash.token is None
        with pytest.raises(Exception, match="readonly|read-only"):  # the database itself refuses
            dash.reader.run(lambda s: s.execute(update(Study).values(name="x")))
    finally:
        dash.close()


# --- state changes -------------------------------------------------------------------------------------


def test_state_changes_need_control_and_the_token(world: dict[str, Any]) -> None:
    study, session = world["study"], world["session"]
    with client(world["db"]) as c:  # control off
        for url in (f"/api/studies/{study}/cancel", f"/api/panda/{session}/set"):
            r = c.post(url, json={"values": {"learning_rate": "0.01"}}, headers=AUTH)
            assert r.status_code == 403 and "--allow-control" in r.json()["error"]
        assert c.get(f"/api/panda/{session}/stop").status_code == 405
    with client(world["db"], allow_control=True, token=TOKEN) as c:
        url = f"/api/panda/{session}/set"
        body = {"values": {"learning_rate": "0.01"}}
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"X-Caviar-Token": "nope"},
                        {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN}):
            r = c.post(url, json=body, headers=headers)
            assert r.status_code == 403 and "token" in r.json()["error"], headers
        assert jget(c, f"/api/panda/{session}")["pending"] == []  # nothing written
        assert c.get(f"/api/studies/{study}/cancel").status_code == 405
        r = c.post("/api/studies/nope/cancel", headers={"X-Caviar-Token": TOKEN})
        assert r.status_code == 404


def test_cancel_with_the_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'caviar.db'}"
    study, trials = submit_queued(db)
    with client(db, allow_control=True, token=TOKEN) as c:
        assert jget(c, f"/api/studies/{study}/importance") == {
            "study": study, "trials": 0, "importance": None,
            "reason": "importance needs at least 4 finished trials (0 so far)"}
        r = c.post(f"/api/studies/{study}/cancel", headers={"X-Caviar-Token": TOKEN})
        assert r.status_code == 200, r.text
        n = len(trials)
        assert r.json() == {"id": study, "state": "cancelled", "cancelled": True, "queued_cancelled": n,
                            "message": f"study {study} cancelled ({n} queued trials cancelled)"}
        detail = jget(c, f"/api/studies/{study}")
        assert detail["state"] == "cancelled" and detail["counts"]["cancelled"] == len(trials)
        again = c.post(f"/api/studies/{study}/cancel", headers=AUTH).json()
        assert again["cancelled"] is False and again["message"] == f"study {study} is already cancelled"
        r = c.post(f"/api/studies/{study}/cancel", content=b'{"force": true}', headers=AUTH)
        assert r.status_code == 400 and r.json()["field"] == "force"
    status = json.loads(ok("status", study, "--format", "json", cwd=tmp_path, db=db))
    assert status["state"] == "cancelled"


def _wait_session(c: TestClient, session: str, done: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record = jget(c, f"/api/panda/{session}")
        if done(record):
            return record
        assert time.monotonic() < deadline, f"{session} never got there: {record['state']} {record['epoch']}"
        time.sleep(0.3)


def test_panda_requests_go_through_the_cli_checks(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'caviar.db'}"
    session = ok(*PANDA, "--set", "epochs=3", "--name", "steered", cwd=tmp_path, db=db).strip()
    logs = tmp_path / "logs"
    pids: list[int] = []
    try:
        with client(db, allow_control=True, token=TOKEN, runner_logs=logs) as c:
            post = lambda action, body=None: c.post(  # noqa: E731
                f"/api/panda/{session}/{action}", json=body if body is not None else {}, headers=AUTH)
            for body, field in (
                ({"values": {"learning_rate": "-1"}}, "values.learning_rate"),
                ({"values": {"hidden_units": "64"}}, "values.hidden_units"),  # structural: a fork's
                ({"values": {"no_such": "1"}}, "values.no_such"),
                ({"values": {}}, "values"),
                ({"values": {"learning_rate": "0.01"}, "at_epoch": "x"}, "at_epoch"),
                ({"values": {"learning_rate": "0.01"}, "at_epoch": 1}, "at_epoch"),  # already passed
                ({"values": {"learning_rate": True}}, "values.learning_rate"),
                ({"values": "lr=1"}, "values"),
                ({"value": {}}, "value"),
            ):
                r = post("set", body)
                assert r.status_code == 400, (body, r.text)
                refused = r.json()
                assert refused["field"] == field, (body, refused)
                assert refused["error"].startswith(f"{field}: "), (body, refused)
            assert c.post(f"/api/panda/{session}/set", content=b"[1]", headers=AUTH).json()["field"] == "body"
            assert jget(c, f"/api/panda/{session}")["pending"] == []  # nothing written by any of them
            r = post("rollback", {"to_epoch": 9})
            assert r.status_code == 400 and r.json()["field"] == "to_epoch"
            assert post("rollback", {}).json()["field"] == "to_epoch"
            r = post("pause")
            assert r.status_code == 400 and r.json()["field"] == "session"  # complete: nothing to pause

            r = post("set", {"values": {"epochs": 5, "learning_rate": "0.01"}})
            assert r.status_code == 200, r.text
            pending = jget(c, f"/api/panda/{session}")["pending"]
            assert [(p["id"], p["action"], p["values"]) for p in pending] == [
                (r.json()["request"], "set", {"epochs": 5, "learning_rate": 0.01})]
            r = post("resume")
            assert r.status_code == 200 and r.json()["runner"] == "detached", r.text
            pids.append(r.json()["pid"])
            done = _wait_session(c, session, lambda s: s["state"] == "complete" and s["epoch"] == 5)
            assert done["changes"] == [{"epoch": 3, "key": "epochs", "value": 5},
                                       {"epoch": 3, "key": "learning_rate", "value": 0.01}]
            assert [h["epoch"] for h in done["curve"]] == [1, 2, 3, 4, 5]

            assert post("fork", {"from_epoch": 9}).json()["field"] == "from_epoch"
            r = post("fork", {"from_epoch": 2, "values": {"learning_rate": "0.002"}, "name": "fork-a"})
            assert r.status_code == 200, r.text
            child = r.json()["id"]
            pids.append(r.json()["pid"])
            assert r.json()["parent"] == session and child != session
            forked = _wait_session(c, child, lambda s: s["state"] == "complete")
            assert forked["parent"] == {"id": session, "epoch": 2} and forked["name"] == "fork-a"
            assert forked["config"]["learning_rate"] == 0.002
            assert forked["curve"][:2] == done["curve"][:2]  # the parent's first two epochs, as they were

            r = post("stop")
            assert r.status_code == 200 and r.json()["state"] == "stopped"
            r = post("set", {"values": {"learning_rate": "0.01"}})
            assert r.status_code == 400 and r.json()["field"] == "session"
            assert c.post("/api/panda/nope/stop", headers=AUTH).status_code == 404
        shown = json.loads(ok("panda", "show", session, "--format", "json", cwd=tmp_path, db=db))
        assert shown["state"] == "stopped" and shown["epoch"] == 5
        assert (logs / f"{session}.log").exists()
    finally:
        for pid in pids:  # runners this test started; each ends by itself once its session is done
            with suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)


# --- server-sent events --------------------------------------------------------------------------------


def read_events(c: TestClient, url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every event of a bounded stream (``max_seconds`` in ``url``), comments as {"comment": text}."""
    with c.stream("GET", url, headers=headers or {}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return parse_sse("".join(r.iter_text()))


def parse_sse(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "":
                event["comment"] = value
            elif key == "data":
                event["data"] = json.loads(value)
            else:
                event[key] = value
        out.append(event)
    return out


def typed(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for e in events:
        if "event" not in e:
            continue
        data = e["data"]
        out.append((e["event"], (data["trial"], data["epoch"]) if e["event"] == "epoch"
                    else data.get("status") if e["event"] == "trial" else data["id"]))
    return out


def _entry(epoch: int) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.1 / epoch, "val_accuracy": 0.5,
            "learning_rate": 0.01, "seconds": 0.01}


def test_events_resume_from_the_last_id_skips_what_was_seen(tmp_path: Path) -> None:
    from service.store import lease, open_store

    db = f"sqlite:///{tmp_path / 'caviar.db'}"
    study, trials = submit_queued(db)
    writer = open_store(db)
    url = f"/events?study={study}&max_seconds=1"
    try:
        with client(db) as c:
            first = read_events(c, url)
            assert first[0].get("retry") == "2000"
            assert typed(first) == [("study", study)]  # a fresh stream: the current state
            assert first[-1]["data"]["state"] == "queued" and first[-1]["data"]["space"]
            c1 = first[-1]["id"]
            assert typed(read_events(c, url, {"Last-Event-ID": c1})) == []  # nothing new

            claim = lease.claim_trial(writer, trials[0], "w1")
            assert claim is not None
            for e in (1, 2):
                assert lease.epoch_tick(writer, trials[0], claim.attempt, _entry(e))
            second = read_events(c, url, {"Last-Event-ID": c1})
            assert typed(second) == [("trial", "running"), ("epoch", (trials[0], 1)),
                                     ("epoch", (trials[0], 2)), ("study", study)]
            assert second[-1]["data"]["state"] == "running"
            epoch = next(e["data"] for e in second if e.get("event") == "epoch")
            assert epoch == {"trial": trials[0], **_entry(1)}
            c2 = second[-1]["id"]

            assert lease.epoch_tick(writer, trials[0], claim.attempt, _entry(3))
            third = read_events(c, f"{url}&cursor={c2}")  # ?cursor= works as Last-Event-ID does
            assert typed(third) == [("epoch", (trials[0], 3))]
            # from the older cursor, everything since it (the trial's record and all three epochs)
            assert [t for t in typed(read_events(c, url, {"Last-Event-ID": c1})) if t[0] == "epoch"] == [
                ("epoch", (trials[0], e)) for e in (1, 2, 3)]
            # an unreadable cursor starts afresh: the current state
            fresh = typed(read_events(c, url, {"Last-Event-ID": "garbage"}))
            assert [t[0] for t in fresh] == ["trial", "study"]

            metrics = {"val_loss": 0.25, "val_accuracy": 0.9, "epochs_run": 3, "seconds": 0.1}
            assert lease.finish_trial(writer, trials[0], claim.attempt, "complete", metrics)
            fourth = read_events(c, url, {"Last-Event-ID": third[-1]["id"]})
            assert typed(fourth) == [("trial", "complete"), ("study", study)]
            done = [e["data"] for e in fourth if "event" in e]
            assert done[0]["val_loss"] == 0.25 and done[1]["counts"]["complete"] == 1
    finally:
        writer.dispose()


def test_a_live_stream_grows_pings_and_stops_when_the_client_leaves(tmp_path: Path) -> None:
    from service.store import lease, open_store

    db = f"sqlite:///{tmp_path / 'caviar.db'}"
    study, trials = submit_queued(db)
    writer = open_store(db)
    claim = lease.claim_trial(writer, trials[1], "w2")
    assert claim is not None
    app = create_app(db, poll_seconds=0.1, ping_seconds=0.3)
    streams = app.state.dashboard.streams
    try:
        with TestClient(app) as c:
            seen: list[tuple[str, Any]] = []
            pings = 0
            with c.stream("GET", f"/events?study={study}&max_seconds=60") as r:
                lines = r.iter_lines()
                block: list[str] = []
                deadline = time.monotonic() + 30
                for line in lines:
                    assert time.monotonic() < deadline, seen
                    if line:
                        block.append(line)
                        continue
                    events = parse_sse("\n".join(block) + "\n\n")
                    block = []
                    pings += sum(1 for e in events if e.get("comment") == "ping")
                    seen += typed(events)
                    if seen == [("trial", "running"), ("study", study)]:
                        assert streams.open == 1
                        assert lease.epoch_tick(writer, trials[1], claim.attempt, _entry(1))
                    if ("epoch", (trials[1], 1)) in seen and pings:
                        break
            assert seen[-1] == ("epoch", (trials[1], 1)) and pings >= 1
            deadline = time.monotonic() + 10
            while streams.open and time.monotonic() < deadline:  # the generator ended with the client
                time.sleep(0.05)
            assert streams.open == 0 and streams.total == 1
    finally:
        writer.dispose()


def test_events_of_a_panda_session_and_of_the_studies_list(world: dict[str, Any]) -> None:
    study, session = world["study"], world["session"]
    with client(world["db"]) as c:
        panda = read_events(c, f"/events?panda={session}&max_seconds=1")
        assert typed(panda) == [("panda", session)]
        record = panda[-1]["data"]
        assert record == jget(c, f"/api/panda/{session}") | {"heartbeat_age": record["heartbeat_age"]}
        assert typed(read_events(c, f"/events?study={session}&max_seconds=1",
                                 {"Last-Event-ID": panda[-1]["id"]})) == []
        listed = read_events(c, "/events?max_seconds=1")
        assert sorted(typed(listed)) == [("study", session), ("study", study)]
        rows = {e["data"]["id"]: e["data"] for e in listed if "event" in e}
        api = {r["id"]: r for r in jget(c, "/api/studies")["studies"]}
        strip = lambda r: {k: v for k, v in r.items() if k != "age_seconds"}  # noqa: E731
        assert {k: strip(v) for k, v in rows.items()} == {k: strip(v) for k, v in api.items()}
        assert typed(read_events(c, "/events?max_seconds=1", {"Last-Event-ID": listed[-1]["id"]})) == []
        assert jget(c, f"/events?panda={study}", 404)["error"]
        assert jget(c, "/events?study=nope", 404)["error"]
        assert jget(c, f"/events?study={study}&panda={session}", 400)["field"] == "panda"
        assert jget(c, f"/events?study={study}&max_seconds=0", 400)["field"] == "max_seconds"


# --- the fleet -----------------------------------------------------------------------------------------


def test_workers_stale_trials_and_the_queue(tmp_path: Path, redis_server: Any, backdate: Any) -> None:
    from service.store import lease, open_store

    db = f"sqlite:///{tmp_path / 'caviar.db'}"
    study, trials = submit_queued(db)
    writer = open_store(db)
    try:
        for tid, worker in ((trials[0], "w1@host"), (trials[1], "w1@host"), (trials[2], 'w"2\n')):
            assert lease.claim_trial(writer, tid, worker) is not None
        backdate(writer, 1000, {trials[2]})
        with client(db, broker_url=redis_server.url, stale_after=60) as c:
            body = jget(c, "/api/workers")
            assert [(w["worker"], w["running"], w["studies"]) for w in body["workers"]] == [
                ("w\"2\n", [trials[2]], [study]), ("w1@host", trials[:2], [study])]
            ages = {w["worker"]: w["last_heartbeat_age"] for w in body["workers"]}
            assert ages["w\"2\n"] >= 999 and 0 <= ages["w1@host"] < 60
            assert body["stale"] == [trials[2]] and body["stale_after"] == 60
            assert body["queue_depth"] == 0 and body["queue"]["error"] is None
            assert redis_server.password and redis_server.password not in json.dumps(body)
            assert body["broker"] == redis_server.url.replace(redis_server.password, "***")
            m = parse_metrics(c.get("/metrics").text)
            assert m["caviar_queue_depth"]["samples"] == [("caviar_queue_depth", {"queue": "caviar"}, 0.0)]
            assert m["caviar_broker_up"]["samples"][0][2] == 1
            running = {s[1]["worker"]: s[2] for s in m["caviar_trials_running"]["samples"]}
            assert running == {"w1@host": 2, 'w"2\n': 1}
            assert m["caviar_stale_trials"]["samples"][0][2] == 1
            assert redis_server.password not in c.get("/metrics").text
            detail = jget(c, f"/api/studies/{study}")
            assert detail["workers"] == {"running_by_worker": {"w\"2\n": 1, "w1@host": 2},
                                         "stale": [trials[2]]}
            trial = jget(c, f"/api/trials/{trials[2]}")
            assert trial["stale"] is True and trial["heartbeat_age"] >= 999 and trial["worker"] == 'w"2\n'
            running_curves = jget(c, f"/api/studies/{study}/curves?which=running")["curves"]
            assert [r["trial"] for r in running_curves] == trials[:3]
    finally:
        writer.dispose()


# --- the command ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_dashboard_command(world: dict[str, Any], tmp_path: Path) -> None:
    import httpx

    for args, text in ((("--port", "0"), "--port: 0 is not allowed; expected a port number from 1 to 65535"),
                       (("--port", "70000"), "--port: 70000 is not allowed")):
        done = cli("dashboard", *args, cwd=tmp_path, db=world["db"])
        assert done.returncode == 2 and text in done.stderr, done.stderr
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    done = cli("dashboard", cwd=tmp_path, db=missing)
    status = cli("status", "x", cwd=tmp_path, db=missing)
    assert done.returncode == 2 and status.returncode == 2
    assert done.stderr == status.stderr and not (tmp_path / "none.db").exists()

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CAVIAR_BROKER_URL", "CAVIAR_DASHBOARD_TOKEN")}
    env["CAVIAR_DATABASE_URL"] = world["db"]
    args = ["dashboard", "--host", "0.0.0.0", "--port", str(port), "--allow-control"]
    proc = subprocess.Popen([*CAVIAR, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.3)
        assert health.json() == {"status": "ok", "db": "ok", "control": True}
        assert health.headers["content-security-policy"] == CSP
        r = httpx.post(f"http://127.0.0.1:{port}/api/studies/{world['study']}/cancel", timeout=5)
        assert r.status_code == 403
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, errors = proc.communicate(timeout=30)
    assert f"caviar dashboard on http://0.0.0.0:{port}/" in out
    token = re.search(r"token \(paste it in the page once\): (\S+)", out)
    assert token and len(token[1]) >= 32
    assert "warning: listening on 0.0.0.0" in errors


# --- a 100,000-trial study -----------------------------------------------------------------------------
#
# build_big_study records the study as `caviar run` would (create_study with a parsed study file), then
# bulk-inserts its rounds, trials and some learning curves through SQLAlchemy Core into the real tables:
# realistic values (log-uniform learning rates, a loss that depends on them, a few failed and diverged
# trials, some running), in a handful of multi-row statements.

BIG_STUDY = """
[study]
name = "big"
dataset = "iris"
objective = "val_loss"
strategy = "random"
seed = 1

[strategy]
trials = 100000

[fixed]
epochs = 10
layers = 1

[space]
learning_rate = { log = [1e-4, 1e-1] }
hidden_units = { int = [8, 256], log = true }
beta2 = { one_minus_log = [0.9, 0.9999] }
norm = { choice = ["batch", "layer", "none"] }
"""


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The best wall time of ``repeat`` calls (seconds), and the last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        began = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - began)
    return best, out


def build_big_study(store: Store, study_id: str = "big-100k", n: int = 100_000, rounds: int = 10,
                    curves: int = 2000) -> str:
    """Record a ``n``-trial study in ``rounds`` rounds; ``curves`` trials get a 10-epoch curve."""
    spec = load_study(BIG_STUDY)
    studies.create_study(
        store, study_id=study_id, name=spec.name, spec_raw=spec.raw, spec=spec.to_dict(), spec_text=BIG_STUDY,
        seed=spec.seed, objective=str(spec.objective), strategy=spec.strategy,
    )
    studies.set_study_state(store, study_id, StudyState.RUNNING)
    rng = random.Random(7)
    per_round = n // rounds
    trial_rows: list[dict[str, Any]] = []
    epoch_rows: list[dict[str, Any]] = []
    for i in range(n):
        r, k = divmod(i, per_round)
        lr = 10 ** rng.uniform(-4, -1)
        units = int(round(math.exp(rng.uniform(math.log(7.5), math.log(256.5)))))
        params = {"learning_rate": lr, "hidden_units": max(8, min(256, units)),
                  "beta2": 1 - 10 ** rng.uniform(-4, -1), "norm": rng.choice(["batch", "layer", "none"])}
        loss = 0.05 + (math.log10(lr) + 2.2) ** 2 * 0.3 + rng.random() * 0.05
        draw = rng.random()
        status = (TrialStatus.FAILED if draw < 0.01 else TrialStatus.DIVERGED if draw < 0.03
                  else TrialStatus.RUNNING if i >= n - 8 else TrialStatus.COMPLETE)
        done = status == TrialStatus.COMPLETE
        tid = trial_id(study_id, r, k)
        trial_rows.append({
            "id": tid, "study_id": study_id, "round_index": r, "trial_index": k, "params": params,
            "seed": rng.randrange(2**31), "status": status, "attempts": 1,
            "worker": "w1" if not done else None,
            "val_loss": loss if done else None, "val_accuracy": max(0.0, 1 - loss) if done else None,
            "train_loss": loss * 0.9 if done else None, "epochs_run": 10 if done else None,
            "seconds": rng.uniform(0.5, 120) if done else None,
            "samples_per_second": 5000.0 if done else None,
            "error": "boom" if status == TrialStatus.FAILED else None, "rung_base": 0,
        })
        if i < curves or status == TrialStatus.RUNNING:
            for e in range(1, 11 if done else 4):
                epoch_rows.append({"trial_id": tid, "epoch": e, "train_loss": loss * (1 + 1 / e),
                                   "val_loss": loss * (1 + 0.5 / e), "val_accuracy": 1 - loss,
                                   "learning_rate": lr, "seconds": 0.01})

    def go(s: Any) -> None:
        s.execute(Round.__table__.insert(), [
            {"study_id": study_id, "round_index": r, "region": {"learning_rate": [1e-4, 1e-1]},
             "parent_index": r - 1 if r else None}
            for r in range(rounds)
        ])
        for i in range(0, len(trial_rows), 5000):
            s.execute(Trial.__table__.insert(), trial_rows[i:i + 5000])
        for i in range(0, len(epoch_rows), 5000):
            s.execute(Epoch.__table__.insert(), epoch_rows[i:i + 5000])

    store.run(go)
    return study_id




def test_a_100k_trial_study_answers_quickly(any_db_url: str) -> None:
    from service.store import open_store

    store = open_store(any_db_url)
    began = time.perf_counter()
    study = build_big_study(store)
    built = time.perf_counter() - began
    store.dispose()
    with client(any_db_url) as c:
        first, page = timed(lambda: jget(c, f"/api/studies/{study}/trials?limit=50"))
        last, tail = timed(lambda: jget(c, f"/api/studies/{study}/trials?limit=50&offset=99950"))
        record_s, record = timed(lambda: jget(c, f"/api/studies/{study}"))
        points_s, points = timed(lambda: jget(c, f"/api/studies/{study}/points?limit=5000"))
        list_s, listed = timed(lambda: jget(c, "/api/studies"))
        top_s, top = timed(lambda: jget(c, f"/api/studies/{study}/curves?which=top&k=5"))
        ranked_s, ranked = timed(lambda: jget(c, f"/api/studies/{study}/importance"), repeat=1)
    backend = any_db_url.split(":")[0]
    ms = {k: f"{v * 1000:.0f} ms" for k, v in (("first", first), ("last", last), ("record", record_s),
                                                ("points", points_s), ("list", list_s), ("top", top_s),
                                                ("importance", ranked_s))}
    print(f"\n100k-trial study on {backend} (built in {built:.1f} s): leaderboard first page {ms['first']}, "
          f"last page {ms['last']}, study record {ms['record']}, 5000 points {ms['points']}, "
          f"studies list {ms['list']}, top-5 curves {ms['top']}, importance (sampled) {ms['importance']}")
    assert page["total"] == 100_000 and len(page["trials"]) == 50
    losses = [t["val_loss"] for t in page["trials"]]
    assert losses == sorted(losses) and losses[0] == record["best"]["val_loss"]
    assert len(tail["trials"]) == 50 and all(t["val_loss"] is None for t in tail["trials"])
    assert record["trials"] == 100_000 and len(record["rounds"]) == 10
    assert points["sampled"] and len(points["points"]) <= 5000 and points["best"] == record["best"]["id"]
    assert points["best"] in {p["id"] for p in points["points"]}
    assert sum(1 for p in points["points"] if p["value"] is not None) >= 2500
    assert listed["studies"][0]["progress"]["total"] == 100_000
    assert top["curves"][0]["trial"] == record["best"]["id"] and len(top["curves"][0]["epochs"]) in (0, 10)
    assert ranked["sample"] == 5000 and ranked["trials"] > 90_000
    assert ranked["importance"][0]["hyperparameter"] == "learning_rate"  # the loss is built from it
