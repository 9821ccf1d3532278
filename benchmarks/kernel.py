"""The exhaustive numpy sigmoid audit against its floor (issue 12): on a slice of 2^k float32
logits × labels 0 and 1 (loss only, naive and fused, as the full-float32 audit in
docs/performance.md), side by side in one run, on the same process pool:

- floor: numpy running only the two methods under test, chunk by chunk (cases built into
  preallocated buffers, one backend call per method and chunk) — what auditing numpy's own
  functions cannot go below;
- audit (kernel): ``stream.run_task`` with the compiled measurement kernel (numba);
- audit (numpy): the same without numba (``STABENCH_KERNEL=numpy``), for comparison;

then the audit's rate in cases/s, its ratio to the floor, the full-float32 estimate
(8,556,380,160 cases) and the peak RSS of the process tree (parent + workers).

    python benchmarks/kernel.py [--slice-bits 27] [--spread | --full] [--reps 4] [--workers 2] [--skip-numpy]
    python benchmarks/kernel.py --experiment softmax --range 1,2 [--classes 10] [--grad]

``--experiment NAME --range LO,HI``: any streaming experiment over the float32 logits in [LO, HI]
(its ``stream_cases``), its numpy methods (all of them, loss only unless ``--grad``) against the
same floor — numpy running only those methods on the same cases, built by the experiment — and
the audit ``stream.run_task`` (softmax: the closed-form reference, measured by the numpy path).

``--spread``: the same number of logits as 2^(k−22) tasks of 2^22 spread evenly over every finite
float32 of both signs — a sample of the full audit (whose logits are mostly huge or tiny, where
e^−|z| is a constant and no exp is computed), instead of one contiguous slice from 0.5 up.
``--full``: every finite float32 (8,556,380,160 cases; about a minute per repetition on 2 cores):
the audit itself against its own floor, no sample.

Targets: audit ≤ 1.5× floor, ≥ 143 M cases/s on the 2-core machine, peak RSS ≤ 1 GiB.
"""
from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from stabench import dtypes, experiment, kernel, stream
from stabench.backends import load

FULL_CASES = 2 * 4_278_190_080


def floor_task(source: stream.Source, i: int) -> float:
    """The methods under test only, over task ``i``: returns the CPU seconds it took."""
    cpu = time.process_time()
    mod = load("numpy")
    dt = dtypes.get(source.dtype)
    sigmoid = experiment.get("sigmoid")
    methods = sigmoid.methods(mod)
    z = source.task(i)
    zz = np.empty(2 * min(stream.CHUNK, len(z)), dtype=dt.type)
    lab01 = dt.cast(np.array([0.0, 1.0]))
    labels = {}
    for s in range(0, len(z), stream.CHUNK):
        zc = z[s:s + stream.CHUNK]
        n = len(zc)
        zz[:n] = zc
        zz[n:2 * n] = zc
        if n not in labels:
            labels[n] = np.repeat(lab01, n)
        cases = sigmoid.cases_type(zz[:2 * n], labels[n])
        for m in methods:
            mod.evaluate(m, dt, cases, False)
    return time.process_time() - cpu


def floor_task_any(plan: stream.Plan, source: stream.Source, i: int) -> float:
    """The floor of any streaming experiment: only its methods, over the cases it builds from each
    chunk of task ``i`` (:meth:`Experiment.stream_cases`); returns the CPU seconds it took."""
    from stabench import experiment
    from stabench.backends import evaluate

    cpu = time.process_time()
    mod = load(plan.backend)
    exp = experiment.get(plan.experiment)
    dt = dtypes.get(source.dtype)
    methods = [m for m in exp.methods(mod) if m.name in plan.methods]
    z = source.task(i)
    for s in range(0, len(z), stream.CHUNK):
        cases = exp.stream_cases(z[s:s + stream.CHUNK], dt, plan.options)[0]
        for m in methods:
            evaluate(mod, m, dt, cases, "grad" in plan.quantities)
    return time.process_time() - cpu


