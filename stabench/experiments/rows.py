"""The row-experiment runner: ``stabench rows -e NAME`` / ``stabench run NAME`` for the experiments
of :data:`stabench.registry.ROWS` (log-sum-exp, softmax, log-softmax, layer and RMS norm, sums and
means; :mod:`stabench.rowwise` says what a row experiment is).

:func:`plan` checks every option and builds each experiment × dtype's groups of rows before any
framework is imported; :func:`run` evaluates every chosen method once per (dtype, group of rows)
and measures every element of its result against the experiment's exact reference. It returns the
row table (:data:`ROWS`: one row per (quantity, backend, method, dtype, input row), holding the
row's worst element) and, when asked, every element (:data:`ELEMENTS`, ``--detail``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np
import pandas as pd

from .. import backends as _backends
from .. import columns as _columns
from .. import dtypes as _dtypes
from .. import experiment as _experiment
from .. import metrics
from ..errors import InputError
from ..registry import ROWS as REGISTRY
from . import loss as _loss

_C = _columns.Column
#: the columns the row table shares with the loss table, as declared there
_LOSS = {c.name: c for c in _columns.LOSS_ROWS.columns}
#: One row per (experiment, quantity, backend, method, dtype, input row): the row's worst element.
ROWS = _columns.Table("rows_rows", [
    _C("experiment", "the row experiment (`logsumexp`, `softmax-probs`, `log-softmax`, `layernorm`, `rmsnorm`, `sum`, `mean`)", "text", key=True),
    _C("quantity", "what is measured: the experiment's value (`value`, `output`, `variance`), `grad` (wᵀJ of the first, w = 1, −1/2, 3/4, −1/4, … repeating) or `QUANTITY-grad`", "text", key=True),
    _LOSS["backend"],
    _LOSS["method"],
    _C("form", "the method's family (e.g. `naive`, `shifted`, `two-pass`, `framework`)", "text", left=True),
    _LOSS["dtype"],
    _LOSS["result_dtype"],
    _C("case_kind", "how the row was built (see the row case kinds)", "text", left=True),
    _C("row", "the input row's number (its line of --rows-file, from 0)", "int"),
    _C("length", "K, the row's number of values", "int"),
    _C("magnitude", "what the experiment sorts its rows by (its docs: max x for log-sum-exp, |mean|/spread for the norms, the length for sums)", "float"),
    _C("eps", "the epsilon the method was called with (its framework's default, or --eps); nan where it takes none", "float"),
    _C("index", "the position of the row's worst element in the result (0 for a one-value result)", "int"),
    _C("value", "the worst element's computed value, in result_dtype (stored exactly in float64)", "value"),
    _C("reference", "its exact reference, rounded to float64", "float"),
    _C("abs_error", "abs(value − reference) of the worst element, the reference carried beyond float64 (hi + lo)", "error"),
    _C("rel_error", "abs_error / abs(reference) of the worst element", "error"),
    _C("ulp_error", "the row's largest ulp error (ulps of the exact value in the coarser of dtype and result_dtype; +inf for nan/inf failures)", "error"),
    _C("bits_error", "log2(1 + floats between the worst element and the correctly rounded reference) (Herbie)", "error"),
    _C("normwise_ulp", "the row's largest abs_error in ulps of its largest exact |element| (normwise: small for a backward-stable method even where one element is tiny and its own ulp_error large; +inf where an element failed with nan/inf)", "error"),
    _C("status", "the worst element's status: exact / ok / inaccurate / underflow / overflow / nan-result / invalid-input / unsupported", "status", left=True),
    _C("failed", "how many of the row's elements failed (inaccurate, underflow, overflow or nan-result)", "int"),
    _LOSS["error"],
])
#: Every element (``--detail PATH``): one row per (experiment, quantity, backend, method, dtype, row, index).
ELEMENTS = _columns.Table("rows_elements", [
    *_columns.as_in_rows(ROWS, "experiment", "quantity", "backend", "method", "dtype", "result_dtype", "case_kind",
                         "row", "index", "value", "reference", *_columns.MEASURES, "status"),
    _C("x", "the input element at index (for a one-value result, the row's first)", "value"),
])
SUMMARY = _columns.Table("rows_summary", [
    *_columns.as_in_rows(ROWS, "experiment", "quantity", "backend", "method", "form", "dtype"),
    _C("rows", "number of input rows", "int"),
    _C("max_ulp", "largest ulp_error over the rows' elements (inf when any failed with nan/inf)", "error", compare="ulp"),
    _C("max_normwise_ulp", "largest normwise_ulp over the rows", "error", compare="ulp"),
    _C("median_ulp", "median of the rows' worst-element ulp errors", "error", compare="ulp"),
    _C("worst_row", "the row with the largest ulp_error (ties: the first)", "int"),
    _C("worst_kind", "its case kind", "text", left=True),
    _C("failed_rows", "rows with at least one failed element", "int", compare="failures"),
    _C("nan_result", "rows whose worst element is nan-result", "int", compare="failures"),
    _C("overflow", "rows whose worst element is overflow", "int", compare="failures"),
    _C("underflow", "rows whose worst element is underflow", "int", compare="failures"),
    _C("inaccurate", "rows whose worst element is inaccurate", "int", compare="failures"),
    _C("unsupported", "rows the framework refused", "int"),
    _C("first_fail_kind", "the first case kind (in the experiment's order) with a failed row; empty if none", "text", left=True, compare="first"),
    _C("first_fail_magnitude", "the smallest magnitude of a failed row of that kind; nan if none", "float", compare="first"),
    _C("first_fail_status", "that row's status", "text", left=True),
])

FAILURES = _experiment.FAILURES


def names() -> list[str]:
    """The row experiments, in display order."""
    return list(REGISTRY)


@dataclass(frozen=True)
class Options:
    """Every option of a row run, as given (defaults are the CLI's): :func:`plan` checks them."""

    experiments: list = field(default_factory=lambda: ["all"])
    dtypes: list | None = None  #: None: every dtype
    backends: list | None = None  #: None: every installed backend
    methods: str | None = None  #: a comma list of method names (None: every method)
    rows_file: str | None = None  #: .npy (N × K) or CSV of rows
    length: int | None = None  #: K of the built-in rows (None: the experiment's default)
    max_length: int = 2 ** 16  #: sums: the longest row of the length sweep
    points: int = 8  #: rows per built-in case kind
    seed: int = 0
    eps: float | None = None  #: the norms' epsilon for every method (None: each framework's default)
    grad: bool = True
    max_ulp: float = metrics.DEFAULT_MAX_ULP


@dataclass(frozen=True, eq=False)
class RowPlan:
    """A row run, checked once by :func:`plan`: :func:`run` checks nothing."""

    options: Options
    experiments: tuple  #: names
    dtypes: tuple  #: DType
    backends: tuple  #: backend names
    methods: Mapping  #: (experiment, backend) → chosen RowMethods
    selected: frozenset | None  #: --method names (NAME or NAME@VARIANT); None: every method
    groups: Mapping  #: (experiment, dtype name) → tuple of rowwise.Group
    detail: bool = False  #: keep every element (--detail)


def parse_experiments(value) -> list[str]:
    """``-e`` as a list of row experiment names ('all': every one)."""
    items = [value] if isinstance(value, str) else list(value or ["all"])
    out = []
    for item in items:
        for p in str(item).split(","):
            p = p.strip()
            if not p:  # "-e ," or a trailing comma: nothing named (an empty list is refused below)
                continue
            if p == "all":
                out += names()
            elif p in REGISTRY:
                out.append(p)
            else:
                raise InputError(f"--experiment {p!r} is not a row experiment; valid: {', '.join(names())}, all")
    if not out:
        raise InputError(f"--experiment is empty; valid: {', '.join(names())}, all")
    return list(dict.fromkeys(out))


def plan(opts: Options | None = None, *, detail: bool = False, outputs=(), **kw) -> RowPlan:
    """Check every option and build the :class:`RowPlan` (InputError on the first problem), before
    any framework is imported: the rows file is read once (after its shape is checked against the
    memory budget), every group of rows is built, and the run's peak memory is estimated
    (:func:`estimate`; refused over :data:`stabench.limits.MEMORY_BUDGET`). ``outputs``: the export
    formats (their texts are built in memory)."""
    from .. import inputs

    opts = opts or Options(**kw)
    exps = tuple(parse_experiments(opts.experiments))
    dts = tuple(_dtypes.parse_list(opts.dtypes))
    backend_names = tuple(_loss.parse_backends(opts.backends))
    if not backend_names:
        raise InputError("no backend installed; valid: " + ", ".join(_backends.names()))
    _check_numbers(opts)
    selected = _check_methods(opts, exps, backend_names)
    if opts.rows_file:
        shape = inputs.rows_shape(opts.rows_file)  # counted, not parsed: refused before it is read
        _check_budget(math.prod(shape) * len(exps) * len(dts), math.prod(shape), 1, detail, outputs,
                      f"--rows-file {opts.rows_file!r} holds {shape[0]:,} × {shape[1]:,} values: ")
    file = inputs.load_rows(opts.rows_file) if opts.rows_file else None
    groups = {}
    for e in exps:
        exp = _experiment.get(e)
        for dt in dts:
            groups[(e, dt.name)] = tuple(exp.groups(opts, dt, file))
    wanted = None if selected is None else {n.split("@", 1)[0] for n in selected}
    methods = {(e, b): tuple(m for m in _experiment.get(e).methods(_backends.load(b))
                             if wanted is None or m.name in wanted)
               for e in exps for b in backend_names}
    n_methods = max(sum(len(m) for (e, _), m in methods.items() if e == x) for x in exps)
    elements = _held(g.x for gs in groups.values() for g in gs)
    largest = max(g.x.size for gs in groups.values() for g in gs)
    # the row table: one row per (method, quantity, input row) and dtype, and per execution variant
    # evaluated in that dtype (@graph, @jit, numpy's @upcast-float32 in the 8-bit formats: each
    # counted, though only one that differs gives rows; a file of 200,000 short rows made 2.4·10^6
    # rows, 2.1 GiB, when the estimate left them out)
    def runs(b, d):
        mod = _backends.load(b)
        return 1 + sum(1 for v in getattr(mod, "VARIANTS", {})
                       if (_backends.variant_dtypes(mod, v) is None or d in _backends.variant_dtypes(mod, v))
                       and not _backends.variant_unavailable(mod, v))
    table = sum(len(g.x) * len(p_) * runs(b, d)
                for (e, d), gs in groups.items() for g in gs for (e2, b), p_ in methods.items() if e2 == e)
    _check_budget(elements, largest, n_methods * (2 if opts.grad else 1), detail, outputs,
                  table_rows=table * (2 if opts.grad else 1))
    return RowPlan(opts, exps, dts, backend_names, MappingProxyType(methods), selected,
                   MappingProxyType(groups), detail)


def _held(arrays) -> int:
    """Values the arrays hold in memory: a view (the sums' sweep rows are prefixes of one long row)
    counts its base once."""
    seen = {}
    for a in arrays:
        base = a
        while isinstance(base.base, np.ndarray):
            base = base.base
        seen[id(base)] = base.size
    return sum(seen.values())


def estimate(elements: int, largest: int, results: int, detail: bool, outputs=(), table_rows: int = 0) -> int:
    """Peak bytes of a row run: ``elements`` input values in all (every experiment and dtype: the
    plan holds them as float64), ``largest`` in the largest group (one method's evaluation of one
    group at a time holds its framework's copies and results, :data:`stabench.limits.ROW_ELEMENT_BYTES`
    per value, and the measures of one block of :data:`MEASURE_BLOCK` elements,
    :data:`stabench.limits.MEASURE_ELEMENT_BYTES` each), ``results`` (method, quantity) results per
    group; ``--detail`` keeps every element of every result as a table row and its CSV text;
    ``table_rows`` rows of :data:`ROWS` are held as parts and their concatenation, and each output
    format's text of them (``outputs``)."""
    from .. import limits

    need = limits.BASE_BYTES + elements * 8 + largest * limits.ROW_ELEMENT_BYTES + \
        min(largest, MEASURE_BLOCK) * limits.MEASURE_ELEMENT_BYTES
    if detail:
        per = _columns.row_bytes(ELEMENTS, "frame") + _columns.row_bytes(ELEMENTS, "csv")
        need += elements * results * per
    per_row = 2 * _columns.row_bytes(ROWS, "frame") + sum(
        _columns.row_bytes(ROWS, f) for f in dict.fromkeys(outputs) if f in _columns.PLACES)
    return need + table_rows * per_row


def _check_budget(elements: int, largest: int, results: int, detail: bool, outputs, what: str = "",
                  table_rows: int = 0) -> None:
    from .. import limits

    need = estimate(elements, largest, results, detail, outputs, table_rows)
    if need > limits.MEMORY_BUDGET:
        raise InputError(f"{what}request too large: about {need / 2**30:.1f} GiB for {elements:,} values"
                         f"{f' and {table_rows:,} result rows' if table_rows else ''}"
                         f"{' with --detail' if detail else ''} (budget {limits.MEMORY_BUDGET / 2**30:.0f} GiB); "
                         "use fewer rows, shorter rows (--length, --max-length), fewer dtypes or methods"
                         f"{', or drop --detail' if detail else ''}")


def _check_numbers(opts: Options) -> None:
    if opts.eps is not None and not (isinstance(opts.eps, (int, float)) and math.isfinite(opts.eps) and opts.eps >= 0):
        raise InputError(f"--eps {opts.eps}: give a finite number ≥ 0 (the norms' epsilon; default: each framework's own)")
    if opts.length is not None and not 1 <= opts.length <= 10 ** 7:
        raise InputError(f"--length {opts.length}: give a row length from 1 to 10,000,000")
    if not 1 <= opts.max_length <= 10 ** 7:
        raise InputError(f"--max-length {opts.max_length}: give a row length from 1 to 10,000,000")
    if not 1 <= opts.points <= 10 ** 5:
        raise InputError(f"--points {opts.points}: give 1 to 100,000 rows per case kind")
    if not (opts.max_ulp > 0 and math.isfinite(opts.max_ulp)):
        raise InputError(f"--max-ulp {opts.max_ulp}: give a finite number > 0")


def _check_methods(opts: Options, exps, backend_names) -> frozenset | None:
    """``--method`` names, refused unless some chosen backend offers them for a chosen experiment."""
    if opts.methods is None:
        return None
    wanted = {p.strip() for p in str(opts.methods).split(",") if p.strip()}
    offered = {}  # name → the first chosen backend offering it
    for b in backend_names:
        mod = _backends.load(b)
        for e in exps:
            for n in _backends.method_names(mod, _experiment.get(e)):
                offered.setdefault(n, mod)
    _loss.refuse_unoffered(wanted, offered, opts.dtypes)  # as the loss runner refuses them
    return frozenset(wanted)


# ---------------------------------------------------------------------------------------------
# running


def run(p: RowPlan | Options | None = None, progress=None, **kw):
    """Run the plan: (rows DataFrame (:data:`ROWS`), elements DataFrame (:data:`ELEMENTS`) or None
    without ``detail``). ``progress(done, total, label)`` as for the loss runner."""
    p = p if isinstance(p, RowPlan) else plan(p or Options(**kw))
    mods, skipped = _loss.usable_backends(list(p.backends), p.options)  # reads .backends
    total, done = len(p.experiments) * len(p.dtypes) * len(mods), 0
    parts, elements = [], []
    for e in p.experiments:
        exp = _experiment.get(e)
        for dt in p.dtypes:
            refs: dict = {}
            for mod in mods:
                if progress:
                    progress(done, total, f"{e} {dt.name} {mod.NAME}")
                for method in p.methods[(e, mod.NAME)]:
                    for g in p.groups[(e, dt.name)]:
                        _method(exp, mod, method, dt, g, refs, p, parts, elements)
                done += 1
    if progress:
        progress(done, total, "done")
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ROWS.names())
    if skipped:
        df.attrs["skipped_backends"] = _loss.skipped_note(skipped)
    el = (pd.concat(elements, ignore_index=True) if elements else pd.DataFrame(columns=ELEMENTS.names())) \
        if p.detail else None
    return df, el


