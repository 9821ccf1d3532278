"""Throughput of streaming sigmoid runs (issue 6): cases per second end to end, and the ratio to a
bare-numpy lower bound; time per million points for --logits random at growing N.

A *case* is one (logit, label) pair evaluated by both numpy methods (naive and fused, loss only),
with its reference and metrics. The lower bound is one float64 stable evaluation of the reference
over the same logits (e^-|z|, log1p, two softplus), chunked the same way, on one core, no metrics.

    python benchmarks/stream.py [--slice-bits 26] [--workers 2]

Full float32 sweep estimate: 2 × 2^32 cases / measured rate.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from stabench import stream
from stabench.experiments import loss


def bare_lower_bound(src: stream.Source) -> float:
    t = time.perf_counter()
    for i in range(src.n_tasks):
        z = src.task(i)
        for s in range(0, len(z), stream.CHUNK):
            zz = z[s:s + stream.CHUNK].astype(np.float64)
            e = np.exp(-np.abs(zz))
            tt = np.log1p(e)
            np.maximum(zz, 0.0) + tt, np.maximum(-zz, 0.0) + tt
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice-bits", type=int, default=26, help="the slice holds 2^k float32 logits (default 2^26)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args()
    first = int(np.float32(0.5).view(np.uint32))  # a fixed slice: 2^k floats upward from 0.5
    src = stream.Source("float32", "exhaustive", intervals=((first, first + 2**a.slice_bits),))
    plan = stream.Plan("float32", "numpy", ("naive", "fused"), ("loss",), 4.0, 10)
    stream.run(plan, stream.Source("float32", "exhaustive", intervals=((first, first + 2**16),)), workers=1)  # warm-up
    t = time.perf_counter()
    stream.run(plan, src, workers=a.workers)
    elapsed = time.perf_counter() - t
    cases = 2 * src.total
    rate = cases / elapsed
    bare = bare_lower_bound(src)
    print(f"slice: {src.total:,} float32 logits × labels 0, 1 = {cases:,} cases, {a.workers} workers")
    print(f"end to end      {elapsed:7.2f} s   {rate / 1e6:6.1f} M cases/s  (target ≥ 15)")
    print(f"bare numpy lb   {bare:7.2f} s   {cases / bare / 1e6:6.1f} M cases/s (1 core, reference only)")
    print(f"ratio           {elapsed / bare:7.2f} ×  (aim ≤ 3)")
    full = 2 * 2**32 / rate
    print(f"full float32 sweep estimate: {full / 60:.1f} min (target ≤ 10)")
    print("random --points N (streaming, all cores):")
    for n in (10**5, 10**6, 10**7):
        opts = loss.Options(experiments="sigmoid", dtypes=["float32"], backends=["numpy"], logits="random",
                            points=n, seed=0, grad=False)
        t = time.perf_counter()
        if loss.streams(opts):
            loss.run_streaming(opts, workers=a.workers)
        else:
            loss.summary(loss.run(opts))
        el = time.perf_counter() - t
        print(f"  N = {n:>10,}   {el:7.2f} s   {el / (n / 1e6):6.2f} s per million points"
              f"{'  (rows path)' if not loss.streams(opts) else ''}")


if __name__ == "__main__":
    main()
