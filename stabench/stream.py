"""Streaming runs of any experiment that streams (:attr:`stabench.experiment.Experiment.streams`)
with any backend: every float32 logit (or a very large random sample) in bounded memory, on every
core, aggregated per chunk instead of kept as rows.

The input is split into *tasks* of :data:`TASK` logits (the unit of parallelism and of ``--resume``),
each processed in *chunks* of :data:`CHUNK` logits (small enough to stay in cache). The experiment
builds a chunk's cases from its logits (:meth:`Experiment.stream_cases`: for sigmoid every logit with
labels 0 and 1, for softmax its three preset kinds — :func:`cases_per_logit` asks); each method runs
once over it (:func:`backends.evaluate`, the row path's entry point: one call per method, whatever
the backend), each execution variant it returns is a slot ``method@variant`` of its own
(:attr:`Plan.variants`), the reference comes from :meth:`Experiment.stream_reference`, and
:func:`metrics.ulp_status` gives each case's ulp error and status in the row path's dtype
(:func:`metrics.measuring_dtype`: the coarser of the dtype and the result dtype). Per (quantity,
slot) a task keeps only an :class:`Agg`: counts per status, max ulp error and the worst logit, a
histogram of ulp errors, the smallest |z| of a failure, the worst ``keep`` cases, the result dtype,
and (a variant) whether it differed from its method. Merging the tasks' aggregates in task order
gives a result that is exact over every input and the same however the work was split;
:func:`tables` reports what the row path would (:func:`shown`).

With numba installed, every chunk is measured by a compiled kernel of :mod:`stabench.kernel`
instead (the same numbers, bit for bit; ``STABENCH_KERNEL`` chooses): the sigmoid audit's, which
also forms its reference (:attr:`Experiment.kernel`), or the generic one for any other experiment.
Tasks run in a local process pool whose workers die with the parent (:func:`run`), or on a Dask
cluster (:mod:`stabench.cluster`).
The resume state carries a digest and is checked field by field before any work (:func:`load_state`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import columns as _columns
from . import dtypes as _dtypes
from . import experiment as _experiment
from . import metrics
from .errors import CWD_GONE, InputError, cwd_gone, fd_limit_text
from .experiment import HIST_MAX, HIST_MIN, N_BINS, bin_upper_edge  # noqa: F401  (stream.* API)

#: Logits per chunk (×2 cases): ~2^16 float64 temporaries stay in L2 cache.
CHUNK = 1 << 16
#: Logits per task: the unit of parallel work and of resumable progress (2^32 / 2^22 = 1024 tasks).
TASK = 1 << 22
#: Histogram bins (HIST_MIN, HIST_MAX, N_BINS: :mod:`stabench.experiment`, whose summary contract
#: defines median_ulp_bound by them).
#: Random runs with more points than this stream; fewer run as ordinary rows (which cost about
#: 5 s per million points, against 0.3 s streamed: benchmarks/stream.py).
STREAM_RANDOM_ABOVE = 1 << 18

STATUS_FAIL_LO, STATUS_FAIL_HI = metrics.INACCURATE, metrics.NAN  # the failure codes 2…5


# ---------------------------------------------------------------------------------------------
# sources: which logits, split into tasks


@dataclass(frozen=True)
class Source:
    """The logits of a streaming run: bit-pattern intervals (exhaustive) or a seeded sample."""

    dtype: str
    kind: str  #: "exhaustive" or "random"
    intervals: tuple = ()  #: exhaustive: ((first_bits, end_bits), …), end exclusive
    points: int = 0  #: random: number of logits
    seed: int = 0

    @property
    def total(self) -> int:
        """Number of logits."""
        if self.kind == "random":
            return self.points
        return sum(b - a for a, b in self.intervals)

    @property
    def n_tasks(self) -> int:
        return max(1, -(-self.total // TASK))

    def task(self, i: int) -> np.ndarray:
        """The logits of task ``i``, in the dtype."""
        dt = _dtypes.get(self.dtype)
        lo, hi = i * TASK, min((i + 1) * TASK, self.total)
        if self.kind == "random":
            rng = np.random.default_rng([self.seed, i])
            out, have, need = [], 0, hi - lo
            while have < need:
                bits = rng.integers(0, 2**dt.bits, size=need - have, dtype=np.uint64).astype(dt.uint)
                v = bits.view(dt.type)
                with np.errstate(invalid="ignore"):  # signalling-nan patterns are drawn too
                    v = v[np.isfinite(v)]
                out.append(v)
                have += len(v)
            return np.concatenate(out)[:need]
        parts, pos = [], 0
        for a, b in self.intervals:  # map the task's [lo, hi) in the concatenated intervals
            n = b - a
            s, e = max(lo - pos, 0), min(hi - pos, n)
            if s < e:
                parts.append(np.arange(a + s, a + e, dtype=np.uint32).astype(dt.uint, copy=False).view(dt.type))
            pos += n
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dt.type)


def exhaustive_source(dtype: str, value_range: tuple[float, float] | None = None) -> Source:
    """Every finite value of ``dtype`` in the real interval [lo, hi] (default: all of them) as
    intervals of bit patterns: the negative values first, then the positive ones.

    [lo, hi] is an interval of real numbers: −0 and +0 are both 0, so both zeros are in it when
    lo ≤ 0 ≤ hi and neither otherwise; ±inf as an end means unbounded; nan and infinities are
    never in it. Formats of at most 16 bits are enumerated (exact for any encoding, also formats
    without −0 or inf); wider ones use :func:`_magnitude_intervals` (IEEE sign-magnitude).
    """
    dt = _dtypes.get(dtype)
    lo, hi = value_range if value_range else (-math.inf, math.inf)
    if math.isnan(lo) or math.isnan(hi):
        raise InputError("--range must not contain nan; give two numbers LO,HI (e.g. --range=-100,100)")
    if not lo <= hi:
        raise InputError(f"--range {lo:g},{hi:g}: LO must not exceed HI (e.g. --range=-100,100)")
    out = _enumerated_intervals(dt, lo, hi) if dt.bits <= 16 else _magnitude_intervals(dt, lo, hi)
    if not out:
        raise InputError(f"--range {lo:g},{hi:g} holds no finite {dtype} value")
    return Source(dtype, "exhaustive", intervals=out)


def _enumerated_intervals(dt: _dtypes.DType, lo: float, hi: float) -> tuple:
    """Runs of consecutive bit patterns whose value is finite and in [lo, hi] (negatives first)."""
    with np.errstate(invalid="ignore"):  # signalling-nan patterns raise 'invalid' when widened
        v = np.arange(2**dt.bits, dtype=np.uint32).astype(dt.uint).view(dt.type).astype(np.float64)
    ok = np.isfinite(v) & (v >= lo) & (v <= hi)  # −0.0 >= 0.0 is True: both zeros compare as 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.view(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
    sign = 1 << (dt.bits - 1)
    return tuple(sorted(runs, key=lambda r: (r[0] < sign, r[0])))


def _magnitude_intervals(dt: _dtypes.DType, lo: float, hi: float) -> tuple:
    """[lo, hi] as bit-pattern intervals for an IEEE sign-magnitude format: values −x with x in
    [max(−hi, 0), −lo] (when lo ≤ 0), then +x with x in [max(lo, 0), hi] (when hi ≥ 0)."""
    sign = 1 << (dt.bits - 1)
    max_bits = int(np.asarray(dt.cast(dt.max)).view(dt.uint))  # largest finite magnitude

    def bits_at_least(x: float) -> int:
        """Bits of the smallest finite x' ≥ x (x ≥ +0); max_bits + 1 when there is none."""
        if x > dt.max:
            return max_bits + 1
        r = dt.cast(x)
        b = int(np.asarray(r).view(dt.uint))
        return b + 1 if float(r) < x else b

    def bits_at_most(x: float) -> int:
        """Bits of the largest finite x' ≤ x (x ≥ +0)."""
        if x >= dt.max:
            return max_bits
        r = dt.cast(x)
        b = int(np.asarray(r).view(dt.uint))
        return b - 1 if float(r) > x else b

    out = []
    # "+ 0.0" turns −0.0 into +0.0: max(−0.0, 0.0) is −0.0, whose bit pattern is the sign bit
    if lo <= 0:
        a, b = bits_at_least(max(-hi, 0.0) + 0.0), bits_at_most(-lo + 0.0)
        if a <= b:
            out.append((sign | a, (sign | b) + 1))
    if hi >= 0:
        a, b = bits_at_least(max(lo, 0.0) + 0.0), bits_at_most(hi + 0.0)
        if a <= b:
            out.append((a, b + 1))
    return tuple(out)


