"""Every ordered pair of finite float16 values as a log-sum-exp row of K = 2 (4,030,726,144 rows):
numpy's naive log(exp(a) + exp(b)) and max-shifted form, aggregated by the numba kernel of
``stabench.experiments.lse.every_pair`` (bit-identical to numpy's float16 evaluation:
tests/test_lse.py), written to ``results/exhaustive-float16-logsumexp-pairs.csv`` with its metadata
sidecar (CPU, versions, seconds).

    python benchmarks/lse_every_pair.py [--out results/exhaustive-float16-logsumexp-pairs.csv] [--step 1]

About 210 s on 2 AMD EPYC cores (--step N takes every N-th first value, for a quick look).
"""
from __future__ import annotations

import argparse
import time

from stabench import export, meta
from stabench.experiments import lse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/exhaustive-float16-logsumexp-pairs.csv")
    ap.add_argument("--step", type=int, default=1)
    a = ap.parse_args()
    t = time.perf_counter()
    df = lse.every_pair(step=a.step)
    seconds = round(time.perf_counter() - t, 1)
    pairs = df.pop("worst_pair")
    df["worst_a"] = [p[0] for p in pairs]
    df["worst_b"] = [p[1] for p in pairs]
    export.export(df, meta.build(command=f"python benchmarks/lse_every_pair.py --step {a.step}", seconds=seconds,
                                 step=a.step), [("csv", a.out)])
    print(df.to_string(index=False))
    print(f"{seconds} s")


if __name__ == "__main__":
    main()