def _params(exp, mod, method, dt, opts: Options) -> dict:
    """The parameters ``method`` is called with in ``dt``: --eps where given, else the framework's own."""
    if not exp.params:
        return {}
    own = method.params(mod, dt) if method.params is not None else {}
    if opts.eps is not None and "eps" in own:  # a method without an epsilon (a variance) keeps none
        own = {**own, "eps": float(opts.eps)}
    return own


def _method(exp, mod, method, dt, g, refs, p: RowPlan, parts, elements) -> None:
    """Evaluate one method on one group in one dtype; append its rows (and variants')."""
    opts = p.options
    want_grad = opts.grad and method.grad
    params, out, error = {}, None, ""
    try:
        params = _params(exp, mod, method, dt, opts)
        bound = replace(method, call=functools.partial(method.call, **params)) if params else method
        out = _backends.evaluate(mod, bound, dt, exp.cases_type(g.x), want_grad)
    except _backends.Unsupported as e:
        error = " ".join(str(e).split())
    key = (method.quantity, tuple(sorted(params.items())), id(g))
    if key not in refs:
        refs[key] = exp.reference(g.x, dt, method.quantity, opts.grad, params)
    ref = refs[key]
    names, own = p.selected, p.selected is None or method.name in p.selected
    named = [] if names is None else [n.split("@", 1)[1] for n in sorted(names)
                                      if n.split("@", 1)[0] == method.name and "@" in n]
    eps = float(params.get("eps", np.nan))
    no_grad = "" if method.grad else (method.no_grad_why or "this method has no gradient")

    def emit(name, o, err):
        _frames(exp, mod.NAME, name, method, dt, g, ref, o, err, opts, eps, no_grad, parts,
                elements if p.detail else None)

    if own:
        emit(method.name, out, error)
    for variant in dict.fromkeys([*(out.variants if out is not None else ()), *named]):
        where = _backends.variant_dtypes(mod, variant)
        if out is None:
            if where is None or dt.name in where:
                emit(f"{method.name}@{variant}", None, error)
            continue
        if variant not in out.variants:
            continue
        vout = out.variants[variant]
        differs = not metrics.identical(out.loss, vout.loss) or not metrics.identical(out.grad, vout.grad)
        if variant in named or (own and differs):
            emit(f"{method.name}@{variant}", vout, "")


