"""Speed of the row experiments (issue 21): each default `stabench run NAME` with all four backends
against the frameworks' imports, the exact references' throughput, and a row run's peak memory.

Targets:
- `stabench run NAME -b numpy,tensorflow,torch,jax` (default options: every dtype, gradients, every
  execution variant) within 3× the sum of `python -c "import tensorflow"`, `… torch`, `… jax, optax`
  (median of --repeat fresh processes after one warm-up; JAX's compilation cache warm);
- each experiment's reference at ≥ 10^6 input elements per second for float32 and narrower inputs
  (in-process, the built-in rows of the experiment scaled up to about 10^6 elements);
- peak memory of a run per input value (ru_maxrss of a child) for stabench.limits.ROW_ELEMENT_BYTES.

    python benchmarks/rows.py [--repeat 3] [--only NAME,…] [--skip-cli] [--skip-reference]

(with the virtual environment's bin first on PATH: the `stabench` found there is the one timed)
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from _timing import stabench_command

TARGET = 3.0
REFERENCE_TARGET = 1e6
IMPORTS = {"tensorflow": "import tensorflow", "torch": "import torch", "jax": "import jax, optax"}


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t


def median(cmd: list[str], repeat: int, env: dict) -> float:
    timed(cmd, env)
    return statistics.median(timed(cmd, env) for _ in range(repeat))


def reference_speed(name: str, dtype: str) -> tuple[float, int]:
    """(elements/s, elements) of ``name``'s reference on its built-in rows in ``dtype``, the rows
    repeated to about 10^6 elements (each method's quantity once, gradients included)."""
    import numpy as np

    from stabench import dtypes, experiment, rowwise
    from stabench.experiments import rows

    exp = experiment.get(name)
    dt = dtypes.get(dtype)
    groups = exp.groups(rows.Options(points=64), dt)
    x = np.concatenate([g.x for g in groups if g.x.shape[1] == groups[0].x.shape[1]])
    x = x[np.isfinite(x).all(axis=1)]
    reps = max(1, int(1e6 // x.size))
    x = np.tile(x, (reps, 1))
    quantities = list(dict.fromkeys(m.quantity for ms in exp.backend_methods.values() for m in ms))
    params = {"eps": 1e-5} if "eps" in exp.params else {}
    t = time.perf_counter()
    for q in quantities:
        exp.reference(x, dt, q, True, params)
    sec = time.perf_counter() - t
    return x.size * len(quantities) / sec, x.size


def peak_rss(cmd: list[str], env: dict) -> int:
    """Peak resident bytes of a child running ``cmd``."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return ru.ru_maxrss * 1024


def main() -> None:
    from stabench.registry import ROWS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(ROWS))
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-reference", action="store_true")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print("reference throughput (in-process, input elements per second; target ≥ 1e6 for ≤ 32-bit inputs):")
    for name in ([] if a.skip_reference else names):
        for dtype in ("float16", "bfloat16", "float32"):
            speed, n = reference_speed(name, dtype)
            mark = "" if speed >= REFERENCE_TARGET else "   BELOW TARGET"
            print(f"  {name:14} {dtype:9} {speed / 1e6:8.2f} M/s  ({n:,} elements){mark}")
    if a.skip_cli:
        return
    imports = {k: median([sys.executable, "-c", c], a.repeat, env) for k, c in IMPORTS.items()}
    total = sum(imports.values())
    print("imports: " + ", ".join(f"{k} {v:.2f} s" for k, v in imports.items()) + f"; sum {total:.2f} s")
    worst = 0.0
    for name in names:
        cmd = stabench_command() + ["run", name, "-b", "numpy,tensorflow,torch,jax"]
        t = median(cmd, a.repeat, env)
        worst = max(worst, t / total)
        print(f"  stabench run {name:14} {t:7.2f} s   ratio {t / total:.2f} (target ≤ {TARGET:g})")
    rss = peak_rss(stabench_command() + ["run", "sum", "-b", "numpy", "-d", "float32", "--no-grad",
                                         "--max-length", "10000000"], env)
    print(f"peak RSS of `run sum -b numpy -d float32 --no-grad --max-length 10000000`: {rss / 2**20:.0f} MiB")
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[0]}")
    if worst > TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