def parse_range(text: str | None) -> tuple[float, float] | None:
    """``--range LO,HI`` → (lo, hi): two decimal numbers (``inf`` allowed), LO ≤ HI, no nan."""
    from .validate import parse_number

    if text is None:
        return None
    parts = text.split(",")
    vals = [parse_number(p) for p in parts] if len(parts) == 2 else [None]
    if any(v is None for v in vals):
        raise InputError(f"--range {text!r}: expected two numbers LO,HI (e.g. --range=-100,100)")
    lo, hi = vals
    if math.isnan(lo) or math.isnan(hi):
        raise InputError("--range must not contain nan; give two numbers LO,HI (e.g. --range=-100,100)")
    if lo > hi:
        raise InputError(f"--range {text!r}: LO must not exceed HI (e.g. --range=-100,100)")
    return lo, hi


# ---------------------------------------------------------------------------------------------
# aggregates


@dataclass
class Agg:
    """Everything kept about one (quantity, method) over the cases seen so far."""

    keep: int
    n: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(metrics.STATUSES), dtype=np.int64))
    hist: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, dtype=np.int64))
    max_ulp: float = -1.0
    worst: tuple = ()  #: (|z|, z, label) of the worst case
    first_fail: tuple = ()  #: (|z|, z, label, status code)
    top: list = field(default_factory=list)  #: [(ulp, |z|, z, label, value)] best first
    result_dtype: str = ""  #: the dtype the results came back in ("" before the first chunk)
    #: an execution variant's slot: whether some case's result (either quantity: ORed in
    #: :func:`tables`) differs bitwise from its method's (:func:`metrics.identical`)
    differs: bool = False

    def merge(self, o: "Agg") -> None:
        """Fold ``o`` (a later part of the input) into this aggregate."""
        self.n += o.n
        self.counts += o.counts
        self.hist += o.hist
        if o.max_ulp > self.max_ulp or (o.max_ulp == self.max_ulp and o.worst and o.worst < self.worst):
            self.max_ulp, self.worst = o.max_ulp, o.worst
        if o.first_fail and (not self.first_fail or o.first_fail[:3] < self.first_fail[:3]):
            self.first_fail = o.first_fail
        if self.keep:
            self.top = sorted(self.top + o.top, key=_top_key)[: self.keep]
        self.result_dtype = self.result_dtype or o.result_dtype
        self.differs = self.differs or o.differs

    def to_json(self) -> dict:
        return {"n": self.n, "counts": self.counts.tolist(), "hist": self.hist.tolist(),
                "max_ulp": repr(self.max_ulp), "worst": [repr(x) for x in self.worst],
                "first_fail": [repr(x) for x in self.first_fail], "top": [[repr(x) for x in t] for t in self.top],
                "result_dtype": self.result_dtype, "differs": self.differs}

    @classmethod
    def from_json(cls, d: dict, keep: int) -> "Agg":
        a = cls(keep)
        a.n = d["n"]
        a.counts = np.array(d["counts"], dtype=np.int64)
        a.hist = np.array(d["hist"], dtype=np.int64)
        a.max_ulp = float(d["max_ulp"])  # floats travel as repr strings: exact, inf included
        a.worst = tuple(float(x) for x in d["worst"])
        ff = [float(x) for x in d["first_fail"]]
        a.first_fail = tuple(ff[:3]) + (int(ff[3]),) if ff else ()
        a.top = [tuple(float(x) for x in t) for t in d["top"]]
        a.result_dtype, a.differs = d["result_dtype"], d["differs"]
        return a


def _top_key(t):
    ulp, absz, z, label = t[:4]
    return (-ulp, absz, z, label)


# ---------------------------------------------------------------------------------------------
# one chunk


@dataclass(frozen=True)
class Plan:
    """What to evaluate: the experiment (a registered name), backend methods (by name), quantities,
    tolerance, rows kept per method."""

    dtype: str
    backend: str
    methods: tuple
    quantities: tuple
    max_ulp: float
    keep: int
    #: a registered experiment that streams; default the first registered one (sigmoid)
    experiment: str = field(default_factory=lambda: _experiment.names()[0])
    #: the experiment's case options (Experiment.stream_options), e.g. (("classes", 10), ("label", 0))
    options: tuple = ()
    #: execution variants aggregated beside every method (:func:`variants`), each as the slot
    #: ``method@variant``; :func:`tables` reports one where it differs from its method on some case
    variants: tuple = ()
    #: the ``--method`` names that choose what :func:`tables` reports (as the row path does: a
    #: method named alone, a ``NAME@VARIANT`` whether it differs or not); None: every method
    selected: tuple | None = None


def variants(backend, dtype: str) -> tuple:
    """The execution variants ``backend`` (a loaded backend module) evaluates in ``dtype`` in this
    process: those its :data:`VARIANTS` declare, less those for other dtypes or unavailable here."""
    from . import backends

    out = []
    for v in getattr(backend, "VARIANTS", {}):
        where = backends.variant_dtypes(backend, v)
        if (where is None or dtype in where) and not backends.variant_unavailable(backend, v):
            out.append(v)
    return tuple(out)


def slots(plan: Plan) -> list[tuple[str, str]]:
    """(quantity, name) of every aggregate of a run: per quantity, each method then its variants
    (``method@variant``), in the row path's order."""
    return [(q, n) for q in plan.quantities for m in plan.methods
            for n in (m, *(f"{m}@{v}" for v in plan.variants))]


