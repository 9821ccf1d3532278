"""The loss runner: cross-entropy through the probability (naive) vs on the logits (fused), for
every experiment registered in :mod:`stabench.experiment` (``sigmoid``: binary cross-entropy,
:mod:`.sigmoid`; ``softmax``: sparse categorical cross-entropy, :mod:`.softmax`), as rows
(:func:`run`) or streamed into exact aggregates (:func:`run_streaming`). Nothing here names an
experiment: each one builds its cases, reference and methods behind the interface.

For each dtype the inputs are rounded to that dtype first; the oracle computes the reference from
those rounded inputs; every backend method runs once over the whole batch; the metrics compare.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np
import pandas as pd

from .. import backends as _backends
from .. import columns as _columns
from .. import dtypes as _dtypes
from .. import experiment as _experiment
from .. import inputs, limits, metrics, validate
from ..errors import InputError



def __getattr__(name: str):
    """``EXPERIMENTS``: the loss experiments, in display order; ``CASE_KINDS``: how each row's
    inputs were built (the CSV's ``case_kind`` column), from every experiment. Both are read from
    the registry when asked (not copied at import), so an experiment registered later is seen."""
    if name == "EXPERIMENTS":
        return tuple(_experiment.names())
    if name == "CASE_KINDS":
        return _experiment.all_case_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# the row and summary contract lives in stabench.experiment; these names stay for the Python API
FAILURES, COLUMNS, SUMMARY_COLUMNS = _experiment.FAILURES, _experiment.COLUMNS, _experiment.SUMMARY_COLUMNS
row_frame, summary, _Batch = _experiment.row_frame, _experiment.summary, _experiment.Batch
FILE_ATTR = _experiment.FILE_ATTR

SUMMARY_TERMINAL_COLUMNS = ["backend", "method", "form", "dtype", "cases", "max_ulp", "median_ulp",
                            "worst_logit", "nan_result", "overflow", "underflow", "inaccurate",
                            "first_fail_abs_logit", "first_fail_status"]
#: --full for a --logits-file run: the failures by row, the worst row and the reduced loss.
FILE_SUMMARY_TERMINAL_COLUMNS = ["backend", "method", "form", "dtype", "cases", "failed", "negligible", "nan_result",
                                 "overflow", "underflow", "inaccurate", "worst_case", "worst_case_logit", "worst_status",
                                 "max_ulp", "max_ulp_counted", "mean_value", "mean_reference", "mean_ulp",
                                 "mean_rel_error", "mean_status", "sum_ulp", "sum_status"]
DETAIL_TERMINAL_COLUMNS = ["backend", "method", "dtype", "result_dtype", "case_kind", "logit", "label",
                           "value", "reference", "ulp_error", "status"]


@dataclass(frozen=True)
class Options:
    """Every option of a loss run (what the CLI parses; defaults are the CLI's), as given: :func:`plan`
    checks them and turns them into a :class:`LossPlan`."""

    experiments: list[str] = field(default_factory=lambda: _experiment.names())
    dtypes: list = field(default_factory=lambda: list(_dtypes.DTYPE_NAMES))
    backends: list[str] | None = None  #: None: every installed backend
    logits: str = "extreme"  #: text, or (in a plan's options) an inputs.LogitSet
    #: your own logits: a .npy/.csv path, or (Python API) an array, N × K or 1-D (inputs.load_logits)
    logits_file: object = None
    labels: str | None = None
    #: one label per row of logits_file: a .npy/.csv path, or (Python API) an array (inputs.load_labels)
    labels_file: object = None
    points: int = 200
    seed: int = 0
    classes: int = 10
    grad: bool = True
    max_ulp: float = metrics.DEFAULT_MAX_ULP
    keep: int = 10  #: streaming runs: worst cases kept per method
    value_range: str | None = None  #: streaming exhaustive runs: "LO,HI"
    batch_size: int | None = None  #: rows per backend call (None: all the cases of an experiment and dtype)
    methods: str | None = None  #: a comma list of method names to run (None: every method)


@dataclass(frozen=True, eq=False)
class LossPlan:
    """A loss run, parsed and checked once by :func:`plan` before any framework is imported or any
    work is done: :func:`run` and :func:`run_streaming` take it and check nothing.

    ``options`` are the options with ``--logits`` parsed (an :class:`inputs.LogitSet`): what an
    experiment reads to build its cases (logits, labels, points, seed, classes …)."""

    options: Options
    experiments: tuple[str, ...]  #: experiment names, in display order
    dtypes: tuple[_dtypes.DType, ...]
    backends: tuple[str, ...]  #: backend names (their frameworks are imported by the runner)
    methods: Mapping  #: (experiment, backend) → the chosen methods (from the backends' static tables)
    selected: frozenset | None  #: the names --method gives (NAME or NAME@VARIANT); None: every method
    file: tuple | None  #: (logits, labels or None) of --logits-file, read once
    streaming: bool
    outputs: tuple[str, ...]  #: export formats, and "detail" for --detail (the memory estimate counts them)
    memory: int  #: estimated peak bytes (row runs: loss_estimate; streaming runs: stream_estimate)
    rows: int  #: estimated result rows (row runs; 0 for streaming runs)
    batches: Mapping  #: row runs: (experiment, dtype name) → its Batch of cases
    workers: int | None = None  #: streaming runs: processes (None: every core)
    state_path: str | None = None  #: streaming runs: the resume state's base path
    resume: bool = False
    scheduler: str | None = None  #: streaming runs: a Dask scheduler's address
    value_range: tuple | None = None  #: streaming exhaustive runs: (lo, hi)
    #: streaming runs: (stream.Plan, stream.Source, state path, the loaded resume state or None) per
    #: experiment, backend and dtype
    runs: tuple = ()
    note: str = ""  #: a line for stderr before the run (which backends a streaming run uses)

    @property
    def quantities(self) -> tuple[str, ...]:
        """What each method is measured on: the loss, and with --grad dL/dz."""
        return ("loss", "grad") if self.options.grad else ("loss",)

    @property
    def logits(self) -> inputs.LogitSet:
        """``--logits``, parsed."""
        return self.options.logits


def plan(opts: Options | None = None, *, outputs=(), streaming: bool | None = None, workers: int | None = None,
         state_path: str | None = None, resume: bool = False, scheduler: str | None = None, **kw) -> LossPlan:
    """Check every option of a loss run and build its :class:`LossPlan`: the one place a loss run is
    validated (raise :class:`InputError` on the first problem), before any framework import or work.

    ``opts`` (or keyword arguments naming its fields) are the options; ``outputs`` the export formats
    and "detail" (the row path's memory estimate counts them). ``streaming``: None decides as the CLI
    does (:func:`streams`); True or False forces the path (the Python API's :func:`run_streaming` and
    :func:`run`). ``workers``, ``state_path``, ``resume`` and ``scheduler`` are a streaming run's.
    Reads ``--logits-file`` once (after the estimate, which counts its shape without parsing it)."""
    from .. import stream

    opts = opts or Options(**kw)
    stream.check_workers(workers)
    validate.loss_options(opts)
    opts = _with(opts, experiments=file_experiments(opts))  # -e all with a file: those its shape fits
    check_methods(opts)
    opts = _with(opts, logits=inputs.logit_set(opts.logits))  # --logits read here, once
    if streaming is None:
        streaming = streams(opts)
    exps = tuple(parse_experiments(opts.experiments))
    dts = tuple(_dtypes.parse_list(opts.dtypes))
    common = dict(options=opts, experiments=exps, dtypes=dts, outputs=tuple(outputs),
                  selected=None if (n := method_names(opts)) is None else frozenset(n))
    if streaming:
        return _stream_plan(opts, common, workers, state_path, resume, scheduler)
    need, rows = check_loss(opts, outputs)  # the row path keeps every row: what would not fit is refused
    if resume or scheduler is not None:
        raise InputError(f"{'--resume' if resume else '--scheduler'} is for streaming runs "
                         "(exhaustive float32, --range, random above 2^18 points)")
    backend_names = tuple(parse_backends(opts.backends))
    if not backend_names:
        raise InputError("no backend installed; valid: " + ", ".join(_backends.names()))
    file = None
    if opts.logits_file is not None:  # read once, here; a labels file replaces a label column (never both)
        logits, column = inputs.load_logits(opts.logits_file)
        file = (logits, inputs.load_labels(opts.labels_file) if opts.labels_file is not None else column)
    # every input is built and checked before a framework is imported: bad input fails fast
    batches = {(exp, dt.name): _experiment.get(exp).batch(opts, dt, file) for exp in exps for dt in dts}
    if opts.batch_size is not None:
        for b in batches.values():
            inputs.check_size(opts.batch_size, b.classes)
    methods = {(e, b): tuple(chosen_methods(_experiment.get(e), _backends.load(b), opts))
               for e in exps for b in backend_names}
    return LossPlan(**common, backends=backend_names, methods=MappingProxyType(methods), file=file,
                    streaming=False, memory=need, rows=rows, batches=MappingProxyType(batches))


def _all_asked(value) -> bool:
    """Whether ``--experiment`` asks for every experiment: ``all`` (the CLI's default) or, through
    the Python API, the default list of every name."""
    vals = [value] if isinstance(value, str) else list(value or ["all"])
    names = [p.strip() for v in vals for p in v.split(",") if p.strip()]
    return "all" in names or (not isinstance(value, str) and names == _experiment.names())


def file_experiments(opts: Options) -> list[str]:
    """The experiments a run runs: ``opts.experiments`` parsed, and with ``--logits-file`` and the
    default ``-e all`` those whose :attr:`~stabench.experiment.Experiment.file_columns` hold the
    file's logit columns (1 → sigmoid, K ≥ 2 → softmax; the shape is counted, the file not yet
    parsed). An experiment named explicitly is kept: its batch refuses a file it cannot take, once
    the file is parsed (so a malformed file is reported as such), naming the one that can."""
    exps = parse_experiments(opts.experiments)
    if opts.logits_file is None or not _all_asked(opts.experiments):
        return exps
    rows, cols = inputs.logits_shape(opts.logits_file)
    if not rows or not cols:  # an empty file: loading it says so, in its own words
        return exps

    def fits(e):
        lo, hi = _experiment.get(e).file_columns
        return lo <= cols and (hi is None or cols <= hi)

    return [e for e in exps if fits(e)] or exps


def method_names(opts: Options) -> set[str] | None:
    """The names ``--method`` selects (None: every method)."""
    if opts.methods is None:
        return None
    return {p.strip() for p in str(opts.methods).split(",") if p.strip()}


def _base(name: str) -> str:
    """The method of a ``--method`` name: ``fused@upcast-float32`` → ``fused``."""
    return name.split("@", 1)[0]


def chosen_methods(exp, mod, opts: Options) -> list:
    """The methods of backend ``mod`` for experiment ``exp`` to evaluate: those ``--method`` names,
    alone or with a variant (``NAME@VARIANT`` evaluates NAME and keeps that variant's rows)."""
    names = method_names(opts)
    wanted = None if names is None else {_base(n) for n in names}
    return [m for m in exp.methods(mod) if wanted is None or m.name in wanted]


def check_methods(opts: Options) -> None:
    """Refuse (before any work, without importing a framework: the backends' tables are static) a
    ``--method`` that is empty, names a method or ``method@variant`` that no chosen backend offers
    for the chosen experiments, or a variant that would give no row: one evaluated in none of the
    chosen dtypes (``fused@upcast-float32`` runs in the 8-bit formats), or not in this process
    (torch's ``@compile`` without its environment variable)."""
    names = method_names(opts)
    if names is None:
        return
    mods = [_backends.load(b) for b in parse_backends(opts.backends)]
    exps = [_experiment.get(e) for e in parse_experiments(opts.experiments)]
    offered = {n: mod for e in exps for mod in mods for n in _backends.method_names(mod, e.name)}
    refuse_unoffered(names, offered, opts.dtypes)


def refuse_unoffered(names: set, offered: dict, dtypes) -> None:
    """Refuse ``--method`` ``names`` (a set) that is empty, names what no chosen backend offers
    (``offered``: name or NAME@VARIANT → the backend module offering it), or a variant that would
    give no row: evaluated in none of ``dtypes``, or not in this process. Shared by the loss and
    row runners."""
    bases = sorted({n for n in offered if "@" not in n})
    variants = sorted({n.split("@", 1)[1] for n in offered if "@" in n})
    valid = f"valid: {', '.join(bases)}" + (f"; each also as NAME@VARIANT, VARIANT one of {', '.join(variants)}"
                                             if variants else "")
    if not names:
        raise InputError(f"--method is empty; {valid}")
    unknown = sorted(names - set(offered))
    if unknown:
        raise InputError(f"--method {', '.join(unknown)}: no chosen backend offers it for the chosen experiments; "
                         f"{valid}")
    dts = {d.name for d in _dtypes.parse_list(dtypes)}
    for n in sorted(x for x in names if "@" in x):
        variant = n.split("@", 1)[1]
        mod = offered[n]
        why = _backends.variant_unavailable(mod, variant)
        if why:
            raise InputError(f"--method {n}: the {mod.NAME} variant @{variant} {why}")
        where = _backends.variant_dtypes(mod, variant)
        if where is not None and not dts & set(where):
            raise InputError(f"--method {n}: the {mod.NAME} variant @{variant} runs in {', '.join(where)} only, "
                             f"not in the chosen dtypes ({', '.join(sorted(dts))}); add --dtype {where[0]}")


def skipped_note(skipped: dict) -> str:
    """The metadata's record of backends skipped because their framework fails to import."""
    return "; ".join(skipped.values())  # each names its backend


def usable_backends(names: list[str], opts) -> tuple[list, dict]:
    """(backend modules of a run, their frameworks imported; {backend: why skipped}); ``opts``: a
    run's options (loss or row runner), whose ``backends`` says whether --backend named them. Without
    ``--backend``, a backend whose framework fails to import is skipped with a one-line warning on
    stderr, and the others run; a backend named with ``--backend`` is refused instead (InputError)."""
    import sys

    mods, skipped = _backends.usable(names, named=bool(opts.backends))
    for why in skipped.values():
        print(f"stabench: warning: {why}; skipped, the other backends run", file=sys.stderr)
    if not mods:
        raise InputError("no backend can run: " + skipped_note(skipped))
    return mods, skipped


def parse_experiments(value: str | list[str] | None) -> list[str]:
    """``sigmoid``, ``softmax``, ``all`` or a comma list."""
    vals = [value] if isinstance(value, str) else list(value or ["all"])
    names = [p.strip() for v in vals for p in v.split(",") if p.strip()]
    if not names:
        raise InputError(f"--experiment is empty; valid: {', '.join(_experiment.names())}, all")
    out = []
    for n in names:
        if n == "all":
            out += list(_experiment.names())
        elif n in _experiment.names():
            out.append(n)
        else:
            raise InputError(f"unknown experiment {n!r}; valid: {', '.join(_experiment.names())}, all")
    return [e for e in _experiment.names() if e in out]


def parse_backends(value: str | list[str] | None) -> list[str]:
    """Backend names (a comma list); None means every installed backend."""
    if not value:
        return _backends.installed()
    vals = [value] if isinstance(value, str) else list(value)
    names = [p.strip() for v in vals for p in v.split(",") if p.strip()]
    if not names:
        raise InputError("--backend is empty; valid: " + ", ".join(_backends.names()))
    for n in names:
        _backends.load(n)  # raises InputError naming the valid ones / the missing framework
    return [n for n in _backends.names() if n in names]


# ---------------------------------------------------------------------------------------------
# cases


# ---------------------------------------------------------------------------------------------
# run


def run(opts: Options | LossPlan | None = None, progress=None, **kw) -> pd.DataFrame:
    """Run the loss experiments; one row per (experiment, quantity, backend, method, dtype, case).

    ``opts`` is a :class:`LossPlan` (checks nothing more), or :class:`Options` (or keyword arguments
    naming its fields) turned into the row path's plan first. ``progress``, if given, is called with
    (done, total, label) before each (experiment, dtype, backend) step, the label naming that step,
    and once at the end.
    """
    p = opts if isinstance(opts, LossPlan) else plan(opts or Options(**kw), streaming=False)
    mods, skipped = usable_backends(list(p.backends), p.options)
    quantities = list(p.quantities)
    total, done = len(p.experiments) * len(p.dtypes) * len(mods), 0
    parts, reduced = [], [] if p.file is not None else None
    for exp in p.experiments:
        for dt in p.dtypes:
            batch = p.batches[(exp, dt.name)]
            ref = _experiment.get(exp).reference(batch.cases, dt)
            for mod in mods:
                if progress:  # the label names the step that now runs
                    progress(done, total, f"{exp} {dt.name} {mod.NAME}")
                for method in p.methods[(exp, mod.NAME)]:
                    parts += _rows(exp, mod.NAME, method, dt, batch, ref, quantities, mod, p, reduced)
                done += 1
    if progress:
        progress(done, total, "done")
    df = pd.concat(parts, ignore_index=True)
    if skipped:  # the exports' metadata say which backends did not run, and why
        df.attrs["skipped_backends"] = skipped_note(skipped)
    if reduced is not None:  # a file run: the reduced losses and the file's rows (summary() reads them)
        # a file row is one case of softmax; sigmoid without file labels makes one case per --labels value
        rows = {e: len(p.file[0]) if p.batches[(e, p.dtypes[0].name)].classes == 1
                else len(p.batches[(e, p.dtypes[0].name)].cases) for e in p.experiments}
        df.attrs[_experiment.FILE_ATTR] = {"reduced": reduced, "rows": rows}
    return df


def _rows(exp, backend, method, dt, batch, ref, quantities, mod, p: LossPlan, reduced=None) -> list[pd.DataFrame]:
    """The rows of one method in one dtype, when ``--method`` selects it, plus each execution variant
    that differs from it — or that ``--method`` names (``NAME@VARIANT``: its rows in every dtype it
    is evaluated in, identical or not; where the method is unsupported, so is the variant)."""
    names, opts = p.selected, p.options
    own = names is None or method.name in names
    named = [] if names is None else [n.split("@", 1)[1] for n in sorted(names) if _base(n) == method.name and "@" in n]
    try:
        out, error = _backends.evaluate(mod, method, dt, batch.cases, "grad" in quantities, opts.batch_size), ""
    except _backends.Unsupported as e:
        out, error = None, " ".join(str(e).split())
    def rows_of(name, o, err):
        if reduced is not None:  # file input: the framework's own mean and sum of the per-case losses
            reduced.append(_reduced(exp, mod, method, name, dt, batch, ref, o, opts))
        return _method_rows(exp, backend, name, method.form, dt, batch, ref, quantities, o, err, opts)

    frames = rows_of(method.name, out, error) if own else []
    for variant in dict.fromkeys([*(out.variants if out is not None else ()), *named]):
        where = _backends.variant_dtypes(mod, variant)
        if out is None and (where is None or dt.name in where):
            frames += rows_of(f"{method.name}@{variant}", None, error)
        if out is None or variant not in out.variants:
            continue
        vout = out.variants[variant]
        if variant in named or own and any(not metrics.identical(getattr(out, q), getattr(vout, q)) for q in quantities):
            frames += rows_of(f"{method.name}@{variant}", vout, "")
    return frames


def exact_sum(hi: np.ndarray, lo: np.ndarray) -> tuple[float, float]:
    """(s, r): the exact sum of the double-double references hi + lo as a double-double: s the
    correctly rounded sum (math.fsum: Shewchuk's exact partials), r = RN(exact − s), so s + r is
    within 2^-106 relative of the exact sum (every term is ≥ 0: no cancellation). A sum beyond
    float64's range is (±inf, 0); a nan reference makes (nan, 0)."""
    import math

    vals = np.concatenate([hi, lo])
    vals = vals[vals != 0]
    if np.isnan(vals).any():
        return math.nan, 0.0
    if np.isinf(vals).any():
        return float(vals[np.isinf(vals)][0]), 0.0
    try:
        s = math.fsum(vals.tolist())
        return s, math.fsum([*vals.tolist(), -s])
    except OverflowError:  # an intermediate beyond float64
        with np.errstate(over="ignore"):  # (the sign is all this sum is for: no warning line)
            return math.copysign(math.inf, float(vals.sum())), 0.0


def exact_mean(s: float, r: float, n: int) -> tuple[float, float]:
    """(hi, lo) of (s + r) / n, exactly divided (fractions) then split into two floats."""
    from fractions import Fraction

    if not (np.isfinite(s) and np.isfinite(r)):
        return s / n, 0.0
    q = (Fraction(s) + Fraction(r)) / n
    hi = float(q)
    return hi, float(q - Fraction(hi))


def _reduced(exp, mod, method, name, dt, batch, ref, out, opts) -> dict:
    """One record of a file run's reduced loss for ``method`` (its row name ``name``: a variant's
    is ``method@variant``; ``out``: its Output, None when unsupported): the framework's own mean
    and sum of the per-case losses of the valid cases (finite inputs) — the method's own reducing
    call where it has one (PyTorch's ``reduction="mean"``, Keras' Loss classes), else one call of
    the framework's mean on the per-case tensor in the result dtype (:func:`backends.reduced`; a
    variant's rows always the latter, on its own values) — against the exact mean and sum of their
    exact losses (:func:`exact_sum`), measured in the coarser of the dtype asked for and the dtype
    the reduction returned (:func:`metrics.measure`)."""
    rec = {"experiment": exp, "quantity": "loss", "backend": mod.NAME, "method": name, "dtype": dt.name}
    keep = ~np.asarray(batch.invalid, dtype=bool)
    hi, lo = (np.asarray(a, dtype=np.float64)[keep] for a in ref["loss"])
    s, r = exact_sum(hi, lo)
    n = max(int(keep.sum()), 1)
    refs = {"sum": (s, r), "mean": exact_mean(s, r, n)}
    if np.isinf(s) and np.isfinite(hi).all() and np.isfinite(lo).all():
        # the sum is beyond float64 (losses near 1e308), the mean is not: the sum of the losses
        # scaled by 2^-64 (exact but for lo parts below 2^-958, nothing next to such a sum), divided
        m_hi, m_lo = exact_mean(*exact_sum(hi * 2.0**-64, lo * 2.0**-64), n)
        refs["mean"] = (m_hi * 2.0**64, m_lo * 2.0**64)
    values = None if out is None else np.asarray(out.loss)
    for how in ("mean", "sum"):
        rhi, rlo = refs[how]
        rec[f"{how}_reference"] = rhi
        if values is None or not keep.any():
            rec.update({f"{how}_value": np.nan, f"{how}_ulp": np.nan, f"{how}_rel_error": np.nan,
                        f"{how}_status": "unsupported" if values is None else ""})
            continue
        result_dt = _dtypes.REGISTRY.get(values.dtype.name, dt)
        try:
            kept = values.reshape(-1)[keep].astype(np.float64)
            if "@" in name:  # an execution variant: the framework's mean of its own values
                red = np.asarray(mod.reduce(kept, result_dt, how))
            else:
                red = np.asarray(_backends.reduced(mod, method, dt, batch.cases.subset(np.flatnonzero(keep)), kept,
                                                   result_dt, how))
        except Exception:  # noqa: BLE001 — a framework without a sum in this dtype (torch's float8): an answer
            rec.update({f"{how}_value": np.nan, f"{how}_ulp": np.nan, f"{how}_rel_error": np.nan,
                        f"{how}_status": "unsupported"})
            continue
        red_dt = _dtypes.REGISTRY.get(red.dtype.name, result_dt)
        m = metrics.measure(red.astype(np.float64).reshape(1), np.array([rhi]),
                            metrics.measuring_dtype(dt, red_dt), reference_lo=np.array([rlo]), max_ulp=opts.max_ulp)
        rec.update({f"{how}_value": float(red.astype(np.float64).reshape(-1)[0]), f"{how}_ulp": float(m["ulp_error"][0]),
                    f"{how}_rel_error": float(m["rel_error"][0]),
                    f"{how}_status": str(metrics.status_names(m["status"])[0])})
    return rec


def _method_rows(exp, backend, name, form, dt, batch, ref, quantities, out, error, opts) -> list[pd.DataFrame]:
    n = len(batch.cases)
    frames = []
    for q in quantities:
        hi, lo = ref[q]
        tail = getattr(ref[q], "tail", None)  # the scaled residual of tiny references (oracle.Pair)
        missing = out is not None and q == "grad" and out.grad is None  # asked for, none came back
        if out is None or missing:
            error = (out.grad_error or "the backend returned no gradient") if missing else error
            value = np.full(n, np.nan)
            result_dtype = dt
            m = {k: np.full(n, np.nan) for k in _columns.MEASURES}
            status = np.full(n, metrics.UNSUPPORTED, dtype=np.uint8)
        else:
            raw = np.asarray(out.loss if q == "loss" else out.grad)
            result_dtype = _dtypes.REGISTRY.get(raw.dtype.name, dt)
            value = raw.astype(np.float64).reshape(n)
            # an upcast result is judged in the ulps of the format asked for (the coarser one)
            m = metrics.measure(value, hi, metrics.measuring_dtype(dt, result_dtype), reference_lo=lo,
                                reference_tail=tail, max_ulp=opts.max_ulp)
            status = m["status"]
            status[batch.invalid] = metrics.INVALID_INPUT
        frames.append(row_frame(exp, q, backend, name, form, dt.name, result_dtype.name, batch.case_kind,
                                batch.logit, batch.label, batch.classes, value, hi, m, status, error))
    return frames


# ---------------------------------------------------------------------------------------------
# streaming (every float32 logit, huge random samples)


def streams(opts: Options) -> bool:
    """Whether this run streams (aggregates per chunk) instead of keeping every row: an exhaustive
    run in a 32-bit dtype, a ``--range`` run, or a random run above ``stream.STREAM_RANDOM_ABOVE``
    points. Raises :class:`InputError` for what cannot stream (an experiment that does not, 8-bit and
    float64 dtypes)."""
    from .. import stream

    kind = inputs.logit_set(opts.logits).kind
    if opts.value_range and kind != "exhaustive":
        raise InputError("--range restricts --logits exhaustive; add --logits exhaustive")
    dts = _dtypes.parse_list(opts.dtypes)
    streaming = bool(opts.value_range) or \
        (kind == "exhaustive" and any(d.bits == 32 for d in dts)) or \
        (kind == "random" and opts.points > stream.STREAM_RANDOM_ABOVE)
    if not streaming:
        return False
    exps = [_experiment.get(e) for e in parse_experiments(opts.experiments)]
    cannot = [e.name for e in exps if not e.streams]
    if cannot:
        able = ", ".join(e for e in _experiment.names() if _experiment.get(e).streams)
        raise InputError(f"--logits {opts.logits} at this size (or with --range) is for --experiment {able} "
                         f"({', '.join(cannot)} does not stream: use --logits-file or fewer --points)")
    if any(d.bits == 8 for d in dts):  # the streaming engine's statuses do not know formats without inf
        raise InputError("the 8-bit formats do not stream (--range, random above 2^18 points): their 256 values "
                         "fit one run; use --logits exhaustive without --range, or fewer --points")
    if any(d.bits > 32 for d in dts):
        raise InputError("streaming runs (exhaustive float32, --range, random above 2^18 points) need dtypes of "
                         "at most 32 bits: float64 references need mpmath; drop float64 or use fewer --points")
    return True


def stream_backends(value) -> list[str]:
    """The backends of a streaming run: those named, or without ``--backend`` the first registered
    one (numpy: a full float32 audit costs minutes per framework method, so others are asked for)."""
    return parse_backends(value) if value else _backends.names()[:1]


def _stream_plan(opts: Options, common: dict, workers, state_path, resume, scheduler) -> LossPlan:
    """The rest of :func:`plan` for a streaming run: each (experiment, backend, dtype)'s source,
    engine plan and state path, its resume state checked, and the memory estimate."""
    from .. import stream

    exps = [_experiment.get(e) for e in common["experiments"]]
    backend_names = stream_backends(opts.backends)
    for exp in exps:
        exp.check_stream(opts)
    if opts.batch_size is not None:
        raise InputError("--batch-size is for row runs; streaming runs call each method once per chunk "
                         f"of {stream.CHUNK} logits")
    mods = [_backends.load(b) for b in backend_names]  # their tables; the frameworks after the checks
    quantities = ("loss", "grad") if opts.grad else ("loss",)
    rng = stream.parse_range(opts.value_range)
    runs, chosen = [], {}
    for exp in exps:  # every input and state checked before any work
        for mod in mods:
            chosen[(exp.name, mod.NAME)] = tuple(chosen_methods(exp, mod, opts))
            methods = tuple(m.name for m in chosen[(exp.name, mod.NAME)])
            for dt in common["dtypes"]:
                if not methods:
                    continue
                if opts.logits.kind == "exhaustive":
                    src = stream.exhaustive_source(dt.name, rng)
                else:
                    src = stream.Source(dt.name, "random", points=opts.points, seed=opts.seed)
                selected = method_names(opts)
                plan = stream.Plan(dt.name, mod.NAME, methods, quantities, float(opts.max_ulp), int(opts.keep),
                                   experiment=exp.name, options=exp.stream_options(opts),
                                   variants=stream.variants(mod, dt.name),
                                   selected=None if selected is None else tuple(sorted(selected)))
                # one state file per (experiment, backend, dtype); the names that vary are in its suffix
                parts = ([exp.name] if len(exps) > 1 else []) + ([mod.NAME] if len(mods) > 1 else []) + [dt.name]
                sp = f"{state_path}.{'.'.join(parts)}" if state_path else None
                loaded = stream.load_state(plan, src, sp) if resume and sp else None  # read once, here
                stream.check_state_path(sp)
                runs.append((plan, src, sp, loaded))
    # every task of a run may be in flight at once, one per worker (a cluster's workers each hold one)
    tasks = max((src.n_tasks for _, src, _, _ in runs), default=1)
    busy = 1 if scheduler is not None else min(workers or os.cpu_count() or 1, tasks)
    need = check_stream_memory(opts, busy)
    note = ""
    if not opts.backends and parse_backends(None) != backend_names:  # a full audit costs minutes per framework
        note = (f"stabench: note: streaming runs without --backend use {backend_names[0]} only "
                "(pass --backend with a comma list for others, e.g. --backend torch)")
    return LossPlan(**common, backends=tuple(backend_names), methods=MappingProxyType(chosen), file=None,
                    streaming=True, memory=need, rows=0, batches=MappingProxyType({}), workers=workers,
                    state_path=state_path, resume=resume, scheduler=scheduler, value_range=rng, runs=tuple(runs),
                    note=note)


def run_streaming(opts: Options | LossPlan, *, workers: int | None = None, state_path: str | None = None,
                  resume: bool = False, progress=None, scheduler: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A streaming run of every selected experiment that streams, with every selected backend's
    methods (one backend call per method and chunk), on local processes or, with ``scheduler`` (a
    Dask scheduler address), on that cluster. Without ``--backend`` it uses the first registered
    backend (numpy) only: a full exhaustive run costs minutes per framework method.

    ``opts`` is a streaming :class:`LossPlan` (checks nothing more: ``workers``, ``state_path``,
    ``resume`` and ``scheduler`` are its own), or :class:`Options` turned into one with those.
    Returns (kept rows: the worst ``keep`` cases per method, summary, histogram of ulp errors).
    The summary is exact over every input.
    """
    from .. import stream

    p = opts if isinstance(opts, LossPlan) else plan(opts, streaming=True, workers=workers, state_path=state_path,
                                                     resume=resume, scheduler=scheduler)
    usable_backends(list(p.backends), p.options)  # the frameworks last: every check of the plan needs none
    client = None
    if p.scheduler is not None:
        from .. import cluster

        client = cluster.connect(p.scheduler, ",".join(_backends.REGISTRY[b][1] for b in p.backends))
    rows, summs, hists = [], [], []
    try:
        for plan_, src, sp, loaded in p.runs:
            total = stream.run(plan_, src, workers=p.workers, state_path=sp, resume=p.resume, progress=progress,
                               client=client, checked=loaded)
            s, h, r = stream.tables(total, plan_)
            summs.append(s), hists.append(h), rows.append(r)
    finally:
        if client is not None:
            client.close()
    summ = pd.concat(summs, ignore_index=True)
    order = {"loss": 0, "grad": 1}
    summ = summ.sort_values("quantity", key=lambda c: c.map(order), kind="stable", ignore_index=True)
    return pd.concat(rows, ignore_index=True), summ, pd.concat(hists, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# summary

#: Status abbreviations of the compact terminal view (:func:`compact`).
STATUS_ABBREV = {"inaccurate": "ina", "underflow": "und", "overflow": "ovf", "nan-result": "nan"}
#: The line printed under the compact tables.
COMPACT_LEGEND = ("Each cell: the smallest |z| at which the method fails, and how (ovf overflow, "
                  "und underflow, ina inaccurate, nan nan-result; — never fails); under it the "
                  "largest ulp_error, counted in the coarser of dtype and result_dtype; blank: not "
                  "run in that dtype. Every column: --full (with a verdict per dtype, printed anyway for a run of one dtype).")


#: The line printed under the compact tables of a --logits-file run.
FILE_LEGEND = ("Each cell: the rows that fail of the rows scored, and how (ovf overflow, und underflow, ina "
               "inaccurate, nan nan-result; — none), not counting negligible failures (tiny losses that "
               "cannot change the batch's loss: docs/measures.md); under it the largest ulp_error of the "
               "other rows; then the error of the framework's mean of the losses (reduction=\"mean\") "
               "against the exact mean. Every column: --full or --csv.")


def compact(summ: pd.DataFrame, file: bool = False) -> pd.DataFrame:
    """The terminal's default view of a summary (:func:`stabench.experiment.method_by_dtype`): each
    cell is two lines: where the method first fails (``10 ovf``; ``—`` never; ``unsupported``) and
    its max ulp. For a ``--logits-file`` run (``file``) a cell says instead how many rows fail (the
    negligible ones left out) and how, the max ulp of the others and, for the loss, the error of
    the framework's mean loss (:func:`mean_error`)."""
    def cell(r):
        if r.unsupported == r.cases:
            return "unsupported\n"
        first = f"{_g(r.first_fail_abs_logit)} {STATUS_ABBREV.get(r.first_fail_status, r.first_fail_status)}" \
            if r.first_fail_status else "—"
        return f"{first}\n{r.max_ulp:.3g}"

    def file_cell(r):
        if r.unsupported == r.cases:
            return "unsupported\n"
        fails, scored = _file_counts(r)
        if not scored:  # every row's input is non-finite in this dtype: nothing measured (not "— nan")
            return "0 scored\n"
        head = f"{_count(fails)}/{_count(scored)} {STATUS_ABBREV[_dominant(r)]}" if fails else "—"
        text = f"{head}\n{r.max_ulp_counted:.3g}"
        return text + (f"\nmean {mean_error(r)}" if r.quantity == "loss" and r.mean_status else "")
    return _experiment.method_by_dtype(summ, file_cell if file else cell)


def _file_counts(r) -> tuple[int, int]:
    """(failing rows less the negligible ones, rows scored) of a file run's summary row ``r``: what
    its terminal cell and its verdict count."""
    return int(r.failed - r.negligible), int(r.cases - r.invalid_input - r.unsupported)


def _count(n: int) -> str:
    """A count in at most 5 characters: 576, 9999, 10k, 12.3k, 1.5M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.3g}k"
    return f"{n / 1e6:.3g}M"


def _dominant(r) -> str:
    """How a file run's non-negligible failures fail, in one word: nan or overflow where any value
    is nan or inf (never negligible), else the more frequent of underflow and inaccurate."""
    if r.nan_result:
        return "nan-result"
    if r.overflow:
        return "overflow"
    return "underflow" if r.underflow >= r.inaccurate else "inaccurate"


def mean_error(r) -> str:
    """The error of a file run's framework mean loss, short: ``0.03 ulp`` within 100 ulps or
    0.1 % (``<0.01 ulp`` below a hundredth), else ``87 % off``; ``inf`` / ``nan`` for a non-finite
    mean; ``unsupported``."""
    if r.mean_status == "unsupported":
        return "unsupported"
    if not np.isfinite(r.mean_value):
        return "nan" if np.isnan(r.mean_value) else "inf"
    if r.mean_ulp == 0:
        return "0 ulp"
    if r.mean_ulp < 0.01:  # a bound keeps the cell narrow: 4.8e-05 ulp reads as < 0.01
        return "<0.01 ulp"
    if r.mean_ulp <= 100 or r.mean_rel_error < 1e-3:  # a percentage only where it says something
        return f"{r.mean_ulp:.2g} ulp"
    return f"{100 * r.mean_rel_error:.2g} % off"


def verdict(summ: pd.DataFrame, file: bool = False) -> list[str]:
    """One line per (experiment, quantity, dtype): where each naive method first fails, and how
    the fused methods fare; for a ``--logits-file`` run (``file``: :func:`file_verdict`, the loss
    only: what the batch trains on) how many rows each method fails on, its worst row, and the
    error of its mean loss."""
    if file:
        return file_verdict(summ[summ.quantity == "loss"])

    def part(r, name):
        if r.unsupported == r.cases:
            return f"{name} unsupported"
        if r.first_fail_status:
            return f"{name} fails from |z| = {_g(r.first_fail_abs_logit)} ({r.first_fail_status})"
        return f"{name} ≤ {_g(r.max_ulp)} ulp"
    return _experiment.verdict_lines(summ, part)


def file_verdict(summ: pd.DataFrame) -> list[str]:
    """A --logits-file run's verdict, one line per (experiment, quantity, dtype): for each method
    the rows it fails on (negligible failures left out, their count said), the worst row (its index
    from 0, its logit — for softmax the label's — and status) or its max ulp, and for the loss the
    error of the framework's mean loss."""
    def part(r, name):
        if r.unsupported == r.cases:
            return f"{name} unsupported"
        fails, scored = _file_counts(r)
        if not scored:  # every input non-finite in this dtype: nothing measured ("within nan ulp")
            return f"{name} scores no row ({int(r.invalid_input):,} with an input non-finite in {r.dtype})"
        if fails:
            text = (f"{name} fails on {fails:,} of {scored:,} rows (worst: row {int(r.worst_case)}, "
                    f"z = {_g(r.worst_case_logit)}, {r.worst_status})")
        else:
            text = f"{name} within {_g(r.max_ulp_counted)} ulp"
        if r.negligible:
            text += f" ({int(r.negligible):,} negligible)"
        if r.quantity == "loss" and r.mean_status:
            m = mean_error(r)
            if r.mean_status in ("exact", "ok"):
                m = f"within {m.lstrip('<')}"
            elif m.endswith("ulp"):
                m = f"{m} off"
            text += f", mean loss {m}"
        return text
    return _experiment.verdict_lines(summ, part)


def _g(x: float) -> str:
    return f"{x:.4g}"


# --- the row path's memory budget (constants in stabench.limits) ---------------------------------

def loss_estimate(opts, outputs=()) -> tuple[int, int]:
    """(peak bytes, rows) that the row path of a loss run with ``opts`` (experiments.loss.Options)
    would reach, an upper bound from counts alone (a file's shape is counted, not loaded; no framework
    is imported); ``outputs``: export formats ("csv", "json", "markdown") and "detail" for --detail."""
    from .. import backends, dtypes, inputs

    exps = parse_experiments(opts.experiments)
    dts = dtypes.parse_list(opts.dtypes)
    names = parse_backends(opts.backends)
    quantities = 2 if opts.grad else 1
    shape = inputs.logits_shape(opts.logits_file) if opts.logits_file is not None else None
    rows = arrays = largest = 0
    for exp in exps:
        for dt in dts:
            n, k = _cases(exp, dt, opts, shape)
            arrays += n * k * 8
            largest = max(largest, n * k * 8)
            for b in names:
                per_case = len(chosen_methods(_experiment.get(exp), backends.load(b), opts)) * quantities * (1 if b == "numpy" else limits.VARIANT_ROWS)
                rows += n * per_case
    per_row = limits.ROW_BYTES + sum(limits.OUTPUT_ROW_BYTES[o] for o in set(outputs))
    if "detail" in outputs:  # one printed table per experiment, quantity and backend
        arrays += len(exps) * quantities * len(names) * limits.DETAIL_TABLE_BYTES
    fixed = limits.BASE_BYTES + sum(limits.FRAMEWORK_BYTES.get(b, limits.DEFAULT_FRAMEWORK_BYTES) for b in names)
    copies = sum(limits.ARRAY_COPIES.get(b, limits.DEFAULT_ARRAY_COPIES) for b in names)
    return fixed + rows * per_row + arrays + copies * largest + _file_bytes(opts, shape), rows


def _cases(exp: str, dt, opts, shape) -> tuple[int, int]:
    """(cases, classes) of one experiment in one dtype, at most."""
    e = _experiment.get(exp)
    if shape is not None:
        return e.size(0, opts, shape, inputs.has_label_column(opts.logits_file) or opts.labels_file is not None)
    logits = inputs.logit_set(opts.logits)
    spec = logits.kind
    values = 2**dt.bits  # no set holds more distinct values than the format has bit patterns
    if spec == "extreme":
        s = len(inputs.extreme(dt))
    elif spec == "sweep":
        s = min(2 * opts.points + 1, values)
    elif spec == "random":
        s = opts.points
    elif spec == "exhaustive":
        s = len(inputs.exhaustive(dt))  # small formats only: it raises for the others
    else:
        s = len(logits.values)
    return e.size(s, opts)


def _file_bytes(opts, shape) -> int:
    """What loading ``--logits-file`` holds: its values (twice while they become an array; the array
    stays referenced), and a CSV's widest row as Python strings while it is split."""
    if shape is None:
        return 0
    from .. import inputs

    rows, columns = shape
    columns += inputs.has_label_column(opts.logits_file) + (opts.labels_file is not None)
    csv = not inputs.is_array(opts.logits_file) and os.fsdecode(opts.logits_file).lower().endswith(".csv")
    cells = columns * limits.CSV_CELL_BYTES if csv else 0
    return limits.FILE_COPIES * rows * columns * 8 + cells


def stream_estimate(opts, workers: int) -> int:
    """Peak bytes a streaming run adds beyond its processes' own footprint (the frameworks, and
    :data:`limits.STREAM_WORKER_BYTES` per worker, counted as the frameworks are: outside the
    budget) with ``workers`` busy workers: each holds one chunk's cases
    :data:`limits.STREAM_COPIES` times over. Softmax's grow with K: 3 × 2^16 × K float64 logits."""
    from .. import stream

    per_logit = max(_experiment.get(e).stream_case_bytes(opts) for e in parse_experiments(opts.experiments))
    return limits.BASE_BYTES + workers * limits.STREAM_COPIES * stream.CHUNK * per_logit


def _with(opts, **kw):
    import dataclasses

    return dataclasses.replace(opts, **kw)


def check_stream_memory(opts, workers: int) -> int:
    """Refuse (InputError, before any work) a streaming run with ``workers`` busy workers whose
    estimate exceeds the budget, naming the largest --classes that fits; else return the estimate."""
    from .. import stream

    need = stream_estimate(opts, workers)
    if need <= limits.MEMORY_BUDGET:
        return need
    lo, hi = 0, opts.classes  # the largest K that fits: the estimate grows with K
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if stream_estimate(_with(opts, classes=mid), workers) <= limits.MEMORY_BUDGET else (lo, mid - 1)
    most = lo
    raise InputError(
        f"request too large: this streaming run (--classes {opts.classes:,}, {workers} worker(s) busy, each "
        f"evaluating 3 × {stream.CHUNK:,} cases of K logits at a time) holds ≈ {need / 2**30:.1f} GiB, over the "
        f"{limits.MEMORY_BUDGET / 2**30:g} GiB memory budget (stabench.limits.MEMORY_BUDGET); use at most "
        f"--classes {most:,} with {workers} worker(s), or fewer --workers")


def budget_use(opts, outputs=()) -> tuple[int, int]:
    """(bytes, rows): what the request adds beyond the frameworks' own footprint — the quantity
    :data:`stabench.limits.MEMORY_BUDGET` bounds — and the rows of :func:`loss_estimate`."""
    need, rows = loss_estimate(opts, outputs)
    return need - _frameworks_bytes(opts), rows


def _frameworks_bytes(opts) -> int:
    """The frameworks' own footprint in :func:`loss_estimate` (outside the budget)."""
    return sum(limits.FRAMEWORK_BYTES.get(b, limits.DEFAULT_FRAMEWORK_BYTES) for b in parse_backends(opts.backends))


def check_loss(opts, outputs=()) -> tuple[int, int]:
    """Refuse (InputError, before any work) a row-path loss run whose estimate exceeds the budget;
    else return :func:`loss_estimate`'s (peak bytes, rows)."""
    need, rows = loss_estimate(opts, outputs)  # once: a file's shape is counted in it
    if need - _frameworks_bytes(opts) <= limits.MEMORY_BUDGET:
        return need, rows
    budget = f"{limits.MEMORY_BUDGET / 2**30:g} GiB (beyond the frameworks' own footprint)"
    if "json" in outputs or "detail" in outputs:
        hint = "export CSV rather than JSON and drop --detail, or "
    else:
        hint = ""
    raise InputError(
        f"request too large: about {rows:,} result rows need ≈ {need / 2**30:.1f} GiB, over the {budget} "
        f"memory budget (stabench.limits.MEMORY_BUDGET); {hint}use fewer --points, --classes, --dtype or "
        "--backend values, --no-grad, or a streaming run that keeps only aggregates "
        "(--experiment sigmoid with --logits random --points N, or --logits exhaustive --range LO,HI)")
