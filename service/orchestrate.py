"""Submitting studies and advancing them round by round.

Both functions are idempotent and safe to call from any process at any time: :func:`advance_study`
recomputes the next round from the stored results with the pure ``core.search.plan_round`` and
creates it under the unique constraint ``(study_id, round_index)``, so two processes racing create it
once. A process that loses the race gets no ids back; the winner dispatches them. A crash between
creating a round and dispatching it leaves ``queued`` trials that ``caviar resume`` (local) or the
reaper (Celery) dispatch again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.search.objective import Objective
from service.errors import CaviarError
from service.store import LIVE_STUDY, Store, StudyState, rounds, rungs, studies
from service.store.states import StudyKind

__all__ = ["submit", "advance_study", "study_spec", "is_panda", "trial_id", "study_of", "trial_seed"]

_specs: dict[str, Any] = {}
_kinds: dict[str, bool] = {}
_specs_lock = threading.Lock()


def trial_id(study_id: str, round_index: int, index: int) -> str:
    """The deterministic id of trial ``index`` of round ``round_index``."""
    return f"{study_id}-r{round_index}-t{index}"


def study_of(trial: str) -> str:
    """The study id inside a trial id (the inverse of :func:`trial_id`).

    >>> study_of("digits-c2f-3fa9b1-r2-t11")
    'digits-c2f-3fa9b1'
    """
    match = _TRIAL_ID.fullmatch(trial)
    if match is None:
        raise BadInput("trial", trial, "expected a trial id STUDY-rROUND-tINDEX")
    return match[1]


_TRIAL_ID = re.compile(r"(.+)-r\d+-t\d+")


def trial_seed(spec: Any, round_index: int, index: int) -> int:
    """A trial's training seed: ``[fixed] seed`` if set, else derived from the study seed and the trial's
    position (round, index), so two submissions of the same study file train identical trials."""
    if "seed" in spec.fixed:
        return int(spec.fixed["seed"])
    digest = hashlib.sha256(f"caviar-trial:{spec.seed}:{round_index}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()
    return (slug or "study")[:60]


def is_panda(store: Store, study_id: str) -> bool:
    """Whether the study is a panda session (memoized per process: a study's kind never changes)."""
    with _specs_lock:
        known = _kinds.get(study_id)
    if known is None:
        study = studies.get_study(store, study_id)
        if study is None:
            return False  # not remembered: the study may be recorded later
        known = study.kind == StudyKind.PANDA
        with _specs_lock:
            _kinds[study_id] = known
    return known


def study_spec(store: Store, study_id: str) -> Any:
    """The study's :class:`core.search.StudySpec`, parsed from its stored table (memoized per process).

    Raises:
        BadInput: the study is a panda session, which has no strategy to plan with.
    """
    with _specs_lock:
        spec = _specs.get(study_id)
    if spec is not None:
        return spec
    from core.search import parse_stored

    study = studies.require_study(store, study_id)
    if study.kind == StudyKind.PANDA:
        raise BadInput("study", study_id, "a sweep (this is a panda session: see caviar panda show)")
    # The normalised spec round-trips through parse_stored and keeps data paths resolved.
    spec = parse_stored(study.spec)
    with _specs_lock:
        _specs[study_id] = spec
    return spec


# --- submit and advance ----------------------------------------------------------------------------------


def _round_trials(study_id: str, spec: Any, plan: Any) -> list[tuple[str, int, dict[str, Any], int]]:
    return [
        (trial_id(study_id, plan.index, i), i, dict(params), trial_seed(spec, plan.index, i))
        for i, params in enumerate(plan.trials)
    ]


def submit(
    store: Store,
    spec: Any,
    *,
    text: str | None = None,
    base_dir: str | Path | None = None,
    queue: str | None = None,
) -> tuple[str, list[str]]:
    """Record a study and its round 0; return (study id, trial ids to dispatch).

    The recorded spec, which workers re-parse, names its data file by an absolute path: workers run in
    other directories (or on other machines sharing a file system). :func:`service.study_file.
    load_study_file` already resolves ``data`` against the study file's folder; a spec parsed from text
    with a relative ``data`` is resolved here against ``base_dir``. ``raw`` keeps the text as given.

    Args:
        store: the study store.
        spec: the parsed study (:class:`core.search.StudySpec`).
        text: the study file's text, kept for reference (workers re-parse ``spec.to_dict()``).
        base_dir: the folder a relative ``data`` path is relative to (default: the current directory).
        queue: the broker queue the study's trials go to; None for the local pool (``caviar run``).

    Raises:
        BadInput: the study proposes no trial at all.
    """
    from core.search import plan_round

    if spec.data is not None and not Path(spec.data).is_absolute():
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        # Absolute but not resolved: a symlink keeps its own name (and extension) for later re-reads.
        spec = dataclasses.replace(spec, data=os.path.abspath(base / spec.data))
    raw = json.loads(json.dumps(spec.raw))  # as the database will give it back
    plan = plan_round(spec, [])
    if plan is None or not plan.trials:
        raise BadInput("[strategy]", spec.strategy, "expected a study that proposes at least one trial")
    data_fingerprint = None
    if spec.data is not None:
        from core.data import fingerprint
        from service.settings import data_root

        data_fingerprint = fingerprint(spec.data, data_root())
    for _ in range(5):
        study_id = f"{_slug(spec.name)}-{secrets.token_hex(3)}"
        try:
            studies.create_study(
                store, study_id=study_id, name=spec.name, spec_raw=raw, spec=spec.to_dict(), spec_text=text,
                seed=int(spec.seed), objective=spec.objective, strategy=spec.strategy, queue=queue,
                data_fingerprint=data_fingerprint,
            )
            break
        except studies.DuplicateStudy:
            continue
    else:
        raise CaviarError("could not allocate a unique study id")
    with _specs_lock:
        _specs[study_id] = spec
    trials = _round_trials(study_id, spec, plan)
    rounds.create_round(store, study_id, plan.index, plan.region, None, trials, _first_rung(spec))
    return study_id, [t[0] for t in trials]


def _first_rung(spec: Any) -> int | None:
    """The epochs a new round's trials train to first: the first ``[pruning]`` rung, or None (all)."""
    return spec.pruning.rungs[0] if spec.pruning.active else None


def advance_study(store: Store, study_id: str, progress: rounds.Progress | None = None) -> list[str]:
    """Create the next round if the latest one is finished, or mark the study complete; with
    ``[pruning]``, decide a rung once the latest round's trials all wait at it (:mod:`service.store.rungs`).

    Idempotent; safe to call concurrently from many processes. Deciding that nothing is due (the usual
    case: the round still has trials to run) takes one query, or none when ``progress`` is given.

    Args:
        progress: the study's progress read after the caller's last write committed (or in the same
            transaction, under the study's lock: :func:`service.store.lease.finish_trial_progress`);
            None reads it here.

    Returns:
        The ids of trials this call queued, a new round's or a rung's promoted ones (empty if nothing
        was due or another process did it first; that process dispatches them).
    """
    from core.search import plan_round

    if is_panda(store, study_id):
        return []  # one trial, run by its runner: no round to plan
    if progress is None:
        progress = rounds.study_progress(store, study_id)
    if progress.waiting and progress.latest is not None:  # trials wait at a [pruning] rung
        spec = study_spec(store, study_id)
        objective = Objective(progress.objective or spec.objective)
        if spec.pruning.kind == "asha":
            return rungs.promote_asha(store, study_id, progress.latest, objective, spec.pruning)
        if progress.rung_due:
            return rungs.promote_rung(store, study_id, progress.latest, objective, spec.pruning)
        return []
    if not progress.due:
        return []
    spec = study_spec(store, study_id)
    previous = rounds.round_results(store, study_id, progress.objective or spec.objective)
    if progress.latest is not None:
        previous = previous[: progress.latest + 1]
    plan = plan_round(spec, previous)
    if plan is None or not plan.trials:
        studies.set_study_state(store, study_id, StudyState.COMPLETE, only_from=LIVE_STUDY)
        return []
    trials = _round_trials(study_id, spec, plan)
    parent = plan.index - 1 if plan.index > 0 else None
    if rounds.create_round(store, study_id, plan.index, plan.region, parent, trials, _first_rung(spec)):
        return [t[0] for t in trials]
    return []
