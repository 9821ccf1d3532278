"""Time of the default `stabench loss` with every backend installed against the frameworks' imports.

Target (issue 13): `stabench loss` — every backend (numpy, tensorflow, torch, jax), the default
`extreme` logit set, all four dtypes, gradients, every execution variant — within 3× the sum of
`python -c "import tensorflow"`, `python -c "import torch"` and `python -c "import jax, optax"`,
each measured in fresh processes (median of --repeat runs after one warm-up).

JAX compiles every primitive per shape and dtype outside jit; the jax backend keeps XLA's
executables in a persistent cache (``STABENCH_JAX_CACHE``, default ~/.cache/stabench/jax). The
script reports the run with that cache warm (every run after the first on a machine) and, once,
with an empty cache (a first run), so both figures are on record.

    python benchmarks/backends.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _timing import stabench_command

TARGET = 3.0
IMPORTS = {"tensorflow": "import tensorflow", "torch": "import torch", "jax": "import jax, optax"}


def timed(cmd: list[str], env: dict | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t


def median(cmd: list[str], repeat: int, env: dict | None = None) -> float:
    timed(cmd, env)  # file cache (and JAX's compilation cache) warm
    return statistics.median(timed(cmd, env) for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[0]} on {os.cpu_count()} cores")
    imports = {}
    for name, code in IMPORTS.items():
        imports[name] = median([sys.executable, "-c", code], a.repeat, env)
        print(f"python -c {code!r:28} {imports[name]:7.2f} s")
    total = sum(imports.values())
    print(f"sum of the imports                      {total:7.2f} s   budget (×{TARGET:g}) {TARGET * total:.2f} s")
    cmd = stabench_command() + ["loss"]
    with tempfile.TemporaryDirectory() as d:
        cold = timed(cmd, dict(env, STABENCH_JAX_CACHE=d))
    print(f"stabench loss, empty JAX cache (first run) {cold:7.2f} s   ratio {cold / total:.2f}")
    warm = median(cmd, a.repeat, env)
    print(f"stabench loss, warm JAX cache              {warm:7.2f} s   ratio {warm / total:.2f} (target ≤ {TARGET:g})")
    for b in ("numpy", "tensorflow", "torch", "jax"):
        t = median(cmd + ["--backend", b], 1, env)
        print(f"  stabench loss --backend {b:10}      {t:7.2f} s")
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[0]}")
    if warm / total > TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
