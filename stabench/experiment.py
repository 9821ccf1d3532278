"""What an experiment is: the :class:`Experiment` interface, the registry of experiments, and the
row and summary contract the loss-style experiments share.

An experiment answers one matched question (several methods computing one quantity). It says

- how its cases are built: from a logit set, ``--logits-file`` or, when it streams, from a chunk of
  scalars (:meth:`Experiment.batch`, :meth:`Experiment.stream_cases`);
- its reference for a batch in a dtype, with the stated error bound of that reference
  (:meth:`Experiment.reference`, :attr:`Experiment.reference_bound`);
- its methods for each backend, the framework calls as a user writes them
  (:attr:`Experiment.backend_methods`, read by :meth:`Experiment.methods`), and its cases type (a
  :class:`stabench.backends.Cases`: the arrays the calls take, which one is differentiated, and how
  the per-case gradient is picked from the framework's);
- its row and summary columns, each documented once (:attr:`Experiment.columns`,
  :attr:`Experiment.summary_columns`; ``tests/test_readme.py`` checks the docs against them).

The engine (:mod:`stabench.stream`), the loss runner, the report, the CLI and the backends (adapters
that run any method's call: :func:`stabench.backends.evaluate`) iterate over :func:`names` /
:func:`get` and never test an experiment's name. This module sits below the engine
and imports neither it nor any experiment module: :func:`get` imports an experiment by its dotted
path in :data:`REGISTRY` (as :mod:`stabench.backends` does for backends), so there is no cycle.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import columns as _columns
from . import metrics
from .errors import InputError

# the registry is a dict in a module of its own (no imports): the CLI's help and the option checks
# read the names without importing numpy, pandas or an experiment
from .registry import OTHER, REGISTRY, ROWS  # noqa: E402,F401  (part of this module's API)

#: Statuses that count as a failure for "first fails at |z|".
FAILURES = ("inaccurate", "underflow", "overflow", "nan-result")

#: The key of ``DataFrame.attrs`` where a loss run on ``--logits-file`` leaves what its rows cannot
#: hold, for :func:`summary`: ``{"reduced": [one record per method and dtype: the framework's mean
#: and sum of the per-case losses and their errors], "rows": {experiment: rows of the file}}``. Not
#: metadata: the CLI leaves it out of the exports' metadata block.
FILE_ATTR = "stabench_file_run"

#: The summary columns of a file run's reduced loss (:func:`summary`; nan where not computed).
REDUCED = ("mean_value", "mean_reference", "mean_ulp", "mean_rel_error", "mean_status",
           "sum_value", "sum_reference", "sum_ulp", "sum_status")

#: Columns of the loss row table and of its summary, each documented: views of their declarations
#: (:data:`stabench.columns.LOSS_ROWS`, :data:`~stabench.columns.LOSS_SUMMARY`; the docs' column
#: reference is checked against them).
COLUMNS = _columns.LOSS_ROWS.docs()
SUMMARY_COLUMNS = _columns.LOSS_SUMMARY.docs()

#: Histogram of ulp errors (streaming runs; the row path's ``median_ulp_bound`` uses the same bins):
#: ulp_error in [2^(e−1), 2^e) for e = HIST_MIN … HIST_MAX (clipped), plus a bin for exactly 0 and
#: one for failures without a count (nan / ±inf results).
HIST_MIN, HIST_MAX = -30, 64
N_BINS = HIST_MAX - HIST_MIN + 3


def bin_upper_edge(u: float) -> float:
    """The upper edge of the histogram bin holding ulp_error ``u`` (0 for 0, inf for inf/nan):
    the row path's ``median_ulp_bound``, the same number a streaming run gives."""
    if u == 0:
        return 0.0
    if not math.isfinite(u):
        return math.inf
    e = min(max(math.frexp(u)[1], HIST_MIN), HIST_MAX)  # u in [2^(e−1), 2^e)
    return math.inf if e == HIST_MAX else 2.0 ** e


