"""docs/expr.md's comparison of Hamming chapter 3 with the original-program bits Herbie publishes.

    python benchmarks/fpbench_hamming.py [--points 8000] [--seed 0] [--markdown]

Runs benchmarks/fpbench/hamming-ch3.fpcore in float64 through the API (``fpcore_plan``,
``run_fpcore``) and prints, per benchmark, the body's mean bits of error three ways:

- ``stabench``: as ``stabench expr --fpcore`` reports it (FPBench's :pre, every scored point);
- ``finite``: only the points whose exact value is a finite float64 — Herbie keeps a sampled point
  only when its exact value is an "ordinary" float (herbie/points.rkt ``filter-points`` at
  8f0632b), so a point where the exact value overflows (exp(x) − 1 at x = 710: the program's inf is
  then correctly rounded, 0 bits) counts for stabench and not for Herbie;
- ``herbie ranges``: for the five benchmarks whose Herbie runs drew their inputs from a narrower
  range (bench/hamming/series.rkt at 8f0632b, the same ranges as the 2017 :pre), the body run again
  with that range as its :pre (finite exact values only);

beside Herbie's two published figures (benchmarks/fpbench/herbie_hamming.csv: www/results.json of
2015 and 2017, 256 points each) and the spread of a 256-point mean of the stabench rows (the
standard deviation of 400 random 256-point subsets: what Herbie's sample size alone moves).
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "fpbench"

#: The sampling ranges of Herbie's 2015 bench/hamming/series.rkt (8f0632b), as FPCore :pre; its
#: 2017 results.json records the same ranges as :pre.
HERBIE_RANGES = {
    "NMSE example 3.7": ("(x)", "(< -0.00017 x)", "(- (exp x) 1)"),
    "NMSE example 3.8": ("(N)", "(> N 6.8e15)", "(- (- (* (+ N 1) (log (+ N 1))) (* N (log N))) 1)"),
    "NMSE example 3.9": ("(x)", "(and (< -0.026 x) (< x 0.026) (!= x 0))", "(- (/ 1 x) (/ 1 (tan x)))"),
    "NMSE example 3.10": ("(x)", "(and (< -1 x) (< x 1))", "(/ (log (- 1 x)) (log (+ 1 x)))"),
    "NMSE problem 3.4.2": ("(a b eps)", "(and (< -1 eps) (< eps 1) (!= eps 0))",
                           "(/ (* eps (- (exp (* (+ a b) eps)) 1)) (* (- (exp (* a eps)) 1) (- (exp (* b eps)) 1)))"),
}


def herbie() -> dict:
    """name → {year: bits} from herbie_hamming.csv."""
    out: dict = {}
    with open(SUITE / "herbie_hamming.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            year = "2015" if "2015" in r["herbie_version"] else "2017"
            out.setdefault(r["name"], {})[year] = float(r["herbie_start_bits"])
    return out


def _bits(rows, finite_only: bool) -> tuple[float, float]:
    body = rows[(rows["form"] == "body") & (rows["status"] != "invalid-input")]
    if finite_only:
        body = body[np.isfinite(body["reference"].to_numpy(dtype=float))]
    b = body["bits_error"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    spread = float(np.std([b[rng.choice(len(b), 256, replace=False)].mean() for _ in range(400)])) if len(b) >= 256 else np.nan
    return float(b.mean()), spread


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=None, help="points per benchmark (default: the tool's, 8,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true", help="a Markdown table (docs/expr.md)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from stabench.experiments import expr as E

    rows, _ = E.run_fpcore(E.fpcore_plan(SUITE / "hamming-ch3.fpcore", None, "float64", seed=a.seed, points=a.points))
    text = "\n".join(f'(FPCore {args} :name "{name}" :pre {pre} {body})'
                     for name, (args, pre, body) in HERBIE_RANGES.items())
    ranged, _ = E.run_fpcore(E.fpcore_plan_text(text, None, "float64", seed=a.seed, points=a.points))
    pub = herbie()
    head = ["benchmark", "Herbie 2015", "Herbie 2017", "stabench", "finite", "herbie ranges", "±256"]
    lines = []
    for name, g in rows.groupby("benchmark", sort=False):
        mean, _ = _bits(g, False)
        fin, spread = _bits(g, True)
        r = ranged[ranged["benchmark"] == name]
        rng_bits = f"{_bits(r, True)[0]:.2f}" if len(r) else ""
        h = pub.get(name, {})
        lines.append([name, f"{h.get('2015', np.nan):.2f}", f"{h.get('2017', np.nan):.2f}", f"{mean:.2f}",
                      f"{fin:.2f}", rng_bits, f"{spread:.2f}"])
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for ln in lines:
            print("| " + " | ".join(ln) + " |")
    else:
        w = [max(len(x) for x in col) for col in zip(head, *lines)]
        for ln in [head] + lines:
            print("  ".join(x.rjust(n) if i else x.ljust(n) for i, (x, n) in enumerate(zip(ln, w))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
