"""Server-sent events: the server checks the store about once a second and pushes only what changed.

Three streams: ``/events?study=ID`` (a sweep), ``/events?panda=ID`` (a panda session; ``study=`` of a
session is the same) and ``/events`` (the studies list). Event types:

- ``study``: the study's record changed (``/api/studies/{id}``'s object; on the list stream, the
  study's ``/api/studies`` row);
- ``trial``: a trial's status or metrics changed (its record, as ``caviar trials`` lists it);
- ``epoch``: a new learning-curve row, ``{"trial", "epoch", "train_loss", "val_loss", "val_accuracy",
  "learning_rate", "seconds"}``, so running curves grow live;
- ``panda``: the session's record changed (``/api/panda/{id}``'s object);
- ``error``: the store could not be read this time (``{"error"}``, masked); the stream goes on;
- a ``: ping`` comment every ~15 s.

A stream opened without a cursor first sends the current state (the ``study`` or ``panda`` record, the
``trial`` records of running trials; on the list stream every row), then changes. Every event has an
``id``: the cursor *after* that event, which the client gives back to resume (``Last-Event-ID``, as
``EventSource`` does by itself, or ``?cursor=``). A cursor holds

- ``t``: the database-clock watermark of the last completed check: trials stamped (started, heartbeat,
  finished) after it are looked at again;
- ``e``: per trial with a curve in progress, the last epoch sent (a rollback or a resumed attempt that
  rewrote the curve is noticed: the marks go back);
- ``f``: fingerprints of the records already sent (study, session, list rows), so an unchanged record is
  not sent again.

Only the last event of a check carries the new watermark, so a client cut off in the middle of one gets
the rest again (``trial`` events are whole records: a repeat is harmless). Within a stream, trials are
looked at again for a few seconds (:data:`SLACK_SECONDS`, for writes committed after the check that read
the clock) and repeats are dropped by fingerprint. Store reads run in a worker thread; a client that
goes away ends its generator (and every stream ends after ``max_seconds``, to be resumed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from service.dashboard.queries import CURVE_KEYS, list_row, study_detail, trial_rows_by_id, updated_at
from service.errors import describe
from service.output import dumps, json_safe
from service.store import Store, StoreError
from service.store.clock import as_utc, db_now
from service.store.models import Epoch, PandaRequest, Round, Study, Trial
from service.store.states import FINISHED, StudyKind, TrialStatus
from service.views import trial_record

__all__ = [
    "SLACK_SECONDS", "RETRY_MS", "Cursor", "StreamState", "Topic", "StudyTopic", "PandaTopic", "ListTopic",
    "event_stream", "format_event", "StreamCounter",
]

#: Seconds a trial change is looked at again after the check that first could have seen it.
SLACK_SECONDS = 2.0
#: What the client waits before reconnecting (the SSE ``retry`` field), in milliseconds.
RETRY_MS = 2000

Event = tuple[str, Any, str]  # (type, data, id)


def _hash(value: Any) -> str:
    text = json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


@dataclass
class Cursor:
    """Where a client is: see the module's docstring."""

    watermark: datetime | None = None
    marks: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    #: Trial ref -> fingerprint of the record last sent, for the trials changed lately.
    trials: dict[str, str] = field(default_factory=dict)

    def encode(self) -> str:
        body: dict[str, Any] = {}
        if self.watermark is not None:
            body["t"] = self.watermark.isoformat()
        if self.marks:
            body["e"] = self.marks
        if self.seen:
            body["f"] = sorted(self.seen)
        if self.trials:
            body["r"] = self.trials
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return "1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """The cursor in ``text``; None when absent or unreadable (then the stream starts afresh)."""
        if not text or not text.startswith("1.") or len(text) > 16_384:
            return None
        try:
            raw = text[2:]
            body = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            watermark = as_utc(datetime.fromisoformat(body["t"])) if "t" in body else None
            marks = {str(k): int(v) for k, v in dict(body.get("e", {})).items()}
            seen = {str(h) for h in body.get("f", [])}
            trials = {str(k): str(v) for k, v in dict(body.get("r", {})).items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return cls(watermark, marks, seen, trials)


@dataclass
class StreamState:
    """One stream's memory between checks."""

    cursor: Cursor
    #: No cursor was given: the first check sends the current state.
    fresh: bool
    first: bool = True
    #: Trials stamped after this are looked at again at the next check.
    since: datetime | None = None
    #: Trial id -> (fingerprint, stamp, status) of what was sent (or known) lately.
    memory: dict[str, tuple[str, datetime | None, str]] = field(default_factory=dict)
    #: Record key -> fingerprint of the record last sent.
    sent: dict[str, str] = field(default_factory=dict)
    #: Record key -> the last cheap probe, to skip building a record that cannot have changed.
    probes: dict[str, str] = field(default_factory=dict)

    def seen(self, key: str, fingerprint: str) -> bool:
        """Whether the client has this record already (sent on this stream, or named by its cursor)."""
        if self.sent.get(key) == fingerprint:
            return True
        if key not in self.sent and fingerprint in self.cursor.seen:
            self.sent[key] = fingerprint
            return True
        return False

    def mark_sent(self, key: str, fingerprint: str) -> None:
        old = self.sent.get(key)
        self.sent[key] = fingerprint
        if old is not None:
            self.cursor.seen.discard(old)
        self.cursor.seen.add(fingerprint)


