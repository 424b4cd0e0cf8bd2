"""What the read commands and the Python API show: trials and studies as plain JSON-safe records.

Field names are part of caviar's interface (``--format json``, ``service.api``): a trial has ``id``,
``round``, ``index``, ``status``, ``attempts``, ``params``, ``val_loss``, ``val_accuracy``, ``seconds``
and more; a study has ``id``, ``name``, ``state``, ``rounds``, ``counts`` and ``best``.
"""

from __future__ import annotations

from typing import Any

from service.store import Store, reads, rounds
from service.store.clock import as_utc
from service.store.models import Study

__all__ = ["trial_record", "study_record", "flat_trial"]


def trial_record(row: dict[str, Any]) -> dict[str, Any]:
    """A trial row from :func:`service.store.reads.trial_rows` as the public record."""
    return {
        "id": row["id"],
        "round": row["round_index"],
        "index": row["trial_index"],
        "status": row["status"],
        "attempts": row["attempts"],
        "params": row["params"],
        "seed": row["seed"],
        "val_loss": row["val_loss"],
        "val_accuracy": row["val_accuracy"],
        "train_loss": row["train_loss"],
        "epochs_run": row["epochs_run"],
        "seconds": row["seconds"],
        "samples_per_second": row["samples_per_second"],
        "worker": row["worker"],
        "error": row["error"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


def flat_trial(record: dict[str, Any]) -> dict[str, Any]:
    """A trial record with each hyperparameter in its own ``param.<name>`` column (for CSV)."""
    out = {k: v for k, v in record.items() if k != "params"}
    for key, value in (record.get("params") or {}).items():
        out[f"param.{key}"] = value
    return out


def study_record(store: Store, study: Study) -> dict[str, Any]:
    """A study's public record: identity, state, its rounds with regions and counts, counts, best."""
    counts = reads.counts_by_status(store, study.id)
    per_round = rounds.round_counts(store, study.id)
    round_records = [
        {
            "index": r.round_index,
            "parent": r.parent_index,
            "region": r.region,
            "counts": per_round.get(r.round_index, {}),
            "trials": sum(per_round.get(r.round_index, {}).values()),
        }
        for r in rounds.rounds(store, study.id)
    ]
    best = reads.best_trial_row(store, study.id, study.objective)
    return {
        "id": study.id,
        "name": study.name,
        "kind": study.kind,
        "state": study.state,
        "objective": study.objective,
        "strategy": study.strategy,
        "seed": study.seed,
        "dataset": study.spec["study"].get("dataset") or study.spec["study"].get("data"),
        "created_at": as_utc(study.created_at),
        "finished_at": as_utc(study.finished_at),
        "error": study.error,
        "trials": sum(counts.values()),
        "counts": counts,
        "rounds": round_records,
        "best": trial_record(best) if best else None,
    }