def shown(plan: Plan, total: dict) -> list[tuple[str, str]]:
    """The slots :func:`tables` reports, as the row path does (``experiments.loss._rows``): a method
    when selected (no ``--method``, or named), a ``method@variant`` when named, or when its method
    is selected and it differs from it on some case, in either quantity."""
    sel = None if plan.selected is None else set(plan.selected)
    differs = {n for (q, n), a in total.items() if a.differs}
    out = []
    for q, n in total:
        base = n.split("@", 1)[0]
        own = sel is None or base in sel
        if "@" not in n:
            keep = own
        else:
            keep = (sel is not None and n in sel) or (own and n in differs)
        if keep:
            out.append((q, n))
    return out


def cases_per_logit(plan: Plan) -> int:
    """How many cases the experiment builds from each logit of a chunk (sigmoid 2: labels 0 and 1;
    softmax 3: its preset kinds), asked of the experiment itself."""
    dt = _dtypes.get(plan.dtype)
    cases = _experiment.get(plan.experiment).stream_cases(dt.cast(np.ones(1)), dt, plan.options)[0]
    return len(cases)


def _ulp_fast(ref: np.ndarray, dt: _dtypes.DType) -> np.ndarray:
    """``dt.ulp(ref)`` for finite float64 ``ref``, from the exponent bits (no frexp): same values."""
    e = (ref.view(np.int64) >> 52) & 0x7FF
    e_sub = 1023 + int(round(math.log2(dt.smallest_subnormal)))
    return (np.maximum(e - (dt.precision - 1), e_sub) << 52).view(np.float64)


def _inv_ulp(ref: np.ndarray, dt: _dtypes.DType, quantity: str) -> np.ndarray:
    """1/ulp in ``dt`` of the exact value that ``ref`` rounds (ulps are powers of 2: exact).

    The streaming gradients lie strictly inside (−1, 1) (σ(z) − y for y ∈ {0, 1}; softmax_k − 1
    with K ≥ 2), so a reference of ±1 is the float64 rounding of a value just inside (−1 + e^-750):
    its ulp is the one of the binade below, as ``metrics`` takes it from hi + lo (and the kernel)."""
    inv = 1.0 / _ulp_fast(ref, dt)
    if quantity == "grad":
        inv = np.where(np.abs(ref) == 1.0, 2.0 * inv, inv)
    return inv


_MODULES: dict = {}


def _module(name: str):
    """The backend module ``name``, loaded once per process."""
    from .backends import load

    return _MODULES.get(name) or _MODULES.setdefault(name, load(name))


def _methods(plan: Plan, exp, mod) -> list:
    return [m for m in exp.methods(mod) if m.name in plan.methods]


def _evaluated(plan: Plan, mod, methods, dt, cases) -> list[tuple[str, object, bool]]:
    """(slot name, Output, differs from its method on some case) of every slot of a chunk: each
    method evaluated once (:func:`backends.evaluate`, the row path's entry point), then each of
    :attr:`Plan.variants` from its ``Output.variants`` (a variant that did not come back is the
    method's own result: identical)."""
    from .backends import evaluate

    grad = "grad" in plan.quantities
    out = []
    for m in methods:
        o = evaluate(mod, m, dt, cases, grad)
        out.append((m.name, o, False))
        for v in plan.variants:
            vo = o.variants.get(v, o)
            differs = vo is not o and not all(metrics.identical(*(getattr(x, "loss" if q == "loss" else "grad")
                                                                   for x in (o, vo))) for q in plan.quantities)
            out.append((f"{m.name}@{v}", vo, differs))
    return out


def _process(plan: Plan, z: np.ndarray, aggs: dict) -> None:
    """Fold one chunk of logits ``z`` into ``aggs`` by the numpy path: every slot's results against
    the experiment's streaming reference, measured by :func:`metrics.ulp_status` in
    :func:`metrics.measuring_dtype` of the dtype and the result dtype (the row path's rule)."""
    mod = _module(plan.backend)
    exp = _experiment.get(plan.experiment)
    dt = _dtypes.get(plan.dtype)
    cases, z64, lab64 = exp.stream_cases(z, dt, plan.options)
    refs = exp.stream_reference(z, plan.quantities, plan.options)
    absz = np.abs(z64)
    absz_min = float(absz.min())
    derived = {}  # (quantity, measuring dtype) → (rounded reference, 1/ulp)
    for name, out, differs in _evaluated(plan, mod, _methods(plan, exp, mod), dt, cases):
        for q in plan.quantities:
            v = np.asarray(out.loss if q == "loss" else out.grad)
            rdt = _dtypes.REGISTRY.get(v.dtype.name, dt)
            mdt = metrics.measuring_dtype(dt, rdt)
            key = (q, mdt.name)
            if key not in derived:
                r = refs[q]
                derived[key] = (mdt.cast(r).astype(np.float64), _inv_ulp(r, mdt, q))
            rr, inv_ulp = derived[key]
            v64 = v.astype(np.float64)
            # an upcast result is compared with the reference rounded to the coarser format
            vm = mdt.cast(v64).astype(np.float64) if mdt.precision < rdt.precision else None
            a = aggs[(q, name)]
            a.result_dtype = a.result_dtype or rdt.name
            a.differs = a.differs or differs
            _update(a, v64, refs[q], rr, inv_ulp, plan.max_ulp, z64, absz, lab64, absz_min, vm)


def _hist_lut() -> np.ndarray:
    """Biased float64 exponent → histogram bin (frexp's exponent is biased − 1022): one table
    lookup replaces frexp, clip and two masked writes."""
    e = np.arange(2048) - 1022
    lut = np.clip(e, HIST_MIN, HIST_MAX) - (HIST_MIN - 1)
    lut[0] = 0  # exactly 0 (an error below 2^-1022 cannot occur: ulps are ≥ 2^-1074 and the
    #             smallest nonzero error is an ulp of float64 at the reference)
    lut[2047] = N_BINS - 1  # inf (a failure without a count)
    return lut.astype(np.intp)


_LUT = _hist_lut()


def _update(agg: Agg, v, r, rr, inv_ulp, max_ulp, z, absz, lab, absz_min, vm=None) -> None:
    """Fold one chunk's results ``v`` (float64) for reference ``r`` into ``agg`` (``rr``, ``inv_ulp``,
    ``vm``: :func:`metrics.ulp_status`'s rounded reference, 1/ulp and rounded value).

    The costly parts run only when they can change the aggregate: the worst case only if this
    chunk reaches the running max, the first failure only if the chunk holds a smaller |z|, the
    kept cases only if the chunk beats the current k-th worst.
    """
    u, st = metrics.ulp_status(v, r, None, max_ulp=max_ulp, rounded=rr, inv_ulp=inv_ulp, value_rounded=vm)
    m = float(u.max())
    counts = np.bincount(st, minlength=len(metrics.STATUSES))
    agg.n += len(v)
    agg.counts += counts
    agg.hist += np.bincount(_LUT[u.view(np.int64) >> 52], minlength=N_BINS)  # u ≥ 0: no sign bit
    if m > agg.max_ulp or (m == agg.max_ulp and absz_min <= agg.worst[0]):
        w = _first_by_key(np.flatnonzero(u == m), z, absz, lab)
        cand = (float(absz[w]), float(z[w]), float(lab[w]))
        if m > agg.max_ulp or cand < agg.worst:
            agg.max_ulp, agg.worst = m, cand
    if counts[STATUS_FAIL_LO:STATUS_FAIL_HI + 1].any() and (not agg.first_fail or absz_min <= agg.first_fail[0]):
        f = _first_by_key(np.flatnonzero((st >= STATUS_FAIL_LO) & (st <= STATUS_FAIL_HI)), z, absz, lab)
        cand = (float(absz[f]), float(z[f]), float(lab[f]), int(st[f]))
        if not agg.first_fail or cand[:3] < agg.first_fail[:3]:
            agg.first_fail = cand
    if agg.keep and (len(agg.top) < agg.keep or m > agg.top[-1][0]
                     or (m == agg.top[-1][0] and absz_min <= agg.top[-1][1])):
        k = min(agg.keep, len(u))
        t = np.partition(u, len(u) - k)[len(u) - k]  # the k-th largest error
        sel = np.flatnonzero(u > t)
        eq = _smallest_by_key(np.flatnonzero(u == t), k - len(sel), z, absz, lab)
        sel = np.concatenate([sel, eq])
        new = [(float(u[i]), float(absz[i]), float(z[i]), float(lab[i]), float(v[i])) for i in sel]
        agg.top = sorted(agg.top + new, key=_top_key)[: agg.keep]


