"""stabench.expr.search: the rectangles of a box where a precondition may hold (interval evaluation),
and sampling uniformly over the floats of the box that meet it, checked against exact arithmetic
(Fractions), an enumeration of every float16, and a plain numpy rejection sampler over bit patterns."""
from fractions import Fraction

import numpy as np
import pytest

from stabench import dtypes
from stabench.errors import InputError
from stabench.expr import fpcore, search
from stabench.expr import variables as V

F16, F64 = dtypes.get("float16"), dtypes.get("float64")


def pre(text, args):
    """The :pre of an FPCore as a tree (the whole precondition, box bounds included)."""
    return fpcore.read(f"(FPCore ({args}) :pre {text} 0)")[0].pre


def box(n=100, **bounds):
    return V.from_box({k: tuple(map(Fraction, v)) for k, v in bounds.items()}, n, list(bounds))


def ordinals64(a):
    i = np.asarray(a, dtype=np.float64).view(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFFFFFFFFFF), i)


def from_ordinals64(k):
    k = np.asarray(k, dtype=np.int64)
    return np.where(k < 0, (-k) | np.int64(-0x8000000000000000), k).view(np.float64)


def in_regions(found, pts, names):
    """Whether each point lies in some region (ordinal bounds per variable)."""
    inside = np.zeros(len(pts[names[0]]), dtype=bool)
    k = {n: ordinals64(pts[n]) for n in names}
    for r in found:
        m = np.ones_like(inside)
        for n, (lo, hi) in zip(names, r.bounds):
            m &= (k[n] >= lo) & (k[n] <= hi)
        inside |= m
    return inside


# ---- regions ---------------------------------------------------------------------------------------

def test_regions_of_x_above_a_half():
    vs = box(x=("0", "1"))
    found = search.regions(pre("(> x 1/2)", "x"), vs, F64)
    assert found and any(r.certain for r in found)
    lo = from_ordinals64([r.bounds[0][0] for r in found])
    # nothing at or below 0.49 is kept; a certain region starts above 1/2 and reaches 1
    assert lo.min() > 0.49
    for r in found:
        a, b = from_ordinals64(np.array(r.bounds[0]))
        assert r.weight == r.bounds[0][1] - r.bounds[0][0] + 1
        if r.certain:
            assert a > 0.5 and b <= 1
    assert max(from_ordinals64([r.bounds[0][1] for r in found])) == 1.0
    # the kept weight is about the floats of (1/2, 1]: one binade, 2^52 of them (+ the sliver)
    total = sum(r.weight for r in found)
    assert 2**52 <= total <= 2**52 * 1.02


def test_regions_whole_box_when_certain_and_empty_when_impossible():
    vs = box(x=("1", "2"))
    (r,) = search.regions(pre("(> x 0)", "x"), vs, F64)
    assert r.certain and r.weight == 2**52 + 1  # every float of [1, 2]
    assert search.regions(pre("(< x 0)", "x"), vs, F64) == []
    vs2 = box(x=("0", "1"), y=("0", "1"))
    assert search.regions(pre("(> (+ x y) 3)", "x y"), vs2, F64) == []


def test_regions_cover_every_satisfying_point():
    # x·y > 1 over [1e-3, 1e3]²: a random point of the box that meets it lies in a kept region
    vs = box(x=("1/1000", "1000"), y=("1/1000", "1000"))
    found = search.regions(pre("(> (* x y) 1)", "x y"), vs, F64)
    assert 1 < len(found) <= search.MAX_REGIONS and any(r.certain for r in found)
    rng = np.random.default_rng(1)
    lo, hi = ordinals64([1e-3, 1e3])
    lo += 1  # 1e-3 rounded inward is the float above it
    x = from_ordinals64(rng.integers(lo, hi, 200_000, endpoint=True))
    y = from_ordinals64(rng.integers(lo, hi, 200_000, endpoint=True))
    ok = np.array([Fraction(a) * Fraction(b) > 1 for a, b in zip(x[:20000], y[:20000])])
    assert in_regions(found, {"x": x[:20000][ok], "y": y[:20000][ok]}, ["x", "y"]).all()
    # certain regions hold everywhere: their lowest corner (x·y increasing) already meets it
    for r in found:
        if r.certain:
            a, b = from_ordinals64([r.bounds[0][0], r.bounds[1][0]])
            assert Fraction(a) * Fraction(b) > 1
    # and the dropped part is large: about half the box's weight is kept
    total = sum(r.weight for r in found)
    assert 0.4 < total / float(hi - lo + 1) ** 2 < 0.7