def audit_task(plan: stream.Plan, source: stream.Source, i: int) -> float:
    """The audit of task ``i`` (``stream.run_task``): returns the CPU seconds it took."""
    cpu = time.process_time()
    stream.run_task(plan, source, i)
    return time.process_time() - cpu


CPU: dict = {}  #: name → CPU seconds summed over the tasks, per repetition


def timed(pool: ProcessPoolExecutor, fn, args_list, name: str = "") -> float:
    """Wall seconds of one pass over the tasks (their summed CPU seconds go to CPU[name])."""
    t = time.perf_counter()
    cpu = sum(pool.map(fn, *zip(*args_list)))
    CPU.setdefault(name, []).append(cpu)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice-bits", type=int, default=27, help="2^k float32 logits (default 2^27)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--skip-numpy", action="store_true", help="skip the (slow) numpy audit")
    ap.add_argument("--spread", action="store_true", help="tasks spread over all float32, not one slice")
    ap.add_argument("--full", action="store_true", help="every float32: the whole audit against its floor")
    ap.add_argument("--reps", type=int, default=4, help="alternating floor/audit repetitions (default 4)")
    ap.add_argument("--experiment", default="sigmoid", help="a streaming experiment (default sigmoid)")
    ap.add_argument("--range", help="LO,HI: every float32 logit in [LO, HI] (instead of a slice)")
    ap.add_argument("--classes", type=int, default=10, help="softmax: K (default 10)")
    ap.add_argument("--grad", action="store_true", help="loss and gradient (default loss only)")
    a = ap.parse_args()
    if a.experiment != "sigmoid" or a.range:
        return main_any(a)
    if a.full:
        src = stream.exhaustive_source("float32")
    elif a.spread:  # 2^(k-22) tasks of 2^22 bit patterns, evenly over [0, +inf) and [-0, -inf)
        n_t = max(2, 2 ** (a.slice_bits - 22)) // 2
        step = 0x7F800000 // n_t
        starts = [sign | (i * step) for sign in (0, 0x80000000) for i in range(n_t)]
        src = stream.Source("float32", "exhaustive", intervals=tuple((b, b + (1 << 22)) for b in starts))
    else:  # a fixed slice: 2^k floats upward from 0.5
        first = int(np.float32(0.5).view(np.uint32))
        src = stream.Source("float32", "exhaustive", intervals=((first, first + 2 ** a.slice_bits),))
    plan = stream.Plan("float32", "numpy", ("naive", "fused"), ("loss",), 4.0, 10)
    cases = 2 * src.total
    where = "(every finite float32)" if a.full else "spread over every float32" if a.spread else "from 0.5 up"
    print(f"slice: {src.total:,} float32 logits {where} × labels 0, 1 = {cases:,} cases; "
          f"{a.workers} worker processes; CPU: {_cpu()}")
    print(f"kernel compile/load: {kernel.warm():.1f} s (cache: {kernel.cache_dir()})")
    tasks = range(src.n_tasks)
    results = {}
    with ProcessPoolExecutor(a.workers) as pool:  # forked after warm(): workers share the kernel
        list(pool.map(floor_task, [src] * a.workers, range(a.workers)))  # warm-up
        for rep in range(a.reps):  # floor and audit alternate: the same load for both
            results.setdefault("floor", []).append(timed(pool, floor_task, [(src, i) for i in tasks], "floor"))
            os.environ[stream.KERNEL_ENV] = "numba"
            results.setdefault("audit (kernel)", []).append(
                timed(pool, audit_task, [(plan, src, i) for i in tasks], "audit (kernel)"))
    if not a.skip_numpy:
        os.environ[stream.KERNEL_ENV] = "numpy"
        with ProcessPoolExecutor(a.workers) as pool:
            results["audit (numpy)"] = [timed(pool, audit_task, [(plan, src, i) for i in tasks])]
    floor = min(results["floor"])
    for name, ts in results.items():
        t = min(ts)
        rate = cases / t
        print(f"{name:15s} {t:7.2f} s  {rate / 1e6:7.1f} M cases/s  {t / floor:5.2f}× floor  "
              f"full float32: {FULL_CASES / rate:6.0f} s")
    fc, ac = min(CPU["floor"]), min(CPU["audit (kernel)"])
    print(f"CPU time summed over the tasks (least of the repetitions): floor {fc:.2f} s, audit {ac:.2f} s = "
          f"{ac / fc:.2f}× floor; {cases / ac / 1e6:.0f} M cases/s per core, so "
          f"{os.cpu_count() * cases / ac / 1e6:.0f} M cases/s on {os.cpu_count()} idle cores "
          f"(full float32: {FULL_CASES * ac / cases / os.cpu_count():.0f} s)")
    print("per repetition, wall s (floor/audit): " + ", ".join(
        f"{fl:.2f}/{au:.2f}" for fl, au in zip(results["floor"], results["audit (kernel)"])))
    pairs = sorted(au / fl for fl, au in zip(results["floor"], results["audit (kernel)"]))
    print(f"audit/floor per repetition (adjacent in time, so under the same load): "
          f"{', '.join(f'{r:.2f}' for r in pairs)}; median {pairs[len(pairs) // 2]:.2f}×")
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"peak RSS: parent + largest worker ≤ {rss:.0f} MiB (targets: ≤ 1.5× floor, ≥ 143 M cases/s, ≤ 1 GiB)")


