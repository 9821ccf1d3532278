"""The loss experiments: cross-entropy through the probability (naive) vs on the logits (fused).

- ``sigmoid``: binary cross-entropy of a logit z and a label y ∈ [0, 1].
- ``softmax``: sparse categorical cross-entropy of K logits and a label k ∈ [0, K).

For each dtype the inputs are rounded to that dtype first; the oracle computes the reference from
those rounded inputs; every backend method runs once over the whole batch; the metrics compare.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import backends as _backends
from .. import dtypes as _dtypes
from .. import inputs, limits, metrics, oracle, validate
from ..errors import InputError

EXPERIMENTS = ("sigmoid", "softmax")

#: Case kinds: how each row's inputs were built (the CSV's ``case_kind`` column).
CASE_KINDS = {
    "scalar": "sigmoid: one logit z with one label y",
    "label-at-z": "softmax: the label's logit is z, every other class 0 (the label wins for large z)",
    "wrong-at-z": "softmax: one wrong class at z, the label and the rest at 0 (confidently wrong for large z)",
    "all-equal": "softmax: every class at z (the loss is log K whatever z)",
    "file": "a row of --logits-file, as given",
}

#: Statuses that count as a failure for "first fails at |z|".
FAILURES = ("inaccurate", "underflow", "overflow", "nan-result")

#: Columns of the row table, each documented (the README's column reference is checked against it).
COLUMNS = {
    "experiment": "`sigmoid` (binary cross-entropy) or `softmax` (sparse categorical cross-entropy)",
    "quantity": "`loss`, or `grad`: dL/dz (for softmax the component of the label's logit)",
    "backend": "framework that computed the value (`numpy`, `tensorflow`, `torch`, `jax`)",
    "method": "how it was computed (see the method list)",
    "form": "`naive` (through the probability) or `fused` (on the logits)",
    "dtype": "dtype the inputs were rounded to and the computation was asked to run in",
    "result_dtype": "dtype of what came back (a framework may upcast); errors are counted in the coarser of dtype and result_dtype",
    "case_kind": "how the inputs were built (see Case kinds)",
    "logit": "the scalar z of the case (for --logits-file rows, the label's logit)",
    "label": "y for sigmoid, the class index k for softmax",
    "classes": "K, the number of classes (1 for sigmoid)",
    "value": "the computed result, in result_dtype (stored exactly in float64)",
    "reference": "the oracle's value for the inputs as rounded to dtype, rounded to float64",
    "abs_error": "abs(value − reference), the reference carried beyond float64 (hi + lo) where it matters",
    "rel_error": "abs_error / abs(reference); nan where abs_error is nan",
    "ulp_error": "abs(value − exact) in ulps of the exact reference, in the coarser of dtype and result_dtype (glibc-style); +inf for nan/inf failures",
    "bits_error": "log2(1 + floats between value and the exact reference correctly rounded to the coarser of dtype and result_dtype) (Herbie)",
    "status": "exact / ok / inaccurate / underflow / overflow / nan-result / invalid-input / unsupported",
    "error": "the framework's error text for `unsupported` rows, else empty",
}

SUMMARY_COLUMNS = {
    "experiment": "as in the rows",
    "quantity": "as in the rows",
    "backend": "as in the rows",
    "method": "as in the rows",
    "form": "as in the rows",
    "dtype": "as in the rows",
    "cases": "number of cases",
    "max_ulp": "largest ulp_error over valid cases (inf when any failed with nan/inf)",
    "median_ulp": "median ulp_error over valid cases; nan in streaming runs (they keep no rows: see median_ulp_bound)",
    "median_ulp_bound": "the upper edge of the power-of-two bin [2^(e−1), 2^e) holding the median ulp_error (for an even count the upper middle one), so at least median_ulp; the same in row and streaming runs (0 when the median is 0)",
    "worst_logit": "the logit of the case with the largest ulp_error (ties: smallest abs(z), then z, then label)",
    "nan_result": "cases with status nan-result",
    "overflow": "cases with status overflow",
    "underflow": "cases with status underflow",
    "inaccurate": "cases with status inaccurate",
    "invalid_input": "cases with status invalid-input (nan/inf inputs, reported not scored)",
    "unsupported": "cases the framework refused",
    "first_fail_abs_logit": "smallest abs(logit) with a failure (inaccurate/underflow/overflow/nan); nan if none",
    "first_fail_status": "the status at that logit",
}

SUMMARY_TERMINAL_COLUMNS = ["backend", "method", "form", "dtype", "cases", "max_ulp", "median_ulp",
                            "worst_logit", "nan_result", "overflow", "underflow", "inaccurate",
                            "first_fail_abs_logit", "first_fail_status"]
DETAIL_TERMINAL_COLUMNS = ["backend", "method", "dtype", "result_dtype", "case_kind", "logit", "label",
                           "value", "reference", "ulp_error", "status"]


@dataclass
class Options:
    """Every option of a loss run (what the CLI parses; defaults are the CLI's)."""

    experiments: list[str] = field(default_factory=lambda: list(EXPERIMENTS))
    dtypes: list = field(default_factory=lambda: list(_dtypes.DTYPE_NAMES))
    backends: list[str] | None = None  #: None: every installed backend
    logits: str = "extreme"
    logits_file: str | None = None
    labels: str | None = None
    points: int = 200
    seed: int = 0
    classes: int = 10
    grad: bool = True
    max_ulp: float = metrics.DEFAULT_MAX_ULP
    keep: int = 10  #: streaming runs: worst cases kept per method
    value_range: str | None = None  #: streaming exhaustive runs: "LO,HI"
    batch_size: int | None = None  #: rows per backend call (None: all the cases of an experiment and dtype)


def parse_experiments(value: str | list[str] | None) -> list[str]:
    """``sigmoid``, ``softmax``, ``all`` or a comma list."""
    vals = [value] if isinstance(value, str) else list(value or ["all"])
    names = [p.strip() for v in vals for p in v.split(",") if p.strip()]
    if not names:
        raise InputError("--experiment is empty; valid: sigmoid, softmax, all")
    out = []
    for n in names:
        if n == "all":
            out += list(EXPERIMENTS)
        elif n in EXPERIMENTS:
            out.append(n)
        else:
            raise InputError(f"unknown experiment {n!r}; valid: sigmoid, softmax, all")
    return [e for e in EXPERIMENTS if e in out]


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


def _sigmoid_labels(text: str | None) -> np.ndarray:
    if text is None:
        return np.array([0.0, 1.0])
    y = inputs.parse_numbers(text, "--labels")
    bad = y[~((y >= 0) & (y <= 1))]
    if bad.size:
        raise InputError(f"sigmoid label {float(bad[0]):g} is outside [0, 1]; labels are probabilities of class 1")
    return y


def _softmax_labels(text, n: int, k: int) -> np.ndarray:
    vals = inputs.parse_numbers(text, "--labels") if isinstance(text, str) else np.asarray(text, dtype=np.float64)
    if vals.size not in (1, n):
        raise InputError(f"--labels has {vals.size} values; give one label or one per case ({n})")
    bad = vals[~((vals >= 0) & (vals < k) & (vals == np.floor(vals)))]
    if bad.size:
        raise InputError(f"softmax label {float(bad[0]):g} is outside [0, {k}) or not an integer; valid: 0 … {k - 1}")
    return np.broadcast_to(vals.astype(np.int64), (n,)).copy()


@dataclass
class _Batch:
    """One experiment's cases in one dtype, and the row labels that go with them."""

    cases: object
    case_kind: np.ndarray
    logit: np.ndarray
    label: np.ndarray
    classes: int
    invalid: np.ndarray  #: inputs not finite in the dtype


def sigmoid_batch(opts: Options, dt, file=None) -> _Batch:
    """Cases for binary cross-entropy: every logit with every label (or the file's pairs).
    ``file`` is what :func:`inputs.load_file` returned for ``--logits-file``."""
    if file is not None:
        z, file_labels = file
        if z.ndim == 2 and z.shape[1] == 1:
            z = z[:, 0]
        if z.ndim != 1:
            raise InputError(f"--logits-file for sigmoid needs one logit per row, got {z.shape[1]} columns")
        z = dt.cast(z).astype(np.float64)
        if file_labels is not None:
            y = file_labels
            bad = y[~((y >= 0) & (y <= 1))]
            if bad.size:
                raise InputError(f"sigmoid label {float(bad[0]):g} in --logits-file is outside [0, 1]")
        else:
            y = None
        kind = "file"
    else:
        z, y, kind = inputs.scalars(opts.logits, dt, points=opts.points, seed=opts.seed), None, "scalar"
    if y is None:
        labels = _sigmoid_labels(opts.labels)
        z, y = np.repeat(z, len(labels)), np.tile(labels, len(z))
    inputs.check_size(len(z))
    y = dt.cast(y).astype(np.float64)
    return _Batch(_backends.SigmoidCases(z, y), np.full(len(z), kind, dtype=object), z, y, 1,
                  ~np.isfinite(z))


def softmax_batch(opts: Options, dt, file=None) -> _Batch:
    """Cases for sparse categorical cross-entropy: the three preset kinds per scalar, or file rows
    (a 1-D .npy array is one case)."""
    if file is not None:
        z, file_labels = file
        z = np.atleast_2d(z)
        if z.shape[1] < 2:
            raise InputError("--logits-file for softmax needs one case per row with at least 2 logit columns")
        n, k = z.shape
        inputs.check_size(n, k)
        if file_labels is None and opts.labels is None:
            raise InputError("softmax --logits-file needs labels: a 'label' column or --labels")
        labels = _softmax_labels(file_labels if file_labels is not None else opts.labels, n, k)
        logits = dt.cast(z).astype(np.float64)
        rows = np.arange(n)
        return _Batch(_backends.SoftmaxCases(logits, labels), np.full(n, "file", dtype=object),
                      logits[rows, labels], labels.astype(np.float64), k, ~np.isfinite(logits).all(axis=1))
    k = opts.classes
    if not 2 <= k:
        raise InputError(f"--classes must be at least 2, got {k}")
    s = inputs.scalars(opts.logits, dt, points=opts.points, seed=opts.seed)
    n = len(s)
    inputs.check_size(3 * n, k)
    label = int(_softmax_labels(opts.labels or "0", 1, k)[0])
    wrong = (label + 1) % k
    logits = np.zeros((3 * n, k))
    logits[:n, label] = s  # label-at-z
    logits[n:2 * n, wrong] = s  # wrong-at-z
    logits[2 * n:] = s[:, None]  # all-equal
    kinds = np.repeat(np.array(["label-at-z", "wrong-at-z", "all-equal"], dtype=object), n)
    labels = np.full(3 * n, label, dtype=np.int64)
    z = np.tile(s, 3)
    return _Batch(_backends.SoftmaxCases(logits, labels), kinds, z, labels.astype(np.float64), k,
                  ~np.isfinite(z))


# ---------------------------------------------------------------------------------------------
# run


def _reference(experiment: str, batch: _Batch, dt) -> dict:
    precise = dt.name == "float64"  # float64 targets need more than float64 arithmetic
    c = batch.cases
    if experiment == "sigmoid":
        return oracle.bce(c.z, c.y, precise)
    return oracle.softmax_ce(c.logits, c.labels, precise)


def run(opts: Options | None = None, progress=None, **kw) -> pd.DataFrame:
    """Run the loss experiments; one row per (experiment, quantity, backend, method, dtype, case).

    ``opts`` (or keyword arguments naming its fields) selects what runs. ``progress``, if given, is
    called with (done, total, label) before each (experiment, dtype, backend) step, the label
    naming that step, and once at the end.
    """
    opts = opts or Options(**kw)
    validate.loss_options(opts)
    check_loss(opts)
    exps = parse_experiments(opts.experiments)
    dts = _dtypes.parse_list(opts.dtypes)
    backend_names = parse_backends(opts.backends)
    if not backend_names:
        raise InputError("no backend installed; valid: " + ", ".join(_backends.names()))
    file = inputs.load_file(opts.logits_file) if opts.logits_file else None
    # every input is built and checked before a framework is imported: bad input fails fast
    batches = {(exp, dt.name): (sigmoid_batch if exp == "sigmoid" else softmax_batch)(opts, dt, file)
               for exp in exps for dt in dts}
    if opts.batch_size is not None:
        for b in batches.values():
            inputs.check_size(opts.batch_size, b.classes)
    mods = [_backends.load(b) for b in backend_names]
    quantities = ["loss", "grad"] if opts.grad else ["loss"]
    total, done = len(exps) * len(dts) * len(mods), 0
    parts = []
    for exp in exps:
        for dt in dts:
            batch = batches[(exp, dt.name)]
            ref = _reference(exp, batch, dt)
            for mod in mods:
                if progress:  # the label names the step that now runs
                    progress(done, total, f"{exp} {dt.name} {mod.NAME}")
                for method in mod.methods(exp):
                    parts += _rows(exp, mod.NAME, method, dt, batch, ref, quantities, mod, opts)
                done += 1
    if progress:
        progress(done, total, "done")
    return pd.concat(parts, ignore_index=True)


def _rows(exp, backend, method, dt, batch, ref, quantities, mod, opts) -> list[pd.DataFrame]:
    """The rows of one method in one dtype (plus any execution variant that differs)."""
    try:
        out, error = _backends.evaluate(mod, method, dt, batch.cases, "grad" in quantities, opts.batch_size), ""
    except _backends.Unsupported as e:
        out, error = None, " ".join(str(e).split())
    frames = _method_rows(exp, backend, method.name, method.form, dt, batch, ref, quantities, out, error, opts)
    for variant, vout in (out.variants.items() if out is not None else ()):
        if any(not _same(getattr(out, q), getattr(vout, q)) for q in quantities):
            frames += _method_rows(exp, backend, f"{method.name}@{variant}", method.form, dt, batch, ref,
                                   quantities, vout, "", opts)
    return frames


def _same(a, b) -> bool:
    """Bitwise equality of two results, nan-aware (nan == nan, −0 ≠ +0 is ignored)."""
    if a is None or b is None:  # no gradient came back
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))


