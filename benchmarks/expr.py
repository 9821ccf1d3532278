"""`stabench expr` speed (issue 14): 10^5 random points × 2 expressions × 4 dtypes, target ≤ 60 s on
the 2-core machine; and the exact reference's cost per point, which is the whole cost.

    python benchmarks/expr.py [--points 100000] [--pair log1p|sqrt-diff|expm1]

Prints, per dtype: the wall time of the dtype evaluation (numpy), of the reference (arb), of the
metrics, and the reference's µs per distinct point; then the total of ``experiments.expr.run`` as
the command runs it (one process, one core: the reference loop is Python over arb calls).
"""
from __future__ import annotations

import argparse
import os
import platform
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--pair", default="log1p", choices=[n for n, e in examples.EXAMPLES.items() if len(e.forms) == 2 and e.variables])
    a = ap.parse_args()
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
