"""Peak memory of the largest request of each kind that the memory budget accepts.

For each kind (a --logits-file, a sweep, a random sample on the row path, softmax with many
classes — with each backend —, a wide and a tall CSV file, streaming softmax, a JSON export,
TensorFlow, a streaming run with the largest --keep) the size parameter is raised by bisection to
the largest value the estimate accepts (:func:`stabench.experiments.loss.budget_use`, or
:func:`~stabench.experiments.loss.stream_estimate` for streaming softmax), that request runs as
``python -m stabench`` in a subprocess, and three figures are reported:

- ``peak_rss``: the largest resident set of any one process of the run (``ru_maxrss`` of the
  launcher's children: exact, covers streaming workers, since the kernel folds waited-for
  descendants in);
- ``tree_rss``: the largest sum of the resident sets of the run's process tree, sampled every
  20 ms with psutil (forked workers share pages, so this over-counts; shown for completeness);
- ``added``: ``peak_rss`` less that of the same command at the smallest size of its range: what
  the request adds beyond the frameworks it loads — the quantity the budget bounds.

Usage: ``PYTHONPATH=$PWD python benchmarks/memory.py [--quick] [KIND ...]``. ``--quick`` scales
every request down 8× (a smoke test of the script; the figures then say nothing about the budget).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from stabench import limits
from stabench.experiments import loss

GiB = 2**30

ROW = ["-e", "sigmoid", "-b", "numpy"]


def _largest(make_opts, outputs, lo: int, hi: int) -> int:
    """The largest n in [lo, hi] whose request fits the budget (the estimate grows with n).
    ``outputs`` "stream:W": the streaming estimate with W busy workers."""
    def fits(n):
        if isinstance(outputs, str):
            return loss.stream_estimate(make_opts(n), int(outputs.split(":")[1])) <= limits.MEMORY_BUDGET
        with _file_shape(getattr(make_opts, "shape", None), n):
            need, _ = loss.budget_use(make_opts(n), outputs)
        return need <= limits.MEMORY_BUDGET

    if not fits(lo):
        raise SystemExit(f"even n = {lo} is over the budget")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def kinds(tmp: str):
    """(name, argv builder, Options builder, outputs, bisection range) per kind."""
    rows_file = os.path.join(tmp, "rows.npy")
    out_csv, out_json = os.path.join(tmp, "out.csv"), os.path.join(tmp, "out.json")

    def file_argv(n):
        np.save(rows_file, np.random.default_rng(0).standard_normal(n).astype(np.float32) * 30)
        return [*ROW, "-d", "float32", "--logits-file", rows_file, "--csv", out_csv]

    return {
        "file": (file_argv, lambda n: loss.Options(experiments="sigmoid", backends="numpy", dtypes=["float32"],
                                                   logits_file=_fake_npy(tmp, n)),
                 ["csv"], (1, 10**8)),
        "sweep": (lambda p: [*ROW, "-d", "float16,float32", "--logits", "sweep", "--points", str(p)],
                  lambda p: loss.Options(experiments="sigmoid", backends="numpy", dtypes=["float16", "float32"],
                                         logits="sweep", points=p), [], (1, 10**8)),
        "random": (lambda p: [*ROW, "-d", "float16,bfloat16,float32", "--logits", "random", "--points", str(p)],
                   lambda p: loss.Options(experiments="sigmoid", backends="numpy",
                                          dtypes=["float16", "bfloat16", "float32"], logits="random", points=p),
                   [], (1, 2**18)),
        "classes": (lambda k: ["-e", "softmax", "-b", "numpy", "-d", "float32", "--classes", str(k)],
                    lambda k: loss.Options(experiments="softmax", backends="numpy", dtypes=["float32"], classes=k),
                    [], (2, limits.MAX_CLASSES)),
        "json": (lambda p: [*ROW, "-d", "float32", "--logits", "sweep", "--points", str(p), "--json", out_json],
                 lambda p: loss.Options(experiments="sigmoid", backends="numpy", dtypes=["float32"],
                                        logits="sweep", points=p), ["json"], (1, 10**8)),
        "markdown": (lambda p: [*ROW, "-d", "float32", "--logits", "sweep", "--points", str(p), "--markdown",
                                os.path.join(tmp, "out.md")],
                     lambda p: loss.Options(experiments="sigmoid", backends="numpy", dtypes=["float32"],
                                            logits="sweep", points=p), ["markdown"], (1, 10**8)),
        "tensorflow": (lambda p: ["-e", "sigmoid", "-b", "tensorflow", "-d", "float32", "--logits", "sweep",
                                  "--points", str(p)],
                       lambda p: loss.Options(experiments="sigmoid", backends="tensorflow", dtypes=["float32"],
                                              logits="sweep", points=p), [], (1, 10**8)),
        # --detail prints at most render.DETAIL_ROWS rows per table, the worst: bounded by memory
        "detail": (lambda p: [*ROW, "-d", "float32", "--logits", "sweep", "--points", str(p), "--detail"],
                   lambda p: loss.Options(experiments="sigmoid", backends="numpy", dtypes=["float32"],
                                          logits="sweep", points=p), ["detail"], (1, 10**8)),
        # a wide file: 4 rows of K logits (softmax), and a tall one: one logit per row (sigmoid)
        "wide-csv": (*_csv_kind(tmp, "wide.csv", ["-e", "softmax", "-b", "numpy", "-d", "float32", "--labels", "0"],
                                lambda k: (4, k)), [], (2, 10**9)),
        "tall-csv": (*_csv_kind(tmp, "tall.csv", [*ROW, "-d", "float32"], lambda n: (n, 1)), [], (1, 10**9)),
        # softmax with many classes in float64 (the widest temporaries) with each framework
        **{f"classes-{b}": ((lambda b: lambda k: ["-e", "softmax", "-b", b, "-d", "float64", "--classes", str(k)])(b),
                            (lambda b: lambda k: loss.Options(experiments="softmax", backends=b, dtypes=["float64"],
                                                              classes=k))(b),
                            [], (2, limits.MAX_CLASSES))
           for b in ("numpy", "tensorflow", "torch", "jax")},
        # every backend installed, every default dtype (the default `stabench loss -e softmax -k K`)
        "classes-all": (lambda k: ["-e", "softmax", "--classes", str(k)],
                        lambda k: loss.Options(experiments="softmax", classes=k), [], (2, limits.MAX_CLASSES)),
        # streaming softmax: one busy worker (3e5 random logits are one task)
        "stream-softmax": (lambda k: ["-e", "softmax", "-b", "numpy", "-d", "float32", "--logits", "random",
                                      "--points", "300000", "--workers", "1", "--classes", str(k)],
                           lambda k: loss.Options(experiments="softmax", backends="numpy", dtypes=["float32"],
                                                  logits="random", points=300000, classes=k),
                           "stream:1", (2, limits.MAX_CLASSES)),
        # streaming: no row estimate applies; the largest --keep over 2^25 random float32 logits
        "keep": (lambda p: [*ROW, "-d", "float32", "--logits", "random", "--points", str(p),
                            "--keep", str(limits.MAX_KEEP), "--workers", "2", "--csv", out_csv],
                 None, [], (2**25, 2**25)),
    }


class _file_shape:
    """While bisecting a CSV kind, the estimate sees the shape ``shape(n)`` (the file is written
    once, at the size found: counting real files for every probe would take minutes)."""

    def __init__(self, shape, n):
        self.shape, self.n = shape, n

    def __enter__(self):
        from stabench import inputs

        if self.shape is not None:
            self.saved = inputs.file_shape, inputs.file_has_labels
            inputs.file_shape, inputs.file_has_labels = (lambda p: self.shape(self.n)), (lambda p, *a: False)

    def __exit__(self, *exc):
        from stabench import inputs

        if self.shape is not None:
            inputs.file_shape, inputs.file_has_labels = self.saved


def _csv_kind(tmp: str, name: str, args: list, shape):
    """(argv builder, Options builder with ``.shape``) of a --logits-file CSV kind of ``shape(n)``."""
    path = os.path.join(tmp, name)

    def argv(n):
        rows, cols = shape(n)
        line = ",".join(["1"] * cols) + "\n"  # the shortest cell: the widest row under inputs.MAX_LINE_BYTES
        with open(path, "w") as f:
            for i in range(rows):
                f.write(line)
        return [*args, "--logits-file", path]

    def make(n):
        open(path, "a").close()  # the estimate checks the file exists and reads its extension
        return loss.Options(**dict(_options(args), logits_file=path))

    make.shape = shape
    return argv, make


def _options(args: list) -> dict:
    """loss.Options fields of a small argv (-e, -b, -d, --labels, --no-grad)."""
    names = {"-e": "experiments", "-b": "backends", "-d": "dtypes", "--labels": "labels"}
    out = {names[a]: args[i + 1] for i, a in enumerate(args) if a in names}
    if "-d" in args:
        out["dtypes"] = out["dtypes"].split(",")
    return out


def _fake_npy(tmp: str, n: int) -> str:
    """A .npy header claiming n float32 rows over a sparse file: what the estimate reads."""
    path = os.path.join(tmp, "fake.npy")
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
        f.truncate(f.tell() + 4 * n)
    return path


#: Runs stabench and reports its ru_maxrss. A small launcher of its own, because a child's
#: ru_maxrss includes the memory of the process it was forked from (Linux records the old
#: address space's high-water mark at exec), and this script has imported TensorFlow by then.
LAUNCHER = """
import resource, subprocess, sys
rc = subprocess.call([sys.executable, "-m", "stabench", "loss", *sys.argv[1:]], stdout=subprocess.DEVNULL)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def measure(argv: list[str]) -> tuple[int, float, float, int]:
    """(exit code, peak RSS of one process in bytes, peak tree RSS in bytes, wall s)."""
    import psutil

    p = subprocess.Popen([sys.executable, "-c", LAUNCHER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tree_peak = [0]
    done = threading.Event()

    def sample():
        try:
            launcher = psutil.Process(p.pid)
        except psutil.Error:
            return
        while not done.is_set():
            total = 0
            try:
                for q in launcher.children(recursive=True):  # stabench and its workers
                    try:
                        total += q.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            tree_peak[0] = max(tree_peak[0], total)
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    t.start()
    out, err = p.communicate()
    wall = time.perf_counter() - start
    done.set()
    t.join()
    rc, peak = (int(x) for x in out.split())
    if rc:
        print(err.decode(errors="replace")[-500:], file=sys.stderr)
    return rc, peak, tree_peak[0], wall


def _estimate(make_opts, outputs, n: int) -> float:
    """What the budget bounds for the request of size n (nan for kinds without an estimate)."""
    if not make_opts:
        return float("nan")
    if isinstance(outputs, str):
        return loss.stream_estimate(make_opts(n), int(outputs.split(":")[1]))
    with _file_shape(getattr(make_opts, "shape", None), n):
        return loss.budget_use(make_opts(n), outputs)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("kinds", nargs="*")
    a = ap.parse_args()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"budget {limits.MEMORY_BUDGET / GiB:g} GiB; {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"{'kind':<16} {'parameter':>12} {'estimate':>10} {'peak_rss':>10} {'tree_rss':>10} {'added':>9} "
          f"{'wall_s':>7}  rc")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (argv, make_opts, outputs, (lo, hi)) in kinds(tmp).items():
            if a.kinds and name not in a.kinds:
                continue
            n = _largest(make_opts, outputs, lo, hi) if make_opts else hi
            est = _estimate(make_opts, outputs, n)
            if a.quick:
                n = max(lo, n // 8)
            rc, peak, tree, wall = measure(argv(n))
            base = measure(argv(lo))[1]  # the same command at its smallest size
            print(f"{name:<16} {n:>12,} {est / GiB:>9.2f}G {peak / GiB:>9.2f}G {tree / GiB:>9.2f}G "
                  f"{(peak - base) / GiB:>8.2f}G {wall:>7.1f}  {rc}", flush=True)


if __name__ == "__main__":
    main()
