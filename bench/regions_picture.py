"""Draw ``docs/regions.png``: coarse-to-fine's regions moving over a known function, v2 beside v1.

    python bench/regions_picture.py                 # writes docs/regions.png
    python bench/regions_picture.py --seed 3 -o /tmp/r.png

The function is Branin (three global minima) embedded in a learning rate (log scale) and Adam's β1
(1 − 10^r scale), exactly as ``bench/search.py synthetic`` embeds it; each panel is the unit square of
those two keys, so a region is a rectangle. Each round's region is drawn in its round's colour with the
round's trials; the star is the best trial. The lower panels give, per round, the region's area and the
best regret so far.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_functions import FUNCTIONS  # noqa: E402

from core.search import CoarseToFine, Proposal  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(version: int, seed: int, rounds: int, per_round: int):
    fn = FUNCTIONS["branin"]
    space = fn.space()
    kwargs = {} if version == 2 else {"keep_top": 3, "margin": 0.5}
    c2f = CoarseToFine(space, rounds=rounds, trials_per_round=per_round, seed=seed, version=version, **kwargs)
    plans, results = [], []
    while isinstance(plan := c2f.plan(results), Proposal):
        plans.append(plan)
        results.append([(t, fn.regret(t)) for t in plan.trials])
    return space, fn, plans, results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--per-round", dest="per_round", type=int, default=4)
    p.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "regions.png")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.6), gridspec_kw={"height_ratios": [3, 1.1]})
    cmap = plt.get_cmap("viridis")
    for col, (version, title) in enumerate(
        [(2, "version 2 (default): a trust region that moves, grows, shrinks, restarts"),
         (1, "version 1: nested zooms onto the hull of the 3 best (margin 0.5)")]
    ):
        space, fn, plans, results = run(version, args.seed, args.rounds, args.per_round)
        ax = axes[0, col]
        g = np.linspace(0, 1, 200)
        uu, vv = np.meshgrid(g, g)
        z = np.array([[fn.f(fn.low + np.array([a, b]) * (fn.high - fn.low)) for a in g] for b in g])
        ax.contourf(uu, vv, np.log10(z - fn.minimum + 1e-3), levels=24, cmap="Greys", alpha=0.55)
        for m in ((math.pi, 2.275), (-math.pi, 12.275), (9.42478, 2.475)):
            u = (np.array(m) - fn.low) / (fn.high - fn.low)
            ax.plot(*u, marker="x", color="crimson", ms=9, mew=2, zorder=5)
        n = len(plans)
        areas, regrets, best = [], [], math.inf
        for k, (plan, res) in enumerate(zip(plans, results, strict=True)):
            c = cmap(0.1 + 0.8 * k / max(n - 1, 1))
            lo = [space.dims[key].to_unit(plan.region.dims[key].region()[0]) for key in space.names]
            hi = [space.dims[key].to_unit(plan.region.dims[key].region()[1]) for key in space.names]
            ax.add_patch(Rectangle((lo[0], lo[1]), hi[0] - lo[0], hi[1] - lo[1], fill=False, ec=c, lw=1.6))
            pts = np.array([space.to_unit(t) for t, _ in res])
            ax.scatter(pts[:, 0], pts[:, 1], s=16, color=c, edgecolors="black", linewidths=0.3, zorder=3)
            best = min(best, min(v for _, v in res))
            areas.append((hi[0] - lo[0]) * (hi[1] - lo[1]))
            regrets.append(best)
        t_best, v_best = min((pv for r in results for pv in r), key=lambda pv: pv[1])
        ax.scatter(*space.to_unit(t_best), marker="*", s=260, color="gold", edgecolors="black", zorder=6)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9.5)
        ax.set_xlabel("learning_rate (unit coordinate of r = log10 α)")
        ax.set_ylabel("beta1 (unit coordinate of r = log10(1 − β1))")
        low = axes[1, col]
        rounds = np.arange(n)
        low.bar(rounds, areas, color=[cmap(0.1 + 0.8 * k / max(n - 1, 1)) for k in rounds], alpha=0.8)
        low.set_yscale("log")
        low.set_ylabel("region area")
        low.set_xlabel("round")
        twin = low.twinx()
        twin.plot(rounds, regrets, color="crimson", marker="o", ms=3)
        twin.set_yscale("log")
        twin.set_ylabel("best regret so far", color="crimson")
        low.set_title(f"{sum(map(len, results))} trials; final regret {v_best:.3g}", fontsize=9)
    fig.suptitle(
        f"coarse-to-fine on Branin (3 global minima, red x), rounds of {args.per_round}, seed {args.seed}: "
        "each rectangle is a round's region",
        fontsize=10.5,
    )
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
