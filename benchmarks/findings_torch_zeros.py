"""Where PyTorch's ``binary_cross_entropy_with_logits`` returns 0 for a loss whose float32 value is
not 0 — every finite float32 logit, labels 0 and 1 (docs/findings.md, "Over every float32 logit").

Computed directly with torch (one thread, 2^24 logits per call) rather than through
``stabench loss --logits exhaustive``, which needs about 45 min for one torch method on 2 cores:
this only counts zeros, so it needs the reference only where torch returns 0. The reference is
float64 max(z, 0) − z·y + log1p(e^−|z|) rounded to float32; whether it rounds to 0 is decided far
from float64's last bits (e^z against 2^-150), so float64 decides it exactly.

    python benchmarks/findings_torch_zeros.py            # ~4 min on one AMD EPYC core
    python benchmarks/findings_torch_zeros.py --range -16 -14   # one slice
"""
import argparse
import json
import time

import numpy as np

from stabench import meta

CHUNK = 1 << 24
POS_INF = 0x7F800000  # float32 +inf's bits: every finite non-negative float32 lies below


def bit_ranges(lo: float, hi: float):
    """The float32 bit patterns of every finite float32 in [lo, hi], as (start, stop) pairs of
    uint32 ranges (negative values counted from −0 outward)."""
    def key(x):  # monotonic integer for a float32
        b = int(np.float32(x).view(np.uint32))
        return b if b < 0x80000000 else -(b - 0x80000000)
    k0, k1 = key(lo), key(min(hi, 3.4028235e38))
    k0 = max(k0, -(POS_INF - 1))
    out = []
    if k0 <= 0:  # negative side (−0 included) as bits 0x80000000 + m, m from -min(k1, 0) to -k0
        out.append((0x80000000 + max(-k1, 0), 0x80000000 - k0 + 1))
    if k1 >= 0:  # +0 too: like the tool, both zeros are logits
        out.append((max(k0, 0), min(k1, POS_INF - 1) + 1))
    return out


def zeros(lo: float, hi: float) -> dict:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)  # as the tool's streamed workers run it (metadata: torch_threads 1)
    found = {0: [], 1: []}
    cases = 0
    for start, stop in bit_ranges(lo, hi):
        for a in range(start, stop, CHUNK):
            z = np.arange(a, min(a + CHUNK, stop), dtype=np.uint32).view(np.float32)
            zt = torch.from_numpy(z)
            for y in (0, 1):
                v = F.binary_cross_entropy_with_logits(zt, torch.full_like(zt, float(y)),
                                                       reduction="none").numpy()
                cases += z.size
                hit = z[v == 0].astype(np.float64)
                ref = np.maximum(hit, 0) - hit * y + np.log1p(np.exp(-np.abs(hit)))
                found[y].append(hit[ref.astype(np.float32) != 0])
    cpu = meta.cpu_info()
    out = {"torch": torch.__version__, "cpu": cpu["model"], "cpu_vendor": cpu["vendor"],
           "range": [lo, hi], "cases": cases}
    for y, parts in found.items():
        z = np.concatenate(parts) if parts else np.empty(0)
        out[f"y{y}"] = {"zeros_of_a_nonzero_loss": int(z.size),
                        "z_min": float(np.float32(z.min())) if z.size else None,
                        "z_max": float(np.float32(z.max())) if z.size else None}
    out["total"] = out["y0"]["zeros_of_a_nonzero_loss"] + out["y1"]["zeros_of_a_nonzero_loss"]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--range", nargs=2, type=float, default=[-np.inf, np.inf], metavar=("LO", "HI"))
    a = p.parse_args()
    t = time.perf_counter()
    r = zeros(*a.range)
    r["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
