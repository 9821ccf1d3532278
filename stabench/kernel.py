"""The compiled measurement kernels of streaming runs (numba): one single-threaded pass per chunk.

Two kernels share one measure (:func:`_kernel_impl._key`: the ulp error and status of
``metrics.ulp_status``, in the coarser of the dtype and the result dtype, the row path's rule):
``measure_cases`` takes any experiment's cases with a reference computed outside it
(``Experiment.stream_reference``: softmax's closed forms) — the compiled measurement of every
streaming experiment — and ``measure``, described below, is the sigmoid audit's, which also forms
the reference itself.

The methods under test run in their own framework (numba's exp/log differ from numpy's float32
results on 1–5 % of inputs, so a compiled copy would audit the wrong functions), and the float64
reference's e = exp(−|z|) and log1p(e) come from numpy too (numba calls glibc one value at a time,
which differs from numpy's vectorised float64 exp/log1p by 1–3 float64 ulps on 3–8 % of logits —
within the reference's error bound, but not bit-identical to :func:`oracle.bce_binary_fast`);
:func:`inputs` skips them for chunks where e^−|z| is the constant 0 or 1.
Everything else happens here, in one loop over the chunk's cases: assembling the reference from
(z, e, log1p e) exactly as :func:`oracle.bce_binary_fast` does (the same IEEE operations in the
same order, no fast-math: bit-identical), rounding it to each result dtype as
:meth:`dtypes.DType.cast` does, the ulp error, the status, and the aggregates of
:class:`stream.Agg` — counts, histogram, max and its logit, first failure, worst K (a heap) —
updated in place across the chunks of a task. ``tests/test_kernel.py`` checks that every
aggregate equals the numpy path's over every float16 value and a float32 slice.

numba is optional (``pip install stabench[fast]``): without it, :mod:`stream` runs the numpy
path, with identical results. The compilation (several seconds) is cached on disk
(``cache=True``): next to this file in ``__pycache__`` when the package folder is writable,
otherwise in ``$NUMBA_CACHE_DIR`` or, when that is unset, ``~/.cache/stabench/numba``
(:func:`cache_dir` says which). :func:`warm` compiles or loads it at a defined moment — before the
workers start — and prints a one-line note on stderr when it has to compile.
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
import time

import numpy as np

from . import metrics

#: Method results passed to one kernel call (a tuple of this many arrays: one compiled signature;
#: unused entries are empty arrays). More (quantity, method) pairs take several calls.
SLOTS = 8
#: About how long a cold compilation takes on the 2-core CI machine (printed in the note).
COMPILE_SECONDS = 19  # the sigmoid audit kernel ~16 s, the generic one ~2.6 s more

_STATE: dict = {}  #: "kernel": the numba dispatcher once built


def available() -> bool:
    """Whether numba is importable (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "stabench", "numba")


def _kernel():
    """The numba dispatcher, built on first use (numba is imported only here)."""
    if "kernel" in _STATE:
        return _STATE["kernel"]
    here = os.path.dirname(os.path.abspath(__file__))
    if "NUMBA_CACHE_DIR" not in os.environ and not os.access(here, os.W_OK):
        # numba would fall back to its own user-wide folder; name ours so the docs can point at it
        os.environ["NUMBA_CACHE_DIR"] = _user_cache_dir()
    import numba

    if os.environ.get("NUMBA_CACHE_DIR") and not numba.config.CACHE_DIR:
        numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]  # numba was imported before us
    from . import _kernel_impl

    _STATE["kernel"] = k = numba.njit(cache=True, nogil=True, error_model="numpy")(_kernel_impl.measure)
    _STATE["cases"] = numba.njit(cache=True, nogil=True, error_model="numpy")(_kernel_impl.measure_cases)
    return k


def _cases_kernel():
    """The generic kernel's numba dispatcher (:func:`_kernel_impl.measure_cases`): any experiment's
    (value, reference) stream, the reference computed outside it."""
    _kernel()
    return _STATE["cases"]


def cache_dir() -> str:
    """Where the compiled kernel is cached (a folder)."""
    try:
        return _kernel()._cache._cache_path  # numba's cache locator (not public API)
    except Exception:  # pragma: no cover - numba internals moved
        return os.environ.get("NUMBA_CACHE_DIR") or "numba's default cache folder"


