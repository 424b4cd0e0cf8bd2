"""Following a study that runs elsewhere (on workers) until it ends, through the store alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.store import FINAL_STUDY, Store, StudyState
from service.store.rounds import RoundTally, latest_round_tally

__all__ = ["follow"]


def follow(
    store: Store,
    study_id: str,
    *,
    poll: float = 0.5,
    on_progress: Callable[[RoundTally], None] | None = None,
) -> StudyState:
    """Poll the study until it is complete, failed or cancelled; return that state.

    The study advances without this process: stopping ``follow`` (Ctrl-C) leaves it running on the workers.

    Args:
        poll: seconds between two reads of the store.
        on_progress: called with the latest round's tally whenever it changed.
    """
    last: tuple[Any, ...] | None = None
    while True:
        tally = latest_round_tally(store, study_id)
        key = (tally.state, tally.round_index, tuple(sorted(tally.counts.items())))
        if on_progress is not None and key != last:
            on_progress(tally)
        last = key
        if tally.state in FINAL_STUDY:
            return tally.state
        time.sleep(poll)
