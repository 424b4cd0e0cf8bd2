"""``caviar importance``: how much of the objective's variance each searched hyperparameter explains."""

from __future__ import annotations

import math
import sys

from service.cli import app
from service.commands._options import DbOption, ReadFormatOption, StudyArgument
from service.output import check_format, dumps, render


@app.command()
def importance(
    study: StudyArgument,
    db: DbOption = None,
    fmt: ReadFormatOption = "table",
) -> None:
    """Rank the searched hyperparameters by their measured share of the objective's variance.

    Measured from the study's own finished trials (a random forest's functional ANOVA), so the
    ranking is this problem's, not a rule of thumb.

    Example:
        caviar importance digits-c2f-3fa9b1
    """
    from core.search import importance as measure
    from service.orchestrate import study_spec
    from service.store import TrialStatus, open_store, reads, studies

    check_format(fmt)
    store = open_store(db, create=False)
    try:
        row = studies.require_study(store, study)
        spec = study_spec(store, study)
        done = [
            r for r in reads.trial_rows(store, study, objective=row.objective)
            if r["status"] in (TrialStatus.COMPLETE, TrialStatus.DIVERGED, TrialStatus.FAILED)
        ]
        values = [
            r[row.objective]
            if r["status"] == TrialStatus.COMPLETE and r[row.objective] is not None
            else math.nan
            for r in done
        ]
        shares = measure(spec, [r["params"] for r in done], values)
        ranked = sorted(shares.items(), key=lambda kv: -kv[1])
        rows = [{"rank": i + 1, "hyperparameter": k, "share": v} for i, (k, v) in enumerate(ranked)]
        if fmt == "json":
            sys.stdout.write(dumps({"study": study, "trials": len(done), "importance": rows}) + "\n")
        else:
            render(rows, ["rank", "hyperparameter", "share"], fmt,
                   title=f"{study}: share of {row.objective} variance over {len(done)} trials")
    finally:
        store.dispose()