def _dummy_args() -> tuple:
    """Arguments of the kernel's one signature (no slots: nothing is measured)."""
    f8 = np.zeros(1)
    i8 = np.zeros(SLOTS, dtype=np.int64)
    vals = tuple(np.zeros(0, dtype=np.float32) for _ in range(SLOTS))
    return (np.zeros(1, np.float32), f8, f8, 0, vals, 0, i8, i8, i8, i8, i8, np.zeros(SLOTS), i8, 4.0,
            np.zeros((SLOTS, len(metrics.STATUSES)), np.int64), np.zeros((SLOTS, 2), np.int64),
            np.zeros(8, np.intp), np.zeros((SLOTS, 9)), np.zeros((SLOTS, 0, 5)), np.zeros(SLOTS, np.int64))


def _dummy_cases_args() -> tuple:
    """Arguments of the generic kernel's one signature (no slots)."""
    f8 = np.zeros(1)
    i8 = np.zeros(SLOTS, dtype=np.int64)
    vals = tuple(np.zeros(0, dtype=np.float32) for _ in range(SLOTS))
    return (f8, f8, np.zeros((2, 1)), vals, 0, i8, i8, i8, i8, np.zeros(SLOTS), i8, 4.0,
            np.zeros((SLOTS, len(metrics.STATUSES)), np.int64), np.zeros((SLOTS, 2), np.int64),
            np.zeros(8, np.intp), np.zeros((SLOTS, 9)), np.zeros((SLOTS, 0, 5)), np.zeros(SLOTS, np.int64))


def is_cold() -> bool:
    """Whether calling the kernels now would compile one (not in this process, not in the cache)."""
    k = _kernel()
    try:  # numba's cache lookup (internal API): on any change there, say "cold" rather than stall silently
        for disp, args in ((k, _dummy_args()), (_STATE["cases"], _dummy_cases_args())):
            sig = tuple(disp.typeof_pyval(a) for a in args)
            if sig not in disp.overloads and disp._cache.load_overload(sig, disp.targetctx) is None:
                return True
        return False
    except Exception:  # pragma: no cover - numba internals moved
        return True


def warm(quiet: bool = False) -> float:
    """Compile the kernel, or load it from the cache, now; returns the seconds it took. Prints one
    line on stderr first when it has to compile (a cold cache), so no run pays it silently."""
    t = time.perf_counter()
    if is_cold() and not quiet:
        print(f"stabench: compiling the measurement kernel (once, ~{COMPILE_SECONDS} s; cached in "
              f"{cache_dir()})…", file=sys.stderr, flush=True)
    _kernel()(*_dummy_args())
    _cases_kernel()(*_dummy_cases_args())
    return time.perf_counter() - t


#: |z| from which numpy's float64 e^−|z| is 0 (e^−746 ≈ 1.0e-324 is below half the smallest
#: subnormal, 2^−1075 ≈ 2.5e-324), so log1p(e) = 0 too.
EXP_ZERO_FROM = 746.0
#: |z| up to which numpy's e^−|z| is 1, so log1p(e) is the one constant log1p(1). Not 2^−54, where
#: the exact value still rounds to 1: numpy's vectorised exp (AVX-512, numpy 2.4) is not correctly
#: rounded there and returns 1 − 2^−53 from |z| = 4.51e-17 ≈ 2^−54.3 up. Checked over every float32
#: |z| ≤ 2^−50 and ≥ 740 (docs/performance.md); each process re-checks the edges (:func:`_shortcut_ok`).
EXP_ONE_TO = 2.0 ** -55
_CONST: dict = {}  #: n → (zeros, ones, log1p(1)) read-only arrays; "ok": the shortcut's self-check


def _edge(x: float, inward: float, n: int = 4096) -> np.ndarray:
    """x and the n − 1 float32 values next to it towards ``inward``, as float64."""
    b = int(np.float32(x).view(np.uint32))
    step = 1 if inward > x else -1
    return np.arange(b, b + step * n, step, dtype=np.int64).astype(np.uint32).view(np.float32).astype(np.float64)


def _shortcut_ok() -> bool:
    """Whether numpy's exp and log1p return what :func:`exp_log1p` assumes in its constant
    regions, checked once per process on the 4096 float32 values inside each region's edge and on
    every power of two across it (a numpy whose exp differs there just takes the ordinary path)."""
    if "ok" not in _CONST:
        big = np.concatenate([_edge(EXP_ZERO_FROM, np.inf), 2.0 ** np.arange(10, 128), [3.4028235e38]])
        tiny = np.concatenate([_edge(EXP_ONE_TO, 0.0), 2.0 ** -np.arange(55.0, 150), [0.0]])
        with np.errstate(all="ignore"):
            eb, et = np.exp(-big), np.exp(-tiny)
            ln2 = np.log1p(np.ones(1))
            _CONST["ok"] = bool((eb == 0).all() and (np.log1p(eb) == 0).all() and (et == 1).all()
                                and (np.log1p(et) == ln2).all())
            _CONST["ln2"] = float(ln2[0])
    return _CONST["ok"]


