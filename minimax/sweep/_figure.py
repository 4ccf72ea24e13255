"""Heat maps of a sweep: the certified value (upper bound) and gap over two swept axes.

Only points with an answer (status ``certified`` or ``gap_above_tol``), finite swept-axis values
and a finite metric are drawn; the others are left blank, counted, and named in the figure's
title and on the log, so a failed or non-finite point never stops the figure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minimax.sweep._status import ANSWERED

log = logging.getLogger("minimax.sweep")

_SKIP = {"index", "value", "upper", "lower", "gap", "seconds", "iterations"}
METRICS = (("value", "certified value V (upper bound)"), ("gap", "certified gap (upper - lower)"))


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


def _finite(column: Any) -> Any:
    return np.isfinite(column.to_numpy(dtype=float, na_value=np.nan))


def skipped(table: Any, names: Sequence[str]) -> tuple[Any, dict[str, int]]:
    """The drawable rows and the count of the others by reason."""
    answered = table["status"].isin(ANSWERED)
    axes_ok = np.ones(len(table), dtype=bool)
    for name in names:
        axes_ok &= _finite(table[name])
    metrics_ok = _finite(table["value"]) & _finite(table["gap"])
    reasons = {
        "failed": int((~answered).sum()),
        "non-finite axis value": int((answered & ~axes_ok).sum()),
        "non-finite value or gap": int((answered & axes_ok & ~metrics_ok).sum()),
    }
    return table[answered & axes_ok & metrics_ok], {k: v for k, v in reasons.items() if v}


def plot_sweep(table: Any, path: str | Path, axes: Sequence[str] | None = None) -> Path | None:
    """Value and gap heat maps over the first two swept axes (a line plot for one axis).

    Returns the path, or None when nothing is swept or nothing can be drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = swept_axes(table, axes)[:2]
    if not names:
        return None
    drawn, reasons = skipped(table, names)
    note = ", ".join(f"{v} {k}" for k, v in reasons.items())
    if note:
        log.warning("sweep figure: %d of %d points drawn; left blank: %s", len(drawn),
                    len(table), note)
    if not len(drawn):
        return None
    if len(names) == 2 and min(drawn[n].nunique() for n in names) < 2:
        names = [n for n in names if drawn[n].nunique() > 1][:1] or names[:1]
    fig, panels = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (metric, label) in zip(panels, METRICS, strict=True):
        if len(names) == 1:
            data = drawn.groupby(names[0])[metric].mean()
            ax.plot(data.index, data.values, marker=".")
            ax.set_xlabel(names[0])
            ax.set_ylabel(metric)
        else:
            y, x = names
            grid = drawn.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
            mesh = ax.pcolormesh(grid.columns.astype(float), grid.index.astype(float),
                                 np.ma.masked_invalid(grid.to_numpy(dtype=float)),
                                 shading="nearest",
                                 cmap="viridis" if metric == "value" else "magma")
            fig.colorbar(mesh, ax=ax, label=metric)
            ax.set_xlabel(x)
            ax.set_ylabel(y)
        ax.set_title(label)
    fig.suptitle(f"{len(drawn)} points drawn" + (f"; left blank: {note}" if note else ""))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
