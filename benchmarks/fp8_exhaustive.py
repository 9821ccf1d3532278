"""Time of `--logits exhaustive` over the 8-bit formats: every finite value, both labels (sigmoid),
the three softmax case kinds, every numpy method and its upcast-float32 variant, loss and gradient.

Target (issue 15): well under a second. Two figures: the core call (``loss.run``, in-process, after
one warm-up; inputs, oracle, every method, metrics, row table) and the whole command in a fresh
process beside the import time of what it loads.

    python benchmarks/fp8_exhaustive.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from _timing import median_time, stabench_command


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from stabench.experiments import loss

    for dts in (["fp8"], ["float8"]):
        kw = dict(dtypes=dts, logits="exhaustive", backends=["numpy"])
        df = loss.run(**kw)  # warm-up
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            loss.run(**kw)
            times.append(time.perf_counter() - t)
        print(f"loss.run(dtypes={dts}, logits='exhaustive'): {len(df):,} rows, "
              f"median {statistics.median(times):.3f} s (target well under 1 s)")
    cmd = stabench_command() + ["loss", "--dtype", "fp8", "--logits", "exhaustive", "--backend", "numpy"]
    t = median_time(cmd, a.repeat)
    imp = median_time([sys.executable, "-c", "import stabench.cli, numpy, pandas"], a.repeat)
    print(f"stabench loss --dtype fp8 --logits exhaustive --backend numpy: {t:.2f} s (imports {imp:.2f} s, "
          f"work {t - imp:.2f} s)")


if __name__ == "__main__":
    main()
