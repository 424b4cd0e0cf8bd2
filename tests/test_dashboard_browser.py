"""``caviar dashboard`` in a real browser: Debian's Chromium driven by Playwright, against a real
``caviar dashboard`` subprocess on a real study store.

- a finished coarse-to-fine study: its regions plots (one band per round), the leaderboard's rows, sorting
  by a header and paging;
- a study whose trial is running: its curve on the page grows, pushed by server-sent events;
- a panda session with ``--allow-control``: the token pasted once, the learning rate changed through the
  set form, the change checked with ``caviar panda show`` and drawn as a marker on the curve;
- the "connection to the server lost" banner when the dashboard process dies, gone once it is back.

The browser is never downloaded (``playwright install`` is not used): Debian's ``/usr/bin/chromium`` is
launched through its executable path. With ``CAVIAR_SCREENSHOTS=1`` the study and panda pages are saved to
``docs/dashboard-study.png`` and ``docs/dashboard-panda.png`` (1280×800).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from worker_procs import CAVIAR

pytestmark = pytest.mark.timeout(150)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOTS = os.environ.get("CAVIAR_SCREENSHOTS") == "1"
#: At least 16 characters, as the dashboard requires.
TOKEN = "browser-test-token-0123456789"

#: Four coarse-to-fine rounds of four short trials on digits (a few seconds), every axis kind searched.
STUDY = """
[study]
name = "dash"
dataset = "digits"
objective = "val_loss"
strategy = "coarse-to-fine"
seed = 3

[strategy]
rounds = 4
trials_per_round = 4
startup = 4

[fixed]
optimizer = "adam"
layers = 1
epochs = 8

[space]
learning_rate = { log = [1e-4, 1e-1] }
beta1 = { one_minus_log = [0.8, 0.999] }
hidden_units = { int = [16, 128], log = true }
batch_size = { choice = [32, 64, 128] }
norm = { choice = ["batch", "none"] }
"""

#: Two long trials (0.1-0.2 s an epoch), one at a time: the first runs a minute or more (killed at the end).
SLOW_STUDY = """
[study]
name = "slow"
dataset = "digits"
objective = "val_loss"
strategy = "random"
seed = 1

[strategy]
trials = 2

[fixed]
layers = 3
hidden_units = 256
batch_size = 4
epochs = 400