@dataclass
class Batch:
    """One experiment's cases in one dtype, and the row labels that go with them."""

    cases: object  #: what a backend's ``evaluate`` takes (the experiment's :attr:`Experiment.cases_type`)
    case_kind: np.ndarray
    logit: np.ndarray
    label: np.ndarray
    classes: int
    invalid: np.ndarray  #: inputs not finite in the dtype


class Experiment:
    """One matched question. Subclasses set the attributes and implement the methods that apply;
    the defaults give the loss row/summary contract."""

    name: str = ""
    title: str = ""  #: one line: what is computed
    case_kinds: dict = {}  #: case_kind value → what it means (documented in docs/)
    columns: dict = COLUMNS  #: row table columns → doc
    summary_columns: dict = SUMMARY_COLUMNS  #: summary columns → doc
    reference_bound: str = ""  #: the stated error bound of :meth:`reference` (tested in tests/)
    streams: bool = False  #: whether :meth:`stream_cases` builds cases from a chunk of scalars
    #: whether stabench.kernel has a kernel of its own for this experiment, one that also forms the
    #: reference (sigmoid's, for labels 0 and 1); otherwise the generic kernel measures its
    #: :meth:`stream_cases` against :meth:`stream_reference`
    kernel: bool = False
    plot_cases_doc: str = "a column per case kind"  #: what the columns of the report's plots are
    labels_doc: str = ""  #: what one of its --labels is (named in the option's error messages)
    #: (fewest, most or None) logit columns per --logits-file row it takes: with the default
    #: ``-e all`` a file runs the experiments whose range holds its column count
    file_columns: tuple = (1, None)
    #: backend name → its :class:`stabench.backends.Method` list, in table order: the framework
    #: calls as a user writes them (what each backend's ``call`` takes: its module docstring)
    backend_methods: dict = {}
    #: the :class:`stabench.backends.Cases` dataclass of its batches
    cases_type: type | None = None
    #: the case of the cross-framework "confidently wrong" table (:mod:`stabench.crossframework`):
    #: (its name in the table, its logits as rows of a --logits-file, its --labels), or None
    confidently_wrong: tuple | None = None

    def methods(self, backend) -> list:
        """The methods of this experiment for ``backend`` (a backend module; its framework need not
        be imported: the tables are static)."""
        return list(self.backend_methods.get(backend.NAME, ()))

    def batch(self, opts, dt, file=None) -> Batch:
        """Every case of a row run in dtype ``dt`` (``file``: what inputs.load_file returned)."""
        raise NotImplementedError

    def reference(self, cases, dt) -> dict:
        """{quantity: (hi, lo)} for ``cases`` (already rounded to ``dt``), within :attr:`reference_bound`."""
        raise NotImplementedError

    def size(self, scalars: int, opts, file_shape=None, file_labels: bool = False) -> tuple[int, int]:
        """(cases, classes) of a row run with ``scalars`` logits (or a file of ``file_shape``), at most."""
        raise NotImplementedError

    def check_stream(self, opts) -> None:
        """Refuse (InputError) options a streaming run of this experiment cannot honour."""
        if not self.streams:
            raise InputError(f"experiment {self.name} does not stream; use --logits-file or fewer --points")

    def stream_case_bytes(self, opts) -> int:
        """Bytes of the cases :meth:`stream_cases` builds per logit of a chunk (the memory estimate of
        a streaming run): a float64 logit and label for each of two labels, unless overridden."""
        return 2 * 2 * 8

    def stream_options(self, opts) -> tuple:
        """The options a streaming run's cases depend on, as ((name, value), …): they travel in
        ``stream.Plan.options`` (and so in the resume state's key)."""
        return ()

    def stream_cases(self, z: np.ndarray, dt, options: tuple = ()):
        """(cases, logit, key) for a chunk of scalars ``z`` in ``dt``: what one backend call per
        method evaluates, each case's logit, and a float64 ``key`` that with the logit identifies
        the case (the aggregates' tie-break after |z| and z, in the row path's order; the kept
        rows are rebuilt from (logit, key) by :meth:`stream_rows`)."""
        raise NotImplementedError

    def stream_reference(self, z: np.ndarray, quantities, options: tuple = ()) -> dict:
        """{quantity: float64 reference per case of :meth:`stream_cases`} (the streaming oracle)."""
        raise NotImplementedError

    def stream_rows(self, logit: np.ndarray, key: np.ndarray, quantity: str, options: tuple = ()):
        """(case_kind, label, classes, (hi, lo)) of kept cases given by (logit, key): the row
        columns and the ordinary oracle's reference, to re-measure the worst cases as rows."""
        raise NotImplementedError

    def plot_cases(self, sweep: pd.DataFrame) -> list:
        """[(column title, rows)]: the cases the report plots, a column of panels each (every case
        kind, and every label where a kind has several; :func:`stabench.plots.default_cases`)."""
        from . import plots  # matplotlib is not imported by this

        return plots.default_cases(sweep)

    def summary(self, df: pd.DataFrame) -> pd.DataFrame:
        """The summary table of this experiment's rows (:attr:`summary_columns`)."""
        return summary(df)