def _smallest_by_key(idx: np.ndarray, k: int, z, absz, lab) -> np.ndarray:
    """The ``k`` indices of ``idx`` smallest by (|z|, z, label). Saturated methods tie on inf for
    most of a chunk, so the candidates are first cut to those with the k smallest |z| (a
    partition, not a sort); only that short list is sorted."""
    if k <= 0:
        return idx[:0]
    a = absz[idx]
    if len(idx) > k:
        cut = np.partition(a, k - 1)[k - 1]
        idx = idx[a <= cut]
    return idx[np.lexsort((lab[idx], z[idx], absz[idx]))[:k]]


def _first_by_key(idx: np.ndarray, z, absz, lab) -> int:
    """The index in ``idx`` smallest by (|z|, z, label)."""
    a = absz[idx]
    idx = idx[a == a.min()]
    return int(idx[np.lexsort((lab[idx], z[idx]))[0]])


def run_task(plan: Plan, source: Source, i: int) -> dict:
    """Aggregates of task ``i``: {(quantity, method): Agg}, measured by the compiled kernel when
    :func:`use_kernel` says so, else by numpy (the same numbers either way)."""
    z = source.task(i)
    if use_kernel():
        # the sigmoid audit's kernel forms its reference itself; every other experiment's cases go
        # through the generic one with the experiment's streaming reference
        run_compiled = _run_task_kernel if _experiment.get(plan.experiment).kernel else _run_task_cases
        aggs = run_compiled(plan, z)
        if aggs is not None:
            return aggs
    aggs = {k: Agg(plan.keep) for k in slots(plan)}
    for s in range(0, len(z), CHUNK):
        _process(plan, z[s:s + CHUNK], aggs)
    return aggs


#: Environment variable that picks the measurement path: ``numba`` (the compiled kernel; an error
#: if numba is missing), ``numpy``, or ``auto`` (the default: numba when it is installed).
KERNEL_ENV = "STABENCH_KERNEL"


def use_kernel() -> bool:
    """Whether streaming tasks are measured by the compiled kernel (:mod:`stabench.kernel`)."""
    from . import kernel

    choice = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "numba", "numpy"):
        raise InputError(f"{KERNEL_ENV}={choice!r}: valid: auto, numba, numpy")
    if choice == "numba" and not kernel.available():
        raise InputError(f"{KERNEL_ENV}=numba but numba is not installed (pip install 'stabench[fast]')")
    return choice != "numpy" and kernel.available()


def _kernel_state(n_slots: int, keep: int) -> tuple:
    """The kernels' running aggregates of ``n_slots`` slots, updated in place across a task's
    chunks: counts, histogram, (max, worst, first failure) state, worst-``keep`` heap and its size."""
    fstate = np.zeros((n_slots, 9))
    fstate[:, 0] = -1.0
    return (np.zeros((n_slots, len(metrics.STATUSES)), np.int64), np.zeros((n_slots, N_BINS), np.int64), fstate,
            np.zeros((n_slots, keep, 5)), np.zeros(n_slots, np.int64))


def _kernel_aggs(plan: Plan, names: list, state: tuple, n: int, result_dtypes: list, differs: dict) -> dict:
    """{slot: Agg} from the kernels' state (:func:`_kernel_state`) after ``n`` cases per slot."""
    counts, hist, fstate, top, top_n = state
    aggs = {}
    for i, key in enumerate(names):
        a = Agg(plan.keep)
        a.n = n
        a.counts, a.hist = counts[i], hist[i]
        fs = fstate[i].tolist()
        a.max_ulp, a.worst = fs[0], tuple(fs[1:4])
        a.first_fail = (fs[5], fs[6], fs[7], int(fs[8])) if fs[4] else ()
        a.top = sorted((tuple(r) for r in top[i, :top_n[i]].tolist()), key=_top_key)
        a.result_dtype, a.differs = result_dtypes[i], differs[key[1]]
        aggs[key] = a
    return {key: aggs[key] for key in slots(plan)}


def _kernel_values(plan: Plan, mod, methods, dt, cases, names: list, differs: dict) -> tuple | None:
    """(results per slot of ``names`` as float32, their result dtype names) of one chunk's
    ``cases``, each method evaluated once (:func:`_evaluated`; ``differs`` updated); None when a
    result is not a float of ≤ 32 bits (the numpy path measures those)."""
    outs = {}
    for name, o, d in _evaluated(plan, mod, methods, dt, cases):
        outs[name] = o
        differs[name] = differs[name] or d
    vals, rnames = [], []
    for q, m in names:
        v = np.asarray(outs[m].loss if q == "loss" else outs[m].grad).reshape(-1)
        if v.dtype.name not in _dtypes.REGISTRY or v.dtype.itemsize > 4:
            return None
        rnames.append(v.dtype.name)
        v32 = np.ascontiguousarray(v, dtype=np.float32)  # float16/bfloat16: exact
        # a framework may hand back a read-only view (JAX): one numba type for every slot
        vals.append(v32 if v32.flags.writeable else v32.copy())
    return vals, rnames


def _slot_params(dt, rnames: list, all_slots: list) -> tuple[list, tuple]:
    """(measuring dtypes, kernel arrays) for the slots: each slot is measured in the coarser of the
    dtype and its result dtype (the row path's rule); the arrays are whether it is a gradient, then
    :func:`kernel.slot_params` of its measuring dtype, one array per parameter."""
    from . import kernel

    mdts = [metrics.measuring_dtype(dt, _dtypes.REGISTRY[r]) for r in rnames]
    sp = [kernel.slot_params(r) for r in mdts]
    return mdts, (np.array([q == "grad" for q, _ in all_slots], np.int64),
                  *(np.array([p[c] for p in sp], np.float64 if c == 3 else np.int64) for c in range(5)))


