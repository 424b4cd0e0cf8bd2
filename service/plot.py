"""The study picture: the objective against each searched hyperparameter, the best learning curves, and
the regions round by round.

Points are coloured by round; axes follow each distribution's scale (log for ``log`` and log-``int``;
``one_minus_log`` is drawn as 1 − value on a log axis); the best trial is a star. For every numeric
hyperparameter a "regions" panel draws each round's region as a bar at that round's height, with the
round's trials on it and the best trial so far marked, so a coarse-to-fine study shows its region
moving, shrinking, growing again and restarting. With a few rounds the regions are also drawn as
bands behind the points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.search.objective import Objective
from service.store import Store, TrialStatus, reads, rounds, studies

__all__ = ["plot_study", "TOP_CURVES"]

#: Learning curves drawn (the best trials by the objective).
TOP_CURVES = 5
#: Up to this many rounds, regions are also shaded behind the objective panels' points.
MAX_BANDED_ROUNDS = 4


def _axis_values(kind: str, values: list[Any]) -> list[Any]:
    if kind == "one_minus_log":
        return [1.0 - float(v) for v in values]
    return values


def plot_study(store: Store, study_id: str, path: Path) -> Path:
    """Draw ``study_id`` to ``path`` (PNG; matplotlib's Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from service.orchestrate import study_spec

    study = studies.require_study(store, study_id)
    spec = study_spec(store, study_id)
    objective = Objective(study.objective)
    rows = reads.trial_rows(store, study_id, objective=objective)
    round_rows = rounds.rounds(store, study_id)
    done = [r for r in rows if r["status"] == TrialStatus.COMPLETE and r[objective] is not None]
    lost = sum(1 for r in rows if r["status"] in (TrialStatus.DIVERGED, TrialStatus.FAILED))
    ranked = sorted(done, key=lambda r: objective.minimizing(r[objective]))
    best = ranked[0] if ranked else None

    dims = spec.space.dims
    numeric = [name for name, d in dims.items() if d.kind != "choice"] if round_rows else []
    n_panels = len(dims) + 1 + len(numeric)
    cols = min(3, n_panels)
    nrows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    n_rounds = max(len(round_rows), 1)
    colour = {r.round_index: cmap(0.15 + 0.7 * r.round_index / max(n_rounds - 1, 1)) for r in round_rows}
    y_values = [r[objective] for r in done]
    log_y = (
        not objective.maximize and y_values and min(y_values) > 0 and max(y_values) / min(y_values) > 20
    )

    for ax, (name, dist) in zip(axes.flat, dims.items(), strict=False):
        kind = dist.kind
        label = f"1 − {name}" if kind == "one_minus_log" else name
        categorical = kind == "choice"
        if categorical:
            choices = [str(c) for c in dist.region()]
            ax.set_xticks(range(len(choices)), choices)
            ax.set_xlim(-0.6, len(choices) - 0.4)
        else:
            _scale_axis(ax, dist)
        # Regions as bands, widest (round 0) at the back; for choices, a band on each kept choice.
        for r in round_rows if len(round_rows) <= MAX_BANDED_ROUNDS else ():
            bounds = r.region.get(name)
            if not isinstance(bounds, list):
                continue
            if categorical:
                for c in bounds:
                    if str(c) in choices:
                        i = choices.index(str(c))
                        ax.axvspan(i - 0.4, i + 0.4, color=colour[r.round_index], alpha=0.10, lw=0)
            elif len(bounds) == 2:
                lo, hi = sorted(_axis_values(kind, bounds))
                ax.axvspan(lo, hi, color=colour[r.round_index], alpha=0.10, lw=0)
        for r in round_rows:
            pts = [t for t in done if t["round_index"] == r.round_index]
            if not pts:
                continue
            xs = [t["params"].get(name) for t in pts]
            if categorical:
                idx = {c: i for i, c in enumerate(choices)}
                # Deterministic jitter spreads points of one choice.
                xs = [idx.get(str(x), 0) + 0.25 * (((i * 7919) % 11) / 10 - 0.5) for i, x in enumerate(xs)]
            else:
                xs = _axis_values(kind, xs)
            ax.scatter(xs, [t[objective] for t in pts], s=22, color=colour[r.round_index], alpha=0.85,
                       edgecolors="white", linewidths=0.4, zorder=3)
        if best is not None:
            bx = best["params"].get(name)
            bx = choices.index(str(bx)) if categorical else _axis_values(kind, [bx])[0]
            ax.scatter([bx], [best[objective]], marker="*", s=240, color="crimson", edgecolors="black",
                       linewidths=0.6, zorder=4)
        ax.set_xlabel(f"{label}  ({kind})")
        ax.set_ylabel(objective)
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.25, which="both")

    # Learning curves of the best trials.
    ax = list(axes.flat)[len(dims)]
    top = ranked[:TOP_CURVES]
    pruned = [r for r in rows if r["status"] == TrialStatus.PRUNED]
    curves = reads.epochs_of(store, [t["id"] for t in top + pruned])
    curve_cmap = plt.get_cmap("tab10")
    metric = objective.value
    for i, t in enumerate(pruned):  # stopped at a [pruning] rung: faint, behind the top trials
        pts = curves.get(t["id"], [])
        ax.plot([p["epoch"] for p in pts], [p[metric] for p in pts], color="0.55", lw=0.8, alpha=0.35,
                marker="." if len(pts) == 1 else None, label=f"pruned ({len(pruned)})" if i == 0 else None)
    for i, t in enumerate(top):
        pts = curves.get(t["id"], [])
        xs = [p["epoch"] for p in pts]
        c = curve_cmap(i)
        ax.plot(xs, [p[metric] for p in pts], color=c, lw=1.8,
                label=f"#{i + 1} r{t['round_index']}-t{t['trial_index']}  {t[objective]:.4g}")
        if metric == "val_loss":
            ax.plot(xs, [p["train_loss"] for p in pts], color=c, lw=1.0, ls="--", alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric + (" (solid), train_loss (dashed)" if metric == "val_loss" else ""))
    title = f"learning curves of the top {len(top)}" + (", pruned ones faint" if pruned else "")
    ax.set_title(title, fontsize=10)
    if metric == "val_loss" and any(curves.values()):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.25, which="both")
    if top or pruned:
        ax.legend(fontsize=8, loc="best")
    for ax, name in zip(list(axes.flat)[len(dims) + 1 :], numeric, strict=False):
        _regions_panel(ax, name, dims[name], round_rows, done, pruned, objective, colour)
    for extra in list(axes.flat)[n_panels:]:
        extra.axis("off")

    handles = [
        Line2D([], [], marker="o", ls="", color=colour[r.round_index], label=f"round {r.round_index}")
        for r in round_rows
    ]
    handles.append(Line2D([], [], marker="*", ls="", color="crimson", markeredgecolor="black",
                          markersize=12, label="best"))
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), frameon=False, fontsize=9)
    better = "higher is better" if objective.maximize else "lower is better"
    title = f"{study.id}: {objective} ({better}), {len(done)} complete trials"
    if lost:
        title += f", {lost} diverged/failed not shown"
    if best is not None:
        title += f"; best {best[objective]:.4g}"
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    note = "regions panels: each round's region as a bar, its trials as dots, the best so far as a red tick"
    if len(round_rows) <= MAX_BANDED_ROUNDS:
        note += "; shaded bands: the same regions"
    fig.text(0.01, 0.005, note, fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.02, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scale_axis(ax: Any, dist: Any) -> None:
    """A numeric hyperparameter's x axis on its distribution's scale (log for log, 1 − β and log-int)."""
    from matplotlib import ticker

    log_int = dist.kind == "int" and getattr(dist, "log", False)
    if dist.kind in ("log", "one_minus_log") or log_int:
        ax.set_xscale("log")
    if log_int:
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _regions_panel(ax: Any, name: str, dist: Any, round_rows: list[Any], done: list[dict[str, Any]],
                   pruned: list[dict[str, Any]], objective: Objective, colour: dict[int, Any]) -> None:
    """One hyperparameter's regions, a bar per round (round 0 at the top), with the round's trials
    (pruned ones hollow)."""
    from matplotlib import ticker

    kind = dist.kind
    _scale_axis(ax, dist)
    whole = sorted(_axis_values(kind, dist.region()))
    best_so_far: dict[str, Any] | None = None
    for r in round_rows:
        k = r.round_index
        bounds = r.region.get(name)
        if isinstance(bounds, list) and len(bounds) == 2:
            lo, hi = sorted(_axis_values(kind, bounds))
            ax.plot([lo, hi], [k, k], color=colour[k], lw=7, alpha=0.35, solid_capstyle="butt")
        stopped = [t for t in pruned if t["round_index"] == k]
        if stopped:
            ax.scatter(_axis_values(kind, [t["params"].get(name) for t in stopped]), [k] * len(stopped), s=14,
                       facecolors="none", edgecolors=colour[k], linewidths=0.8, zorder=3)
        pts = [t for t in done if t["round_index"] == k]
        if pts:
            ax.scatter(_axis_values(kind, [t["params"].get(name) for t in pts]), [k] * len(pts), s=14,
                       color=colour[k], edgecolors="black", linewidths=0.3, zorder=3)
        for t in pts:
            if best_so_far is None or objective.better(t[objective], best_so_far[objective]):
                best_so_far = t
        if best_so_far is not None:
            bx = _axis_values(kind, [best_so_far["params"].get(name)])[0]
            ax.plot([bx, bx], [k - 0.4, k + 0.4], color="crimson", lw=1.6, zorder=4)
    ax.set_xlim(*whole)
    ax.set_ylim(len(round_rows) - 0.5, -0.5)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel("round")
    label = f"1 − {name}" if kind == "one_minus_log" else name
    ax.set_xlabel(f"{label}: region per round")
    ax.grid(True, axis="x", alpha=0.25, which="both")
