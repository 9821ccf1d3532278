"""Wall time of the default `stabench train` run (every variant × policy) in a fresh process.

Target (the train issue): under 60 s on a 2-core CPU, TensorFlow's import included. Prints the
median end-to-end time of a fresh `python` process running ``train.run()`` with the defaults
(import of stabench, tensorflow, keras and scikit-learn included), the median time of the bare
imports, and, from the last run, the seconds of each variant × policy (build, tracing, training
and evaluation) and its per-epoch median.

    python benchmarks/train.py [--repeat 3] [--epochs N]

When the CLI has the command (``stabench train``), it is timed too.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUN = """
import json, sys
from stabench.experiments import train
df = train.run(epochs={epochs})
out = {{f"{{v}} {{p}}": [float(g.seconds.sum()), float(g.seconds.iloc[1:].median()) if len(g) > 1 else float("nan")]
       for (v, p), g in df.groupby(["variant", "policy"], sort=False)}}
json.dump(out, open(sys.argv[1], "w"))
"""


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="default: train.DEFAULT_EPOCHS")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from stabench.experiments import train

    epochs = a.epochs or train.DEFAULT_EPOCHS
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    py = sys.executable
    print(f"{os.cpu_count()} CPUs; {len(train.VARIANTS)} variants × {len(train.POLICIES)} policies × {epochs} epochs")
    imports = statistics.median(timed([py, "-c", "import stabench.cli, tensorflow, keras, sklearn"], env)
                                for _ in range(a.repeat))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "times.json")
        times = [timed([py, "-c", RUN.format(epochs=epochs), path], env) for _ in range(a.repeat)]
        with open(path) as f:
            per = json.load(f)
    total = statistics.median(times)
    print(f"fresh process, train.run(epochs={epochs}): median {total:6.2f} s of {a.repeat} "
          f"(min {min(times):.2f}, max {max(times):.2f}); target < 60 s")
    print(f"imports (stabench, tensorflow, keras, sklearn):   {imports:6.2f} s")
    print(f"training work:                                   {total - imports:6.2f} s")
    for name, (secs, per_epoch) in per.items():
        print(f"  {name:<30} {secs:6.2f} s   median epoch {per_epoch * 1000:6.1f} ms")
    exe = shutil.which("stabench")
    cli = [exe] if exe else [py, "-m", "stabench"]
    help_ = subprocess.run(cli + ["--help"], capture_output=True, text=True, env=env)
    if " train " in help_.stdout:
        t = statistics.median(timed(cli + ["train", "--epochs", str(epochs)], env) for _ in range(a.repeat))
        print(f"stabench train --epochs {epochs}: median {t:6.2f} s; target < 60 s")


if __name__ == "__main__":
    main()