class Topic(Protocol):
    """What a stream follows: :meth:`poll` reads the store (in a worker thread) and returns the events."""

    def poll(self, state: StreamState) -> list[Event]: ...


class _Batch:
    """The events of one check, each with the cursor after it; the last one also advances the
    watermark."""

    def __init__(self, state: StreamState) -> None:
        self.state = state
        self.items: list[tuple[str, Any, Callable[[], None]]] = []

    def add(self, kind: str, data: Any, apply: Callable[[], None] = lambda: None) -> None:
        self.items.append((kind, data, apply))

    def events(self, watermark: datetime) -> list[Event]:
        out: list[Event] = []
        for i, (kind, data, apply) in enumerate(self.items):
            apply()
            if i == len(self.items) - 1:
                self.state.cursor.watermark = watermark
            out.append((kind, data, self.state.cursor.encode()))
        self.state.cursor.watermark = watermark
        self.state.since = watermark - timedelta(seconds=SLACK_SECONDS)
        self.state.first = False
        return out


def _bind(store: Store, value: datetime) -> datetime:
    """A watermark as the dialect compares it with stored times (SQLite keeps naive UTC text)."""
    utc = value.astimezone(UTC)
    return utc.replace(tzinfo=None) if store.dialect == "sqlite" else utc


def _stamp(row: dict[str, Any]) -> datetime | None:
    stamps = [row[k] for k in ("heartbeat_at", "finished_at", "started_at") if row.get(k) is not None]
    return max(stamps) if stamps else None


def _trial_fingerprint(row: dict[str, Any]) -> str:
    return _hash([row[k] for k in ("status", "attempts", "worker", "val_loss", "val_accuracy", "train_loss",
                                   "epochs_run", "seconds", "error", "started_at", "finished_at")])


def _epoch_event(trial_id: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"trial": trial_id, **{k: row.get(k) for k in (*CURVE_KEYS, "seconds")}}