[space]
learning_rate = { log = [1e-3, 1e-2] }
"""

#: Set by .ci/run, which installs Chromium: there a missing browser fails the tests instead of skipping them.
REQUIRE_BROWSER = os.environ.get("CAVIAR_REQUIRE_BROWSER", "") == "1"

if not Path(CHROMIUM).exists():
    if REQUIRE_BROWSER:
        raise RuntimeError(f"{CHROMIUM} is missing, and CAVIAR_REQUIRE_BROWSER=1 (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
import playwright.sync_api as playwright_api  # noqa: E402  (the test extra installs it)

# --- processes -------------------------------------------------------------------------------------------


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAVIAR_BROKER_URL", "CELERY_BROKER_URL")}
    env.update(CAVIAR_DATABASE_URL=db_url, PYTHONUNBUFFERED="1", **extra)
    return env


def ok(*args: str, cwd: Path, db_url: str, timeout: float = 120) -> str:
    done = subprocess.run([*CAVIAR, *args], cwd=cwd, env=env_for(db_url), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class Dashboard:
    """A ``caviar dashboard`` subprocess in its own session, logging to a file."""

    def __init__(self, db_url: str, log: Path, *, port: int | None = None, control: bool = False) -> None:
        self.db_url, self.log_path, self.control = db_url, log, control
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Dashboard:
        args = ["dashboard", "--db", self.db_url, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.control:
            args.append("--allow-control")
        extra = {"CAVIAR_DASHBOARD_TOKEN": TOKEN} if self.control else {}
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*CAVIAR, *args], env=env_for(self.db_url, **extra), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            up = lambda: healthy(self.url) or self.proc.poll() is not None  # noqa: E731
            wait_for(up, 30, "the dashboard's /healthz")
        except AssertionError:
            self.stop()
            raise
        assert self.proc.poll() is None, self.log_path.read_text()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        with contextlib.suppress(Exception):
            self.log.close()


@contextlib.contextmanager
def dashboard(db_url: str, tmp_path: Path, **kw: Any) -> Iterator[Dashboard]:
    d = Dashboard(db_url, tmp_path / "dashboard.log", **kw).start()
    try:
        yield d
    finally:
        d.stop()


@contextlib.contextmanager
def background(args: list[str], cwd: Path, db_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A CLI command in its own session, killed with its pool at the end."""
    log = open(cwd / "background.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([*CAVIAR, *args], cwd=cwd, env=env_for(db_url), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        log.close()


# --- the browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()


def script_errors(pg: Any) -> list[str]:
    """Script errors and CSP violations (network failures of a killed server are not the page's fault)."""
    return [e for e in pg.errors if "Failed to load resource" not in e and "ERR_" not in e
            and "EventSource" not in e]


def lb_column(pg: Any, col: str) -> list[str]:
    return pg.eval_on_selector_all(f"[data-testid=lb-row] td[data-col='{col}']",
                                   "tds => tds.map(t => t.dataset.value)")


def shoot(pg: Any, name: str) -> None:
    if SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        pg.evaluate("window.scrollTo(0, 0)")
        pg.wait_for_timeout(300)
        pg.screenshot(path=str(DOCS / name))


# --- the tests --------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_study_page_regions_leaderboard_sort_and_pages(tmp_path: Path, page: Any) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    (tmp_path / "s.toml").write_text(STUDY)
    record = json.loads(ok("run", "s.toml", "-q", "-w", "2", "--format", "json", cwd=tmp_path, db_url=db))
    sid = record["id"]
    n_rounds = len(record["rounds"])
    assert n_rounds == 4
    with dashboard(db, tmp_path) as d:
        # the list of studies links to it
        page.goto(d.url + "/")
        row = page.locator(f"[data-testid=study-row][data-id='{sid}']")
        row.wait_for()
        assert row.get_attribute("data-state") == "complete"
        page.fill("#filter", "no-such-study")
        page.locator("[data-testid=study-row]").first.wait_for(state="detached")
        page.fill("#filter", "dash")
        row.wait_for()
        row.locator("[data-testid=study-link]").click()
        page.wait_for_url(f"**/{sid}")

        # the regions panel of each numeric hyperparameter: one band per round
        for name in ("learning_rate", "beta1", "hidden_units"):
            bands = page.locator(f"[data-testid=regions-{name}] rect[data-testid=region-band]")
            wait_for(lambda b=bands: b.count() == n_rounds, 15, f"{n_rounds} region bands of {name}")
        # the scatter panels, every hyperparameter, with a point per trial and the best as a star
        for name in ("learning_rate", "beta1", "hidden_units", "batch_size", "norm"):
            scatter = page.locator(f"[data-testid=scatter-{name}] svg")
            scatter.wait_for()
            assert scatter.locator("[data-trial]").count() >= 16
        assert page.locator("[data-testid=scatter-learning_rate] [data-testid=best-star]").count() == 1
        # the one-minus-log axis is labelled in β values
        ticks = page.locator("[data-testid=scatter-beta1] .tick-label").all_text_contents()
        assert "0.99" in ticks or "0.9" in ticks, ticks

        # the leaderboard: the best first, 16 rows on one page of 50
        rows = page.locator("[data-testid=lb-row]")
        wait_for(lambda: rows.count() == 16, 15, "16 leaderboard rows")
        assert rows.first.get_attribute("data-trial") == record["best"]["id"]
        losses = [float(v) for v in lb_column(page, "val_loss")]
        assert losses == sorted(losses)
        shoot(page, "dashboard-study.png")

        # pages of 10: 10 rows, then the 6 others
        page.select_option("#lb-size", "10")
        wait_for(lambda: rows.count() == 10, 10, "a page of 10")
        assert page.inner_text("#lb-info").startswith("1–10 of 16")
        first_page = lb_column(page, "id")
        page.click("#lb-next")
        wait_for(lambda: page.inner_text("#lb-info").startswith("11–16"), 10, "the second page")
        assert rows.count() == 6
        assert not set(lb_column(page, "id")) & set(first_page)
        assert page.is_disabled("#lb-next")
        page.click("#lb-prev")
        wait_for(lambda: lb_column(page, "id") == first_page, 10, "the first page again")

        # sorting by a header, on the server: seconds ascending, then descending
        page.click("[data-testid=lb-col-seconds]")
        header = "[data-testid=lb-col-seconds]"
        wait_for(lambda: page.get_attribute(header, "data-order") == "asc", 10, "sorted")

        def seconds() -> list[float]:
            return [float(v) for v in lb_column(page, "seconds")]

        wait_for(lambda: seconds() == sorted(seconds()) and len(seconds()) == 10, 10, "ascending seconds")
        page.click("[data-testid=lb-col-seconds]")
        wait_for(lambda: seconds() == sorted(seconds(), reverse=True) and len(seconds()) == 10, 10,
                 "descending seconds")
        everything = sorted(float(t["seconds"]) for t in json.loads(
            ok("trials", sid, "--format", "json", cwd=tmp_path, db_url=db)))
        assert seconds()[0] == pytest.approx(everything[-1])

        # a trial's page: configuration, seed, curve and the commands
        page.click("[data-testid=lb-row] td[data-col=id] a >> nth=0")
        page.locator("#trial-params [data-key=learning_rate]").wait_for()
        page.locator("[data-testid=trial-curve] path[data-testid=trial-curve-path]").wait_for()
        wait_for(lambda: "caviar train" in page.inner_text("#cmd-reproduce"), 10, "the reproduce command")
        assert script_errors(page) == []


@pytest.mark.timeout(120)
def test_a_running_trials_curve_grows_live(tmp_path: Path, page: Any) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    (tmp_path / "slow.toml").write_text(SLOW_STUDY)
    with background(["run", "slow.toml", "-q", "-w", "1"], tmp_path, db) as run:

        def running() -> Any:
            if not (tmp_path / "c.db").exists():
                return None
            done = subprocess.run([*CAVIAR, "status", "--format", "json"], cwd=tmp_path, env=env_for(db),
                                  capture_output=True, text=True, timeout=60)
            studies = json.loads(done.stdout or "[]") if done.returncode == 0 else []
            return studies[0]["id"] if studies and studies[0]["counts"].get("running") else None

        sid = wait_for(running, 60, "a running trial", every=0.5)
        assert run.poll() is None
        with dashboard(db, tmp_path) as d:
            page.goto(f"{d.url}/studies/{sid}")
            curve = page.locator("[data-testid=curves-running] path[data-testid=running-curve]").first
            curve.wait_for()
            wait_for(lambda: page.inner_text("#live") == "live", 10, "the event stream")

            def points() -> int:
                return int(curve.get_attribute("data-points") or 0)

            def segments() -> int:
                return (curve.get_attribute("d") or "").count("L")

            before, before_d = points(), segments()
            # the page does not poll: only the event stream can make it grow
            wait_for(lambda: points() >= before + 3, 30, "the curve to grow")
            assert segments() > before_d
            trial = curve.get_attribute("data-trial")
            assert trial and trial.startswith(sid)
            stored = json.loads(ok("trials", sid, "--format", "json", cwd=tmp_path, db_url=db))
            assert any(t["id"] == trial and t["status"] == "running" for t in stored)
            assert script_errors(page) == []


@pytest.mark.timeout(120)
def test_panda_set_through_the_form(tmp_path: Path, page: Any) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    sid = ok("panda", "start", "--dataset", "digits", "--set", "epochs=200", "--set", "hidden_units=256",
             "--set", "layers=3", "--set", "batch_size=4", "--set", "learning_rate=0.003", "--detach", "-q",
             cwd=tmp_path, db_url=db).strip()
    try:
        with dashboard(db, tmp_path, control=True) as d:
            page.goto(f"{d.url}/panda/{sid}")
            assert page.get_attribute("#page", "data-control") == "on"
            page.locator("[data-testid=panda-curve-svg]").wait_for()
            # a few epochs first, so that the change lands inside the curve
            def curve_points() -> int:
                return int(page.get_attribute("[data-testid=panda-curve-path]", "data-points") or 0)

            wait_for(lambda: curve_points() >= 6, 30, "the first epochs")
            # without the token the server refuses, and the form says so
            page.fill("#set-values", "learning_rate=0.01")
            page.click("#set-submit")
            wait_for(lambda: page.get_attribute("#set-msg", "data-result") == "error", 10, "the refusal")
            # a bad value: the server's 400 message next to the form
            page.fill("#token-input", TOKEN)
            page.click("#token-save")
            assert page.inner_text("#token-state") == "set"
            page.fill("#set-values", "learning_rate=-1")
            page.click("#set-submit")
            wait_for(lambda: page.get_attribute("#set-msg", "data-result") == "error"
                     and "learning_rate" in page.inner_text("#set-msg"), 10, "the 400 message")
            # the real change, at the next epoch boundary
            page.fill("#set-values", "learning_rate=0.01")
            page.click("#set-submit")
            wait_for(lambda: page.get_attribute("#set-msg", "data-result") == "ok", 10, "the request")

            def applied() -> dict[str, Any] | None:
                r = json.loads(ok("panda", "show", sid, "--format", "json", cwd=tmp_path, db_url=db))
                return r if r["config"]["learning_rate"] == 0.01 else None

            r = wait_for(applied, 40, "the new learning rate", every=0.5)
            change = [c for c in r["changes"] if c["key"] == "learning_rate"]
            assert change and change[-1]["value"] == 0.01
            marker = page.locator("[data-testid=panda-curve] [data-testid=change-marker]"
                                  "[data-label='learning_rate=0.01']")
            marker.wait_for()
            assert int(marker.get_attribute("data-epoch")) == change[-1]["epoch"]
            page.locator("[data-testid=change-row][data-key=learning_rate]").wait_for()
            # the session goes on training at the new rate: epochs after the change show up
            wait_for(lambda: curve_points() > change[-1]["epoch"] + 8, 30, "epochs after the change")
            shoot(page, "dashboard-panda.png")
            assert script_errors(page) == []
    finally:
        subprocess.run([*CAVIAR, "panda", "stop", sid], cwd=tmp_path, env=env_for(db), capture_output=True,
                       timeout=60)
        record = json.loads(ok("panda", "show", sid, "--format", "json", cwd=tmp_path, db_url=db))
        worker = record.get("worker") or ""
        if worker.startswith("panda:") and record["state"] == "running":
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)


@pytest.mark.timeout(90)
def test_the_banner_when_the_server_is_lost(tmp_path: Path, page: Any) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    ok("db", "upgrade", cwd=tmp_path, db_url=db)
    d = Dashboard(db, tmp_path / "dashboard.log").start()
    try:
        page.goto(d.url + "/")
        page.locator("[data-testid=studies-body] tr").first.wait_for()
        wait_for(lambda: page.inner_text("#live") == "live", 10, "the event stream")
        banner = page.locator("#banner")
        assert banner.is_hidden()
        d.kill()
        banner.wait_for(state="visible", timeout=15_000)
        assert "connection to the server lost" in banner.inner_text()
        assert "retrying" in banner.inner_text()
        # back on the same port: the banner goes and the page is live again
        d.stop()
        d = Dashboard(db, tmp_path / "dashboard.log", port=d.port).start()
        banner.wait_for(state="hidden", timeout=20_000)
        wait_for(lambda: page.inner_text("#live") == "live", 10, "the event stream again")
        assert script_errors(page) == []
    finally:
        d.stop()