# ---- sample ---------------------------------------------------------------------------------------

def test_sample_impossible_raises_one_line():
    for text, args, bnds in (("(< x 0)", "x", dict(x=("1", "2"))),
                             ("(> (+ x y) 3)", "x y", dict(x=("0", "1"), y=("0", "1")))):
        with pytest.raises(InputError) as e:
            search.sample(pre(text, args), box(**bnds), F64, 0, 100)
        msg = str(e.value)
        assert "\n" not in msg and "holds nowhere" in msg


def test_sample_every_point_meets_the_precondition_exactly():
    vs = box(x=("1/1000", "1000"), y=("1/1000", "1000"))
    s = search.sample(pre("(> (* x y) 1)", "x y"), vs, F64, 0, 20000)
    x, y = s.points["x"], s.points["y"]
    assert len(x) == len(y) == 20000
    assert all(Fraction(a) * Fraction(b) > 1 for a, b in zip(x, y))
    assert x.min() >= 1e-3 and x.max() <= 1e3 and y.min() >= 1e-3 and y.max() <= 1e3
    assert s.tried == 20000 + s.rejected and s.rejected > 0
    # the search leaves little to reject: far fewer than plain rejection sampling's ~50%
    assert s.rejected < 0.1 * s.tried


def test_sample_matches_plain_rejection_over_bit_patterns():
    """Per x-binade counts against a numpy rejection sampler over the box's bit patterns."""
    vs = box(x=("1/1000", "1000"), y=("1/1000", "1000"))
    n = 40000
    s = search.sample(pre("(> (* x y) 1)", "x y"), vs, F64, 3, n)
    rng = np.random.default_rng(7)
    lo, hi = ordinals64([1e-3, 1e3])
    x = from_ordinals64(rng.integers(lo + 1, hi, 600_000, endpoint=True))
    y = from_ordinals64(rng.integers(lo + 1, hi, 600_000, endpoint=True))
    keep = x * y > 1  # the float product decides all but a negligible sliver
    e_ref = np.floor(np.log2(x[keep])).astype(int)
    e_got = np.floor(np.log2(s.points["x"])).astype(int)
    bins = np.arange(-10, 11)
    p = np.array([(e_ref == b).mean() for b in bins])
    got = np.array([(e_got == b).sum() for b in bins])
    expect = p * n
    use = expect > 20
    chi2 = float(((got[use] - expect[use]) ** 2 / expect[use]).sum())
    dof = int(use.sum()) - 1
    assert dof >= 15 and chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof, got, expect.round())
    # the y side too: y's binades lean high where x is small
    ey_ref = np.floor(np.log2(y[keep])).astype(int)
    ey_got = np.floor(np.log2(s.points["y"])).astype(int)
    py = np.array([(ey_ref == b).mean() for b in bins]) * n
    gy = np.array([(ey_got == b).sum() for b in bins])
    use = py > 20
    chi2 = float(((gy[use] - py[use]) ** 2 / py[use]).sum())
    assert chi2 < use.sum() - 1 + 6 * np.sqrt(2 * (use.sum() - 1))


