"""`stabench expr` speed (issue 14): 10^5 random points × 2 expressions × 4 dtypes, target ≤ 60 s on
the 2-core machine; and the exact reference's cost per point, which is the whole cost.

    python benchmarks/expr.py [--points 100000] [--pair log1p|sqrt-diff|expm1]
    python benchmarks/expr.py --memory [--quick] [KIND ...]

Prints, per dtype: the wall time of the dtype evaluation (numpy), of the reference (arb), of the
metrics, and the reference's µs per distinct point; then the total of ``experiments.expr.run`` as
the command runs it (one process, one core: the reference loop is Python over arb calls).

``--memory`` (issue 19): for each kind of request (:func:`memory_kinds`: many rows, many forms,
several dtypes, each output) the number of points is raised by bisection to the largest that
``experiments.expr.check_memory`` accepts; that request runs as ``python -m stabench expr`` in a
subprocess and its peak RSS (``ru_maxrss`` from ``os.wait4``) is printed beside the estimate and
the budget. ``--quick`` scales the requests down 8× (a smoke test; the figures then say nothing
about the budget). The inputs are float16/bfloat16 random points: at most 65,280 distinct values,
so the exact reference is cheap and the run measures the rows, which is what the budget bounds.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from stabench import metrics
from stabench.experiments import expr as E
from stabench.expr import examples
from stabench.expr import variables as V
from stabench.expr.evaluate import evaluate
from stabench.expr.reference import reference


def cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


FORMS8 = ["x", "x+1", "x*2", "x-1", "x/3", "x*x", "0-x", "x+2"]


def memory_kinds(tmp: str) -> dict:
    """kind → (forms, dtypes, output options): the requests whose largest accepted size is measured."""
    out = {f: ["--" + f, os.path.join(tmp, "out." + ("md" if f == "markdown" else "png" if f == "plot" else f))]
           for f in ("csv", "json", "markdown", "parquet", "plot")}
    return {"rows": (["x"], "float16", []), "forms": (FORMS8, "float16", []),
            "dtypes": (["x"], "float16,bfloat16", []), **{k: (["x"], "float16", v) for k, v in out.items()}}


def _accepted(forms, dts, outputs, n) -> bool:
    from stabench.errors import InputError

    try:
        p = E.plan(forms, [f"x=random:{n}"], dts)
        E.check_memory(p, outputs)
        return True
    except InputError:
        return False


def memory(kinds: list[str], quick: bool) -> None:
    import subprocess
    import tempfile

    from stabench import limits

    print(f"peak RSS of the largest accepted expr request of each kind; CPU: {cpu()}; budget "
          f"{limits.MEMORY_BUDGET / 2**30:.0f} GiB")
    with tempfile.TemporaryDirectory() as tmp:
        table = memory_kinds(tmp)
        for kind in kinds or list(table):
            forms, dts, opts = table[kind]
            outputs = [o.lstrip("-") for o in opts[::2]]
            lo, hi = 1, V.MAX_POINTS
            while lo < hi:  # the estimate grows with the points
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if _accepted(forms, dts, outputs, mid) else (lo, mid - 1)
            n = max(1, lo // 8) if quick else lo
            est = E.memory_estimate(E.plan(forms, [f"x=random:{n}"], dts), outputs)
            argv = [sys.executable, "-m", "stabench", "expr", "-d", dts, "--var", f"x=random:{n}", *opts, "--", *forms]
            t = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err = proc.stderr.read().decode().strip()
            proc.stderr.close()
            peak = usage.ru_maxrss * 1024  # kilobytes on Linux
            print(f"  {kind:9} {n:>9,} points × {len(forms)} forms × {len(dts.split(','))} dtypes: peak RSS "
                  f"{peak / 2**30:5.2f} GiB, estimate {est / 2**30:5.2f} GiB, {time.perf_counter() - t:6.1f} s"
                  + (f", exit {proc.returncode}: {err}" if proc.returncode else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", action="store_true", help="peak RSS of the largest accepted requests")
    ap.add_argument("--quick", action="store_true", help="with --memory: requests 8× smaller")
    ap.add_argument("kinds", nargs="*", help="with --memory: rows, forms, dtypes, csv, json, markdown, parquet, plot")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--pair", default="log1p", choices=[n for n, e in examples.EXAMPLES.items() if len(e.forms) == 2 and e.variables])
    a = ap.parse_args()
    if a.memory:
        return memory(a.kinds, a.quick)
    ex = examples.EXAMPLES[a.pair]
    var = ex.variables[0].split("=", 1)[0]
    p = E.plan(list(ex.forms), [f"{var}=random:{a.points}"])
    print(f"{a.pair}: {' vs '.join(ex.forms)}; {var}=random:{a.points}; CPU: {cpu()} ({os.cpu_count()} cores); "
          f"load average {os.getloadavg()[0]:.1f}")
    for dt in p.dtypes:
        pts = V.grid(list(p.variables), dt, p.seed)
        for e in p.expressions:
            t0 = time.perf_counter()
            with np.errstate(all="ignore"):
                v = evaluate(e.tree, dt, {var: dt.cast(pts[var])})
            t1 = time.perf_counter()
            fin = np.isfinite(pts[var])
            hi, lo, _ = reference(e.tree, {var: pts[var][fin]})
            t2 = time.perf_counter()
            metrics.compare(v[fin].astype(np.float64), hi, dt, reference_lo=lo)
            t3 = time.perf_counter()
            distinct = len(np.unique(pts[var][fin]))
            print(f"  {dt.name:8} {e.label:8} eval {t1 - t0:6.3f} s  reference {t2 - t1:6.2f} s "
                  f"({(t2 - t1) / distinct * 1e6:5.1f} µs per distinct point, {distinct})  metrics {t3 - t2:5.3f} s")
    t = time.perf_counter()
    rows = E.run(p)
    E.summary(rows)
    total = time.perf_counter() - t
    print(f"total run + summary: {total:.1f} s for {len(rows):,} rows (target ≤ 60 s)")


if __name__ == "__main__":
    main()
