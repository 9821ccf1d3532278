"""PNG plots of the loss experiments (matplotlib, Agg backend; imported only when plotting).

Nothing is dropped from a plot: values a log axis cannot show are drawn as distinct markers on the
plot's edge and named in the legend —
- nan results: an ``x`` on the top edge;
- ±inf results: a ``^`` on the top edge;
- zero results (loss plots) and zero error (ulp plots): a ``v`` on the bottom edge.

Every function returns PNG bytes; the same data and library versions give the same bytes
(no timestamp is written into the file).
"""
from __future__ import annotations

import io

import numpy as np

#: Errors below this many ulps are drawn at it (a log axis has no 0).
ULP_FLOOR = 1e-3
#: Errors above this many ulps are drawn on the top edge (a * marker, counted in the legend):
#: matplotlib's log axis cannot place ticks near float64's range, and nothing is lost by saying
#: "more than 1e100 ulps".
ULP_CEIL = 1e100
#: Symmetric-log x axis: linear within ±1, logarithmic beyond (logits span 1e-3 … 1e5 and the sign matters).
X_LINTHRESH = 1.0


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "stabench", "figure.dpi": 100})
    return plt


#: x ticks every two decades, both signs: the symlog axis's own ticks crowd into each other.
X_TICKS = (-1e4, -1e2, -1.0, 0.0, 1.0, 1e2, 1e4)


def _logit_axis(ax) -> None:
    ax.set_xscale("symlog", linthresh=X_LINTHRESH)
    ax.set_xticks(X_TICKS)
    ax.set_xlabel("logit z")


def _decade_above(x: float) -> float:
    """The power of ten a decade above ``x`` (capped at 1e307, so a float64 max stays finite)."""
    return 10.0 ** min(np.floor(np.log10(x)) + 1.0, 307.0)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _edge_markers(ax, x, y, label_prefix: str, color, top: float, bottom: float) -> None:
    """Draw nan / inf / zero points on the edges so they stay visible."""
    for mask, yy, marker, what in ((np.isnan(y), top, "x", "nan"), (np.isinf(y), top, "^", "inf"),
                                   (y == 0, bottom, "v", "0")):
        if mask.any():
            ax.scatter(x[mask], np.full(mask.sum(), yy), marker=marker, color=color, s=28, zorder=5,
                       clip_on=False, label=f"{label_prefix} = {what} ({mask.sum()})")


def ulp_plot(rows, title: str) -> bytes:
    """Error in ulps (log scale) against the logit, one line per backend:method; ``rows`` are the
    loss rows of one experiment and dtype (one case kind / label subset)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    finite = rows["ulp_error"].to_numpy()
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = min(max(1e3, _decade_above(float(finite.max())) if finite.size else 1e3), ULP_CEIL)
    colors = plt.get_cmap("tab20").colors
    for i, ((backend, method), g) in enumerate(rows.groupby(["backend", "method"], sort=False)):
        g = g.sort_values("logit")
        x = g["logit"].to_numpy()
        u = g["ulp_error"].to_numpy()
        st = g["status"].to_numpy()
        color = colors[i % len(colors)]
        name = method if backend == "numpy" else f"{backend}:{method}"
        shown = np.where(np.isfinite(u) & (u <= ULP_CEIL), np.maximum(u, ULP_FLOOR), np.nan)
        ax.plot(x, shown, "-", color=color, lw=1.2, label=name)
        huge = np.isfinite(u) & (u > ULP_CEIL)
        if huge.any():
            ax.scatter(x[huge], np.full(huge.sum(), top), marker="*", color=color, s=30, clip_on=False,
                       zorder=5, label=f"{name}: > {ULP_CEIL:g} ulps ({huge.sum()})")
        # failures without an ulp count (value nan or ±inf) go on the top edge
        for s, marker in (("nan-result", "x"), ("overflow", "^")):
            m = st == s
            if m.any():
                ax.scatter(x[m], np.full(m.sum(), top), marker=marker, color=color, s=30, clip_on=False,
                           zorder=5, label=f"{name}: {s} ({m.sum()})")
    _logit_axis(ax)
    ax.set_yscale("log")
    ax.set_ylim(ULP_FLOOR / 2, top)
    ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax.set_ylabel(f"error in ulps (≤ {ULP_FLOOR:g} drawn at it; on top: x nan, ^ inf, * > {ULP_CEIL:g})")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)


def value_plot(rows, title: str, floor: float = 0.0) -> bytes:
    """Loss value against the logit for every method and the reference (log scale; zeros on the
    bottom edge, nan and inf on the top edge). The axis stops at ``floor`` (e.g. a tenth of the
    dtype's smallest subnormal): a reference below it runs off the bottom of the plot."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    vals = np.concatenate([rows["value"].to_numpy(), rows["reference"].to_numpy()])
    pos = vals[np.isfinite(vals) & (vals > 0)]
    # matplotlib's log axis cannot tick near the ends of float64's range: stay within 1e±300
    bottom = max(float(pos.min()) / 10, floor, 1e-300) if pos.size else 1e-10
    top = min(_decade_above(float(pos.max())), 1e300) if pos.size else 1.0
    colors = plt.get_cmap("tab20").colors
    ref = rows.drop_duplicates("logit").sort_values("logit")
    rx, ry = ref["logit"].to_numpy(), ref["reference"].to_numpy()
    ax.plot(rx, np.where(ry > 0, ry, np.nan), "-", color="black", lw=2.5, alpha=0.35, label="reference")
    _edge_markers(ax, rx, ry, "reference", "black", top, bottom)
    for i, ((backend, method), g) in enumerate(rows.groupby(["backend", "method"], sort=False)):
        g = g.sort_values("logit")
        x, v = g["logit"].to_numpy(), g["value"].to_numpy()
        color = colors[i % len(colors)]
        name = method if backend == "numpy" else f"{backend}:{method}"
        ax.plot(x, np.where(np.isfinite(v) & (v > 0), v, np.nan), "-", color=color, lw=1.0, label=name)
        _edge_markers(ax, x, v, name, color, top, bottom)
    _logit_axis(ax)
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.set_ylabel("loss (0 on the bottom edge; nan/inf on the top edge)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)


def curves_plot(df, title: str) -> bytes:
    """Training curves: loss and test accuracy per epoch for each variant × policy (``stabench train``)."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for (variant, policy), g in df.groupby(["variant", "policy"], sort=False):
        a1.plot(g["epoch"], g["train_loss"], label=f"{variant} / {policy}")
        a2.plot(g["epoch"], g["test_accuracy"], label=f"{variant} / {policy}")
    a1.set_xlabel("epoch"), a1.set_ylabel("training loss"), a1.set_yscale("log")
    a2.set_xlabel("epoch"), a2.set_ylabel("test accuracy")
    a2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)
