"""Herbie's sampling (issue 23): random draws inside LO..HI uniform over the dtype's ordinals, paired
random variables crossed with the grid of the others, the filtered sampler of FPCore preconditions
and the variables of a precondition's box."""
import bisect
import time
from fractions import Fraction as Q

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabench import dtypes
from stabench.errors import InputError
from stabench.expr import variables as V

F16, BF16, F32, F64 = (dtypes.get(n) for n in ("float16", "bfloat16", "float32", "float64"))
FNUZ = dtypes.get("float8_e4m3fnuz")


def vals(spec, dt, seed=0, index=0):
    return V.values(V.parse_var(spec, index), dt, seed)


def bits16(v):
    return v.astype(np.float16).view(np.uint16).astype(np.int64)


# -- ranged random: uniform over the ordinals of [LO, HI] ------------------------------------------

def test_uniform_over_ordinals_every_binade_alike():
    # float16 1..4: 1024 floats in [1, 2), 1024 in [2, 4), and 4 itself: 2049 ordinals
    v = vals("x=1..4:random:20000", F16, seed=0)
    assert v.min() == 1.0 and v.max() <= 4.0 and len(v) == 20000
    below2 = int((v < 2).sum())
    p = 1024 / 2049
    assert abs(below2 / 20000 - p) < 4 * np.sqrt(p * (1 - p) / 20000)  # 4σ = 0.014
    # chi-square over 8 bins of 256 ordinals (1.0 up to 4 − ulp): df 7, 0.1% critical value 24.3
    k = bits16(v[v < 4]) - int(np.float16(1).view(np.uint16))
    counts = np.bincount(k // 256, minlength=8)
    expected = counts.sum() / 8
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert len(counts) == 8 and chi2 < 24.3, (counts, chi2)


def test_float64_wide_range_spreads_over_binades():
    # 1e-300..1e300: log10 of the draws is close to uniform over [−300, 300] (ordinals ∝ binades)
    v = vals("x=1e-300..1e300:random:20000", F64, seed=3)
    lg = np.log10(v)
    assert lg.min() >= -300 and lg.max() <= 300
    assert abs(np.median(lg)) < 10 and 130 < np.percentile(lg, 75) < 170
    # a lin range would put ~all points above 1e299; a uniform value draw too
    assert (lg < 0).mean() == pytest.approx(0.5, abs=0.02)


def test_ends_included_and_rounded_inward():
    # float16 1..1.01: 1, 1+2^-10, …, 1+10·2^-10 = 1.009765625 (1.01 rounds inward, down)
    v = vals("x=1..1.01:random:2000", F16)
    assert sorted(set(v)) == [1 + i / 1024 for i in range(11)]
    # −max..max reaches both ends in a format this small (float8_e4m3fn: 253 finite values + −0)
    e4 = dtypes.get("float8_e4m3fn")
    v = vals("x=-max..max:random:20000", e4)
    assert v.min() == -448 and v.max() == 448 and len(np.unique(bits16_of(v, e4))) == 254


def bits16_of(v, dt):
    return dt.cast(v).view(dt.uint)


def test_a_range_of_one_float():
    # float16 has only 1.0 in [0.99999, 1.00001] (its neighbours are 1 − 2^-11 and 1 + 2^-10)
    v = vals("x=0.99999..1.00001:random:50", F16)
    assert list(v) == [1.0] * 50
    assert list(vals("x=5..5:random:3", F32)) == [5.0] * 3
    assert list(vals("x=max..max:random:2", F16)) == [65504.0, 65504.0]


def test_empty_range_refused_naming_variable_dtype_and_range():
    var = V.parse_var("x=1.0001..1.0002:random:10")
    with pytest.raises(InputError) as e:
        V.values(var, F16, 0)
    msg = str(e.value)
    assert "\n" not in msg and "variable x" in msg and "float16" in msg and "1.0001..1.0002" in msg
    assert len(V.values(var, F32, 0)) == 10  # float32 has floats there: 1.0001..1.0002 holds 839
    with pytest.raises(InputError, match="no finite float16 value lies in 1.0001..1.0002"):
        V.check([var], ["x"], [F32, F16])  # refused before any work too
    V.check([var], ["x"], [F32, F64])
    with pytest.raises(InputError, match="no finite float16 value lies in 70000..80000"):
        vals("x=70000..80000:random:5", F16)
    with pytest.raises(InputError, match="no finite float16 value lies in max..1"):
        vals("x=max..1:random:5", F16)


def test_signed_zeros_both_on_the_ordinal_line():
    # 0..0 holds two bit patterns, −0 and +0, drawn alike
    v = vals("x=0..0:random:10000", F32)
    neg = int(np.signbit(v).sum())
    assert (v == 0).all() and 4700 < neg < 5300
    # float16 −1e-7..1e-7: −2^-24, −0, +0, 2^-24: four ordinals, each about a quarter
    v = vals("x=-1e-7..1e-7:random:20000", F16)
    ss = F16.smallest_subnormal
    groups = [(v == -ss).sum(), ((v == 0) & np.signbit(v)).sum(), ((v == 0) & ~np.signbit(v)).sum(), (v == ss).sum()]
    assert sum(groups) == 20000 and all(4600 < g < 5400 for g in groups), groups
    # an end at 0 is a value: 0..2^-24 holds −0, +0 and 2^-24
    v = vals(f"x=0..{ss!r}:random:3000", F16)
    assert set(map(float, v)) == {0.0, ss} and np.signbit(v).any() and (np.signbit(v) & (v != 0)).sum() == 0
    # a format without −0 (fnuz: 0x80 is its nan) has one zero
    v = vals("x=0..0:random:100", FNUZ)
    assert (v == 0).all() and not np.signbit(v).any()
    v = vals("x=-max..max:random:5000", FNUZ)
    assert np.isfinite(v).all() and not (np.signbit(v) & (v == 0)).any()


def test_minus_max_to_max_is_the_set_of_plain_random():
    # both: every finite bit pattern of float8_e5m2 (2·123 nonzero finite values + 2 zeros = 248)
    e5 = dtypes.get("float8_e5m2")
    a = np.unique(bits16_of(vals("x=-max..max:random:30000", e5), e5))
    b = np.unique(bits16_of(vals("x=random:30000", e5), e5))
    assert len(a) == 248 and np.array_equal(a, b)


_EVERY16 = sorted(Q(float(f)) for f in V.values(V.parse_var("x=exhaustive"), F16, 0))  # −0 and +0 both


@settings(max_examples=300, deadline=None)
@given(st.fractions(min_value=-70000, max_value=70000), st.fractions(min_value=-70000, max_value=70000))
def test_ordinal_range_counts_every_float16_bit_pattern_in_the_range(a, b):
    lo, hi = min(a, b), max(a, b)
    inside = bisect.bisect_right(_EVERY16, hi) - bisect.bisect_left(_EVERY16, lo)
    var = V.from_box({"x": (lo, hi)}, 1, ["x"])[0]
    if var.kind == "values":
        return
    if inside == 0:
        with pytest.raises(InputError, match="no finite float16 value"):
            V._ordinal_range(var, F16)
        return
    first, last = V._ordinal_range(var, F16)
    assert last - first + 1 == inside
    ends = V._from_ordinals(np.array([first, last], dtype=np.int64), F16)
    assert Q(ends[0]) >= lo and Q(ends[1]) <= hi


def test_every_dtype_draws_inside_its_range():
    for dt in (F16, BF16, F32, F64, dtypes.get("float8_e4m3fn"), dtypes.get("float8_e5m2"), FNUZ):
        v = vals("x=-3.5..0.25:random:4000", dt)
        assert np.isfinite(v).all() and v.min() >= -3.5 and v.max() <= 0.25 and len(v) == 4000
        assert np.array_equal(dt.cast(v).astype(np.float64), v)  # values of the dtype


# -- determinism ----------------------------------------------------------------------------------

def test_seeded_by_seed_and_index():
    a = vals("x=-2..3:random:500", F32, seed=7, index=1)
    assert np.array_equal(a, vals("x=-2..3:random:500", F32, seed=7, index=1))
    assert not np.array_equal(a, vals("x=-2..3:random:500", F32, seed=8, index=1))
    assert not np.array_equal(a, vals("x=-2..3:random:500", F32, seed=7, index=2))
    # plain random:N is unchanged: the first draws of the generator seeded [seed, index]
    assert np.array_equal(vals("x=random:100", F16, seed=1), vals("x=random:100", F16, seed=1))


# -- pairing --------------------------------------------------------------------------------------

def test_random_variables_are_paired():
    vs = V.parse_vars(["x=random:50", "y=1..2:random:50"])
    assert V.count(vs) == 50
    g = V.grid(vs, F64, 4)
    assert np.array_equal(g["x"], V.values(vs[0], F64, 4)) and np.array_equal(g["y"], V.values(vs[1], F64, 4))
    V.check(vs, ["x", "y"], [F64])


@pytest.mark.parametrize("call", ["count", "grid", "check", "sample"])
def test_different_n_refused(call):
    vs = V.parse_vars(["x=random:1000", "a=1,2", "y=0..1:random:500"])
    with pytest.raises(InputError) as e:
        {"count": lambda: V.count(vs), "grid": lambda: V.grid(vs, F32, 0),
         "check": lambda: V.check(vs, ["x", "a", "y"], [F32]),
         "sample": lambda: V.sample(vs, F32, 0, lambda p: p["x"] > 0)}[call]()
    assert str(e.value) == ("random variables are paired point by point: x has 1000 points, y has 500; "
                            "give them the same N")


def test_grid_crossed_with_the_paired_axis():
    vs = V.parse_vars(["a=1,2,3", "x=random:4", "b=10,20", "y=0..1:random:4"])
    assert V.count(vs) == 3 * 4 * 2 and [v.size() for v in vs] == [3, 4, 2, 4]
    g = V.grid(vs, F64, 0)
    assert list(g) == ["a", "x", "b", "y"] and all(len(a) == 24 for a in g.values())
    x, y = V.values(vs[1], F64, 0), V.values(vs[3], F64, 0)
    # a slowest, then the paired draws (together), then b fastest
    assert list(g["a"]) == [1] * 8 + [2] * 8 + [3] * 8
    assert list(g["b"]) == [10, 20] * 12
    assert np.array_equal(g["x"], np.tile(np.repeat(x, 2), 3)) and np.array_equal(g["y"], np.tile(np.repeat(y, 2), 3))
    # points too many: the paired axis counts once
    big = V.parse_vars(["x=random:2000000", "y=random:2000000", "b=1,2"])
    with pytest.raises(InputError, match=r"grid too large: 2,000,000 \(x, y paired\) × 2 = 4,000,000 points"):
        V.check(big, ["x", "y", "b"], [F32])
    V.check(V.parse_vars(["x=random:2000000", "y=random:2000000"]), ["x", "y"], [F32])


# -- the filtered sampler -------------------------------------------------------------------------

def test_filter_rejecting_about_90_percent():
    # within one binade the ordinals are evenly spaced: x < 1.1 holds 10% of 1..2's floats
    vs = V.parse_vars(["x=1..2:random:1000", "y=random:1000"])
    s = V.sample(vs, F64, 5, lambda p: p["x"] < 1.1)
    n = len(s.points["x"])
    assert n == 1000 and len(s.points["y"]) == 1000 and (s.points["x"] < 1.1).all()
    assert s.tried == n + s.rejected and 8500 < s.tried < 11500, s
    again = V.sample(vs, F64, 5, lambda p: p["x"] < 1.1)  # deterministic
    assert (again.tried, again.rejected) == (s.tried, s.rejected)
    assert all(np.array_equal(again.points[k], s.points[k]) for k in ("x", "y"))
    # the first batch is the unfiltered run's: with a filter that takes all, the grid itself
    t = V.sample(vs, F64, 5, lambda p: np.ones(len(p["x"]), bool))
    g = V.grid(vs, F64, 5)
    assert t.rejected == 0 and t.tried == 1000 and all(np.array_equal(t.points[k], g[k]) for k in g)
    u = V.sample(vs, F64, 5)
    assert u.rejected == 0 and u.tried == 1000 and np.array_equal(u.points["y"], g["y"])


def test_filter_bound_returns_what_passed():
    vs = V.parse_vars(["x=1..2:random:1000"])
    s = V.sample(vs, F64, 0, lambda p: p["x"] < 1.1, max_tries=3000)
    n = len(s.points["x"])
    assert s.tried == 3000 and s.rejected == 3000 - n and 230 < n < 370
    assert V.tries_bound(1000) == 100_000 and V.tries_bound(10_000) == 1_000_000


def test_filter_with_a_grid_crossed():
    # one binade: x > 1.25 holds 75% of 1..2, x > 1.5 50%, y < 1.5 50%: 31% of the points pass
    vs = V.parse_vars(["a=1,2", "x=1..2:random:300", "y=1..2:random:300"])
    s = V.sample(vs, F64, 1, lambda p: (p["x"] > 1 + 0.25 * p["a"]) & (p["y"] < 1.5))
    n = len(s.points["x"])
    assert n == 600 and s.tried == n + s.rejected and 1600 < s.tried < 2300, s.tried
    p = s.points
    assert ((p["x"] > 1 + 0.25 * p["a"]) & (p["y"] < 1.5)).all() and set(p["a"]) == {1.0, 2.0}


def test_filter_rejecting_everything_is_bounded_and_one_line():
    vs = V.parse_vars(["x=random:1000", "y=-1..1:random:1000"])
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        V.sample(vs, F64, 0, lambda p: p["x"] > np.nan)  # nan comparisons are False
    assert time.perf_counter() - t0 < 3
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("the precondition rejected all 100,000 sampled points of x, y in float64")
    # a grid alone is filtered once: every one of its points tried
    with pytest.raises(InputError, match="rejected all 6 sampled points of a, b in float32 \\(the whole grid\\)"):
        V.sample(V.parse_vars(["a=1,2,3", "b=4,5"]), F32, 0, lambda p: p["a"] > 10)
    s = V.sample(V.parse_vars(["a=1,2,3", "b=4,5"]), F32, 0, lambda p: p["a"] + p["b"] > 6.5)
    assert list(s.points["a"]) == [2, 3, 3] and list(s.points["b"]) == [5, 4, 5] and (s.rejected, s.tried) == (3, 6)


def test_a_constant_filter_is_broadcast():
    s = V.sample(V.parse_vars(["x=0..1:random:10"]), F32, 0, lambda p: True)
    assert len(s.points["x"]) == 10 and s.rejected == 0


# -- from_box -------------------------------------------------------------------------------------

def test_from_box_unbounded_sides_are_every_finite_float():
    vs = V.from_box({"x": (None, None), "y": (Q(0), None)}, 1000, ["x", "y", "z"])
    assert [v.name for v in vs] == ["x", "y", "z"] and [v.index for v in vs] == [0, 1, 2]
    assert all(v.kind == "random" and v.count == 1000 for v in vs)
    assert (vs[0].lo, vs[0].hi, vs[2].lo, vs[1].hi) == ("-max", "max", "-max", "max")
    x = V.values(vs[0], F64, 0)
    assert np.isfinite(x).all() and np.median(np.abs(np.log10(np.abs(x[x != 0])))) > 100
    y = V.values(vs[1], F16, 0)
    assert y.min() >= 0 and y.max() <= 65504
    assert V.count(vs) == 1000


def test_from_box_fraction_ends_round_inward():
    # float16 near 1/3 (spacing 2^-12): 1365/4096 < 1/3 < 1366/4096; the nearest to 1/3 is 1365/4096
    third = Q(1, 3)
    up = V.from_box({"x": (third, third + Q(1, 4096))}, 20, ["x"])[0]
    assert set(V.values(up, F16, 0)) == {1366 / 4096}  # the smallest float16 ≥ 1/3
    down = V.from_box({"x": (third - Q(1, 4096), third)}, 20, ["x"])[0]
    assert set(V.values(down, F16, 0)) == {1365 / 4096}  # the largest float16 ≤ 1/3
    assert "1/3" in up.spec
    # exactly at max, and just past it (65504 < 65505 < 65520, the overflow threshold)
    assert set(V.values(V.from_box({"x": (Q(65504), None)}, 5, ["x"])[0], F16, 0)) == {65504.0}
    with pytest.raises(InputError, match="no finite float16 value lies in 65505..max"):
        V.values(V.from_box({"x": (Q(65505), None)}, 5, ["x"])[0], F16, 0)
    with pytest.raises(InputError, match="no finite float64 value lies in"):
        V.values(V.from_box({"x": (Q(10) ** 400, None)}, 5, ["x"])[0], F64, 0)
    lo = V.values(V.from_box({"x": (-Q(10) ** 400, Q(-1))}, 200, ["x"])[0], F32, 0)
    assert lo.max() <= -1 and np.isfinite(lo).all()
    # a tiny positive end stays positive: no zero is drawn
    tiny = V.from_box({"x": (Q(1, 10**30), Q(1))}, 3000, ["x"])[0]
    assert V._ordinal_range(tiny, F16) == (1, int(np.float16(1).view(np.uint16)))  # 2^-24 up to 1
    assert V.values(tiny, F16, 0).min() > 0


def test_from_box_single_values_and_empty_bounds():
    v = V.from_box({"x": (Q(1, 10), Q(1, 10))}, 100, ["x"])[0]
    assert v.kind == "values" and v.size() == 1 and v.spec == "0.1"
    assert list(V.values(v, F16, 0)) == [float(np.float16(0.1))]  # rounded to nearest, as a literal
    with pytest.raises(InputError) as e:
        V.from_box({"y": (Q(2), Q(1, 2))}, 100, ["y"])
    assert str(e.value) == "the precondition's bounds on y are empty: 2 > 0.5"
    with pytest.raises(InputError, match="between 1 and 2,000,000"):
        V.from_box({}, 0, ["x"])
    # a box mixing a single value and ranges: the single value is a grid axis of one point
    vs = V.from_box({"a": (Q(3), Q(3)), "x": (Q(0), Q(1))}, 64, ["a", "x"])
    assert V.count(vs) == 64 and set(V.grid(vs, F64, 0)["a"]) == {3.0}
