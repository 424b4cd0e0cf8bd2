"""What ``caviar run`` and ``caviar resume`` print when a study ends, and the per-round progress bars."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from core.search.objective import Objective
from service.output import dumps, format_value, render, stdout_console
from service.store import FINISHED, Store, TrialStatus, reads, rounds, studies
from service.views import study_record, trial_record

__all__ = ["RoundProgress", "print_summary", "format_region", "study_kinds", "LEADERBOARD_SIZE"]

#: Trials shown in the leaderboard after a run.
LEADERBOARD_SIZE = 10


def format_region(region: dict[str, Any], kinds: dict[str, str] | None = None) -> str:
    """``name [low, high]`` per dimension, choices as ``name {a, b}``.

    Args:
        region: name -> [low, high] or the list of choices.
        kinds: name -> distribution kind; without it a two-number list is taken as a range.
    """
    parts = []
    for name, value in region.items():
        kind = (kinds or {}).get(name)
        if kind != "choice" and isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            parts.append(f"{name} [{format_value(value[0])}, {format_value(value[1])}]")
        else:
            parts.append(f"{name} {{{', '.join(str(v) for v in value)}}}")
    return "  ".join(parts)


def study_kinds(store: Store, study_id: str) -> dict[str, str]:
    """Searched hyperparameter -> distribution kind, for :func:`format_region`."""
    from service.orchestrate import study_spec

    return {name: dist.kind for name, dist in study_spec(store, study_id).space.dims.items()}


class RoundProgress:
    """One progress bar per round on stderr, shown only at a terminal.

    Call :meth:`update` after each finished trial; it reads the per-round counts from the store.
    """

    def __init__(self, store: Store, study_id: str, *, enabled: bool = True) -> None:
        self.store = store
        self.study_id = study_id
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("round {task.fields[round]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.enabled,
        )
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> RoundProgress:
        self._progress.__enter__()
        self.update()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def update(self, _trial_id: str | None = None) -> None:
        """Refresh the bars from the store."""
        if not self.enabled:
            return
        study = studies.get_study(self.store, self.study_id)
        objective = study.objective if study else "val_loss"
        for rnd, counts in sorted(rounds.round_counts(self.store, self.study_id).items()):
            done = sum(n for s, n in counts.items() if s in FINISHED)
            total = sum(counts.values())
            best = reads.trial_rows(
                self.store, self.study_id, objective=objective, round_index=rnd, status=TrialStatus.COMPLETE,
                sort="objective", limit=1,
            )
            best_text = format_value(best[0][objective]) if best else "-"
            if rnd not in self._tasks:
                self._tasks[rnd] = self._progress.add_task("", total=total, round=rnd, best=best_text)
            self._progress.update(self._tasks[rnd], completed=done, total=total, best=best_text)


def print_summary(store: Store, study_id: str, fmt: str = "table") -> dict[str, Any]:
    """Print each round's region and the leaderboard (or, with ``fmt="json"``, the study record with a
    ``leaderboard`` list). Returns the study record."""
    study = studies.require_study(store, study_id)
    record = study_record(store, study)
    top = [
        trial_record(r)
        for r in reads.trial_rows(
            store, study_id, objective=study.objective, sort="objective", limit=LEADERBOARD_SIZE
        )
    ]
    record["leaderboard"] = top
    if fmt == "json":
        sys.stdout.write(dumps(record) + "\n")
        return record
    console = stdout_console()
    console.print(
        f"study {study.id} ({study.strategy}, {study.objective}): {study.state}, {record['trials']} trials"
    )
    kinds = study_kinds(store, study_id)
    round_rows = []
    for r in record["rounds"]:
        rows = reads.trial_rows(
            store, study_id, objective=study.objective, round_index=r["index"], status=TrialStatus.COMPLETE,
            sort="objective", limit=1,
        )
        round_rows.append(
            {
                "round": r["index"],
                "trials": r["trials"],
                "best": rows[0][study.objective] if rows else None,
                "region": format_region(r["region"], kinds),
            }
        )
    render(round_rows, ["round", "trials", "best", "region"], "table", title="Rounds", console=console)
    names = list(top[0]["params"]) if top else []
    other = Objective(study.objective).other
    board = [
        {
            "rank": i + 1, "id": t["id"], "round": t["round"], "status": t["status"],
            study.objective: t[study.objective], other: t[other],
            **t["params"], "seconds": t["seconds"],
        }
        for i, t in enumerate(top)
    ]
    cols = ["rank", "id", "round", "status", study.objective, other, *names, "seconds"]
    render(board, cols, "table", title="Leaderboard", console=console)
    return record