def main_any(a) -> None:
    """Any streaming experiment over a --range of float32 logits: floor, then audit, alternating."""
    from stabench import experiment
    from stabench.experiments import loss

    exp = experiment.get(a.experiment)
    opts = loss.Options(experiments=a.experiment, classes=a.classes)
    rng = stream.parse_range(a.range or "1,2")
    src = stream.exhaustive_source("float32", rng)
    methods = tuple(m.name for m in exp.methods(load("numpy")))
    quantities = ("loss", "grad") if a.grad else ("loss",)
    plan = stream.Plan("float32", "numpy", methods, quantities, 4.0, 10, experiment=a.experiment,
                       options=exp.stream_options(opts))
    cases = stream.cases_per_logit(plan) * src.total
    print(f"{a.experiment}: {src.total:,} float32 logits in [{rng[0]:g}, {rng[1]:g}] × {stream.cases_per_logit(plan)} "
          f"= {cases:,} cases; methods {', '.join(methods)}; {'/'.join(quantities)}; {a.workers} worker processes; "
          f"CPU: {_cpu()}")
    if stream.use_kernel():
        print(f"kernel compile/load: {kernel.warm():.1f} s ({'the sigmoid audit kernel' if exp.kernel else 'the generic kernel'})")
    tasks = range(src.n_tasks)
    results = {}
    with ProcessPoolExecutor(a.workers) as pool:
        list(pool.map(floor_task_any, [plan] * a.workers, [src] * a.workers, range(min(a.workers, src.n_tasks))))
        for rep in range(a.reps):
            results.setdefault("floor", []).append(
                timed(pool, floor_task_any, [(plan, src, i) for i in tasks], "floor"))
            results.setdefault("audit", []).append(timed(pool, audit_task, [(plan, src, i) for i in tasks], "audit"))
    floor = min(results["floor"])
    for name, ts in results.items():
        t = min(ts)
        print(f"{name:15s} {t:7.2f} s  {cases / t / 1e6:7.2f} M cases/s  {t / floor:5.2f}× floor")
    pairs = sorted(au / fl for fl, au in zip(results["floor"], results["audit"]))
    print(f"audit/floor per repetition: {', '.join(f'{r:.2f}' for r in pairs)}; median {pairs[len(pairs) // 2]:.2f}× "
          f"(target ≤ 2×); CPU summed: floor {min(CPU['floor']):.2f} s, audit {min(CPU['audit']):.2f} s")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown"
    return f"{name}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    main()
