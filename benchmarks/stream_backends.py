"""Throughput of a streaming sigmoid run of one framework method (issue 12, item 2): cases per
second end to end (the framework's call per chunk, the reference, metrics and aggregates), and the
time of the full float32 audit — measured (``--full``) or extrapolated from a slice.

A *case* is one (logit, label) pair, labels 0 and 1 for every float32 logit: 2 × 2^32 − 2^25 − 2^24
= 8.56e9 cases over the 4,278,190,082 finite float32 values (what ``stabench loss --logits
exhaustive --dtype float32 -e sigmoid -b BACKEND --no-grad`` evaluates per method).

    python benchmarks/stream_backends.py --backend torch --method bce-logits [--slice-bits 27] [--workers N] [--full]
    python benchmarks/stream_backends.py --sample 8   # 8 tasks spread over every float32, one process

A framework's speed depends on the values (torch's binary_cross_entropy_with_logits takes 12 ms
per 2^17 cases just above 0.5 and 2 ms on N(0, 10) samples, here): ``--sample`` times tasks spread
evenly over the whole float32 range and extrapolates from their mean, which a contiguous slice
cannot represent.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from stabench import backends, experiment, stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--method", default="bce-logits")
    ap.add_argument("--slice-bits", type=int, default=27, help="the slice holds 2^k float32 logits (default 2^27)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--full", action="store_true", help="run every finite float32 logit instead of a slice")
    ap.add_argument("--sample", type=int, default=0, help="time N tasks spread over every float32 (one process)")
    a = ap.parse_args()
    names = [m.name for m in experiment.get("sigmoid").methods(backends.load(a.backend))]
    if a.method not in names:
        raise SystemExit(f"unknown method {a.method!r} of {a.backend}; valid: {', '.join(names)}")
    plan = stream.Plan("float32", a.backend, (a.method,), ("loss",), 4.0, 10, experiment="sigmoid")
    first = int(np.float32(0.5).view(np.uint32))  # a fixed slice: 2^k floats upward from 0.5
    warm = stream.Source("float32", "exhaustive", intervals=((first, first + 2**16),))
    stream.run(plan, warm, workers=1)  # warm-up: the framework's import and first call, the kernel's load
    if a.sample:
        src = stream.exhaustive_source("float32")
        picks = np.linspace(0, src.n_tasks - 1, a.sample).round().astype(int)
        times = []
        for i in picks:
            t = time.perf_counter()
            stream.run_task(plan, src, int(i))
            times.append(time.perf_counter() - t)
        per_task = float(np.mean(times))
        full = per_task * src.n_tasks / a.workers
        print(f"{a.backend}:{a.method} float32 loss: {a.sample} tasks of 2^22 logits spread over every float32, "
              f"{per_task:.2f} s per task (min {min(times):.2f}, max {max(times):.2f}); kernel: {stream.use_kernel()}")
        print(f"full float32 audit, extrapolated to {a.workers} workers: {full:.0f} s ({full / 60:.1f} min), "
              f"{2 * src.total / full / 1e6:.1f} M cases/s")
        return
    if a.full:
        src = stream.exhaustive_source("float32")
    else:
        src = stream.Source("float32", "exhaustive", intervals=((first, first + 2**a.slice_bits),))
    t = time.perf_counter()
    total = stream.run(plan, src, workers=a.workers)
    elapsed = time.perf_counter() - t
    cases = 2 * src.total
    rate = cases / elapsed
    agg = total[("loss", a.method)]
    print(f"{a.backend}:{a.method} float32 loss, {'every float32' if a.full else f'slice of 2^{a.slice_bits}'}: "
          f"{src.total:,} logits × labels 0, 1 = {cases:,} cases, {a.workers} workers, "
          f"kernel: {stream.use_kernel()}")
    print(f"end to end  {elapsed:8.1f} s   {rate / 1e6:7.1f} M cases/s   max_ulp {agg.max_ulp:g}")
    if not a.full:
        full = 2 * stream.exhaustive_source("float32").total / rate
        print(f"full float32 audit, extrapolated: {full:.0f} s ({full / 60:.1f} min)")


if __name__ == "__main__":
    main()
