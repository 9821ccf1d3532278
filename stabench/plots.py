"""PNG plots of the report: the loss experiments' error and value against the logit, and the
training curves (matplotlib, Agg backend; imported only when plotting).

A loss figure (one experiment, one dtype, one measure) is a grid of panels:
- a row per method group: a backend's methods, split into several rows when it has more than
  :data:`MAX_SERIES` (an execution variant such as ``keras-probs@graph`` is a series of its own;
  a method stays in the row of its variants);
- a column per case (:meth:`stabench.experiment.Experiment.plot_cases`: sigmoid's labels y = 0 and
  y = 1, softmax's case kinds);
- a legend per row, right of its last panel (outside the data), naming each series and each
  non-finite marker with its count per column.

A method name has one colour and one marker in every panel and every file (:func:`method_styles`:
the colour and marker belong to the method without its ``@variant``, and two methods of one
backend never share a colour); the variant sets the line style (``@graph``/``@jit``/``@autocast``
dashed, ``@upcast-float32`` dash-dot, ``@x64-off`` dotted), and a variant's markers are hollow.
Markers sit every few points, staggered, so that curves lying on each other stay visible.

Nothing is dropped: values a log axis cannot show are drawn as markers in a shaded band — a row of
the band per series and kind of marker, in the series' colour — and counted in the legend:
- nan results: an ``x`` in the band above the data;
- ±inf results (overflow): a ``^`` in the band above;
- errors above :data:`ULP_CEIL` ulps: a ``*`` in the band above;
- any other row without a finite error in ulps (``unsupported``, ``invalid-input``; an
  ``inaccurate`` value against a float64 reference of 0): a tri-down in the band above, named by
  its status;
- zero values (loss plots): a ``v`` in the band below the data (zero error is drawn at
  :data:`ULP_FLOOR`, as the axis label says).

The y axes are logarithmic, drawn as log10 of the value on a linear axis labelled in powers of
ten: a float64 loss of 1e-300 and the bands around it fit (a log axis cannot reach float64's ends).

Every ``*_plot`` function returns PNG bytes, its ``*_figure`` twin the matplotlib Figure (each
series' artists carry a ``gid``: ``series:METHOD``, ``edge:METHOD:WHAT``, ``reference``); the same
data and library versions give the same bytes (no timestamp is written into the file).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

#: Errors below this many ulps are drawn at it (a log axis has no 0).
ULP_FLOOR = 1e-3
#: Errors above this many ulps are drawn in the top band (a * marker, counted in the legend):
#: matplotlib's log axis cannot place ticks near float64's range, and nothing is lost by saying
#: "more than 1e100 ulps".
ULP_CEIL = 1e100
#: Symmetric-log x axis: linear within ±1, logarithmic beyond (logits span 1e-3 … 1e5 and the sign matters).
X_LINTHRESH = 1.0
#: The most series (lines) one panel holds: a backend with more methods is split into groups.
MAX_SERIES = 8
#: Colours of the methods: matplotlib's tab10 without its grey (the reference is grey), then a
#: few darker ones for backends with more than nine methods.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#843c39")
#: Markers of the methods, by colour (none of them is a non-finite marker: x ^ * v).
MARKERS = ("o", "s", "D", "P", "h", "p", "d", "H", "8", "<", ">", "1")
#: Line style of each execution variant (the part of a method name after "@"); others take
#: :data:`EXTRA_DASHES` in order.
VARIANT_STYLES = {"": "-", "graph": "--", "jit": "--", "autocast": "--", "upcast-float32": "-.",
                  "x64-off": ":"}
EXTRA_DASHES = ((0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (5, 2, 1, 2)), (0, (8, 2)))
#: Non-finite markers: what → (marker, band, legend word).
EDGE = {"nan": ("x", "top", "nan"), "inf": ("^", "top", "±inf"), "huge": ("*", "top", None),
        "other": ("1", "top", None), "zero": ("v", "bottom", "0")}
#: Markers drawn as strokes only (no hollow form).
UNFILLED = ("x", "1")
#: Decades between the y ticks: the smallest of these that leaves at most 7 ticks.
DECADE_STEPS = (1, 2, 5, 10, 20, 25, 50, 100)
#: A non-finite band's height (share of the panel's): a row of markers per series and what it
#: marks, plus a margin; at most BAND_MAX.
BAND_ROW, BAND_MARGIN, BAND_MAX = 0.032, 0.02, 0.4
#: Size of a panel and of the legend column, in inches.
PANEL_W, PANEL_H, LEGEND_W = 4.4, 3.0, 3.6

#: x ticks every two decades, both signs: the symlog axis's own ticks crowd into each other.
X_TICKS = (-1e4, -1e2, -1.0, 0.0, 1.0, 1e2, 1e4)
X_TICK_LABELS = ("−1e4", "−1e2", "−1", "0", "1", "1e2", "1e4")


@dataclass(frozen=True)
class Style:
    """How one method is drawn: colour and marker (its method without the variant), line style
    (its variant) and whether its markers are filled (the method itself) or hollow (a variant)."""

    color: str
    marker: str
    linestyle: object
    filled: bool


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "stabench", "figure.dpi": 100})
    return plt


def _split(method: str) -> tuple[str, str]:
    base, _, variant = method.partition("@")
    return base, variant


def method_styles(pairs) -> dict:
    """{method name: :class:`Style`} for ``pairs`` ((backend, method name), in order).

    The colour and marker belong to the name without its ``@variant``, whatever the backend (numpy's
    and jax's ``naive`` look alike; they are never in one panel): the first colour that no other
    method of the same backend has taken. Pass every method a report may draw, first those of the
    experiments' static tables, so that a name keeps its colour in every file and every run."""
    pairs = [tuple(p) for p in pairs]  # read twice
    backends_of, order = {}, []
    variants = []
    for backend, method in pairs:
        base, variant = _split(method)
        if base not in backends_of:
            backends_of[base] = set()
            order.append(base)
        backends_of[base].add(backend)
        if variant not in VARIANT_STYLES and variant not in variants:
            variants.append(variant)
    dashes = {v: EXTRA_DASHES[i % len(EXTRA_DASHES)] for i, v in enumerate(variants)}
    index = {}
    for base in order:
        taken = {index[b] for b in index if backends_of[b] & backends_of[base]}
        free = [i for i in range(len(PALETTE)) if i not in taken]
        index[base] = free[0] if free else len(index) % len(PALETTE)
    styles = {}
    for _, method in pairs:
        base, variant = _split(method)
        i = index[base]
        styles[method] = Style(PALETTE[i], MARKERS[i], VARIANT_STYLES.get(variant, dashes.get(variant)), not variant)
    return styles


def method_groups(methods, limit: int = MAX_SERIES) -> list[list[str]]:
    """``methods`` (of one backend, in order) in as few groups of at most ``limit`` as possible,
    as even as possible; a method and its ``@variants`` stay in one group (unless they alone are
    more than ``limit``)."""
    by_base = {}
    for m in methods:
        by_base.setdefault(_split(m)[0], []).append(m)
    chunks = [c[i:i + limit] for c in by_base.values() for i in range(0, len(c), limit)]

    def pack(cap):
        groups = [[]]
        for c in chunks:
            if groups[-1] and len(groups[-1]) + len(c) > cap:
                groups.append([])
            groups[-1].extend(c)
        return groups

    fewest = len(pack(limit))
    target = math.ceil(len(methods) / fewest) if methods else limit
    for cap in range(target, limit + 1):  # the smallest cap that needs no more groups: the most even
        groups = pack(cap)
        if len(groups) == fewest:
            return groups
    return pack(limit)


def default_cases(rows) -> list:
    """[(title, rows)] a column per case kind (and per label, where a kind has several)."""
    out = []
    many_kinds = rows["case_kind"].nunique() > 1
    for kind, g in rows.groupby("case_kind", sort=False):
        labels = g["label"].unique()
        for lab in labels:
            words = ([kind] if many_kinds or len(labels) == 1 else []) + ([f"label {lab:g}"] if len(labels) > 1 else [])
            out.append((", ".join(words), g[g["label"] == lab]))
    return out


def _logit_axis(ax, bottom_row: bool) -> None:
    ax.set_xscale("symlog", linthresh=X_LINTHRESH)
    ax.set_xticks(X_TICKS)
    ax.set_xticklabels(X_TICK_LABELS if bottom_row else [])
    if bottom_row:
        ax.set_xlabel("logit z")
    ax.grid(True, which="major", color="0.9", lw=0.5)


def _decade_above(x: float) -> float:
    """The power of ten a decade above ``x`` (capped at 1e307, so a float64 max stays finite)."""
    return 10.0 ** min(np.floor(np.log10(x)) + 1.0, 307.0)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _band(n: int) -> float:
    """The height of a band of ``n`` marker rows (0: no band)."""
    return min(BAND_MARGIN + BAND_ROW * n, BAND_MAX) if n else 0.0


def _band_y(k: int, n: int, band: str, height: float) -> float:
    """The axes-fraction y of marker row ``k`` of ``n`` in a band of ``height``."""
    y = BAND_MARGIN / 2 + (height - BAND_MARGIN) * (k + 0.5) / n
    return 1.0 - y if band == "top" else y


def _y_axis(ax, lo: float, hi: float, top: float, bottom: float) -> None:
    """The y axis (log10 of the value, on a linear axis) with [lo, hi] between the bands; ticks
    at powers of ten on the data only, labelled as such."""
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    a, b = math.log10(lo), math.log10(hi)
    span = (b - a) / (1.0 - top - bottom)
    ax.set_ylim(a - bottom * span, b + top * span)
    first, last = math.ceil(a), math.floor(b)
    step = next((d for d in DECADE_STEPS if (last - first) // d < 7), DECADE_STEPS[-1])
    ax.yaxis.set_major_locator(FixedLocator(np.arange(first + (-first) % step, last + 1, step)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"$10^{{{int(round(v))}}}$"))
    ax.yaxis.set_minor_locator(NullLocator())
    for y0, h in ((1.0 - top, top), (0.0, bottom)):
        if h:
            ax.add_patch(Rectangle((0.0, y0), 1.0, h, transform=ax.transAxes, color="0.93", lw=0, zorder=0))


def _log10(y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(y)


def _series(rows, value: str, other_status: set):
    """(x, log10 of the y drawn on the line, {edge what: mask}) of one method's rows, sorted by
    logit; the statuses of the "other" edge go into ``other_status``."""
    g = rows.sort_values("logit", kind="stable")
    x, y = g["logit"].to_numpy(dtype=float), g[value].to_numpy(dtype=float)
    if value == "ulp_error":
        st = g["status"].to_numpy()
        edges = {"nan": st == "nan-result", "inf": st == "overflow", "huge": np.isfinite(y) & (y > ULP_CEIL)}
        # any other row without a finite error in ulps (unsupported, invalid-input, a value against a
        # reference of 0): named by its status
        edges["other"] = ~np.isfinite(y) & ~edges["nan"] & ~edges["inf"]
        if edges["other"].any():
            other_status.update(st[edges["other"]])
        line = np.where(np.isfinite(y) & (y <= ULP_CEIL), np.maximum(y, ULP_FLOOR), np.nan)
    else:
        edges = {"nan": np.isnan(y), "inf": np.isinf(y), "zero": y == 0}
        line = np.where(np.isfinite(y) & (y > 0), y, np.nan)
    return x, _log10(line), {k: m for k, m in edges.items() if m.any()}


def _limits(rows, value: str, floor: float, reference: bool) -> tuple[float, float]:
    """(lo, hi) of the data region of a row of panels: from the ulp floor (or a tenth of the
    smallest value, the reference's no lower than ``floor``) to a decade above the largest."""
    y = rows[value].to_numpy(dtype=float)
    if value == "ulp_error":
        finite = y[np.isfinite(y) & (y > 0) & (y <= ULP_CEIL)]
        return ULP_FLOOR / 2, min(max(1e3, _decade_above(float(finite.max())) if finite.size else 1e3), ULP_CEIL)
    ref = rows["reference"].to_numpy(dtype=float) if reference else y[:0]
    pos, rpos = y[np.isfinite(y) & (y > 0)], ref[np.isfinite(ref) & (ref > 0)]
    # the reference may run off the bottom (below ``floor``); every method value is on the axis
    lows = ([max(float(rpos.min()) / 10, floor)] if rpos.size else []) + ([float(pos.min()) / 10] if pos.size else [])
    lo = max(min(lows, default=1e-10), 5e-324)
    both = np.concatenate([pos, rpos])
    hi = _decade_above(float(both.max())) if both.size else 1.0
    return lo, max(hi, lo * 100)


def _loss_figure(rows, value: str, title: str, ylabel: str, cases=None, styles=None, floor: float = 0.0,
                 reference: bool = False):
    """The grid of panels of one loss experiment and dtype (module docstring)."""
    plt = _plt()
    from matplotlib.lines import Line2D

    cases = default_cases(rows) if cases is None else [(t, c) for t, c in cases if len(c)]
    if styles is None:
        styles = method_styles(rows[["backend", "method"]].drop_duplicates().itertuples(index=False))
    groups = [(b, grp) for b, g in rows.groupby("backend", sort=False)
              for grp in method_groups(list(dict.fromkeys(g["method"])))]
    nrows, ncols = len(groups), len(cases)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * PANEL_W + LEGEND_W, nrows * PANEL_H + 0.9),
                             squeeze=False, sharex=True, sharey="row", layout="constrained")
    n_of = {}
    for b, _ in groups:
        n_of[b] = n_of.get(b, 0) + 1
    seen = {}
    for r, (backend, methods) in enumerate(groups):
        seen[backend] = seen.get(backend, 0) + 1
        name = backend if n_of[backend] == 1 else f"{backend} ({seen[backend]}/{n_of[backend]})"
        # a y axis per row of panels: one backend's 1e36-ulp failure does not flatten the others
        lo, hi = _limits(rows[(rows["backend"] == backend) & rows["method"].isin(methods)], value, floor, reference)
        other = {m: set() for m in methods}
        series = {(c, m): _series(cg[(cg["backend"] == backend) & (cg["method"] == m)], value, other[m])
                  for c, (_, cg) in enumerate(cases) for m in methods}
        ref_zero = [int((cg.drop_duplicates("logit")["reference"] == 0).sum()) if reference else 0
                    for _, cg in cases]
        # a band row per (method, what it marks) found anywhere in this row of panels (the same
        # rows in every column), so that markers of two series never hide each other
        slots = {"top": [], "bottom": [("reference", "zero")] if any(ref_zero) else []}
        for m in methods:
            for what in EDGE:
                if any(what in series[(c, m)][2] for c in range(ncols)):
                    slots[EDGE[what][1]].append((m, what))
        height = {band: _band(len(keys)) for band, keys in slots.items()}

        def band_y(key):
            band = "top" if key in slots["top"] else "bottom"
            return _band_y(slots[band].index(key), len(slots[band]), band, height[band])

        counts = {}  # (method, edge what) → [count per column]
        for c, (case_title, cg) in enumerate(cases):
            ax = axes[r][c]
            trans = ax.get_xaxis_transform()  # x in data, y in axes fraction: the bands
            if reference:
                ref = cg.drop_duplicates("logit").sort_values("logit", kind="stable")
                rx, ry = ref["logit"].to_numpy(dtype=float), ref["reference"].to_numpy(dtype=float)
                ax.plot(rx, _log10(np.where(ry >= lo, ry, np.nan)), "-", color="0.45", lw=3.0, alpha=0.45, zorder=1,
                        gid="reference")
                zero = ry == 0
                if zero.any():
                    ax.scatter(rx[zero], np.full(zero.sum(), band_y(("reference", "zero"))), marker="v",
                               color="0.3", s=18, transform=trans, clip_on=False, zorder=4, gid="edge:reference:zero")
            for i, m in enumerate(methods):
                st = styles[m]
                x, line, edges = series[(c, m)]
                if not len(x):
                    continue
                step = max(len(x) // 6, 1)
                ax.plot(x, line, color=st.color, ls=st.linestyle, lw=1.3, marker=st.marker, ms=4.5,
                        mfc=st.color if st.filled else "none", mew=1.0,
                        markevery=(i * step // len(methods), step), zorder=2 + i * 0.01, gid=f"series:{m}")
                for what, mask in edges.items():
                    # a variant's markers are hollow, as on its line (x and the tri have no inside)
                    marker = EDGE[what][0]
                    paint = ({"color": st.color} if st.filled or marker in UNFILLED else
                             {"facecolors": "none", "edgecolors": st.color})
                    ax.scatter(x[mask], np.full(mask.sum(), band_y((m, what))), marker=marker, s=22, **paint,
                               linewidths=1.2, transform=trans, clip_on=False, zorder=5, gid=f"edge:{m}:{what}")
                    counts.setdefault((m, what), [0] * ncols)[c] = int(mask.sum())
            _y_axis(ax, lo, hi, height["top"], height["bottom"])
            if value == "ulp_error":
                ax.axhline(0.0, color="0.5", lw=0.7, ls=":", zorder=1)  # 1 ulp
            _logit_axis(ax, r == nrows - 1)
            ax.set_title(f"{name} · {case_title}", fontsize=9.5)
        # the row's legend: its methods, then every non-finite marker with its count per column
        handles, labels = [], []
        if reference:
            handles.append(Line2D([], [], color="0.45", lw=3.0, alpha=0.45))
            labels.append("reference (exact)")
            if any(ref_zero):
                handles.append(Line2D([], [], color="0.3", marker="v", ls="none"))
                labels.append("reference: 0 " + _per_column(ref_zero, cases))
        for m in methods:
            st = styles[m]
            handles.append(Line2D([], [], color=st.color, ls=st.linestyle, lw=1.3, marker=st.marker, ms=4.5,
                                  mfc=st.color if st.filled else "none"))
            labels.append(m)
        for m, what in slots["top"] + slots["bottom"]:  # top to bottom, as the bands hold them
            if (m, what) in counts:
                marker, _, word = EDGE[what]
                if what == "huge":
                    word = f"> {ULP_CEIL:g} ulps"
                elif what == "other":
                    word = "/".join(sorted(other[m])) + ", no finite ulps"
                handles.append(Line2D([], [], color=styles[m].color, marker=marker, ls="none", mew=1.2,
                                      mfc=styles[m].color if styles[m].filled else "none"))
                labels.append(f"{m}: {word} {_per_column(counts[(m, what)], cases)}")
        axes[r][-1].legend(handles, labels, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.03, 1.0),
                           borderaxespad=0.0, frameon=False, handlelength=2.6)
    fig.supylabel(ylabel, fontsize=10)
    fig.suptitle(title, fontsize=12)
    return fig


def _per_column(counts, cases) -> str:
    """"(12 in label y = 0, 3 in label y = 1)": a marker's count in each column that has it."""
    if len(cases) == 1:
        return f"({counts[0]})"
    return "(" + ", ".join(f"{n} in {t}" for n, (t, _) in zip(counts, cases) if n) + ")"


def ulp_figure(rows, title: str, cases=None, styles=None):
    """The figure of :func:`ulp_plot`."""
    band = f"shaded band: x nan, ^ ±inf, * > {ULP_CEIL:g}, tri other status"
    return _loss_figure(rows, "ulp_error", title, f"error in ulps (≤ {ULP_FLOOR:g} drawn at it; {band})",
                        cases=cases, styles=styles)


def ulp_plot(rows, title: str, cases=None, styles=None) -> bytes:
    """Error in ulps (log scale) against the logit: a panel per method group (row) and case
    (column), a line per method; ``rows`` are the loss rows of one experiment and dtype, ``cases``
    [(column title, rows)] (default: by case kind and label), ``styles`` :func:`method_styles`
    (default: from ``rows``)."""
    return _png(ulp_figure(rows, title, cases, styles))


def value_figure(rows, title: str, floor: float = 0.0, cases=None, styles=None):
    """The figure of :func:`value_plot`."""
    return _loss_figure(rows, "value", title, "loss (shaded bands: above x nan, ^ ±inf; below v 0)",
                        cases=cases, styles=styles, floor=floor, reference=True)


def value_plot(rows, title: str, floor: float = 0.0, cases=None, styles=None) -> bytes:
    """Loss value against the logit for every method and the reference (log scale; zeros in the
    band below the data, nan and inf in the band above), panels as :func:`ulp_plot`. The axis
    stops at ``floor`` (e.g. a tenth of the dtype's smallest subnormal): a reference below it runs
    off the bottom of the plot."""
    return _png(value_figure(rows, title, floor, cases, styles))


#: Training policies' colours, markers and line styles, in the order stabench train runs them
#: (others follow, in order).
POLICY_STYLES = (("#1f77b4", "o", "-"), ("#ff7f0e", "s", "--"), ("#2ca02c", "D", ":"), ("#d62728", "P", "-."),
                 ("#9467bd", "h", "-"), ("#8c564b", "p", "--"))


def curves_figure(df, title: str):
    """The figure of :func:`curves_plot`."""
    plt = _plt()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    variants = list(dict.fromkeys(df["variant"]))
    policies = list(dict.fromkeys(df["policy"]))
    fig, axes = plt.subplots(2, len(variants), figsize=(4.2 * len(variants) + 0.6, 6.6), squeeze=False,
                             sharex=True, sharey="row", layout="constrained")
    nonfinite = False
    for c, variant in enumerate(variants):
        for p, policy in enumerate(policies):
            g = df[(df["variant"] == variant) & (df["policy"] == policy)].sort_values("epoch")
            color, marker, ls = POLICY_STYLES[p % len(POLICY_STYLES)]
            for r, col in enumerate(("train_loss", "test_accuracy")):
                ax = axes[r][c]
                ax.plot(g["epoch"], g[col], color=color, marker=marker, ls=ls, lw=1.4, ms=4.5,
                        mfc="none" if p % 2 else color, label=policy, gid=f"series:{policy}")
                # an epoch whose loss is nan/±inf (a non-finite step makes the mean so): an x on the top edge
                bad = ~np.isfinite(g[col].to_numpy(dtype=float))
                if bad.any():
                    nonfinite = True
                    ax.scatter(g["epoch"].to_numpy()[bad], np.full(bad.sum(), 0.97), marker="x", color=color,
                               transform=ax.get_xaxis_transform(), clip_on=False, zorder=5,
                               gid=f"edge:{policy}:nan")
        axes[0][c].set_title(f"variant: {variant}", fontsize=10)
        axes[1][c].set_xlabel("epoch")
        for r in range(2):
            axes[r][c].grid(True, color="0.9", lw=0.5)
    axes[1][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("training loss (mean over the epoch)")
    axes[1][0].set_ylabel("test accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    labels = [f"policy {x}" for x in labels]
    if nonfinite:
        handles.append(Line2D([], [], color="0.3", marker="x", ls="none"))
        labels.append("x on the top edge: nan or ±inf that epoch")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def curves_plot(df, title: str) -> bytes:
    """Training curves (``stabench train`` rows): a column of panels per variant, training loss
    above and test accuracy below, a line per policy (one colour, marker and line style per
    policy in every panel, named in one legend below); an epoch whose value is nan or ±inf is an
    ``x`` on the panel's top edge."""
    return _png(curves_figure(df, title))