class CommandExperiment(Experiment):
    """An experiment with a command of its own and no backend methods (``roundoff``, ``expr``): it
    registers its name, columns, reference bound and summary, so that the contract is one."""

    def __init__(self, name: str, title: str, columns: dict, summary_columns: dict, reference_bound: str,
                 summarize):
        self.name, self.title, self.columns, self.summary_columns = name, title, columns, summary_columns
        self.reference_bound, self._summarize = reference_bound, summarize

    def methods(self, backend) -> list:
        return []  # its forms are expressions evaluated by stabench.expr, not backend methods

    def summary(self, df: pd.DataFrame) -> pd.DataFrame:
        return self._summarize(df)


def names() -> list[str]:
    """The loss experiments, in display order."""
    return list(REGISTRY)


def get(name: str) -> Experiment:
    """The registered experiment ``name`` (InputError naming the valid ones otherwise)."""
    path = REGISTRY.get(name) or OTHER.get(name) or ROWS.get(name)
    if path is None:
        raise InputError(f"unknown experiment {name!r}; valid: " + ", ".join([*REGISTRY, *ROWS, *OTHER]))
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr or "EXPERIMENT")


def all_case_kinds() -> dict:
    """Every case kind of every loss experiment → its doc (``file`` included)."""
    out = {}
    for n in names():
        out.update(get(n).case_kinds)
    return out


def row_frame(experiment, quantity, backend, method, form, dtype, result_dtype, case_kind, logit, label,
              classes, value, reference, measures: dict, status, error: str) -> pd.DataFrame:
    """Rows with exactly the :data:`COLUMNS` of the loss table (``measures``: the error arrays
    of :func:`metrics.compare`; ``status``: codes). The one place the row layout is written."""
    return pd.DataFrame({
        "experiment": experiment, "quantity": quantity, "backend": backend, "method": method,
        "form": form, "dtype": dtype, "result_dtype": result_dtype, "case_kind": case_kind,
        "logit": logit, "label": label, "classes": classes, "value": value, "reference": reference,
        **{k: measures[k] for k in _columns.MEASURES},
        "status": metrics.status_names(status), "error": error,
    }, columns=list(COLUMNS))


