"""--var specs: every accepted form, nonsense refused with the accepted forms, grids and limits."""
import numpy as np
import pytest

from stabench import dtypes
from stabench.errors import InputError
from stabench.expr import variables as V

F16, BF16, F32, F64 = (dtypes.get(n) for n in ("float16", "bfloat16", "float32", "float64"))


def vals(spec, dt, seed=0):
    return V.values(V.parse_var(spec), dt, seed)


def test_value_and_list_round_once_to_the_dtype():
    assert list(vals("n=10000", BF16)) == [9984.0]
    assert list(vals("n=10000", F32)) == [10000.0]
    assert list(vals("x=0.1,1e5,-2", F16)) == [float(np.float16(0.1)), np.inf, -2.0]
    v = vals("x=nan,inf,-inf,1e999", F32)
    assert np.isnan(v[0]) and list(v[1:]) == [np.inf, -np.inf, np.inf]


def test_ranges():
    v = vals("x=1e-8..1e8:log:17", F64)
    assert len(v) == 17 and v[0] == 1e-8 and v[-1] == 1e8 and np.allclose(np.diff(np.log10(v)), 1)
    v = vals("x=-1..1:lin:101", F32)
    assert len(v) == 101 and v[0] == -1 and v[50] == 0 and v[-1] == 1
    assert vals("x=1..max:log:3", F16)[-1] == 65504.0
    v = vals("x=-max..max:lin:3", F64)
    assert list(v) == [-F64.max, 0.0, F64.max]
    assert list(vals("x=5..5:lin:2", F32)) == [5.0, 5.0]


def test_random_is_seeded_finite_and_per_variable():
    a, b = vals("x=random:1000", F16, 1), vals("x=random:1000", F16, 1)
    assert np.array_equal(a, b) and np.isfinite(a).all() and len(a) == 1000
    assert not np.array_equal(a, vals("x=random:1000", F16, 2))
    x, y = V.parse_var("x=random:50", 0), V.parse_var("y=random:50", 1)
    assert not np.array_equal(V.values(x, F32, 0), V.values(y, F32, 0))
    # uniform over bit patterns: magnitudes spread over the whole range, not around 1
    r = vals("x=random:20000", F64, 0)
    assert np.median(np.abs(np.log10(np.abs(r[r != 0])))) > 100


def test_exhaustive_every_finite_16bit_value():
    assert len(vals("x=exhaustive", F16)) == 63_488
    v = vals("x=exhaustive", BF16)
    assert len(v) == 65_280 and np.isfinite(v).all()


def test_grid_is_every_combination():
    vs = V.parse_vars(["x=1,2,3", "y=10,20"])
    g = V.grid(vs, F32, 0)
    assert list(g["x"]) == [1, 1, 2, 2, 3, 3] and list(g["y"]) == [10, 20] * 3


@pytest.mark.parametrize("spec, message", [
    ("x", "expected NAME=SPEC"),
    ("=1", "is not a variable name"),
    ("1x=1", "is not a variable name"),
    ("x=", "empty spec"),
    ("x=abc", "'abc' is not a decimal number"),
    ("x=1,,2", "empty item"),
    ("x=1..2", "a range is LO..HI:log:N, LO..HI:lin:N or LO..HI:random:N"),
    ("x=1..2:foo:3", "range scale 'foo' is not 'log', 'lin' or 'random'"),
    ("x=2..1:random:5", "a random range needs LO <= HI, got 2 > 1"),
    ("x=1..2:random:0", "between 1 and"),
    ("x=1..inf:random:5", "must be finite"),
    ("x=1..2:log:0", "between 2 and"),
    ("x=1..2:log:2.5", "is not an integer"),
    ("x=-1..1:log:5", "two nonzero ends of the same sign"),
    ("x=0..1:log:5", "two nonzero ends of the same sign"),
    ("x=1..inf:lin:5", "must be finite"),
    ("x=random:", "is not an integer"),
    ("x=random:-3", "between 1 and"),
    ("x=random:99999999999", "between 1 and"),
    ("x=foo:3", "unknown spec"),
    # issue 19: what docs/limits.md says is refused (Decimal() and int() would take them)
    ("x=1_000", "'1_000' is not a decimal number"),
    ("x=1,2_5", "'2_5' is not a decimal number"),
    ("x=\u0661\u0662", "is not a decimal number"),  # Arabic-Indic digits
    ("x=\uff11", "is not a decimal number"),  # a full-width 1
    ("x=1_0..100:log:5", "is not a decimal number"),
    ("x=0x10", "is not a decimal number"),
    ("x=random:1_000", "is not an integer"),
    ("x=random:\u0661\u0662", "is not an integer"),
    ("x=1..10:lin:1_0", "is not an integer"),
    ("x=1..10:lin:1", "a range needs at least 2 points"),
    ("x=1..10:log:1", "a range needs at least 2 points"),
    ("x=1..2:lin:" + "9" * 5000, "between 2 and"),
])
def test_malformed_specs_show_the_accepted_forms(spec, message):
    with pytest.raises(InputError) as e:
        V.parse_var(spec)
    assert message in str(e.value) and "accepted forms: NAME=VALUE" in str(e.value)


def test_checks_before_work():
    with pytest.raises(InputError, match="variable y is used but not given"):
        V.check(V.parse_vars(["x=1"]), ["x", "y"], [F32])
    with pytest.raises(InputError, match="--var z is given but no expression uses it"):
        V.check(V.parse_vars(["x=1", "z=2"]), ["x"], [F32])
    with pytest.raises(InputError, match="given twice"):
        V.parse_vars(["x=1", "x=2"])
    with pytest.raises(InputError, match="exhaustive covers 16-bit dtypes .* not float32"):
        V.check(V.parse_vars(["x=exhaustive"]), ["x"], [F16, F32])
    with pytest.raises(InputError, match=r"grid too large: 65,280 × 65,280 = 4,261,478,400 points"):
        V.check(V.parse_vars(["x=exhaustive", "y=exhaustive"]), ["x", "y"], [BF16])
    with pytest.raises(InputError, match="also a column"):
        V.check(V.parse_vars(["value=1"]), ["value"], [F32], reserved={"value", "status"})
    V.check(V.parse_vars(["x=exhaustive", "y=1,2,3"]), ["x", "y"], [F16, BF16])


def test_grid_of_many_variables_in_order():
    # 70 variables (numpy's meshgrid stops at 32 dimensions, numpy 2's arrays at 64): issue 19
    specs = [f"v{i}={i}" for i in range(68)] + ["a=1,2", "b=3,4,5"]
    g = V.grid(V.parse_vars(specs), F64, 0)
    assert len(g) == 70 and all(list(g[f"v{i}"]) == [float(i)] * 6 for i in range(68))
    assert list(g["a"]) == [1, 1, 1, 2, 2, 2] and list(g["b"]) == [3, 4, 5] * 2
