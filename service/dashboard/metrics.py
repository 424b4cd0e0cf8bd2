"""``/metrics``: the store's state in Prometheus' text exposition format (version 0.0.4), computed on each
scrape.

Families (each with ``# HELP`` and ``# TYPE``):

- ``caviar_studies{state,kind}`` (gauge): studies and panda sessions by state;
- ``caviar_trials{study,status}`` (gauge): trials by study and status;
- ``caviar_trials_running{worker}`` (gauge): running trials per worker;
- ``caviar_stale_trials`` (gauge): running trials whose heartbeat is older than ``CAVIAR_STALE_AFTER``;
- ``caviar_trial_seconds`` (histogram): training seconds of finished trials (``_bucket{le}``, ``_sum``,
  ``_count``; buckets cumulative, ``+Inf`` equal to the count);
- ``caviar_queue_depth`` (gauge, with a broker only): messages waiting in the broker's queue;
  ``caviar_broker_up`` says whether the broker answered;
- ``caviar_dashboard_event_streams`` (gauge): event streams open on this dashboard.

Label values are escaped as the format says (backslash, double quote, newline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.store import Store, lease
from service.store.models import Study, Trial
from service.store.states import FINISHED, TrialStatus

__all__ = ["CONTENT_TYPE", "BUCKETS", "render_metrics", "escape_label", "Family"]

#: The exposition format's content type.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of ``caviar_trial_seconds``'s buckets, before ``+Inf``.
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def escape_label(value: str) -> str:
    """A label value as the text format writes it between double quotes."""
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Family:
    """One metric family: its help, type and samples."""

    def __init__(self, name: str, kind: str, help: str) -> None:
        self.name, self.kind, self.help = name, kind, help
        self.samples: list[tuple[str, Mapping[str, str], float]] = []

    def add(self, value: float, labels: Mapping[str, str] | None = None, suffix: str = "") -> Family:
        self.samples.append((self.name + suffix, dict(labels or {}), value))
        return self

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        for name, labels, value in self.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label(str(v))}"' for k, v in labels.items())
                yield f"{name}{{{inner}}} {_number(value)}"
            else:
                yield f"{name} {_number(value)}"


def _histogram(s: Session) -> tuple[list[int], float, int]:
    done = (Trial.status.in_(FINISHED), Trial.seconds.is_not(None))
    columns = [func.sum(case((Trial.seconds <= b, 1), else_=0)) for b in BUCKETS]
    total = func.coalesce(func.sum(Trial.seconds), 0.0)
    row = s.execute(select(*columns, total, func.count()).where(*done)).one()
    counts = [int(c or 0) for c in row[: len(BUCKETS)]]
    return counts, float(row[-2] or 0.0), int(row[-1] or 0)


def _families(
    s: Session, stale: int, queue: dict[str, Any] | None, streams: int
) -> Sequence[Family]:
    studies = Family("caviar_studies", "gauge", "Studies and panda sessions by state and kind.")
    for state, kind, n in s.execute(
        select(Study.state, Study.kind, func.count()).group_by(Study.state, Study.kind)
        .order_by(Study.kind, Study.state)
    ).all():
        studies.add(n, {"state": str(state), "kind": str(kind)})
    trials = Family("caviar_trials", "gauge", "Trials by study and status.")
    for sid, status, n in s.execute(
        select(Trial.study_id, Trial.status, func.count()).group_by(Trial.study_id, Trial.status)
        .order_by(Trial.study_id, Trial.status)
    ).all():
        trials.add(n, {"study": sid, "status": str(status)})
    running = Family("caviar_trials_running", "gauge", "Running trials per worker.")
    for worker, n in s.execute(
        select(Trial.worker, func.count()).where(Trial.status == TrialStatus.RUNNING)
        .group_by(Trial.worker).order_by(Trial.worker)
    ).all():
        running.add(n, {"worker": worker or "?"})
    stale_family = Family(
        "caviar_stale_trials", "gauge", "Running trials whose heartbeat is older than CAVIAR_STALE_AFTER."
    ).add(stale)
    counts, total, n = _histogram(s)
    seconds = Family("caviar_trial_seconds", "histogram", "Training seconds of finished trials.")
    for bound, count in zip(BUCKETS, counts, strict=True):
        seconds.add(count, {"le": _number(bound)}, "_bucket")
    seconds.add(n, {"le": "+Inf"}, "_bucket").add(total, None, "_sum").add(n, None, "_count")
    out = [studies, trials, running, stale_family, seconds]
    if queue is not None:
        depth = queue.get("queued_messages")
        up = Family("caviar_broker_up", "gauge", "1 when the broker answered this scrape, else 0.")
        out.append(up.add(0 if depth is None else 1))
        family = Family("caviar_queue_depth", "gauge", "Messages waiting in the broker's queue.")
        if depth is not None:
            family.add(int(depth), {"queue": str(queue.get("queue") or "")})
        out.append(family)
    out.append(Family("caviar_dashboard_event_streams", "gauge", "Event streams open on this dashboard.")
               .add(streams))
    return out


def render_metrics(store: Store, *, stale_after: float, queue: dict[str, Any] | None, streams: int) -> str:
    """The exposition text (one read transaction; ``queue`` from the broker, None without one)."""
    stale = len(lease.stale_running(store, stale_after))
    families = store.run(lambda s: _families(s, stale, queue, streams))
    return "\n".join(line for f in families for line in f.lines()) + "\n"
