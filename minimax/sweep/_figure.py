"""Heat maps of a sweep: the certified value (upper bound) and gap over two swept axes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SKIP = {"index", "value", "upper", "lower", "gap", "seconds", "iterations"}


def swept_axes(table: Any, axes: Sequence[str] | None = None) -> list[str]:
    """The given axes, else numeric config columns that take more than one value."""
    if axes:
        return [a for a in axes if a in table.columns]
    found = []
    for col in table.columns:
        if col in _SKIP or col.startswith("solver.") or table[col].dtype.kind not in "if":
            continue
        if table[col].nunique(dropna=True) > 1:
            found.append(col)
    return found


def plot_sweep(table: Any, path: str | Path, axes: Sequence[str] | None = None) -> Path | None:
    """Value and gap heat maps over the first two swept axes (a line plot for one axis).

    Points with ``status != "ok"`` are left blank. Returns the path, or None when nothing is
    swept.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = swept_axes(table, axes)
    ok = table[table["status"] == "ok"]
    if not names or not len(ok):
        return None
    fig, panels = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, metric, label in ((panels[0], "value", "certified value V (upper bound)"),
                              (panels[1], "gap", "certified gap (upper - lower)")):
        if len(names) == 1:
            data = ok.groupby(names[0])[metric].mean()
            ax.plot(data.index, data.values, marker=".")
            ax.set_xlabel(names[0])
            ax.set_ylabel(metric)
        else:
            y, x = names[0], names[1]
            grid = table.pivot_table(index=y, columns=x, values=metric, aggfunc="mean",
                                     dropna=False)
            mesh = ax.pcolormesh(grid.columns.astype(float), grid.index.astype(float),
                                 grid.values.astype(float), shading="nearest",
                                 cmap="viridis" if metric == "value" else "magma")
            fig.colorbar(mesh, ax=ax, label=metric)
            ax.set_xlabel(x)
            ax.set_ylabel(y)
        ax.set_title(label)
    failed = int((table["status"] != "ok").sum())
    fig.suptitle(f"{len(ok)} points solved" + (f", {failed} failed (blank)" if failed else ""))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