def _run_task_kernel(plan: Plan, z: np.ndarray) -> dict | None:
    """:func:`run_task` through the compiled kernel: per chunk, the methods in numpy (one backend
    call each), e^-|z| and log1p in numpy, then one kernel pass. None when a result dtype is not a
    float of ≤ 32 bits (the numpy path measures those)."""
    from . import kernel

    k = kernel._kernel()
    mod = _module(plan.backend)
    dt = _dtypes.get(plan.dtype)
    exp = _experiment.get(plan.experiment)
    methods = _methods(plan, exp, mod)
    names = [n for q, n in slots(plan) if q == plan.quantities[0]]
    all_slots = [(q, n) for q in plan.quantities for n in names]
    n_s = len(all_slots)
    state = _kernel_state(n_s, min(plan.keep, 2 * len(z)))
    counts, hist, fstate, top, top_n = state
    differs = dict.fromkeys(names, False)
    params = None
    zz = np.empty(2 * min(CHUNK, len(z)), dtype=dt.type)
    lab01 = dt.cast(np.array([0.0, 1.0]))
    labels: dict = {}
    pad = tuple(np.zeros(0, np.float32) for _ in range(kernel.SLOTS))
    for s0 in range(0, len(z), CHUNK):
        zc = z[s0:s0 + CHUNK]
        n = len(zc)
        zz[:n] = zc
        zz[n:2 * n] = zc
        lab = labels.get(n)
        if lab is None:
            lab = labels[n] = np.repeat(lab01, n)
        cases = exp.cases_type(zz[:2 * n], lab)  # (z, label): the kernel's experiment's cases
        zk, e, t, ec = kernel.inputs(zc)  # float32 z; e^-|z|, log1p as oracle.bce_binary_fast (or constants)
        got = _kernel_values(plan, mod, methods, dt, cases, all_slots, differs)
        if got is None:
            return None
        vals, rnames = got
        if params is None:
            first_names = rnames
            # each slot is measured in the coarser of the dtype and its result dtype (the row path's rule)
            mdts, (quantity, *rest) = _slot_params(dt, rnames, all_slots)
            groups: dict = {}
            gid = [groups.setdefault((q, r.name), len(groups)) for (q, _), r in zip(all_slots, mdts)]
            params = (quantity, np.array(gid, np.int64), *rest)
            # the kernel's arguments that stay the same for every chunk, per call of ≤ SLOTS slots
            calls = [(a, min(a + kernel.SLOTS, n_s)) for a in range(0, n_s, kernel.SLOTS)]
            fixed = [((b - a, *(p[a:b] for p in params), float(plan.max_ulp)),
                      (counts[a:b], hist[a:b], _LUT, fstate[a:b], top[a:b], top_n[a:b])) for a, b in calls]
        elif rnames != first_names:
            return None  # a result dtype changed between chunks: let the numpy path measure it
        for (a, b), (head, tail) in zip(calls, fixed):
            k(zk, e, t, ec, tuple(vals[a:b]) + pad[b - a:], *head, *tail)
    return _kernel_aggs(plan, all_slots, state, 2 * len(z), first_names, differs)


def _run_task_cases(plan: Plan, z: np.ndarray) -> dict | None:
    """:func:`run_task` through the generic compiled kernel (:func:`kernel._cases_kernel`), for any
    experiment: per chunk its cases and streaming reference, each method once (and its variants),
    then one kernel pass over every slot. None when a result is not a float of ≤ 32 bits (the numpy
    path measures those)."""
    from . import kernel

    k = kernel._cases_kernel()
    mod = _module(plan.backend)
    exp = _experiment.get(plan.experiment)
    dt = _dtypes.get(plan.dtype)
    methods = _methods(plan, exp, mod)
    all_slots = slots(plan)
    n_s = len(all_slots)
    state = _kernel_state(n_s, min(plan.keep, cases_per_logit(plan) * len(z)))
    counts, hist, fstate, top, top_n = state
    differs = {n: False for _, n in all_slots}
    first = None
    n_cases = 0
    pad = tuple(np.zeros(0, np.float32) for _ in range(kernel.SLOTS))
    for s0 in range(0, len(z), CHUNK):
        zc = z[s0:s0 + CHUNK]
        cases, z64, key64 = exp.stream_cases(zc, dt, plan.options)
        ref = exp.stream_reference(zc, plan.quantities, plan.options)
        # row 0 the loss's, row 1 the gradient's (quantity[s] indexes it; an absent one is a stand-in)
        refs = np.stack([ref.get(q, ref[plan.quantities[0]]) for q in ("loss", "grad")])
        got = _kernel_values(plan, mod, methods, dt, cases, all_slots, differs)
        if got is None:
            return None
        vals, rnames = got
        if first is None:
            first = rnames
            _, params = _slot_params(dt, rnames, all_slots)
            calls = [(a, min(a + kernel.SLOTS, n_s)) for a in range(0, n_s, kernel.SLOTS)]
        elif rnames != first:
            return None  # a result dtype changed between chunks: let the numpy path measure it
        z64 = np.ascontiguousarray(z64, dtype=np.float64)
        key64 = np.ascontiguousarray(key64, dtype=np.float64)
        for a, b in calls:
            k(z64, key64, refs, tuple(vals[a:b]) + pad[b - a:], b - a, *(p[a:b] for p in params),
              float(plan.max_ulp), counts[a:b], hist[a:b], _LUT, fstate[a:b], top[a:b], top_n[a:b])
        n_cases += len(z64)
    return _kernel_aggs(plan, all_slots, state, n_cases, first, differs)


def _aggs_json(aggs: dict) -> dict:
    return {f"{q}|{m}": a.to_json() for (q, m), a in aggs.items()}


#: Upper bound of ``--workers``: more processes than this only add memory and start-up time.
MAX_WORKERS_PER_CORE, MAX_WORKERS_CAP = 4, 256


def max_workers() -> int:
    """The largest accepted ``--workers``: 4 × the cores, at most 256."""
    return min(MAX_WORKERS_CAP, MAX_WORKERS_PER_CORE * (os.cpu_count() or 1))


def check_workers(workers: int | None) -> None:
    """Refuse a ``--workers`` below 0 or above :func:`max_workers` (0 or None: every core)."""
    if workers is None:
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0 or workers > max_workers():
        raise InputError(f"--workers {workers}: must be 0 (every core) to {max_workers()} "
                         f"({MAX_WORKERS_PER_CORE} × the {os.cpu_count() or 1} cores, at most {MAX_WORKERS_CAP})")


# ---------------------------------------------------------------------------------------------
# resume state: {"format", "key", "done", "total", "digest"}, the digest a sha256 of the rest

STATE_FORMAT = "stabench-stream-state/2"  #: /2: aggregates carry result_dtype and differs (variants)


def _state_body(key: str, done, total: dict) -> dict:
    return {"format": STATE_FORMAT, "key": key, "done": sorted(done), "total": _aggs_json(total)}


