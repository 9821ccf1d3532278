"""The error-vs-input plot of ``stabench expr --plot PATH``: one panel per dtype, one line per form,
ulp error (log scale) against the one variable that varies — the picture Herbie draws first.

Same conventions as :mod:`stabench.plots`: nothing is dropped. Errors below ``plots.ULP_FLOOR`` are
drawn at it; nan results (``x``) and ±inf results (``^``) sit on the top edge, counted in the legend;
invalid inputs are left out of the lines and counted in the panel's title.
"""
from __future__ import annotations

import numpy as np

from .. import plots


def _x_axis(ax, x: np.ndarray, name: str):
    """Choose the x scale from the data; returns the transform to apply to x before plotting.

    Positive data over more than two decades: a log scale. Both signs over several decades: a
    symmetric-log scale. matplotlib's log axes cannot tick near float64's max (1.8e308), so beyond
    1e300 the axis is log10(x) (or sign(x)·log10(1 + |x|)) on a linear scale instead.
    """
    fin = x[np.isfinite(x)]
    pos = fin[fin > 0]
    huge = fin.size and np.abs(fin).max() > 1e300
    if pos.size and (fin >= 0).all() and pos.max() / pos.min() > 100:
        if huge:
            ax.set_xlabel(f"log10({name})")
            return lambda v: np.log10(np.where(v > 0, v, np.nan))
        from matplotlib.ticker import LogLocator

        ax.set_xscale("log")  # zeros (inputs rounded to 0) cannot be drawn on it
        ax.xaxis.set_major_locator(LogLocator(numticks=8))
        ax.set_xlim(float(pos.min()), float(pos.max()))
    elif fin.size and (np.abs(fin).max() > 100 * max(np.abs(fin[fin != 0]).min(initial=np.inf), 1e-300)):
        if huge:
            ax.set_xlabel(f"sign({name})·log10(1 + |{name}|)")
            return lambda v: np.sign(v) * np.log10(1 + np.abs(v))
        lin = max(float(np.abs(fin[fin != 0]).min(initial=1.0)), 1e-300)
        ax.set_xscale("symlog", linthresh=lin)
    ax.set_xlabel(name)
    return lambda v: v


def error_plot(rows, name: str, title: str) -> bytes:
    """PNG bytes: ulp error against the variable ``name``, a panel per dtype, a line per form."""
    # matplotlib's log-axis transforms overflow near float64's max (x up to 1.8e308): harmless
    with np.errstate(over="ignore", invalid="ignore"):
        return _error_plot(rows, name, title)


def _error_plot(rows, name: str, title: str) -> bytes:
    plt = plots._plt()
    dts = list(dict.fromkeys(rows["dtype"]))
    cols = 2 if len(dts) > 1 else 1
    nrows = (len(dts) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(11, 3.6 * nrows + 0.6), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    finite = rows["ulp_error"].to_numpy()
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = min(max(1e3, plots._decade_above(float(finite.max())) if finite.size else 1e3), plots.ULP_CEIL)
    for ax, dtn in zip(axes.flat, dts):
        g = rows[rows["dtype"] == dtn]
        tx = _x_axis(ax, g[name].to_numpy(dtype=np.float64), name)
        invalid = int((g["status"] == "invalid-input").sum())
        for i, (form, h) in enumerate(g.groupby("form", sort=False)):
            h = h[h["status"] != "invalid-input"].sort_values(name)
            x, u, st = tx(h[name].to_numpy(dtype=np.float64)), h["ulp_error"].to_numpy(), h["status"].to_numpy()
            c = colors[i % len(colors)]
            shown = np.where(np.isfinite(u) & (u <= plots.ULP_CEIL), np.maximum(u, plots.ULP_FLOOR), np.nan)
            ax.plot(x, shown, "-", color=c, lw=1.2, label=form)
            for s, marker in (("nan-result", "x"), ("overflow", "^")):
                m = st == s
                if m.any():
                    ax.scatter(x[m], np.full(m.sum(), top), marker=marker, color=c, s=28, clip_on=False,
                               zorder=5, label=f"{form}: {s} ({m.sum()})")
        ax.set_yscale("log")
        ax.set_ylim(plots.ULP_FLOOR / 2, top)
        ax.axhline(1.0, color="grey", lw=0.6, ls=":")
        ax.set_ylabel("error (ulps)")
        ax.set_title(dtn + (f" ({invalid} invalid inputs not drawn)" if invalid else ""), fontsize=10)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(dts):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: error against the exact value (≤ {plots.ULP_FLOOR:g} ulp drawn at it; "
                 "x nan, ^ inf on top)", fontsize=10)
    fig.tight_layout()
    return plots._png(fig)