def row_frame(experiment, quantity, backend, method, form, dtype, result_dtype, case_kind, logit, label,
              classes, value, reference, measures: dict, status, error: str) -> pd.DataFrame:
    """Rows with exactly the :data:`COLUMNS` of the loss table (``measures``: the error arrays
    of :func:`metrics.compare`; ``status``: codes). The one place the row layout is written."""
    return pd.DataFrame({
        "experiment": experiment, "quantity": quantity, "backend": backend, "method": method,
        "form": form, "dtype": dtype, "result_dtype": result_dtype, "case_kind": case_kind,
        "logit": logit, "label": label, "classes": classes, "value": value, "reference": reference,
        "abs_error": measures["abs_error"], "rel_error": measures["rel_error"],
        "ulp_error": measures["ulp_error"], "bits_error": measures["bits_error"],
        "status": metrics.status_names(status), "error": error,
    }, columns=list(COLUMNS))


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
            m = {k: np.full(n, np.nan) for k in ("abs_error", "rel_error", "ulp_error", "bits_error")}
            status = np.full(n, metrics.UNSUPPORTED, dtype=np.uint8)
        else:
            raw = np.asarray(out.loss if q == "loss" else out.grad)
            result_dtype = _dtypes.REGISTRY.get(raw.dtype.name, dt)
            value = raw.astype(np.float64).reshape(n)
            # an upcast result is judged in the ulps of the format asked for (the coarser one)
            m = metrics.measure(value, hi, _dtypes.coarser(dt, result_dtype), reference_lo=lo,
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
    points. Raises :class:`InputError` for what cannot stream (softmax, float64)."""
    from .. import stream

    if opts.value_range and opts.logits != "exhaustive":
        raise InputError("--range restricts --logits exhaustive; add --logits exhaustive")
    dts = _dtypes.parse_list(opts.dtypes)
    streaming = bool(opts.value_range) or \
        (opts.logits == "exhaustive" and any(d.bits == 32 for d in dts)) or \
        (opts.logits == "random" and opts.points > stream.STREAM_RANDOM_ABOVE)
    if not streaming:
        return False
    if parse_experiments(opts.experiments) != ["sigmoid"]:
        raise InputError(f"--logits {opts.logits} at this size (or with --range) is for --experiment sigmoid "
                         "(softmax cases are vectors: use --logits-file or fewer --points)")
    if any(d.bits == 8 for d in dts):  # the streaming engine's statuses do not know formats without inf
        raise InputError("the 8-bit formats do not stream (--range, random above 2^18 points): their 256 values "
                         "fit one run; use --logits exhaustive without --range, or fewer --points")
    if any(d.bits > 32 for d in dts):
        raise InputError("streaming runs (exhaustive float32, --range, random above 2^18 points) need dtypes of "
                         "at most 32 bits: float64 references need mpmath; drop float64 or use fewer --points")
    return True


def run_streaming(opts: Options, *, workers: int | None = None, state_path: str | None = None,
                  resume: bool = False, progress=None, scheduler: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A streaming sigmoid run (labels 0 and 1, every method of the numpy backend), on local
    processes or, with ``scheduler`` (a Dask scheduler address), on that cluster.

    Returns (kept rows: the worst ``opts.keep`` cases per method, summary, histogram of ulp errors).
    The summary is exact over every input.
    """
    from .. import stream

    validate.loss_options(opts)
    backend_names = parse_backends(opts.backends)
    if backend_names != ["numpy"]:
        if opts.backends:
            raise InputError("streaming runs support --backend numpy only")
        backend_names = ["numpy"]
    if opts.labels is not None and sorted(set(_sigmoid_labels(opts.labels))) != [0.0, 1.0]:
        raise InputError("streaming runs use labels 0 and 1; drop --labels")
    if opts.keep < 0:
        raise InputError(f"--keep must be ≥ 0, got {opts.keep}")
    if opts.batch_size is not None:
        raise InputError("--batch-size is for row runs; streaming runs use the numpy backend in fixed chunks")
    stream.check_workers(workers)
    mod = _backends.load("numpy")
    quantities = ("loss", "grad") if opts.grad else ("loss",)
    rng = stream.parse_range(opts.value_range)
    runs = []
    for dt in _dtypes.parse_list(opts.dtypes):  # every input and state checked before any work
        if opts.logits == "exhaustive":
            src = stream.exhaustive_source(dt.name, rng)
        else:
            src = stream.Source(dt.name, "random", points=opts.points, seed=opts.seed)
        plan = stream.Plan(dt.name, "numpy", tuple(m.name for m in mod.methods("sigmoid")), quantities,
                           float(opts.max_ulp), int(opts.keep))
        sp = f"{state_path}.{dt.name}" if state_path else None
        if resume and sp:
            stream.load_state(plan, src, sp)
        stream.check_state_path(sp)
        runs.append((plan, src, sp))
    client = None
    if scheduler is not None:
        from .. import cluster

        client = cluster.connect(scheduler, _backends.REGISTRY["numpy"][1])
    rows, summs, hists = [], [], []
    try:
        for plan, src, sp in runs:
            total = stream.run(plan, src, workers=workers, state_path=sp, resume=resume, progress=progress,
                               client=client)
            s, h, r = stream.tables(total, plan, "numpy")
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

_KEYS = ["experiment", "quantity", "backend", "method", "form", "dtype"]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, quantity, backend, method, dtype): max/median ulps, status counts, and the
    smallest |logit| at which the method first fails."""
    from .. import stream

    out = []
    for key, g in df.groupby(_KEYS, sort=False):
        st = g["status"]
        valid = g[~st.isin(["invalid-input", "unsupported"])]
        fails = valid[valid["status"].isin(FAILURES)]
        row = dict(zip(_KEYS, key))
        row["cases"] = len(g)
        if len(valid):
            ulps = valid["ulp_error"].to_numpy()
            z, lab = valid["logit"].to_numpy(), valid["label"].to_numpy()
            worst = np.lexsort((lab, z, np.abs(z), -ulps))[0]  # ties: smallest |z|, then z, then label
            upper_median = float(np.sort(ulps)[len(ulps) // 2])  # as a streaming run counts it
            row.update(max_ulp=float(ulps.max()), median_ulp=float(np.median(ulps)),
                       median_ulp_bound=stream.bin_upper_edge(upper_median),
                       worst_logit=float(valid["logit"].iloc[worst]))
        else:
            row.update(max_ulp=np.nan, median_ulp=np.nan, median_ulp_bound=np.nan, worst_logit=np.nan)
        for s in ("nan-result", "overflow", "underflow", "inaccurate", "invalid-input", "unsupported"):
            row[s.replace("-", "_")] = int((st == s).sum())
        if len(fails):
            fz, flab = fails["logit"].to_numpy(), fails["label"].to_numpy()
            i = np.lexsort((flab, fz, np.abs(fz)))[0]
            row["first_fail_abs_logit"] = float(abs(fails["logit"].iloc[i]))
            row["first_fail_status"] = fails["status"].iloc[i]
        else:
            row["first_fail_abs_logit"] = np.nan
            row["first_fail_status"] = ""
        out.append(row)
    res = pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))
    order = {"loss": 0, "grad": 1, **{e: i for i, e in enumerate(EXPERIMENTS)}}
    return res.sort_values(["experiment", "quantity"], key=lambda c: c.map(order), kind="stable", ignore_index=True)


#: Status abbreviations of the compact terminal view (:func:`compact`).
STATUS_ABBREV = {"inaccurate": "ina", "underflow": "und", "overflow": "ovf", "nan-result": "nan"}
#: The line printed under the compact tables.
COMPACT_LEGEND = ("Each cell: the smallest |z| at which the method fails, and how (ovf overflow, "
                  "und underflow, ina inaccurate, nan nan-result; — never fails); under it the "
                  "largest ulp_error, counted in the coarser of dtype and result_dtype; blank: not "
                  "run in that dtype. Every column and a verdict per dtype: --full.")


def compact(summ: pd.DataFrame) -> pd.DataFrame:
    """The terminal's default view of a summary: one row per method, one column per dtype; each
    cell is two lines: where the method first fails (``10 ovf``; ``—`` never; ``unsupported``) and
    its max ulp. With several backends, a row ``backend:`` heads each backend's methods (names stay
    short enough for 80 columns)."""
    dts = list(dict.fromkeys(summ["dtype"]))
    several = summ["backend"].nunique() > 1
    rows = {}
    for r in summ.itertuples(index=False):
        if several and (r.backend, None) not in rows:
            rows[(r.backend, None)] = {"method": f"{r.backend}:", **{d: "" for d in dts}}
        row = rows.setdefault((r.backend, r.method), {"method": r.method, **{d: "" for d in dts}})
        if r.unsupported == r.cases:
            cell = "unsupported\n"
        else:
            first = f"{_g(r.first_fail_abs_logit)} {STATUS_ABBREV.get(r.first_fail_status, r.first_fail_status)}" \
                if r.first_fail_status else "—"
            cell = f"{first}\n{r.max_ulp:.3g}"
        row[r.dtype] = cell
    return pd.DataFrame(list(rows.values()), columns=["method"] + dts)


def verdict(summ: pd.DataFrame) -> list[str]:
    """One line per (experiment, quantity, dtype): where each naive method first fails, and how
    the fused methods fare."""
    lines = []
    for (exp, q, dt), g in summ.groupby(["experiment", "quantity", "dtype"], sort=False):
        parts = []
        for r in g.itertuples(index=False):
            name = r.method if r.backend == "numpy" else f"{r.backend}:{r.method}"
            if r.unsupported == r.cases:
                parts.append(f"{name} unsupported")
            elif r.first_fail_status:
                parts.append(f"{name} fails from |z| = {_g(r.first_fail_abs_logit)} ({r.first_fail_status})")
            else:
                parts.append(f"{name} ≤ {_g(r.max_ulp)} ulp")
        lines.append(f"{exp} {q} {dt}: " + "; ".join(parts))
    return lines


def _g(x: float) -> str:
    return f"{x:.4g}"


# --- the row path's memory budget (constants in stabench.limits) ---------------------------------

def loss_estimate(opts, outputs=()) -> tuple[int, int]:
    """(peak bytes, rows) that the row path of a loss run with ``opts`` (experiments.loss.Options)
    would reach, an upper bound from counts alone; ``outputs``: export formats ("csv", "json",
    "markdown") and "detail" for --detail."""
    from .. import backends, dtypes, inputs

    exps = parse_experiments(opts.experiments)
    dts = dtypes.parse_list(opts.dtypes)
    names = parse_backends(opts.backends)
    quantities = 2 if opts.grad else 1
    shape = inputs.file_shape(opts.logits_file) if opts.logits_file else None
    rows = arrays = largest = 0
    for exp in exps:
        for dt in dts:
            n, k = _cases(exp, dt, opts, shape)
            arrays += n * k * 8
            largest = max(largest, n * k * 8)
            for b in names:
                per_case = len(backends.load(b).methods(exp)) * quantities * (1 if b == "numpy" else limits.VARIANT_ROWS)
                rows += n * per_case
    per_row = limits.ROW_BYTES + sum(limits.OUTPUT_ROW_BYTES.get(o, 0) for o in set(outputs))
    fixed = limits.BASE_BYTES + sum(limits.FRAMEWORK_BYTES.get(b, limits.DEFAULT_FRAMEWORK_BYTES) for b in names)
    return fixed + rows * per_row + arrays + limits.ARRAY_COPIES * largest, rows


def _cases(exp: str, dt, opts, shape) -> tuple[int, int]:
    """(cases, classes) of one experiment in one dtype, at most."""

    n_labels = 2 if opts.labels is None else len(inputs.parse_numbers(opts.labels, "--labels"))
    if shape is not None:
        rows, cols = shape
        if exp == "softmax":
            return rows, cols
        return rows * (1 if inputs.file_has_labels(opts.logits_file) else n_labels), 1
    spec = opts.logits.strip()
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
        s = len(inputs.parse_numbers(spec))
    return (s * n_labels, 1) if exp == "sigmoid" else (3 * s, opts.classes)


def budget_use(opts, outputs=()) -> tuple[int, int]:
    """(bytes, rows): what the request adds beyond the frameworks' own footprint — the quantity
    :data:`stabench.limits.MEMORY_BUDGET` bounds — and the rows of :func:`loss_estimate`."""
    need, rows = loss_estimate(opts, outputs)
    frameworks = sum(limits.FRAMEWORK_BYTES.get(b, limits.DEFAULT_FRAMEWORK_BYTES) for b in parse_backends(opts.backends))
    return need - frameworks, rows


def check_loss(opts, outputs=()) -> None:
    """Refuse (InputError, before any work) a row-path loss run whose estimate exceeds the budget."""
    need, rows = loss_estimate(opts, outputs)
    if "detail" in outputs and rows > limits.MAX_DETAIL_ROWS:
        raise InputError(f"--detail would print about {rows:,} rows (limit {limits.MAX_DETAIL_ROWS:,}); "
                         "drop --detail and write the rows with --csv PATH, or use fewer logits, dtypes or backends")
    if budget_use(opts, outputs)[0] <= limits.MEMORY_BUDGET:
        return
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