def test_sample_float16_uniform_over_the_satisfying_floats():
    """Every float16 of [0, 10] with sin(x) > 1/2 enumerated: the sample hits only them, each about
    equally often (chi-square over the two arcs and over value groups)."""
    vs = box(x=("0", "10"))
    allf = np.arange(0, 0x4900 + 1, dtype=np.uint16).view(np.float16).astype(np.float64)  # 0 … 10
    assert allf[-1] == 10.0
    sat = allf[np.sin(allf) > 0.5]  # far from the crossings in float64: |sin x − 1/2| > 1e-4 at float16 x
    n = 30 * len(sat)
    s = search.sample(pre("(> (sin x) 1/2)", "x"), vs, F16, 0, n)
    x = s.points["x"]
    assert len(x) == n and np.isin(x, sat).all()
    counts = np.array([(x == v).sum() for v in sat]) if len(sat) < 4000 else None
    assert counts is not None and counts.min() > 0
    chi2 = float(((counts - 30) ** 2 / 30).sum())
    dof = len(sat) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)
    second = (x > 5).mean()
    want = (sat > 5).mean()
    assert abs(second - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-9


def test_sample_is_deterministic_by_seed():
    vs = box(x=("-1", "1"), y=("-1", "1"))
    p = pre("(< (+ (* x x) (* y y)) 1/4)", "x y")
    a = search.sample(p, vs, F64, 5, 500)
    b = search.sample(p, vs, F64, 5, 500)
    c = search.sample(p, vs, F64, 6, 500)
    assert (a.points["x"] == b.points["x"]).all() and (a.points["y"] == b.points["y"]).all()
    assert (a.rejected, a.tried) == (b.rejected, b.tried)
    assert (a.points["x"] != c.points["x"]).mean() > 0.95
    # inside the disc, exactly
    assert all(Fraction(u) ** 2 + Fraction(v) ** 2 < Fraction(1, 4) for u, v in zip(a.points["x"], a.points["y"]))


def test_rejected_counts_only_exact_check_failures():
    # a precondition certain on the whole box: nothing drawn is rejected
    s = search.sample(pre("(> x 0)", "x"), box(x=("1", "2")), F64, 0, 1000)
    assert s.rejected == 0 and s.tried == 1000
    # x > 1/2 over [0, 1]: the sliver around 1/2 is checked exactly; its failures are the rejected
    s = search.sample(pre("(> x 1/2)", "x"), box(x=("0", "1")), F64, 0, 5000)
    x = s.points["x"]
    assert (x > 0.5).all() and s.tried == 5000 + s.rejected
    # expected: the kept weight of the undecided regions' floats ≤ 1/2, over all the kept weight
    found = search.regions(pre("(> x 1/2)", "x"), box(x=("0", "1")), F64)
    half = int(ordinals64(0.5))
    bad = sum(max(0, min(r.bounds[0][1], half) - r.bounds[0][0] + 1) for r in found if not r.certain)
    p_rej = bad / sum(r.weight for r in found)
    assert 0 < p_rej < 0.05
    want = p_rej * s.tried
    assert abs(s.rejected - want) < 4 * np.sqrt(want), (s.rejected, want)
    assert 0.73 < x.mean() < 0.77  # one binade: uniform bit patterns are uniform values


def test_searchable():
    assert search.searchable(box(x=("0", "1"), y=("1", "1")))
    assert not search.searchable(V.parse_vars(["x=1,2"]))
    assert not search.searchable([])


def test_a_fixed_variable_and_a_range():
    # y fixed at 3 (lo == hi): only x is split; x·y > 1 means x > 1/3
    vs = box(x=("0", "1"), y=("3", "3"))
    s = search.sample(pre("(> (* x y) 1)", "x y"), vs, F64, 0, 2000)
    assert (s.points["y"] == 3).all()
    assert all(Fraction(a) * 3 > 1 for a in s.points["x"])


# 17 unbounded float64 variables: ~2^1088 floats, beyond a float64 weight (fixed: exact ratios)
def test_sample_many_unbounded_variables():
    names = [f"a{i}" for i in range(17)]
    vs = V.from_box({}, 10, names)
    s = search.sample(pre("(< 0 (+ a0 a1))", " ".join(names)), vs, F64, 0, 10)
    assert len(s.points["a0"]) == 10 and (s.points["a0"] + s.points["a1"] > 0).all()