class _Curves:
    """New learning-curve rows of some trials since the marks in the cursor."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def ref(self, trial_id: str) -> str:
        return trial_id[len(self.prefix):] if trial_id.startswith(self.prefix) else trial_id

    def read(self, s: Session, state: StreamState, trial_ids: list[str]) -> dict[str, tuple[int, list[Any]]]:
        """Trial id -> (its last epoch now, its rows after its mark)."""
        out: dict[str, tuple[int, list[Any]]] = {}
        for i in range(0, len(trial_ids), 200):
            chunk = trial_ids[i:i + 200]
            last = dict(s.execute(
                select(Epoch.trial_id, func.max(Epoch.epoch)).where(Epoch.trial_id.in_(chunk))
                .group_by(Epoch.trial_id)
            ).all())
            wanted = []
            for tid in chunk:
                mark = state.cursor.marks.get(self.ref(tid), 0)
                top = int(last.get(tid) or 0)
                if top < mark:  # the curve was cut back (a rollback, a resumed attempt): follow it
                    mark = top
                    state.cursor.marks[self.ref(tid)] = top
                if top > mark:
                    wanted.append(and_(Epoch.trial_id == tid, Epoch.epoch > mark))
                out[tid] = (top, [])
            if wanted:
                rows = s.execute(
                    select(Epoch.__table__).where(or_(*wanted)).order_by(Epoch.trial_id, Epoch.epoch)
                ).mappings().all()
                for r in rows:
                    out[r["trial_id"]][1].append(dict(r))
        return out

    def add(self, batch: _Batch, state: StreamState, found: dict[str, tuple[int, list[Any]]]) -> None:
        for tid, (_top, rows) in found.items():
            ref = self.ref(tid)
            for r in rows:
                def advance(ref: str = ref, epoch: int = int(r["epoch"])) -> None:
                    state.cursor.marks[ref] = max(state.cursor.marks.get(ref, 0), epoch)

                batch.add("epoch", _epoch_event(tid, r), advance)


class StudyTopic:
    """A sweep: its record, its trials' changes and its running trials' new epochs."""

    def __init__(self, store: Store, study_id: str, stale_after: float) -> None:
        self.store, self.study_id, self.stale_after = store, study_id, stale_after
        self.curves = _Curves(f"{study_id}-")

    def _probe(self, s: Session) -> str:
        study = s.execute(
            select(Study.state, Study.finished_at, Study.error).where(Study.id == self.study_id)
        ).one_or_none()
        counts = s.execute(
            select(Trial.status, func.count()).where(Trial.study_id == self.study_id).group_by(Trial.status)
        ).all()
        rounds = s.execute(
            select(func.max(Round.round_index)).where(Round.study_id == self.study_id)
        ).scalar()
        return _hash([list(study) if study else None, sorted(map(list, counts)), rounds])

    def poll(self, state: StreamState) -> list[Event]:
        def go(s: Session) -> tuple[datetime, str, list[dict[str, Any]], dict[str, tuple[int, list[Any]]]]:
            now = as_utc(s.execute(select(db_now())).scalar_one())
            assert now is not None
            probe = self._probe(s)
            if state.first and state.fresh:
                since = now - timedelta(seconds=SLACK_SECONDS)
            elif state.first:
                since = state.cursor.watermark or now
            else:
                since = state.since or now
            b = _bind(self.store, since)
            again = [tid for tid, (_, _, status) in state.memory.items() if status in (
                TrialStatus.RUNNING, TrialStatus.PAUSED)]
            stmt = select(Trial.id).where(
                Trial.study_id == self.study_id,
                or_(Trial.heartbeat_at > b, Trial.finished_at > b, Trial.started_at > b,
                    Trial.status == TrialStatus.RUNNING if state.first and state.fresh
                    else Trial.id.in_(again)),
            )
            ids = list(s.execute(stmt).scalars())
            rows = trial_rows_by_id(s, ids)
            return now, probe, rows, self.curves.read(s, state, [r["id"] for r in rows])

        now, probe, rows, found = self.store.run(go)
        batch = _Batch(state)
        initial = state.first and state.fresh
        for row in sorted(rows, key=lambda r: (r["round_index"], r["trial_index"])):
            fp = _trial_fingerprint(row)
            ref = self.curves.ref(row["id"])
            known = state.memory[row["id"]][0] if row["id"] in state.memory else state.cursor.trials.get(ref)
            state.memory[row["id"]] = (fp, _stamp(row), row["status"])

            def sent(ref: str = ref, fp: str = fp) -> None:
                state.cursor.trials[ref] = fp

            if initial:
                state.cursor.marks[ref] = found[row["id"]][0]  # the page reads the curves so far
                state.cursor.trials[ref] = fp
                if row["status"] == TrialStatus.RUNNING:
                    batch.add("trial", trial_record(row))
            elif known != fp:
                batch.add("trial", trial_record(row), sent)
        if not initial:
            self.curves.add(batch, state, found)
        if state.probes.get("study") != probe or state.first:
            state.probes["study"] = probe
            if not state.seen("study", probe):
                record = study_detail(self.store, self.study_id, self.stale_after)
                batch.add("study", record, lambda: state.mark_sent("study", probe))
        self._forget(state, now)
        return batch.events(now)

    def _forget(self, state: StreamState, now: datetime) -> None:
        horizon = now - timedelta(seconds=2 * SLACK_SECONDS)
        for tid, (_, stamp, status) in list(state.memory.items()):
            if status not in (TrialStatus.RUNNING, TrialStatus.PAUSED) and (stamp is None or stamp < horizon):
                del state.memory[tid]
                state.cursor.trials.pop(self.curves.ref(tid), None)
                if status in FINISHED:
                    state.cursor.marks.pop(self.curves.ref(tid), None)


class PandaTopic:
    """A panda session: its record whenever it changes, and its new epochs."""

    def __init__(
        self, store: Store, session_id: str, trial_id: str, record: Callable[[], dict[str, Any]]
    ) -> None:
        self.store, self.session_id, self.trial_id, self.record = store, session_id, trial_id, record
        self.curves = _Curves(f"{session_id}-")

    def _probe(self, s: Session) -> str:
        trial = s.execute(
            select(Trial.status, Trial.attempts, Trial.worker, Trial.val_loss, Trial.heartbeat_at)
            .where(Trial.id == self.trial_id)
        ).one_or_none()
        study = s.execute(select(Study.state).where(Study.id == self.session_id)).scalar()
        requests = s.execute(
            select(func.count(), func.max(PandaRequest.id), func.count(PandaRequest.applied_index),
                   func.count(PandaRequest.refused)).where(PandaRequest.study_id == self.session_id)
        ).one()
        epochs = s.execute(
            select(func.count(), func.max(Epoch.epoch)).where(Epoch.trial_id == self.trial_id)
        ).one()
        return _hash([list(trial) if trial else None, study, list(requests), list(epochs)])

    def poll(self, state: StreamState) -> list[Event]:
        def go(s: Session) -> tuple[datetime, str, dict[str, tuple[int, list[Any]]]]:
            now = as_utc(s.execute(select(db_now())).scalar_one())
            assert now is not None
            return now, self._probe(s), self.curves.read(s, state, [self.trial_id])

        now, probe, found = self.store.run(go)
        batch = _Batch(state)
        if state.first and state.fresh:
            state.cursor.marks[self.curves.ref(self.trial_id)] = found[self.trial_id][0]
        else:
            self.curves.add(batch, state, found)
        if state.probes.get("panda") != probe or state.first:
            state.probes["panda"] = probe
            record = self.record()
            fingerprint = _hash({k: v for k, v in record.items() if k != "heartbeat_age"})
            if not state.seen("panda", fingerprint):
                batch.add("panda", record, lambda: state.mark_sent("panda", fingerprint))
        return batch.events(now)


class ListTopic:
    """The studies list: a study's row whenever its state, counts (or a session's epoch) change."""

    def __init__(self, store: Store, stale_after: float) -> None:
        self.store, self.stale_after = store, stale_after

    def poll(self, state: StreamState) -> list[Event]:
        def go(s: Session) -> tuple[datetime, dict[str, str], dict[str, Study]]:
            now = as_utc(s.execute(select(db_now())).scalar_one())
            assert now is not None
            rows = {st.id: st for st in s.scalars(select(Study).order_by(Study.created_at, Study.id))}
            counts: dict[str, list[Any]] = {sid: [] for sid in rows}
            for sid, status, n in s.execute(
                select(Trial.study_id, Trial.status, func.count()).group_by(Trial.study_id, Trial.status)
            ).all():
                counts.setdefault(sid, []).append([status, n])
            epochs = dict(s.execute(
                select(Trial.study_id, func.max(Epoch.epoch)).join(Epoch, Epoch.trial_id == Trial.id)
                .join(Study, Study.id == Trial.study_id).where(Study.kind == StudyKind.PANDA)
                .group_by(Trial.study_id)
            ).all())
            probes = {
                sid: _hash([st.state, st.finished_at, st.error, sorted(counts.get(sid, [])), epochs.get(sid)])
                for sid, st in rows.items()
            }
            return now, probes, rows

        now, probes, rows = self.store.run(go)
        batch = _Batch(state)
        changed = [sid for sid, p in probes.items() if not state.seen(sid, p)]
        if changed:
            stamps = updated_at(self.store, changed)
            for sid in changed:
                row = list_row(self.store, rows[sid], self.stale_after, now, stamps.get(sid))
                batch.add("study", row, lambda sid=sid: state.mark_sent(sid, probes[sid]))
        return batch.events(now)


def format_event(kind: str, data: Any, event_id: str) -> str:
    """One event in the ``text/event-stream`` format (the data is one line of JSON)."""
    return f"id: {event_id}\nevent: {kind}\ndata: {dumps(data)}\n\n"


class StreamCounter:
    """How many event streams are open (``caviar_dashboard_event_streams``)."""

    def __init__(self) -> None:
        self.open = 0
        self.total = 0


async def event_stream(
    request: Request,
    topic: Topic,
    state: StreamState,
    *,
    poll_seconds: float,
    ping_seconds: float,
    max_seconds: float,
    counter: StreamCounter,
) -> AsyncIterator[str]:
    """The stream's text: a ``retry`` hint, then each check's events, a ping comment now and then; it
    ends when the client goes away or after ``max_seconds``."""
    counter.open += 1
    counter.total += 1
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        began = last_ping = time.monotonic()
        while True:
            try:
                events = await anyio.to_thread.run_sync(topic.poll, state)
            except StoreError as exc:
                events = []
                yield f"event: error\ndata: {dumps({'error': describe(exc)})}\n\n"
            for kind, data, event_id in events:
                yield format_event(kind, data, event_id)
            now = time.monotonic()
            if now - last_ping >= ping_seconds:
                yield ": ping\n\n"
                last_ping = now
            if now - began >= max_seconds:
                return
            wake = now + poll_seconds
            while (left := wake - time.monotonic()) > 0:
                if await request.is_disconnected():
                    return
                await anyio.sleep(min(0.2, left))
    finally:
        counter.open -= 1
