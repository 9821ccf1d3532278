"""Time of a full tensorflow-backend loss run against the time of `import tensorflow` alone.

Target: `stabench.experiments.loss.run(backends=["tensorflow"])` — every TensorFlow method, the
default `extreme` logit set, all four dtypes, gradients included, eager and graph — within 3× the
time of `python -c "import tensorflow"`, each measured in a fresh process (the run's process pays
the TensorFlow and Keras imports too). Prints the median wall time of each over --repeat runs
(after one warm-up), the ratio, and the run's own split between importing the backend and
evaluating.

    python benchmarks/tensorflow_backend.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TARGET = 3.0

IMPORT = "import tensorflow"
RUN = """
import json, time
t0 = time.perf_counter()
from stabench import backends
from stabench.experiments import loss
backends.load("tensorflow")
t1 = time.perf_counter()
df = loss.run(backends=["tensorflow"])
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "evaluate": t2 - t1, "rows": len(df)}))
"""


def timed(code: str) -> tuple[float, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t, p.stdout


def median_time(code: str, repeat: int) -> tuple[float, list[str]]:
    timed(code)  # warm the file cache
    times, outs = [], []
    for _ in range(repeat):
        t, out = timed(code)
        times.append(t)
        outs.append(out)
    return statistics.median(times), outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    base, _ = median_time(IMPORT, a.repeat)
    print(f"baseline  python -c 'import tensorflow'                     {base:7.2f} s")
    run, outs = median_time(RUN, a.repeat)
    inner = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    imp = statistics.median(i["import"] for i in inner)
    ev = statistics.median(i["evaluate"] for i in inner)
    print(f"loss.run(backends=['tensorflow']) in a fresh process      {run:7.2f} s   ratio {run / base:.2f} "
          f"(target ≤ {TARGET:g})")
    print(f"  of which: importing the backend {imp:.2f} s, evaluating {ev:.2f} s ({inner[0]['rows']} rows)")
    if run / base > TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
