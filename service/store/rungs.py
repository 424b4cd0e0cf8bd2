"""The rungs of ``[pruning]``: deciding, once a round's trials all wait at a rung, which continue.

Successive halving (:mod:`core.search.pruning`): when none of the latest round's trials is queued or
running and some are ``paused`` at a rung, the best ``max(1, n // reduction)`` of the ``n`` paused there
are queued again with the next rung as their target (resumed from the checkpoint they paused with) and
the others become ``pruned``, their checkpoints dropped. The choice is :func:`core.search.pruning.promote`
of the rung's stored results, made under the study's row lock, so of two processes that see the rung
over, one decides and the other finds nothing left to decide.

ASHA (:func:`promote_asha`) decides at every result instead: a trial waiting at a rung continues as soon as
it ranks in the best ``n // reduction`` of the ``n`` trials whose curve has reached that rung (their
value there is read from the learning curve, so trials that went on still count); once nothing of the
round is queued or running and nothing more can continue, the best trial waiting at the highest rung
continues if the round has no fully trained trial yet, and the rest are pruned.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.search.objective import Objective
from core.search.pruning import Pruning, promote, promote_async
from service.store import checkpoints
from service.store.clock import db_now
from service.store.models import Epoch, Study, Trial
from service.store.states import LIVE_TRIAL, TrialStatus
from service.store.store import Store

__all__ = ["promote_rung", "promote_asha"]


def _continue(s: Session, trial_id: str, attempts: int, target: int) -> None:
    """Queue a paused trial again for its next rung; its attempts there count from now."""
    s.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.status == TrialStatus.PAUSED)
        .values(status=TrialStatus.QUEUED, target_epochs=target, rung_base=attempts, worker=None,
                heartbeat_at=None, finished_at=None)
    )


def _prune(s: Session, trial_id: str) -> None:
    """Stop a paused trial at its rung: status ``pruned``, its checkpoint dropped."""
    s.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.status == TrialStatus.PAUSED)
        .values(status=TrialStatus.PRUNED, finished_at=db_now())
    )
    checkpoints.drop(s, trial_id)


def promote_rung(
    store: Store, study_id: str, round_index: int, objective: Objective, pruning: Pruning
) -> list[str]:
    """Decide the rung the latest round's paused trials wait at; return the ids queued again (trial order).

    Nothing happens (an empty list) while a trial of the round is queued or running, or when no trial
    is paused.
    """
    column = Trial.val_accuracy if objective.maximize else Trial.val_loss
    of_round = (Trial.study_id == study_id) & (Trial.round_index == round_index)

    def go(s: Session) -> list[str]:
        s.execute(select(Study.id).where(Study.id == study_id).with_for_update(key_share=True))
        if s.execute(select(Trial.id).where(of_round, Trial.status.in_(LIVE_TRIAL)).limit(1)).first():
            return []
        paused = s.execute(
            select(Trial.id, Trial.trial_index, Trial.target_epochs, Trial.attempts, column)
            .where(of_round, Trial.status == TrialStatus.PAUSED)
            .order_by(Trial.trial_index)
        ).all()
        if not paused:
            return []
        rung = min(int(r.target_epochs or 0) for r in paused)
        at = [r for r in paused if int(r.target_epochs or 0) == rung]
        nxt = pruning.next_rung(rung)
        keep = set(promote([(r.trial_index, objective.minimizing(r[4])) for r in at], pruning.reduction))
        queued = []
        for r in at:
            if r.trial_index in keep and nxt is not None:
                _continue(s, r.id, r.attempts, nxt)
                queued.append(r.id)
            else:
                _prune(s, r.id)
        return queued

    return store.run(go)


def promote_asha(
    store: Store, study_id: str, round_index: int, objective: Objective, pruning: Pruning
) -> list[str]:
    """ASHA's decisions for the latest round's waiting trials; return the ids queued again (trial order)."""
    column = Epoch.val_accuracy if objective.maximize else Epoch.val_loss
    of_round = (Trial.study_id == study_id) & (Trial.round_index == round_index)

    def go(s: Session) -> list[str]:
        s.execute(select(Study.id).where(Study.id == study_id).with_for_update(key_share=True))
        trials = s.execute(
            select(Trial.id, Trial.trial_index, Trial.status, Trial.target_epochs, Trial.attempts,
                   Trial.val_loss, Trial.val_accuracy).where(of_round).order_by(Trial.trial_index)
        ).all()
        waiting = [t for t in trials if t.status == TrialStatus.PAUSED]
        if not waiting:
            return []
        index = {t.id: t.trial_index for t in trials}
        go_on: list[tuple[object, int]] = []  # (trial row, its next rung)
        for rung in pruning.rungs[:-1]:
            here = [t for t in waiting if int(t.target_epochs or 0) == rung]
            if not here:
                continue
            values = s.execute(
                select(Epoch.trial_id, column).join(Trial, Trial.id == Epoch.trial_id)
                .where(of_round, Epoch.epoch == rung)
            ).all()
            reached = [(index[tid], objective.minimizing(v)) for tid, v in values]
            chosen = set(promote_async(reached, [t.trial_index for t in here], pruning.reduction))
            go_on += [(t, pruning.next_rung(rung)) for t in here if t.trial_index in chosen]
        live = any(t.status in LIVE_TRIAL for t in trials)
        if not go_on and not live:
            if not any(t.status == TrialStatus.COMPLETE for t in trials):  # one fully trained per round
                top = max(int(t.target_epochs or 0) for t in waiting)
                metric = "val_accuracy" if objective.maximize else "val_loss"
                at_top = [(t.trial_index, objective.minimizing(getattr(t, metric)))
                          for t in waiting if int(t.target_epochs or 0) == top]
                best = promote(at_top, len(at_top) + 1)[0]
                go_on = [(t, pruning.next_rung(top)) for t in waiting if t.trial_index == best]
            moving = {t.id for t, _ in go_on}
            for t in waiting:
                if t.id not in moving:
                    _prune(s, t.id)
        for t, nxt in go_on:
            _continue(s, t.id, t.attempts, nxt)
        return sorted((t.id for t, _ in go_on), key=index.__getitem__)

    return store.run(go)
