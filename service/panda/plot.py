"""The picture of a panda session: its learning curves with every change marked, its forks (and its
parent) on the same axes, the learning rate below, and the learning-rate range test when there was one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.store import Store

__all__ = ["plot_session", "family"]


def family(store: Store, session_id: str) -> list[dict[str, Any]]:
    """The session, then its parent (if a fork) and its forks, as ``show`` records."""
    from service.panda.session import record

    me = record(store, session_id)
    out = [me]
    if me["parent"]:
        from service.store import panda as db

        if db.session_view(store, me["parent"]["id"]) is not None:
            out.append(record(store, me["parent"]["id"]))
    out.extend(record(store, c["id"]) for c in me["children"])
    return out


def plot_session(store: Store, session_id: str, path: Path) -> Path:
    """Draw ``session_id`` to ``path`` (PNG; matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sessions = family(store, session_id)
    me = sessions[0]
    lr_find = me.get("lr_find")
    layout = [["loss", "acc"], ["lr", "lr"]]
    if lr_find:
        layout = [["loss", "acc", "find"], ["lr", "lr", "find"]]
    fig, ax = plt.subplot_mosaic(layout, figsize=(5.2 * len(layout[0]), 7.5),
                                 gridspec_kw={"height_ratios": [3, 1.3]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(sessions):
        colour = colours[i % len(colours)]
        # a fork shares its parent's curve up to the fork: drawn from there on, the parent from its start
        since = s["parent"]["epoch"] if s["parent"] and s is not me else 0
        hist = [h for h in s["history"] if h["epoch"] >= since]
        e = [h["epoch"] for h in hist]
        label = s["name"] + (f" (fork @ {s['parent']['epoch']})" if s["parent"] else "")
        width = 2.0 if i == 0 else 1.3
        ax["loss"].plot(e, [h["val_loss"] for h in hist], color=colour, lw=width, label=label)
        ax["loss"].plot(e, [h["train_loss"] for h in hist], color=colour, lw=width * 0.6, ls="--")
        ax["acc"].plot(e, [h["val_accuracy"] for h in hist], color=colour, lw=width)
        ax["lr"].plot(e, [h["learning_rate"] for h in hist], color=colour, lw=width, drawstyle="steps-pre")
        if since:
            ax["loss"].plot([since], [hist[0]["val_loss"]], marker="o", color=colour)
        by_epoch: dict[int, list[str]] = {}
        for c in s["changes"]:
            if c["epoch"] is not None and c["epoch"] >= since:
                text = c["key"] if c["value"] is None else f"{c['key']}={c['value']}"
                by_epoch.setdefault(int(c["epoch"]), []).append(text)
        for k, (epoch, texts) in enumerate(sorted(by_epoch.items())):
            for name in ("loss", "acc", "lr"):
                ax[name].axvline(epoch, color=colour, lw=0.8, ls=":", alpha=0.8)
            ax["loss"].annotate(
                "\n".join(texts), (epoch, 0.98), xycoords=("data", "axes fraction"), fontsize=7,
                va="top", ha="left", color=colour, xytext=(3, -26 * (k % 3) - 10 * i),
                textcoords="offset points",
            )
    ax["loss"].set_yscale("log")
    ax["loss"].set_ylabel("loss (solid: validation, dashed: training)")
    ax["loss"].legend(fontsize=8, loc="lower left")
    ax["acc"].set_ylabel("validation accuracy")
    ax["lr"].set_yscale("log")
    ax["lr"].set_xlabel("epoch")
    ax["lr"].set_ylabel("learning rate")
    if lr_find:
        points = [(r, v) for r, v in lr_find["points"] if v is not None]
        ax["find"].plot([r for r, _ in points], [v for _, v in points], marker="o")
        ax["find"].axvline(lr_find["suggested"], color="k", ls=":")
        ax["find"].set_xscale("log")
        ax["find"].set_yscale("log")
        ax["find"].set_title(f"learning-rate range test: suggested {lr_find['suggested']:.3g}", fontsize=9)
        ax["find"].set_xlabel("learning rate (one epoch each)")
        ax["find"].set_ylabel("training loss after one epoch")
    fig.suptitle(f"panda session {me['name']} ({me['id']}): {me['state']} at epoch {me['epoch']}; "
                 f"dotted lines: changes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