def _const(n: int) -> tuple:
    c = _CONST.get(n)
    if c is None:
        c = _CONST[n] = (np.zeros(n), np.ones(n), np.full(n, _CONST["ln2"]))
        for a in c:
            a.flags.writeable = False
    return c


def constant_exp_log1p(z: np.ndarray) -> tuple[float, float] | None:
    """(e, log1p(e)) when every |z| lies where numpy's ``e = exp(−|z|)`` is one constant — 0
    (|z| ≥ :data:`EXP_ZERO_FROM`) or 1 (|z| ≤ :data:`EXP_ONE_TO`) — else None. In an exhaustive
    float32 run that is about 80 % of all logits (the binades above 2^9.5 and below 2^−55)."""
    if len(z):  # the range of z, not of |z| (one pass less): a chunk of one sign, as exhaustive ones are
        lo, hi = z.min(), z.max()  # nan: every comparison fails, numpy decides
        if (lo >= EXP_ZERO_FROM or hi <= -EXP_ZERO_FROM) and _shortcut_ok():
            return 0.0, 0.0
        if -EXP_ONE_TO <= lo and hi <= EXP_ONE_TO and _shortcut_ok():
            return 1.0, _CONST["ln2"]
    return None


def exp_log1p(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``e = np.exp(-np.abs(z64))`` and ``np.log1p(e)`` for ``z64 = z`` as float64, bit for bit, as
    the streaming oracle (:func:`oracle.bce_binary_fast`) computes them — but a chunk where e is a
    constant (:func:`constant_exp_log1p`) gets it without calling numpy (nor converting z). The
    returned arrays may be shared and read-only."""
    c = constant_exp_log1p(z)
    if c is not None:
        zeros, ones, ln2 = _const(len(z))
        return (zeros, zeros) if c[0] == 0.0 else (ones, ln2)
    return _numpy_exp_log1p(z)


def _numpy_exp_log1p(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's e and log1p(e), in oracle.bce_binary_fast's expressions: the exact steps (|·|, −)
    in z's own dtype where it is a float of ≤ 32 bits (half the bytes), then float64."""
    with np.errstate(all="ignore"):
        a = np.negative(np.abs(z)) if z.dtype.kind == "f" and z.dtype.itemsize <= 4 else -np.abs(z)
        e = np.exp(np.asarray(a, np.float64))  # not in place: numpy may pick another loop for aliases
        return e, np.log1p(e)


def inputs(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The kernel's (z, e, t, econst) for one chunk of logits of a ≤ 32-bit float dtype: z as
    contiguous float32 (exact; the kernel widens each value itself, so no float64 copy of the
    chunk is made) and :func:`exp_log1p`'s e and t — or, where those are one constant
    (:func:`constant_exp_log1p`), that constant as a one-element array each and ``econst`` 1, so
    the kernel reads no arrays of constants."""
    z32 = np.ascontiguousarray(z, dtype=np.float32)
    c = constant_exp_log1p(z32)
    if c is not None:
        return z32, np.array([c[0]]), np.array([c[1]]), 1
    return (z32, *_numpy_exp_log1p(z32), 0)


def double_rounds(dt) -> bool:
    """Whether ``dt.cast`` rounds float64 through float32 (ml_dtypes' bfloat16 does: 1 + 2^-8 +
    2^-30 becomes 1, not 1 + 2^-7), measured, so the kernel rounds references the same way."""
    if dt.precision >= 24:
        return False
    x = 1.0 + 2.0 ** -dt.precision + 2.0 ** -(dt.precision + 30)  # just above a tie
    return float(dt.cast(np.array([x])).astype(np.float64)[0]) == 1.0


def slot_params(dt) -> tuple[int, int, int, float, int]:
    """(precision, biased float64 exponent of the smallest normal, of the smallest subnormal,
    largest value, double-rounding flag) of a result dtype: what the kernel needs to round
    references to it and take ulps in it."""
    e_min = 1023 + int(round(math.log2(dt.smallest_normal)))
    e_sub = 1023 + int(round(math.log2(dt.smallest_subnormal)))
    return dt.precision, e_min, e_sub, dt.max, int(double_rounds(dt))