#: Elements measured at once: a long row (a sum over 10^7 values) is measured in blocks of columns,
#: so that the measures' arrays (about 30 float64 per element) stay within about 250 MB.
MEASURE_BLOCK = 2 ** 20
#: Status code → severity (the worst element is the largest ulp error, then the most severe status).
_SEV = np.zeros(len(metrics.STATUSES))
for _s, _v in {"exact": 0, "ok": 1, "invalid-input": 2, "underflow": 3, "inaccurate": 4, "overflow": 5,
               "nan-result": 6, "unsupported": 7}.items():
    _SEV[metrics.STATUSES.index(_s)] = _v
_FAILED = np.isin(np.arange(len(metrics.STATUSES)), [metrics.STATUSES.index(s) for s in FAILURES])


def _frames(exp, backend, name, method, dt, g, ref, out, error, opts, eps, no_grad, parts, elements) -> None:
    """The rows (and with ``elements`` every element) of one method's value and gradient on one group."""
    quantities = [(method.quantity, ref[0])]
    if opts.grad:
        quantities.append((exp.grad_name(method.quantity), ref[1]))
    n = len(g.x)
    invalid = ~np.isfinite(g.x).all(axis=1)
    for i, (q, pair) in enumerate(quantities):
        hi, lo = (np.asarray(a, dtype=np.float64).reshape(n, -1) for a in pair[:2])
        raw = None if out is None else (out.loss if i == 0 else out.grad)
        err = error
        if out is not None and raw is None:
            err = no_grad or out.grad_error or "the backend returned no gradient"
        result_dtype = dt
        if raw is not None:
            raw = np.asarray(raw)
            result_dtype = _dtypes.REGISTRY.get(raw.dtype.name, dt)
            raw = raw.reshape(hi.shape)
        mdt = metrics.measuring_dtype(dt, result_dtype)
        k = hi.shape[1]
        rows = np.arange(n)
        best = np.full(n, -np.inf)  # the worst element so far: (ulp, severity), its index and measures
        best_sev = np.full(n, -1.0)
        j = np.zeros(n, dtype=np.int64)
        pick = {c: np.full(n, np.nan) for c in (*_columns.MEASURES, "value")}
        pick_status = np.full(n, metrics.UNSUPPORTED, dtype=np.uint8)
        failed = np.zeros(n, dtype=np.int64)
        worst_abs = np.zeros(n)  # the row's largest abs_error (nan: unknown), for normwise_ulp
        step = max(1, MEASURE_BLOCK // max(n, 1))
        for a in range(0, k, step):  # blocks of columns: one block for ordinary rows
            b = min(k, a + step)
            if raw is None:
                value = np.full((n, b - a), np.nan)
                m = {c: np.full(value.shape, np.nan) for c in _columns.MEASURES}
                status = np.full(value.shape, metrics.UNSUPPORTED, dtype=np.uint8)
            else:
                value = raw[:, a:b].astype(np.float64)
                m = metrics.measure(value, hi[:, a:b], mdt, reference_lo=lo[:, a:b], max_ulp=opts.max_ulp)
                status = m["status"]
                status[invalid] = metrics.INVALID_INPUT
            ulp = np.where(np.isnan(m["ulp_error"]), -1.0, m["ulp_error"])
            sev = _SEV[status]
            # within the block: the largest ulp error, then the most severe status, then the first index
            jj = np.lexsort((-sev, -ulp), axis=1)[:, 0] if b - a > 1 else np.zeros(n, dtype=np.int64)
            u, sv = ulp[rows, jj], sev[rows, jj]
            better = (u > best) | ((u == best) & (sv > best_sev))  # ties keep the earlier block's
            best, best_sev = np.where(better, u, best), np.where(better, sv, best_sev)
            j = np.where(better, jj + a, j)
            for c in _columns.MEASURES:
                pick[c] = np.where(better, m[c][rows, jj], pick[c])
            pick["value"] = np.where(better, value[rows, jj], pick["value"])
            pick_status = np.where(better, status[rows, jj], pick_status)
            failed += _FAILED[status].sum(axis=1)
            worst_abs = np.fmax(worst_abs, np.nanmax(m["abs_error"], axis=1, initial=-np.inf)) \
                if b > a else worst_abs
            # a nan where the exact value is a number has a nan abs_error, which nanmax skips: the row's
            # normwise error is then +inf (as documented), not the other elements' largest
            worst_abs = np.where((np.isnan(value) & ~np.isnan(hi[:, a:b])).any(axis=1), np.inf, worst_abs)
            if elements is not None:
                width = b - a
                xcol = g.x[:, a:b] if k == g.x.shape[1] else g.x[:, :1]
                elements.append(pd.DataFrame({
                    "experiment": exp.name, "quantity": q, "backend": backend, "method": name, "dtype": dt.name,
                    "result_dtype": result_dtype.name, "case_kind": np.repeat(g.kind, width),
                    "row": np.repeat(g.row, width), "index": np.tile(np.arange(a, b), n),
                    "value": value.reshape(-1), "reference": hi[:, a:b].reshape(-1),
                    **{c: m[c].reshape(-1) for c in _columns.MEASURES},
                    "status": metrics.status_names(status.reshape(-1)),
                    "x": xcol.reshape(-1),
                }, columns=ELEMENTS.names()))
        value = pick.pop("value")
        with np.errstate(all="ignore"):  # nan/inf rows and a tiny ulp: inf, nan are data
            top = np.nanmax(np.abs(hi), axis=1, initial=0.0)
            normwise = np.where(raw is None, np.nan, worst_abs / mdt.ulp(top))
        # eps as an array: a scalar nan with columns= given makes an object column in pandas 3
        parts.append(pd.DataFrame({
            "experiment": exp.name, "quantity": q, "backend": backend, "method": name, "form": method.form,
            "dtype": dt.name, "result_dtype": result_dtype.name, "case_kind": g.kind, "row": g.row,
            "length": g.x.shape[1], "magnitude": g.magnitude, "eps": np.full(n, eps), "index": j,
            "value": value, "reference": hi[rows, j], **pick, "normwise_ulp": normwise,
            "status": metrics.status_names(pick_status),
            "failed": failed, "error": err,
        }, columns=ROWS.names()))


# ---------------------------------------------------------------------------------------------
# summary and the terminal's view

_KEYS = ["experiment", "quantity", "backend", "method", "form", "dtype"]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, quantity, backend, method, dtype): rows, max/median ulp, the worst row, failed
    rows, and the first case kind (and smallest magnitude in it) where the method fails."""
    out = []
    kind_order = {}
    for e in dict.fromkeys(df["experiment"]):
        kind_order[e] = {k: i for i, k in enumerate(_experiment.get(e).case_kinds)}
    for key, g in df.groupby(_KEYS, sort=False):
        row = dict(zip(_KEYS, key))
        st = g["status"]
        valid = g[~st.isin(["invalid-input", "unsupported"])]
        row["rows"] = len(g)
        if len(valid):
            u = valid["ulp_error"].to_numpy()
            w = int(np.argmax(np.where(np.isnan(u), -1, u)))
            nw = valid["normwise_ulp"].to_numpy()
            row["max_normwise_ulp"] = float(np.nanmax(nw)) if (~np.isnan(nw)).any() else np.nan
            row.update(max_ulp=float(np.nanmax(u)) if np.isfinite(u).any() or np.isinf(u).any() else np.nan,
                       median_ulp=float(np.nanmedian(u)), worst_row=int(valid["row"].iloc[w]),
                       worst_kind=valid["case_kind"].iloc[w])
        else:
            row.update(max_ulp=np.nan, max_normwise_ulp=np.nan, median_ulp=np.nan, worst_row=-1, worst_kind="")
        row["failed_rows"] = int((g["failed"] > 0).sum())
        for s in ("nan-result", "overflow", "underflow", "inaccurate", "unsupported"):
            row[s.replace("-", "_")] = int((st == s).sum())
        fails = valid[valid["failed"] > 0]
        if len(fails):
            order = kind_order.get(key[0], {})
            rank = fails["case_kind"].map(lambda k: order.get(k, len(order))).to_numpy()
            first = fails[rank == rank.min()]
            i = int(np.argmin(first["magnitude"].to_numpy()))
            row.update(first_fail_kind=first["case_kind"].iloc[i], first_fail_magnitude=float(first["magnitude"].iloc[i]),
                       first_fail_status=first["status"].iloc[i])
        else:
            row.update(first_fail_kind="", first_fail_magnitude=np.nan, first_fail_status="")
        out.append(row)
    return pd.DataFrame(out, columns=SUMMARY.names())


#: Status abbreviations of the compact view.
ABBREV = {"inaccurate": "ina", "underflow": "unf", "overflow": "ovf", "nan-result": "nan"}


def compact(summ: pd.DataFrame) -> pd.DataFrame:
    """One row per method, one column per dtype (:func:`stabench.experiment.method_by_dtype`); each
    cell two lines: the first case kind where the method fails and its status (``—`` never;
    ``unsupported``), then its max ulp."""
    def cell(r):
        if r.unsupported == r.rows:
            return "unsupported\n"
        first = f"{r.first_fail_kind} {ABBREV.get(r.first_fail_status, r.first_fail_status)}" \
            if r.first_fail_kind else "—"
        return f"{first}\n{r.max_ulp:.3g}"
    return _experiment.method_by_dtype(summ, cell)


COMPACT_LEGEND = ("each cell: the first case kind where the method fails (ina inaccurate, unf underflow, "
                  "ovf overflow, nan nan-result; — never), then its largest ulp error over every element")


def title(name: str) -> str:
    """The experiment's one-line title."""
    return _experiment.get(name).title


def verdict(summ: pd.DataFrame) -> list[str]:
    """One line per (experiment, quantity, dtype): where each method first fails, or its max ulp."""
    def part(r, name):
        if r.unsupported == r.rows:
            return f"{name} unsupported"
        if r.first_fail_kind:
            return (f"{name} fails on {r.first_fail_kind} ({r.first_fail_status}, "
                    f"{r.failed_rows} of {r.rows} rows; normwise ≤ {r.max_normwise_ulp:.3g} ulp)")
        return f"{name} ≤ {r.max_ulp:.3g} ulp"
    return _experiment.verdict_lines(summ, part)