_KEYS = ["experiment", "quantity", "backend", "method", "form", "dtype"]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, quantity, backend, method, dtype): max/median ulps, status counts, the
    smallest |logit| at which the method first fails, the failures counted, the worst case's
    index, and for a ``--logits-file`` run (rows whose case_kind is ``file``) the negligible
    failures (:func:`negligible`) and, from ``df.attrs[FILE_ATTR]`` (:func:`stabench.experiments.loss.run`
    leaves it), the reduced loss: the framework's own mean and sum against the exact ones."""
    extra = df.attrs.get(FILE_ATTR) or {}
    file_rows = extra.get("rows", {})
    out = []
    for key, g in df.groupby(_KEYS, sort=False):
        st = g["status"]
        invalid = st.isin(["invalid-input", "unsupported"]).to_numpy()
        valid = g[~invalid]
        fails = valid[valid["status"].isin(FAILURES)]
        row = dict(zip(_KEYS, key))
        row["cases"] = len(g)
        is_file = bool(len(g)) and "case_kind" in g and bool((g["case_kind"] == "file").all())
        per_row = max(len(g) // file_rows[key[0]], 1) if is_file and file_rows.get(key[0]) else 1
        tiny = negligible(valid) if is_file and key[1] == "loss" and len(g) else np.zeros(len(valid), dtype=bool)
        if len(valid):
            ulps = valid["ulp_error"].to_numpy()
            z, lab = valid["logit"].to_numpy(), valid["label"].to_numpy()
            worst = np.lexsort((lab, z, np.abs(z), -ulps))[0]  # ties: smallest |z|, then z, then label
            upper_median = float(np.sort(ulps)[len(ulps) // 2])  # as a streaming run counts it
            # the worst failing case that is not negligible, or else the worst one (ties as worst_logit's)
            kept = np.flatnonzero(~tiny)
            bad = kept[valid["status"].iloc[kept].isin(FAILURES).to_numpy()]
            pick = bad if len(bad) else kept
            w = pick[np.lexsort((lab[pick], z[pick], np.abs(z[pick]), -ulps[pick]))[0]] if len(pick) else worst
            row.update(max_ulp=float(ulps.max()), median_ulp=float(np.median(ulps)),
                       median_ulp_bound=bin_upper_edge(upper_median),
                       worst_logit=float(valid["logit"].iloc[worst]),
                       max_ulp_counted=float(ulps[kept].max()) if len(kept) else 0.0,
                       worst_case=int(np.flatnonzero(~invalid)[w]) // per_row,
                       worst_case_logit=float(z[w]), worst_status=str(valid["status"].iloc[w]))
        else:
            row.update(max_ulp=np.nan, median_ulp=np.nan, median_ulp_bound=np.nan, worst_logit=np.nan,
                       max_ulp_counted=np.nan, worst_case=np.nan, worst_case_logit=np.nan, worst_status="")
        for s in ("nan-result", "overflow", "underflow", "inaccurate", "invalid-input", "unsupported"):
            row[s.replace("-", "_")] = int((st == s).sum())
        row["failed"] = len(fails)
        row["negligible"] = int(tiny.sum())
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
    reduced = extra.get("reduced")
    if reduced:
        red = pd.DataFrame(reduced).drop_duplicates(_REDUCED_KEYS).set_index(_REDUCED_KEYS)
        at = res.set_index(_REDUCED_KEYS).index
        for c in REDUCED:
            res[c] = red[c].reindex(at).to_numpy()
    for c in REDUCED:  # not computed: nan (an empty status)
        if c.endswith("_status"):
            res[c] = pd.Series([v if isinstance(v, str) else "" for v in res[c]], index=res.index, dtype=object)
    order = {"loss": 0, "grad": 1, **{e: i for i, e in enumerate(names())}}
    return res.sort_values(["experiment", "quantity"], key=lambda c: c.map(order), kind="stable", ignore_index=True)


_REDUCED_KEYS = ["experiment", "quantity", "backend", "method", "dtype"]


def negligible(valid: pd.DataFrame) -> np.ndarray:
    """Which failing cases of one method's valid ``--logits-file`` rows (quantity loss) cannot
    matter to the reduced loss (docs/measures.md, "Negligible failures"). With M the batch's exact
    mean loss, N the valid cases and u = ulp(M) in the dtype errors are counted in (the coarser of
    dtype and result dtype), a failing case is negligible when

    1. its value is finite (an inf or nan always counts: it poisons the mean);
    2. its exact loss and its error are both below u/2: the loss is below the dtype's resolution
       at the scale of its neighbours' losses, and so is what the method made of it (a float64 loss
       of 0 where the exact value is 1e-20 is 8.95e15 ulps off, and 1e-20 next to M);
    3. together with the other negligible cases, its error is below N·u/2: all of them together
       cannot move the mean (Σ/N) by half an ulp, nor the sum by half an ulp of N·M. Where the
       candidates' errors add up to more, those with the smallest errors are taken while they fit.

    (M: the fsum of the rows' float64 references over N, within 2^-52 relative: the losses are ≥ 0.)"""
    from . import dtypes

    out = np.zeros(len(valid), dtype=bool)
    if not len(valid):
        return out
    ref = valid["reference"].to_numpy(dtype=np.float64)
    if not np.isfinite(ref).all():
        return out
    try:
        mean = math.fsum(ref.tolist()) / len(ref)
    except OverflowError:  # the sum is beyond float64 (losses near 1e308), the mean is not: scaled by 2^-64
        mean = math.fsum((ref * 2.0**-64).tolist()) / len(ref) * 2.0**64
    dt = metrics.measuring_dtype(dtypes.get(valid["dtype"].iloc[0]), dtypes.get(valid["result_dtype"].iloc[0]))
    if not np.isfinite(dt.cast(np.array([mean]))).all():
        return out
    half = float(dt.ulp(np.array([mean]))[0]) / 2
    value = valid["value"].to_numpy(dtype=np.float64)
    err = valid["abs_error"].to_numpy(dtype=np.float64)
    failing = valid["status"].isin(FAILURES).to_numpy()
    with np.errstate(invalid="ignore"):
        cand = np.flatnonzero(failing & np.isfinite(value) & (np.abs(ref) < half) & (err < half))
    order = cand[np.argsort(err[cand], kind="stable")]
    fits = np.cumsum(err[order]) < len(ref) * half
    out[order[fits]] = True
    return out


def verdict_lines(summ, part) -> list[str]:
    """One line per (experiment, quantity, dtype) of a summary: ``EXPERIMENT QUANTITY DTYPE: `` and
    each method's ``part(row, name)`` (name: METHOD for numpy, BACKEND:METHOD otherwise), joined
    by "; ". The loss and row runners' verdicts differ only in ``part``."""
    lines = []
    for (e, q, dt), g in summ.groupby(["experiment", "quantity", "dtype"], sort=False):
        parts = [part(r, r.method if r.backend == "numpy" else f"{r.backend}:{r.method}")
                 for r in g.itertuples(index=False)]
        lines.append(f"{e} {q} {dt}: " + "; ".join(parts))
    return lines


def method_by_dtype(summ: pd.DataFrame, cell) -> pd.DataFrame:
    """The terminal's compact view of a summary: one row per method, one column per dtype, each
    cell ``cell(row)`` of its summary row. With several backends, a row ``backend:`` heads each
    backend's methods (names stay short enough for 80 columns); each backend's methods keep their
    order, under the heading of the backend (a variant first met in a later dtype — TensorFlow's
    @graph rows appear in float32 only — stays under its own backend)."""
    dts = list(dict.fromkeys(summ["dtype"]))
    several = summ["backend"].nunique() > 1
    rows = {}
    for r in summ.itertuples(index=False):
        if several and (r.backend, None) not in rows:
            rows[(r.backend, None)] = {"method": f"{r.backend}:", **{d: "" for d in dts}}
        row = rows.setdefault((r.backend, r.method), {"method": r.method, **{d: "" for d in dts}})
        row[r.dtype] = cell(r)
    order = {b: i for i, b in enumerate(dict.fromkeys(summ["backend"]))}
    grouped = sorted(rows.items(), key=lambda kv: order[kv[0][0]])  # stable: each backend's order kept
    return pd.DataFrame([row for _, row in grouped], columns=["method"] + dts)