def _digest(body: dict) -> str:
    """sha256 of the canonical JSON of ``body`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_state_path(state_path: str | None) -> None:
    """Refuse a state path that exists but is not a regular file (a directory, a FIFO …), or a
    relative one in a deleted working directory (the first save, after a task's work, would fail)."""
    if state_path and not os.path.isabs(state_path) and cwd_gone():
        raise InputError(f"resume state {state_path!r}: {CWD_GONE}")
    if state_path and os.path.lexists(state_path) and not os.path.isfile(state_path):
        raise InputError(f"resume state {state_path!r} is not a regular file; remove it or write the outputs elsewhere")


def max_state_bytes(plan: Plan, source: Source) -> int:
    """An upper bound on the size of any state file this run writes (``json.dumps`` of
    :func:`_state_body` and the digest): the task numbers, and per (quantity, method) its counts,
    histogram and ``keep`` worst cases, every number counted at 32 bytes (a quoted float repr is at
    most 26, a count at most 19 digits, each with its separator) — then doubled. A larger file is not
    a state of this run, and is refused before it is read (a 3 GB file was read into memory whole)."""
    n = source.n_tasks
    done = n * (len(str(n)) + 2)
    per_agg = 512 + 32 * (len(metrics.STATUSES) + N_BINS + 1 + 3 + 4) + plan.keep * (5 * 32 + 8)
    names = slots(plan)
    keys = sum(len(q) + len(m) + 8 for q, m in names)
    return 2 * (1024 + done + keys + len(names) * per_agg)


#: The fields of a saved aggregate (:meth:`Agg.to_json`).
AGG_FIELDS = {"n", "counts", "hist", "max_ulp", "worst", "first_fail", "top", "result_dtype", "differs"}


def load_state(plan: Plan, source: Source, state_path: str) -> tuple[set, dict] | None:
    """The finished tasks and merged aggregates saved in ``state_path`` (None if there is none),
    after checking that the file is no larger than such a state can be, well formed (every field's
    type and length, before anything else reads it), intact (its digest) and from this run (its key,
    and counts that add up to the finished tasks' cases); anything else is an :class:`InputError`."""
    check_state_path(state_path)
    if not os.path.exists(state_path):
        return None

    def bad(why: str) -> InputError:
        return InputError(f"--resume: state file {state_path!r} {why}; delete it to start over")

    st = _read_state(state_path, max_state_bytes(plan, source), bad)
    _check_state_schema(st, plan, source, bad)
    body = {k: st[k] for k in st if k != "digest"}
    if st["digest"] != _digest(body):
        raise bad("is corrupted (its digest does not match its contents)")
    if st["key"] != state_key(plan, source):
        raise InputError(f"--resume: {state_path!r} belongs to a run with other arguments; "
                         "rerun with the same arguments or without --resume")
    done = st["done"]
    cases = cases_per_logit(plan) * sum(_task_len(source, i) for i in done)
    total = {}
    for k, d in st["total"].items():
        try:
            a = Agg.from_json(d, plan.keep)
        except (TypeError, ValueError, IndexError, OverflowError) as e:
            raise bad(f"is malformed (aggregate {k}: {type(e).__name__}: {e})") from None
        if not (a.n == cases == a.counts.sum() == a.hist.sum()) or math.isnan(a.max_ulp):
            raise bad(f"is corrupted (aggregate {k} does not add up to its {cases:,} cases)")
        total[tuple(k.split("|", 1))] = a
    return set(done), total


STATE_MAX_DEPTH = 8
"""Deepest nesting a state file may have: :func:`run` writes 3 levels (state → total → aggregate →
lists); anything deeper is not a state, and refusing it before parsing keeps the verdict the same
whatever recursion limit the process runs under."""

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _json_depth(data: bytes) -> int:
    """Deepest bracket nesting of JSON text ``data``, brackets inside strings not counted (an
    unterminated string leaves its brackets counted, which can only make a broken file deeper)."""
    b = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    step = np.isin(b, (ord("["), ord("{"))).astype(np.int64) - np.isin(b, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def _read_state(state_path: str, limit: int, bad):
    """The parsed JSON of a state file of at most ``limit`` bytes; ``bad(why)`` is raised for a
    larger file, and for one that is not UTF-8 JSON, nests too deeply for the parser (RecursionError)
    or holds NaN/Infinity."""
    try:
        with open(state_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b""
    except OSError as e:
        raise bad(f"cannot be read ({e.strerror or e})") from None
    if size > limit or len(data) > limit:  # also a file that grew while being read
        raise bad(f"is {max(size, len(data)):,} bytes, more than a state of this run can be "
                  f"({limit:,} bytes at most): not a stabench resume state")
    if _json_depth(data) > STATE_MAX_DEPTH:  # decided here, not by the interpreter's recursion limit,
        # which the frameworks raise (torch's inductor sets max(limit, 2000)) and which differs by run
        raise bad(f"cannot be read (not a stabench resume state: JSON nested too deeply, more than "
                  f"{STATE_MAX_DEPTH} levels)")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise bad("cannot be read (not a stabench resume state: JSON nested too deeply)") from None
    except ValueError as e:  # UnicodeDecodeError and json's errors too
        raise bad(f"cannot be read (not a stabench resume state: {' '.join(str(e).split())[:200]})") from None


def _check_state_schema(st, plan: Plan, source: Source, bad) -> None:
    """Refuse a parsed state whose fields have other types or lengths than :func:`run` writes."""
    want = {"format", "key", "done", "total", "digest"}
    if not isinstance(st, dict) or set(st) != want:
        raise bad(f"is malformed (expected an object with the fields {', '.join(sorted(want))})")
    if st["format"] != STATE_FORMAT:
        raise bad(f"has format {str(st['format'])[:80]!r}, not {STATE_FORMAT!r}")
    if not isinstance(st["key"], str) or not isinstance(st["digest"], str):
        raise bad("is malformed (key and digest: strings)")
    done = st["done"]
    if not isinstance(done, list) or not all(_is_int(i) and 0 <= i < source.n_tasks for i in done) \
            or len(set(done)) != len(done):
        raise bad(f"is malformed (done: distinct task numbers 0…{source.n_tasks - 1})")
    keys = {f"{q}|{m}" for q, m in slots(plan)}
    if not isinstance(st["total"], dict) or set(st["total"]) != keys:
        raise bad(f"is malformed (total: one aggregate per {', '.join(sorted(keys))})")
    for k, d in st["total"].items():
        if not isinstance(d, dict) or set(d) != AGG_FIELDS:
            raise bad(f"is malformed (aggregate {k}: expected the fields {', '.join(sorted(AGG_FIELDS))})")
        if not (_is_int(d["n"]) and _int_list(d["counts"], len(metrics.STATUSES)) and _int_list(d["hist"], N_BINS)):
            raise bad(f"is malformed (aggregate {k}: n, counts ({len(metrics.STATUSES)}) and hist ({N_BINS}): "
                      "counts must be integers ≥ 0)")
        if not (isinstance(d["max_ulp"], str) and _str_list(d["worst"], (0, 3)) and _str_list(d["first_fail"], (0, 4))
                and isinstance(d["top"], list) and len(d["top"]) <= plan.keep
                and all(_str_list(t, (5,)) for t in d["top"])):
            raise bad(f"is malformed (aggregate {k}: max_ulp, worst, first_fail and at most {plan.keep} top "
                      "rows of numbers written as strings)")
        if not (isinstance(d["result_dtype"], str) and (d["result_dtype"] in _dtypes.REGISTRY or not d["result_dtype"])
                and isinstance(d["differs"], bool)):
            raise bad(f"is malformed (aggregate {k}: result_dtype a dtype name, differs true or false)")


def _int_list(x, n: int) -> bool:
    return isinstance(x, list) and len(x) == n and all(_is_int(c) and c >= 0 for c in x)


def _str_list(x, lengths: tuple) -> bool:
    return isinstance(x, list) and len(x) in lengths and all(isinstance(c, str) and len(c) <= 64 for c in x)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid value here")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# ---------------------------------------------------------------------------------------------
# driver


def state_key(plan: Plan, source: Source) -> str:
    """A hash of everything that determines the result (a resumed run must match it)."""
    from . import __version__

    blob = json.dumps([__version__, dataclasses.asdict(plan), dataclasses.asdict(source), TASK, CHUNK],
                      default=str, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: :func:`run`'s ``checked`` when the caller checked nothing (the default)
UNCHECKED = object()


def run(plan: Plan, source: Source, *, workers: int | None = None, state_path: str | None = None,
        resume: bool = False, progress=None, client=None, checked=UNCHECKED) -> dict:
    """Run every task (in parallel over ``workers`` processes, or on a dask.distributed
    ``client``'s cluster) and merge the aggregates.

    Merging is order-independent (sums, and maxima/minima with value-based tie-breaks), so the
    result is the same however the work was split or resumed. With ``state_path``, the merged
    aggregate and the finished task numbers are saved there (atomically, with a digest) after each
    task, so an interrupted run continues with ``resume=True``; the file is removed when the run
    completes. ``progress(done_logits, total_logits, label)`` is called as tasks finish.

    Local workers end with the parent: they die with it (Linux: PR_SET_PDEATHSIG; elsewhere a
    watchdog notices the parent is gone within half a second); Ctrl-C or SIGTERM in the parent
    kills them at once (finished tasks are saved; the running ones are redone on resume), and a
    second Ctrl-C during that clean-up exits immediately.

    ``checked``: what :func:`load_state` returned (None: no state to resume) when the caller has
    already checked ``workers`` and ``state_path`` and read the state (a loss plan does, once, before
    any work); then nothing is checked or read again. By default :func:`run` checks and reads them.
    """
    from .export import write_text

    if checked is UNCHECKED:
        check_workers(workers)
        check_state_path(state_path)
        checked = load_state(plan, source, state_path) if resume and state_path else None
    key = state_key(plan, source)
    total = {k: Agg(plan.keep) for k in slots(plan)}
    done: set[int] = set()
    if checked:
        done, total = checked
    todo = [i for i in range(source.n_tasks) if i not in done]
    workers = workers or os.cpu_count() or 1
    label = f"{plan.experiment} {source.dtype} {source.kind}"

    done_logits = [sum(_task_len(source, j) for j in done)]  # a running total: no sum per task

    def finish(i: int, aggs: dict) -> None:
        for k, a in aggs.items():
            total[k].merge(a)
        done.add(i)
        done_logits[0] += _task_len(source, i)
        if state_path:
            body = _state_body(key, done, total)
            write_text(state_path, json.dumps({**body, "digest": _digest(body)}))
        if progress:
            progress(done_logits[0], source.total, label)

    if progress:
        progress(done_logits[0], source.total, label)
    if client is not None:
        from . import cluster

        # the cluster module gets what it runs as arguments: it never imports this engine (no cycle)
        kernel_check = use_kernel
        cluster.run_tasks(client, functools.partial(run_task, plan, source), todo, finish, drive, kernel_check)
    elif todo:
        if use_kernel():
            from . import kernel

            kernel.warm()  # compile (or load) once here, before the workers fork: they share it
        with _terminate_raises():
            if workers == 1 or len(todo) <= 1:
                for i in todo:
                    finish(i, run_task(plan, source, i))
            else:
                _run_pool(plan, source, todo, workers, finish)
    if state_path and os.path.exists(state_path):
        os.unlink(state_path)
    return total


class _terminate_raises:
    """While active (main thread only), SIGTERM raises :class:`interrupt.Interrupted` (a
    KeyboardInterrupt whose ``signum`` makes the CLI exit 143): the run stops as on Ctrl-C — workers
    killed, finished tasks saved — instead of dying with its workers running. Under the CLI its
    handlers are already in place; a library caller gets them for the run (:func:`interrupt.install`,
    which also holds a signal while a state file is committed)."""

    def __enter__(self):
        import signal

        from . import interrupt

        self.restore = None
        if signal.getsignal(signal.SIGTERM) is not interrupt.handle:  # not under the CLI: ours for the run
            self.restore = interrupt.install()
        return self

    def __exit__(self, *exc):
        if self.restore is not None:
            self.restore()
        return False


def _run_pool(plan: Plan, source: Source, todo: list, workers: int, finish) -> None:
    """The tasks on a local process pool, at most 2 per worker in flight: forked where available
    and the backend declares ``FORK_SAFE`` (numpy), else spawned. A framework with its own thread
    pool (torch, TensorFlow, JAX/XLA) hangs in a child forked after the parent used it — seen
    here: a torch run on a forked pool never finished — so each spawned worker imports it afresh."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, wait

    from .backends import load

    fork = getattr(load(plan.backend), "FORK_SAFE", False) and "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork" if fork else "spawn")
    check_open_files(workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    ok = False
    try:
        drive(lambda i: pool.submit(run_task, plan, source, i),
              lambda fs: wait(fs, return_when=FIRST_COMPLETED)[0], todo, finish, 2 * workers)
        ok = True
    finally:
        if ok:
            pool.shutdown(wait=True)
        else:
            _kill_pool(pool)


#: Open files a local pool needs besides those already open: the executor's queues and wake-up pipe
#: (6), the two pipe ends the parent keeps per worker, and the state file's atomic save (2).
#: Measured on Linux, Python 3.11: 6 + 2 per worker while the pool runs; with `ulimit -n 24` and 5
#: files open before, 6 workers ran and 7 ran out of descriptors (this bound allows 5).
POOL_FILES, FILES_PER_WORKER, SPARE_FILES = 6, 2, 2


def _open_files() -> int:
    """File descriptors open in this process now (16 where the system does not list them)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder)) - 1  # not the one listing the folder
        except OSError:
            continue
    return 16  # pragma: no cover


def check_open_files(workers: int) -> None:
    """Make sure a pool of ``workers`` processes fits the open-files limit (``ulimit -n``): raise the
    soft limit up to the hard one if that suffices, else refuse with an :class:`InputError` naming
    the limit and the largest ``--workers`` that fits (``ulimit -n 24 … --workers 8`` ran out of file
    descriptors while starting the pool, in a traceback)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not a POSIX system
        return
    base = _open_files() + POOL_FILES + SPARE_FILES
    need = base + FILES_PER_WORKER * workers
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return
    if hard == resource.RLIM_INFINITY or need <= hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            return
        except (ValueError, OSError):
            pass
    fit = max(1, (soft - base) // FILES_PER_WORKER)
    raise InputError(f"--workers: {workers} worker processes need about {need} open files, and {fd_limit_text()}; "
                     f"raise it (e.g. ulimit -n {max(1024, need)}) or use --workers {fit}"
                     + (" (no pool)" if fit == 1 else ""))


def drive(submit, wait_first, todo: list, finish, in_flight: int) -> None:
    """Submit the tasks ``todo`` (at most ``in_flight`` at once: bounded memory) and ``finish``
    each as it completes; ``wait_first(futures)`` returns the completed ones."""
    pending: dict = {}
    it = iter(todo)
    for i in it:
        pending[submit(i)] = i
        if len(pending) >= in_flight:
            break
    while pending:
        for fut in sorted(wait_first(list(pending)), key=pending.get):
            i = pending.pop(fut)
            finish(i, fut.result())
            nxt = next(it, None)
            if nxt is not None:
                pending[submit(nxt)] = nxt


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: kill its processes (their unfinished tasks are simply redone on resume),
    then let the executor wind down. A Ctrl-C meanwhile exits at once (no waiting anywhere)."""
    import signal
    import threading

    procs = list((getattr(pool, "_processes", None) or {}).values())

    def kill_all():
        for p in procs:
            try:
                p.kill()
            except (OSError, ValueError, AttributeError):
                pass

    old = {}
    if threading.current_thread() is threading.main_thread():
        def second_interrupt(signum, frame):
            kill_all()
            os._exit(128 + signum)  # 130 for SIGINT, 143 for SIGTERM, as the CLI's exit codes
        old = {s: signal.signal(s, second_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        kill_all()
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.join(timeout=2)
    finally:
        for s, h in old.items():  # both: a SIGTERM after this must not find a handler that exits 143 at once
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _worker_init(parent: int) -> None:
    """Runs in each pool worker: leave Ctrl-C to the parent (which saves the state and stops the
    pool), and die with the parent — PR_SET_PDEATHSIG on Linux (the kernel sends SIGKILL when the
    parent exits, even by SIGKILL), plus a watchdog thread that exits once the parent is gone
    (other systems, or a parent that died before prctl took effect)."""
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watchdog():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watchdog, name="stabench-parent-watchdog", daemon=True).start()


def _task_len(source: Source, i: int) -> int:
    return min((i + 1) * TASK, source.total) - i * TASK


# ---------------------------------------------------------------------------------------------
# tables


def hist_edges() -> list[tuple[float, float]]:
    """(low, high) ulp_error edges of each histogram bin; (0, 0) is exactly 0, (inf, inf) failures."""
    edges = [(0.0, 0.0)]
    for e in range(HIST_MIN, HIST_MAX + 1):
        lo = 0.0 if e == HIST_MIN else 2.0 ** (e - 1)
        hi = math.inf if e == HIST_MAX else 2.0 ** e
        edges.append((lo, hi))
    edges.append((math.inf, math.inf))
    return edges


HIST_COLUMNS = _columns.HISTOGRAM.docs()  #: the histogram table (declared in stabench.columns)


def tables(total: dict, plan: Plan, backend: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary, histogram, kept worst rows) from merged aggregates; the summary has the
    experiment's :attr:`~stabench.experiment.Experiment.summary_columns`."""
    backend = backend or plan.backend
    exp = _experiment.get(plan.experiment)
    edges = hist_edges()
    forms = _forms(plan)
    summ, hist, kept = [], [], []
    for q, m in shown(plan, total):
        a = total[(q, m)]
        c = dict(zip(metrics.STATUSES, a.counts.tolist()))
        counted = a.hist[:-1].sum()
        med = math.nan
        if counted:  # the upper edge of the bin holding the median (the upper middle one for even n)
            cum = np.cumsum(a.hist[:-1])
            j = int(np.searchsorted(cum, a.n // 2 + 1))
            med = edges[j][1] if j < len(edges) - 1 else math.inf
        # median_ulp itself needs every error: a streaming run keeps none (nan, documented)
        summ.append({
            "experiment": plan.experiment, "quantity": q, "backend": backend, "method": m,
            "form": forms[m], "dtype": plan.dtype, "cases": a.n,
            "max_ulp": a.max_ulp, "median_ulp": math.nan, "median_ulp_bound": med,
            "worst_logit": a.worst[1] if a.worst else math.nan,
            "nan_result": c["nan-result"], "overflow": c["overflow"], "underflow": c["underflow"],
            "inaccurate": c["inaccurate"], "invalid_input": 0, "unsupported": 0,
            "first_fail_abs_logit": a.first_fail[0] if a.first_fail else math.nan,
            "first_fail_status": metrics.STATUSES[a.first_fail[3]] if a.first_fail else "",
            # the same columns as a row run's summary: failures counted; no case index, no batch to
            # reduce (the reduced loss and negligible failures are a --logits-file run's)
            "failed": sum(c[s] for s in _experiment.FAILURES), "worst_case": math.nan, "worst_case_logit": math.nan,
            "worst_status": "", "negligible": 0,
            "max_ulp_counted": a.max_ulp, **{k: "" if k.endswith("_status") else math.nan for k in _experiment.REDUCED},
        })
        for (lo, hi), cnt in zip(edges, a.hist.tolist()):
            if cnt:
                hist.append({"quantity": q, "backend": backend, "method": m, "dtype": plan.dtype, "ulp_low": lo, "ulp_high": hi, "count": cnt})
        for t in a.top:
            kept.append((q, m, a.result_dtype or plan.dtype, t[2], t[3], t[4]))
    summary = pd.DataFrame(summ, columns=list(exp.summary_columns))
    rows = _kept_rows(kept, plan, backend)
    return summary, pd.DataFrame(hist, columns=list(HIST_COLUMNS)), rows


def _forms(plan: Plan) -> dict:
    """Slot name → form (naive | fused), as the backend declares its methods (a variant has its
    method's form)."""
    from .backends import load

    forms = {m.name: m.form for m in _experiment.get(plan.experiment).methods(load(plan.backend))}
    return {n: forms[n.split("@", 1)[0]] for _, n in slots(plan)}


def _kept_rows(kept, plan: Plan, backend: str) -> pd.DataFrame:
    """Full rows (every column of the loss table) for the kept worst cases, re-measured with
    :func:`metrics.compare` against the experiment's ordinary oracle."""
    exp = _experiment.get(plan.experiment)
    if not kept:
        return pd.DataFrame(columns=list(exp.columns))
    dt = _dtypes.get(plan.dtype)
    forms = _forms(plan)
    frames = []
    df = pd.DataFrame(kept, columns=["quantity", "method", "result_dtype", "logit", "label", "value"])
    for (q, m, rname), g in df.groupby(["quantity", "method", "result_dtype"], sort=False):
        z, y, v = g["logit"].to_numpy(), g["label"].to_numpy(), g["value"].to_numpy()
        kind, label, classes, ref = exp.stream_rows(z, y, q, plan.options)
        hi, lo = ref
        tail = getattr(ref, "tail", None)  # oracle.Pair: the side of a saturated reference
        # the row path's measure, in the row path's dtype (the coarser of dtype and result dtype)
        res = metrics.compare(v, hi, metrics.measuring_dtype(dt, rname), reference_lo=lo, reference_tail=tail,
                              max_ulp=plan.max_ulp)
        frames.append(_experiment.row_frame(plan.experiment, q, backend, m, forms[m], dt.name, rname,
                                            kind, z, label, classes, v, hi, res, res["status"], ""))
    return pd.concat(frames, ignore_index=True)
