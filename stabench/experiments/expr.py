"""``stabench expr``: your own expressions, in every dtype, against the exact value at the rounded
inputs. One row per expression × dtype × point; a summary per expression × dtype.

The pieces live in :mod:`stabench.expr` (parse, evaluate, reference, variables, examples); this
module builds the rows and the summary from them. ``stabench roundoff`` runs through the same
:func:`measure` (see :mod:`stabench.experiments.roundoff`).

Which rows are ``invalid-input`` (kept, not scored: error columns nan, the ``note`` says why):
an input that is nan or ±inf in the dtype (a value beyond the dtype's range included); a literal
that overflows the dtype (``1e5`` in float16); an input at which the expression is undefined
(log of a number ≤ 0, division by zero, …). An input that is rounded but finite (10,000 → 9,984 in
bfloat16) is valid: the reference is computed from the rounded value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import columns as _columns
from .. import dtypes as _dtypes
from .. import metrics
from ..errors import InputError
from ..experiment import CommandExperiment
from ..expr import examples as _examples
from ..expr import variables as _vars
from ..expr.evaluate import NON_FINITE_CONSTANTS, Marks, evaluate, literal_in, unfinished_note
from ..expr.parse import Expression, Node, free_variables, parse, walk
from ..expr.reference import reference, truth

#: Columns of the rows (the variables' columns, named as the variables, come after ``dtype``).
ROWS = _columns.Table("expr_rows", [
    _columns.Column("benchmark", "the FPCore's :name (only in --fpcore runs)", "text", left=True, key=True, optional=True),
    _columns.Column("form", "the expression's label (`label: expr` on the command line, else the expression itself or #1, #2, …; in --fpcore runs body, spec, alt1, …)", "text", left=True),
    _columns.Column("expression", "the expression as given", "text", left=True),
    _columns.Column("dtype", "floating-point format the program ran in", "text", left=True, key=True),
    _columns.Column("value", "the result of the program in the dtype (stored exactly in a float64 column)", "value"),
    _columns.Column("reference", "the exact value at the rounded inputs, rounded to float64 (nan where undefined)", "float"),
    _columns.Column("abs_error", "abs(value − exact), the exact value carried as a float64 pair (hi + lo); nan where not scored", "error"),
    _columns.Column("rel_error", "abs_error / abs(exact)", "error"),
    _columns.Column("ulp_error", "abs_error in ulps of the exact value in the dtype (glibc-style); +inf for nan/inf failures", "error"),
    _columns.Column("bits_error", "log2(1 + floats between value and the exact value rounded to the dtype) (Herbie)", "error"),
    _columns.Column("spec_ulp_error", "ulp_error against the spec's exact value (--spec, or an FPCore's :spec, else its body) at the same inputs: Herbie's scoring of a rewrite; nan without a spec or where not scored", "error"),
    _columns.Column("spec_bits_error", "bits_error against the spec's exact value (as spec_ulp_error)", "error"),
    _columns.Column("status", "exact / ok / inaccurate / underflow / overflow / nan-result / invalid-input (see Statuses)", "status", left=True),
    _columns.Column("note", "why a row is invalid-input (x is inf in float16, literal overflows, log of a number ≤ 0, branch undecided, …) or why its value is nan (a loop that did not end), else empty", "text"),
    # the measured bytes per row (ROW_BYTES, OUTPUT_ROW_BYTES below) less the columns' shares
], overhead={"frame": 142, "csv": 50, "json": 2550, "markdown": 240, "parquet": 21, "plot": 122})
COLUMNS = ROWS.docs()  #: {name: doc}: a view of :data:`ROWS`
#: Columns of the summary (one row per form × dtype).
SUMMARY = _columns.Table("expr_summary", [
    # form names the row for compare (a key there), shown as in the rows
    *_columns.as_in_rows(ROWS, "benchmark"),
    _columns.Column("form", "as in the rows", "text", left=True, compare="key"),
    *_columns.as_in_rows(ROWS, "expression", "dtype"),
    _columns.Column("points", "rows of this form and dtype", "int"),
    _columns.Column("rejected", "sampled points the precondition (an FPCore's :pre beyond its bounds) rejected before these points were kept", "int"),
    _columns.Column("max_ulp", "largest ulp_error over the scored rows (inf when any returned nan/inf for a finite value)", "error", compare="ulp"),
    _columns.Column("median_ulp", "median ulp_error over the scored rows", "error", compare="ulp"),
    _columns.Column("mean_bits", "mean bits_error over the scored rows (Herbie's average bits of error)", "float"),
    _columns.Column("max_bits", "largest bits_error over the scored rows", "float"),
    _columns.Column("failed", "scored rows with status inaccurate, underflow, overflow or nan-result", "int"),
    _columns.Column("exact", "rows with status exact", "int"),
    _columns.Column("ok", "rows with status ok", "int"),
    _columns.Column("inaccurate", "rows with status inaccurate", "int", compare="failures"),
    _columns.Column("underflow", "rows with status underflow", "int", compare="failures"),
    _columns.Column("overflow", "rows with status overflow", "int", compare="failures"),
    _columns.Column("nan_result", "rows with status nan-result", "int", compare="failures"),
    _columns.Column("invalid_input", "rows with status invalid-input (not scored)", "int"),
    _columns.Column("spec", "the form every row was also scored against (spec_* columns), empty when none", "text", left=True),
    _columns.Column("spec_max_ulp", "largest spec_ulp_error over the rows scored against the spec", "error", compare="ulp"),
    _columns.Column("spec_mean_bits", "mean spec_bits_error (Herbie's average bits of error of a rewrite, against the spec)", "float"),
    _columns.Column("spec_max_bits", "largest spec_bits_error", "float"),
    _columns.Column("spec_failed", "rows whose value is inaccurate, over/underflowed or nan against the spec's exact value", "int"),
    _columns.Column("unfinished", "rows whose loop did not end within the iteration bound in the dtype (value nan)", "int"),
    _columns.Column("worst_input", "the input of the row with the largest ulp_error (then bits_error), e.g. x=1e-08", "text"),
])
SUMMARY_COLUMNS = SUMMARY.docs()  #: {name: doc}: a view of :data:`SUMMARY`
#: The summary columns the terminal shows (80 columns); the exports carry all of them.
SUMMARY_TERMINAL_COLUMNS = ["form", "dtype", "max_ulp", "median_ulp", "mean_bits", "failed", "worst_input"]
#: The summary columns the terminal shows for an --fpcore run.
FPCORE_TERMINAL_COLUMNS = ["benchmark", "form", "dtype", "mean_bits", "spec_mean_bits"]
#: The row columns the terminal shows with --detail (after the variables).
DETAIL_TERMINAL_COLUMNS = ["form", "dtype", "value", "ulp_error", "status"]

FAILURES = ("inaccurate", "underflow", "overflow", "nan-result")
#: Labels longer than this are replaced by #1, #2, … (the legend prints the expressions).
MAX_LABEL = 10


# ---- peak memory, estimated from the plan before any work (the budget: limits.MEMORY_BUDGET)
# Measured as peak RSS (/usr/bin/time, `python benchmarks/expr.py --memory`) on the 2-core AMD EPYC,
# Python 3.11, numpy 2.4, pandas 3.1, rounded up; peak ≈ limits.BASE_BYTES + rows·(ROW_BYTES +
# VAR_ROW_BYTES·variables + Σ OUTPUT_ROW_BYTES) + points·POINT_BYTES + Σ OUTPUT_BYTES.

#: A row at the peak of the run: its part and the concatenated table (2·10^6 rows of 8 forms of
#: 250,000 points peak at 663 MB, of 1 form of 2·10^6 points at 796 MB: 258 bytes a row and 78 a point).
ROW_BYTES = _columns.row_bytes(ROWS, "frame")  # 270: ROWS' overhead plus its columns' shares
#: Each (form, dtype)'s temporaries per point (the reference, the metrics' arrays).
POINT_BYTES = 100
#: Each variable's column per row (4 more variables over 10^6 rows: +145 MB).
VAR_ROW_BYTES = 40
#: What each output adds per row (tracemalloc peak of building it; JSON builds a dict per row:
#: 540,000 float16 rows with --json peak at 1.85 GiB, 3.4 KB a row); --detail prints at most render.DETAIL_ROWS rows.
#: csv 220, json 3500, markdown 450, parquet 50, plot 170 (declared with ROWS).
OUTPUT_ROW_BYTES = {p: _columns.row_bytes(ROWS, p) for p in ("csv", "json", "markdown", "parquet", "plot")}
#: What an output's library adds once imported (pyarrow 8 MB, matplotlib 36 MB measured).
OUTPUT_BYTES = {"parquet": 10 * 2**20, "plot": 40 * 2**20}
#: What each variable's column adds per row in an output, beyond VAR_ROW_BYTES: JSON writes a key
#: and a value in every row (29 more variables over 10^5 float16 rows: +755 MB with --json, +119 MB
#: without; issue 19's acceptance: 30 variables × 370,000 rows estimated at 1.9 GiB peaked at 4.0 GiB).
OUTPUT_VAR_ROW_BYTES = {"json": 260, "markdown": 20, "csv": 10}
#: What each character of a row's text (form, expression, note) costs per row: the table keeps a
#: copy per row (pandas 3's string columns), and CSV, JSON and Markdown write it into every row of
#: their text (a 905-character expression over 2·10^5 float16 rows: +0.9 KB a row without an
#: output, +3.3 KB with --csv, +3.7 KB --json, +3.6 KB --markdown; the estimate had left it out).
TEXT_CHAR_BYTES = 1.2
OUTPUT_TEXT_CHAR_BYTES = {"csv": 3.0, "json": 3.5, "markdown": 3.5}
#: Characters of the longest fixed note (a negative number to a non-integer power, …); a note that
#: names a literal (literal … overflows float16) holds the literal's text too.
NOTE_CHARS = 48


@dataclass(frozen=True)
class Plan:
    """A validated run: expressions, variables, dtypes, seed. Built by :func:`plan` before any work."""

    expressions: tuple[Expression, ...]
    variables: tuple[_vars.Variable, ...]
    dtypes: tuple[_dtypes.DType, ...]
    seed: int = 0
    example: str | None = None
    #: every form is also scored against this one's exact value (``--spec``, an FPCore's :spec/body)
    spec: Expression | None = None
    #: a condition the points must meet (an FPCore's :pre beyond its box): sampled points failing
    #: it are rejected (decided exactly, by the reference) and redrawn
    pre: Expression | None = None
    #: the FPCore's name in ``--fpcore`` runs (the rows' ``benchmark`` column), else None
    benchmark: str | None = None


def plan(expressions=None, variables=None, dtype_list=None, *, seed: int = 0, example: str | None = None,
         spec: str | None = None) -> Plan:
    """Parse and check everything (expressions, ``--var`` specs, dtypes, grid size); raise
    :class:`InputError` on the first problem. ``example`` takes the forms and variables of a
    :mod:`stabench.expr.examples` entry (``variables`` given too replace the example's by name)."""
    if isinstance(expressions, str):
        expressions = [expressions]
    specs = list(variables or [])
    if example is not None:
        ex = _examples.get(example)  # first: an unknown name may be an expression read as -e (-expm1(x))
        if expressions:
            raise InputError("give expressions or --example, not both")
        expressions = list(ex.forms)
        mine = {s.split("=", 1)[0].strip() for s in specs if "=" in s}
        specs = [s for s in ex.variables if s.split("=", 1)[0] not in mine] + specs
    if not expressions:
        raise InputError("no expression given; e.g. stabench expr 'log(1 + x)' 'log1p(x)' "
                         "--var x=1e-8..1:log:100 (or --example list)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"--seed must be an integer ≥ 0, got {seed!r}")
    exprs = []
    for i, text in enumerate(expressions, start=1):
        try:
            e = parse(text)
        except InputError as err:
            raise InputError(f"expression {i}: {err}") from None
        if e.label == e.text and len(e.text) > MAX_LABEL:
            e = Expression(f"#{i}", e.text, e.tree, e.variables)
        exprs.append(e)
    labels = [e.label for e in exprs]
    dup = next((lab for lab in labels if labels.count(lab) > 1), None)
    if dup is not None:
        raise InputError(f"two expressions are labelled {dup!r}; labels must differ")
    spec_expr = None
    if spec is not None:
        try:
            spec_expr = parse(spec)
        except InputError as err:
            raise InputError(f"--spec: {err}") from None
    dts = _dtypes.parse_list(dtype_list)
    vs = _vars.parse_vars(specs)
    used = []
    for e in exprs + ([spec_expr] if spec_expr else []):
        used += [v for v in e.variables if v not in used]
    _vars.check(vs, used, dts, reserved=set(COLUMNS))
    return Plan(tuple(exprs), tuple(vs), tuple(dts), int(seed), example.strip().lower() if example else None,
                spec=spec_expr)


def points(p: Plan) -> int:
    """Points per dtype: every variable's points multiplied (the grid)."""
    return _vars.count(list(p.variables))


def memory_estimate(p: Plan, outputs=()) -> int:
    """Peak resident memory of running ``p`` with ``outputs`` (csv, json, markdown, parquet, plot),
    in bytes, from counts alone (see :data:`ROW_BYTES`)."""
    from .. import limits

    n = points(p)
    rows = n * len(p.expressions) * len(p.dtypes)
    outs = set(outputs)
    per_var = VAR_ROW_BYTES + sum(OUTPUT_VAR_ROW_BYTES.get(o, 0) for o in outs)
    per_row = ROW_BYTES + per_var * len(p.variables) + sum(OUTPUT_ROW_BYTES[o] for o in outs)
    per_char = TEXT_CHAR_BYTES + sum(OUTPUT_TEXT_CHAR_BYTES.get(o, 0) for o in outs)
    text = n * sum(_row_text_bytes(e, dt) for e in p.expressions for dt in p.dtypes) * per_char
    return int(limits.BASE_BYTES + rows * per_row + text + n * POINT_BYTES + sum(OUTPUT_BYTES.get(o, 0) for o in outs))


def _row_text_bytes(e: Expression, dt: _dtypes.DType) -> int:
    """Bytes of text (UTF-8) in each row of ``e`` in ``dt``: its label, its expression and the
    longest note (which names a literal that overflows ``dt``)."""
    over = [len((n.text or "").encode()) for n in e.nodes() if n.kind == "num" and not np.isfinite(literal_in(n, dt))]
    return len(e.label.encode()) + len(e.text.encode()) + NOTE_CHARS + max(over, default=0)


def check_memory_fpcore(r: "FPCoreRun", outputs=()) -> None:
    """:func:`check_memory` for an ``--fpcore`` run: every FPCore's rows are kept until the end, so
    the budget is for all of them (one base, each plan's rows)."""
    from .. import limits

    need = limits.BASE_BYTES + sum(memory_estimate(p, outputs) - limits.BASE_BYTES for p in r.plans)
    if need <= limits.MEMORY_BUDGET:
        return
    rows = sum(points(p) * len(p.expressions) * len(p.dtypes) for p in r.plans)
    raise InputError(f"this run needs about {need / 2**30:.1f} GiB of memory ({len(r.plans)} FPCores, {rows:,} rows), "
                     f"over the {limits.MEMORY_BUDGET / 2**30:.0f} GiB budget: use fewer --points or --name a few")


def check_memory(p: Plan, outputs=()) -> None:
    """Refuse (:class:`InputError`, before any work) a plan whose estimate exceeds the budget."""
    from .. import limits

    need = memory_estimate(p, outputs)
    if need <= limits.MEMORY_BUDGET:
        return
    n = points(p)
    rows = n * len(p.expressions) * len(p.dtypes)
    outs = f", with {', '.join('--' + o for o in outputs)}" if outputs else ""
    hint = "; --json costs 3 KB a row: prefer --csv or --parquet" if "json" in outputs else ""
    f, d = len(p.expressions), len(p.dtypes)
    raise InputError(f"this run needs about {need / 2**30:.1f} GiB of memory ({n:,} points × {f} form{'s' * (f > 1)} "
                     f"× {d} dtype{'s' * (d > 1)} = {rows:,} rows{outs}), over the "
                     f"{limits.MEMORY_BUDGET / 2**30:.0f} GiB budget: use fewer points, forms or dtypes{hint}")


def measure(expr: Expression, dt: _dtypes.DType, points: dict[str, np.ndarray], *, cache: dict | None = None,
            max_ulp: float = metrics.DEFAULT_MAX_ULP, spec: dict | None = None) -> dict[str, np.ndarray]:
    """One expression in one dtype over every point: the engine shared by ``expr`` and ``roundoff``.

    ``points`` maps variables to float64 arrays of one length, already rounded to ``dt``. Returns
    arrays ``value``, ``reference``, ``reference_lo``, ``abs_error``, ``rel_error``, ``ulp_error``,
    ``bits_error``, ``status`` (codes), ``note`` and ``unfinished`` (a loop that did not end in the
    dtype); with ``spec`` (the :func:`exact` of the spec at the same points) also
    ``spec_ulp_error`` and ``spec_bits_error``.
    """
    n = len(next(iter(points.values()))) if points else 1
    env = {k: dt.cast(points[k]) for k in expr.variables}
    marks = Marks(n)
    raw = evaluate(expr.tree, dt, env, marks)
    value = np.broadcast_to(raw, (n,)).astype(np.float64)
    # without variables the program ran once, at "point 0", for every point
    unfinished = np.full(n, marks.unfinished[0]) if np.ndim(raw) == 0 else marks.unfinished
    # a point whose loop did not end in the dtype is not scored: its value is nan, and whether the
    # exact loop ends (another 2,000 iterations, point by point, in ball arithmetic) is not asked
    ex = exact(expr, dt, points, cache=cache, skip=unfinished if unfinished.any() else None)
    note = ex["note"].copy()
    note[unfinished] = unfinished_note(f"in {dt.name}")
    invalid = note != ""
    # statuses as codes; the scaled tail keeps the error of tiny (near-subnormal) results exact
    m = _scored(value, ex, dt, invalid, max_ulp)
    out = {"value": value, "reference": ex["hi"], "reference_lo": ex["lo"], **m, "note": note,
           "unfinished": unfinished}
    if spec is not None:
        bad = invalid | (spec["note"] != "")
        sm = _scored(value, spec, dt, bad, max_ulp)
        out.update(spec_ulp_error=sm["ulp_error"], spec_bits_error=sm["bits_error"])
    return out


def _scored(value, ex: dict, dt, invalid, max_ulp) -> dict:
    m = metrics.measure(value, ex["hi"], dt, reference_lo=ex["lo"], reference_tail=ex["tail"], max_ulp=max_ulp)
    status = m["status"]
    status[invalid] = metrics.INVALID_INPUT
    for k in _columns.MEASURES:
        m[k] = np.where(invalid, np.nan, m[k])
    m["status"] = status
    return m


def exact(expr: Expression, dt: _dtypes.DType, points: dict[str, np.ndarray], *, cache: dict | None = None,
          skip: np.ndarray | None = None) -> dict:
    """The exact value of ``expr`` at the points as rounded to ``dt``: arrays ``hi``, ``lo``,
    ``tail`` (see :mod:`stabench.expr.reference`) and ``note`` (why a point is not scored: a
    non-finite input, a literal ``dt`` cannot hold, an undefined operation, an undecided branch).
    Points where ``skip`` holds are left nan (their note is the caller's)."""
    n = len(next(iter(points.values()))) if points else 1
    note = np.full(n, "", dtype=object)
    for k in expr.variables:
        bad = ~np.isfinite(points[k]) & (note == "")
        note[bad] = [f"{k} is {_word(v)} in {dt.name}" for v in points[k][bad]]
    hi = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    tail = np.full(n, np.nan)
    ok = (note == "") if skip is None else (note == "") & ~skip
    if ok.any():  # the exact value at the (finite) inputs; literals are exact, whatever the dtype
        sub = {k: points[k][ok] for k in expr.variables}
        ref = reference(expr.tree, sub, cache)
        hi[ok], lo[ok], note[ok], tail[ok] = *ref, ref.tail
    for node in expr.nodes():
        # a literal the dtype cannot hold: the program cannot be written in it; the exact value
        # stays in `reference`, the row is not scored
        if node.kind in ("num", "const") and not np.isfinite(literal_in(node, dt)) \
                and not (node.kind == "const" and node.name in NON_FINITE_CONSTANTS):
            note[:] = f"literal {node.text or node.name} overflows {dt.name}"
    return {"hi": hi, "lo": lo, "tail": tail, "note": note}


def _word(v: float) -> str:
    return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")


def sample_points(p: Plan, dt: _dtypes.DType) -> tuple[dict[str, np.ndarray], int]:
    """The plan's points in ``dt`` and how many sampled points its precondition rejected: the grid
    of its variables (random ones paired), filtered by ``p.pre`` (decided exactly) with redraws."""
    variables = list(p.variables)
    if p.pre is None:
        return _vars.grid(variables, dt, p.seed), 0
    from ..expr import search

    if search.searchable(variables):  # Herbie's way: rule out parts of the box first
        got = search.sample(p.pre.tree, variables, dt, p.seed, _vars.count(variables))
    else:
        got = _vars.sample(variables, dt, p.seed, accept=lambda pts: truth(p.pre.tree, pts))
    return got.points, got.rejected


def run(p: Plan, *, max_ulp: float = metrics.DEFAULT_MAX_ULP, progress=None) -> pd.DataFrame:
    """Every row of the plan: one per expression × dtype × point (:data:`COLUMNS`, variables
    after ``dtype``; ``benchmark`` first in an FPCore plan). ``df.attrs["rejected"]`` maps each
    dtype to the points its precondition rejected while sampling."""
    names = [v.name for v in p.variables]
    caches = {e.label: {} for e in p.expressions}  # the exact value depends on the inputs only
    spec_cache: dict = {}
    total = len(p.expressions) * len(p.dtypes)
    parts, done, rejected = [], 0, {}
    for dt in p.dtypes:
        pts, rejected[dt.name] = sample_points(p, dt)
        spec = exact(p.spec, dt, pts, cache=spec_cache) if p.spec is not None else None
        for e in p.expressions:
            if progress is not None:
                progress(done, total, f"expr {e.label} {dt.name}")
            r = measure(e, dt, pts, cache=caches[e.label], max_ulp=max_ulp, spec=spec)
            n = len(r["value"])
            cols = {} if p.benchmark is None else {"benchmark": p.benchmark}
            cols.update({"form": e.label, "expression": e.text, "dtype": dt.name})
            cols.update({k: pts[k] for k in names})
            cols.update({k: r[k] for k in ("value", "reference", *_columns.MEASURES)})
            cols["spec_ulp_error"] = r["spec_ulp_error"] if spec is not None else np.full(n, np.nan)
            cols["spec_bits_error"] = r["spec_bits_error"] if spec is not None else np.full(n, np.nan)
            cols["status"] = metrics.status_names(r["status"])
            cols["note"] = r["note"]
            parts.append(pd.DataFrame(cols, index=range(n)))
            done += 1
    if progress is not None:
        progress(total, total, "expr")
    df = pd.concat(parts, ignore_index=True)
    df.attrs["rejected"] = rejected
    df.attrs["spec"] = p.spec.label if p.spec is not None else ""
    df.attrs["max_ulp"] = max_ulp
    return df


def _input_text(row, names, dt) -> str:
    from ..render import shortest

    return ", ".join(f"{k}={shortest(row[k], dt)}" for k in names)


def summary(rows: pd.DataFrame, variables=None) -> pd.DataFrame:
    """Per form × dtype (× benchmark): max/median ulps, mean/max bits, status counts, the worst
    input; against the spec too where the run has one (``rows.attrs["spec"]``)."""
    names = [c for c in rows.columns if c not in COLUMNS] if variables is None else list(variables)
    rejected = rows.attrs.get("rejected", {})
    spec = rows.attrs.get("spec", "")
    keys = (["benchmark"] if "benchmark" in rows.columns else []) + ["form", "dtype"]
    out = []
    for key, g in rows.groupby(keys, sort=False):
        key = dict(zip(keys, key))
        dtn = key["dtype"]
        dt = _dtypes.get(dtn)
        st = g["status"]
        scored = g[st != "invalid-input"]
        row = dict(key)
        row.update(expression=g["expression"].iloc[0], points=len(g), rejected=int(rejected.get(dtn, 0)))
        if "benchmark" in key:  # an FPCore: its arguments (the other benchmarks' columns are empty)
            used = [k for k in names if g[k].notna().any()]
        else:
            used = [k for k in names if k in parse(row["expression"]).variables]
        if len(scored):
            u = scored["ulp_error"].to_numpy()
            b = scored["bits_error"].to_numpy()
            worst = np.lexsort((-b, -u))[0]
            row.update(max_ulp=float(u.max()), median_ulp=float(np.median(u)), mean_bits=float(b.mean()),
                       max_bits=float(b.max()), worst_input=_input_text(scored.iloc[worst], used, dt))
        else:
            row.update(max_ulp=np.nan, median_ulp=np.nan, mean_bits=np.nan, max_bits=np.nan, worst_input="")
        row["failed"] = int(st.isin(FAILURES).sum())
        for s_ in ("exact", "ok", "inaccurate", "underflow", "overflow", "nan-result", "invalid-input"):
            row[s_.replace("-", "_")] = int((st == s_).sum())
        row["spec"] = spec
        su = g["spec_ulp_error"].to_numpy(dtype=float)
        sb = g["spec_bits_error"].to_numpy(dtype=float)
        have = ~np.isnan(su)
        if spec and have.any():
            row.update(spec_max_ulp=float(su[have].max()), spec_mean_bits=float(sb[have].mean()),
                       spec_max_bits=float(sb[have].max()),
                       spec_failed=int((su[have] > rows.attrs.get("max_ulp", metrics.DEFAULT_MAX_ULP)).sum()))
        else:
            row.update(spec_max_ulp=np.nan, spec_mean_bits=np.nan, spec_max_bits=np.nan, spec_failed=0)
        row["unfinished"] = int((g["note"] == unfinished_note(f"in {dtn}")).sum())
        out.append(row)
    cols = [c for c in SUMMARY_COLUMNS if c != "benchmark" or "benchmark" in rows.columns]
    return pd.DataFrame(out, columns=cols)


def legend(p: Plan) -> list[str]:
    """Lines naming each form whose label is not its expression (#1 = …)."""
    return [f"{e.label} = {e.text}" for e in p.expressions if e.label != e.text]


def verdict(summ: pd.DataFrame) -> list[str]:
    """One line per dtype: each form's worst error, and how many points failed."""
    lines = []
    for dtn, g in summ.groupby("dtype", sort=False):
        parts = []
        for r in g.itertuples(index=False):
            scored = r.points - r.invalid_input
            if scored == 0:
                parts.append(f"{r.form}: no valid input")
            elif r.failed:
                parts.append(f"{r.form} fails on {r.failed} of {scored} (worst {_short_inputs(r.worst_input) or 'at the only point'})")
            else:
                parts.append(f"{r.form} within {r.max_ulp:.3g} ulp")
        lines.append(f"{dtn}: " + "; ".join(parts))
    return lines


def varying_name(p: Plan) -> str | None:
    """The one variable that takes several values (the x axis of a plot), else None."""
    many = [v.name for v in p.variables if v.size() > 1]
    return many[0] if len(many) == 1 else None


def title(p: Plan) -> str:
    """A short title: the example's name, or the labels of the forms."""
    return p.example or " vs ".join(e.label for e in p.expressions)


def _short_inputs(text: str) -> str:
    """'x=2.511886431509582e-10, y=3.0' → 'x=2.512e-10, y=3' (the exports keep every digit)."""
    parts = []
    for item in filter(None, text.split(", ")):
        k, v = item.split("=", 1)
        parts.append(f"{k}={float(v):.4g}")
    return ", ".join(parts)


def for_terminal(df: pd.DataFrame, p: Plan) -> pd.DataFrame:
    """A copy for the terminal: rows get the variables and value as the shortest text that
    identifies them in their dtype (only the columns worth a glance); summaries get 2-decimal bits."""
    from ..render import shortest

    if "points" in df.columns:  # a summary
        out = df.copy()
        for c in ("mean_bits", "max_bits", "spec_mean_bits", "spec_max_bits"):
            out[c] = out[c].round(2)
        out["worst_input"] = [_short_inputs(t) for t in out["worst_input"]]
        return out
    names = [v.name for v in p.variables]
    dts = [_dtypes.get(d) for d in df["dtype"]]
    out = pd.DataFrame({"form": df["form"], "dtype": df["dtype"]})
    for c in names + ["value"]:
        out[c] = [shortest(v, dt) for v, dt in zip(df[c].to_numpy(), dts)]
    out["ulp_error"] = df["ulp_error"]
    out["status"] = df["status"]
    if (df["note"] != "").any():
        out["note"] = df["note"]
    return out


# ---- FPCore input (``--fpcore FILE``): one Plan per FPCore -------------------------------------

#: Points an FPCore run samples per dtype unless ``--points`` says otherwise: Herbie's 8,000
#: (its reports score every program on 8,000 sampled points).
FPCORE_POINTS = 8000
#: ... and an FPCore with a loop (``while``): its exact reference runs the loop point by point in
#: ball arithmetic (FPBench's Odometry: 1,000 iterations, about 0.05 s a point), so it samples the
#: 256 points of Herbie's published runs (www/results.json, 2015 and 2017).
FPCORE_LOOP_POINTS = 256

#: FPCore :precision → the dtype an FPCore runs in when no --dtype is given.
PRECISIONS = {"binary64": "float64", "binary32": "float32", "binary16": "float16"}


@dataclass(frozen=True)
class FPCoreRun:
    """A validated ``--fpcore`` run: one :class:`Plan` per FPCore that can run, and
    (name, reason) for each refused FPCore (a construct the tool does not support)."""

    source: str
    plans: tuple[Plan, ...]
    refused: tuple[tuple[str, str], ...] = ()


def _outputs(core) -> list[tuple[str, object]]:
    """(label, tree) of each output of an FPCore's body: the body, or each element of an array
    body (``body[0]``, ``body[1]``, …: the array moved out of the lets and loops around it)."""
    def elements(node):
        if node.kind == "array":
            return list(node.args)
        if node.kind in ("let", "let*", "while", "while*"):
            inner = elements(node.args[-1])
            if inner is None:
                return None
            return [Node(node.kind, node.args[:-1] + (e,), names=node.names, span=node.span) for e in inner]
        if node.kind == "if":
            a, b = elements(node.args[1]), elements(node.args[2])
            if a is None or b is None or len(a) != len(b):
                return None
            return [Node("if", (node.args[0], x, y), span=node.span) for x, y in zip(a, b)]
        return None

    parts = elements(core.body)
    if parts is None:
        return [("body", core.body)]
    return [(f"body[{i}]", e) for i, e in enumerate(parts)]


def _expression(label: str, tree, text: str) -> Expression:
    return Expression(label=label, text=text, tree=tree, variables=free_variables(tree))


def fpcore_plan(source, names=None, dtype_list=None, *, seed: int = 0, points: int | None = None) -> FPCoreRun:
    """Read an FPCore file (a path, or ``text=`` through :func:`fpcore_plan_text`) and build one plan
    per FPCore (or per named one): its body, :spec and each :alt as forms (``body``, ``spec``,
    ``alt1``, …), every form also scored against the :spec (else the body), its arguments sampled
    uniformly over the dtype's bit patterns inside the :pre's bounds (paired, ``points`` per dtype;
    by default :data:`FPCORE_POINTS`, :data:`FPCORE_LOOP_POINTS` for an FPCore with a loop),
    the rest of the :pre as a filter decided exactly; in its :precision unless ``dtype_list``.
    Raises :class:`InputError` on a file that cannot be read or parsed, or when no FPCore can run."""
    from ..expr import fpcore

    refused: list = []
    cores = fpcore.load(source, refused)
    return _fpcore_plans(str(source), cores, refused, names, dtype_list, seed, points)


def fpcore_plan_text(text: str, names=None, dtype_list=None, *, seed: int = 0, points: int | None = None) -> FPCoreRun:
    """:func:`fpcore_plan` of FPCore text (for the API and tests)."""
    from ..expr import fpcore

    refused: list = []
    cores = fpcore.read(text, "<text>", refused)
    return _fpcore_plans("<text>", cores, refused, names, dtype_list, seed, points)


def _fpcore_plans(source, cores, refused_errors, names, dtype_list, seed, points) -> FPCoreRun:
    from ..expr import fpcore

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"--seed must be an integer ≥ 0, got {seed!r}")
    if points is not None and (isinstance(points, bool) or not isinstance(points, (int, np.integer))
                               or not 1 <= points <= _vars.MAX_POINTS):
        raise InputError(f"--points must be an integer from 1 to {_vars.MAX_POINTS:,}, got {points!r}")
    refused = [(e.core, str(e)) for e in refused_errors]  # fpcore.read names each refused FPCore
    if names:
        wanted = set(names)
        refused = [r for r in refused if r[0] in wanted]
        known = {c.name for c in cores} | {c.ident for c in cores if c.ident}
        if all(n in {r[0] for r in refused} for n in names if n not in known) and not (wanted & known):
            cores = []  # every named FPCore is refused: say why below
        else:
            cores = fpcore.select(cores, [n for n in names if n in known or n not in {r[0] for r in refused}])
    given = _dtypes.parse_list(dtype_list) if dtype_list else None
    plans = []
    for core in cores:
        try:
            plans.append(_core_plan(core, given, seed, points))
        except InputError as err:  # said as the parser says a refusal: where, which FPCore, what
            refused.append((core.name, f"{source}:{core.line}: FPCore {fpcore.quoted(core.name)}: {err}"))
    if not plans:
        if refused:
            raise InputError(refused[0][1] + (f" (and {len(refused) - 1} more FPCores refused)" if len(refused) > 1 else ""))
        raise InputError(f"{source}: no FPCore to run")
    return FPCoreRun(source, tuple(plans), tuple(refused))


def _core_plan(core, given, seed, points) -> Plan:
    from ..expr import fpcore

    if given is None:
        dt = PRECISIONS.get(core.precision)
        if dt is None:
            raise InputError(f":precision {core.precision} has no dtype here (binary64, binary32, binary16); "
                             "pass --dtype to run it in others")
        dts = (_dtypes.get(dt),)
    else:
        dts = tuple(given)
    other = sorted({f"(! :precision {q} {a})" for a, q in core.arg_precisions.items() if q != core.precision})
    if other:  # an argument of another precision than the FPCore's: mixed precision
        raise InputError(f"argument precision {other[0]} differs from the FPCore's {core.precision}: "
                         "mixed precision is not supported")
    outs = _outputs(core)
    forms = [_expression(lab, tree, core.text if len(outs) == 1 else f"{core.text} [{lab[4:]}]") for lab, tree in outs]
    spec = None
    if core.spec is not None:
        forms.append(_expression("spec", core.spec, core.spec_text))
        spec = forms[-1]
    elif len(outs) == 1:
        spec = forms[0]
    for i, (alt, text) in enumerate(zip(core.alts, core.alt_texts), start=1):
        forms.append(_expression(f"alt{i}", alt, text))
    clash = [a for a in core.arguments if a in COLUMNS or a in SUMMARY_COLUMNS]
    if clash:
        raise InputError(f"argument {clash[0]!r} is also a column of the rows; rename it")
    box = dict(core.box)
    if points is None:
        loops = any(n.kind in ("while", "while*") for n in walk(core.body))
        points = FPCORE_LOOP_POINTS if loops else FPCORE_POINTS
    variables = _vars.from_box({a: box.get(a, (None, None)) for a in core.arguments}, points, list(core.arguments))
    pre = None
    if core.rest is not None:
        pre = _expression(":pre", core.rest, fpcore.unparse(core.rest))
    return Plan(tuple(forms), tuple(variables), dts, int(seed), None, spec=spec, pre=pre, benchmark=core.name)


def run_fpcore(r: FPCoreRun, *, max_ulp: float = metrics.DEFAULT_MAX_ULP, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every FPCore's rows and summary, concatenated (``benchmark`` first; each FPCore's arguments
    are columns, empty in the other FPCores' rows). ``rows.attrs["wall_seconds"]`` maps each
    benchmark to the seconds its rows took."""
    import time

    rows, summs, walls, failed = [], [], {}, []
    for i, p in enumerate(r.plans):
        t0 = time.perf_counter()
        try:
            df = run(p, max_ulp=max_ulp)
        except InputError as err:  # a :pre no sampled point met: said per FPCore, the others run
            from ..expr.fpcore import quoted

            failed.append((p.benchmark, f"{r.source}: FPCore {quoted(p.benchmark)}: {err}"))
            continue
        summs.append(summary(df))
        walls[p.benchmark] = round(time.perf_counter() - t0, 3)
        rows.append(df)
        if progress is not None:
            progress(i + 1, len(r.plans), f"fpcore {p.benchmark}")
    if not rows:
        raise InputError(failed[0][1] if len(failed) == 1 else
                         f"{failed[0][1]} (and {len(failed) - 1} more FPCores)")
    names: list[str] = []
    for p in r.plans:
        names += [v.name for v in p.variables if v.name not in names]
    lead = ["benchmark", "form", "expression", "dtype"]
    order = lead + names + [c for c in COLUMNS if c not in lead]
    all_rows = pd.concat(rows, ignore_index=True).reindex(columns=order)
    summ = pd.concat(summs, ignore_index=True)
    all_rows.attrs["wall_seconds"] = walls  # (metadata only: the data files stay byte-identical)
    all_rows.attrs["not_run"] = failed
    return all_rows, summ


def fpcore_verdict(summ: pd.DataFrame, refused=()) -> list[str]:
    """Per dtype: how many FPCores ran, the mean bits of error of the bodies (median, worst), the
    forms that beat their spec; then one line per refused FPCore."""
    lines = []
    for dtn, g in summ.groupby("dtype", sort=False):
        body = g[g["form"].str.startswith("body")]
        bits = body["spec_mean_bits"].where(body["spec_mean_bits"].notna(), body["mean_bits"])
        if bits.notna().any():
            worst = body.loc[bits.idxmax()]
            lines.append(f"{dtn}: {g['benchmark'].nunique()} FPCores; body error median {bits.median():.2f} bits, "
                         f"worst {bits.max():.2f} ({worst['benchmark']})")
        else:
            lines.append(f"{dtn}: {g['benchmark'].nunique()} FPCores; no valid input")
        unfinished = int(g["unfinished"].sum())
        rejected = int(g.drop_duplicates(["benchmark"])["rejected"].sum())
        extra = []
        if rejected:
            extra.append(f"{rejected:,} sampled points rejected by :pre")
        if unfinished:
            extra.append(f"{unfinished:,} rows with a loop that did not end")
        if extra:
            lines.append(f"{dtn}: " + "; ".join(extra))
    for name, why in refused:
        lines.append(f"refused {name}: {why}")
    return lines


#: ``expr`` in :mod:`stabench.experiment`: its cases are a :class:`Plan`'s variables, its reference
#: :mod:`stabench.expr.reference`, its methods the user's expressions (no backends).
EXPERIMENT = CommandExperiment("expr", "user expressions, each evaluated in every dtype against an exact reference",
                               COLUMNS, SUMMARY_COLUMNS, "stabench.expr.reference: a stated relative bound per "
                               "function, tested against mpmath", summary)
