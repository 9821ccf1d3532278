from fractions import Fraction

import numpy as np
import pytest

from stabench.errors import InputError
from stabench.experiments import roundoff


def row(df, dtype, formula, n=10_000):
    r = df[(df.dtype == dtype) & (df.formula == formula) & (df.n == n)]
    assert len(r) == 1
    return r.iloc[0]


def test_default_run_numbers():
    df = roundoff.run()
    assert len(df) == 8
    # float16: the cancelled form returns exactly 0 (1 ± 1e-4 both round to 1)
    c16 = row(df, "float16", "cancelled")
    assert c16.value == 0.0 and c16.status == "underflow" and c16.correct_digits == 0.0
    d16 = row(df, "float16", "direct")
    assert d16.value == float(np.float16(2) / np.float16(10000)) and d16.status == "exact"
    # float32: 1 + 1e-4 and 1 − 1e-4 round with errors of about half an ulp of 1 → ~3.8 digits survive
    c32 = row(df, "float32", "cancelled")
    assert c32.value == float((np.float32(1) + np.float32(1) / np.float32(1e4)) - (np.float32(1) - np.float32(1) / np.float32(1e4)))
    assert 3.5 < c32.correct_digits < 4.0 and c32.status == "inaccurate"
    # float64 keeps about 13 of 16 digits
    assert 12.5 < row(df, "float64", "cancelled").correct_digits < 13.5
    # the reference is the exact 2/n, and the direct form is within half an ulp of it
    assert (df.reference == 0.0002).all()
    assert (df[df.formula == "direct"].ulp_error <= 0.5).all()


def test_reference_is_exact_rational():
    hi, lo = roundoff._reference([3, 7, 10_000])
    for n, h, l in zip([3, 7, 10_000], hi, lo):
        assert Fraction(h) + Fraction(l) - Fraction(2, n) < Fraction(1, 10**30)


def test_sweep_follows_the_estimate():
    df = roundoff.run(["float32", "float64"], sweep=True, max_exp=6)
    s = roundoff.sweep_table(df)
    assert list(s.n.unique()) == [10, 100, 1000, 10**4, 10**5, 10**6]
    # digits lost grow with log10(n); the estimate is within a digit of what is measured
    assert ((s.cancelled_digits - s.estimate_digits).abs() < 1.3).all()
    f32 = s[s.dtype == "float32"].cancelled_digits.to_numpy()
    assert f32[0] > f32[-1] + 4


def test_bfloat16_rounds_n_itself():
    df = roundoff.run(["bfloat16"])
    assert row(df, "bfloat16", "direct").n_in_dtype == 9984.0  # 10,000 needs 10 significant bits


def test_huge_n_in_float16_is_measured_not_dropped():
    # issue 11 item 5: n = 10^5 overflows float16, so the program cannot hold its input:
    # the rows are kept (value, exact reference) but invalid-input and not scored
    df = roundoff.run(["float16"], n=100_000)
    for formula in ("direct", "cancelled"):
        d = row(df, "float16", formula, 100_000)
        assert d.n_in_dtype == np.inf and d.value == 0.0 and d.status == "invalid-input"
        assert d.reference == 2e-5 and np.isnan(d.ulp_error) and d.correct_digits == 0.0
    # 10^8 used to read "exact with 0 digits"; n rounded but finite stays a valid input
    s = roundoff.run(["float16", "bfloat16"], sweep=True, max_exp=8)
    assert set(s[(s.dtype == "float16") & (s.n >= 10**5)].status) == {"invalid-input"}
    assert "invalid-input" not in set(s[s.dtype == "bfloat16"].status)
    b = row(s, "bfloat16", "direct", 10**8)
    assert b.n_in_dtype == 100139008.0 and b.status == "exact"
    # n's own rounding is part of the program's error: 10^7 → 10,027,008 puts 2/n 0.75 ulp off
    b7 = row(s, "bfloat16", "direct", 10**7)
    assert b7.n_in_dtype == 10027008.0 and b7.status == "ok" and 0.7 < b7.ulp_error < 0.8


def test_roundoff_runs_through_the_expr_engine():
    """One engine: the roundoff rows equal `stabench expr` on the same literals, and the engine's
    reference equals the rational 2/n exactly (hi and lo)."""
    from stabench.experiments import expr

    df = roundoff.run(None, sweep=True, max_exp=18)
    p = expr.plan(["direct: 2/1000", "cancelled: (1 + 1/1000) - (1 - 1/1000)"])
    rows = expr.run(p)
    for r in rows.itertuples():
        o = row(df, r.dtype, r.form, 1000)
        for c in ("value", "reference", "abs_error", "rel_error", "ulp_error", "bits_error", "status"):
            assert getattr(o, c) == getattr(r, c), (r.dtype, r.form, c)
    ns = sorted(set(df.n))
    hi, lo = roundoff._reference(ns)
    for k, h, l in zip(ns, hi, lo):
        d = df[(df.n == k) & (df.formula == "direct")]
        assert (d.reference == h).all()
        m = expr.measure(expr.parse(f"2/{k}"), roundoff._dtypes.get("float64"), {})
        assert m["reference"][0] == h and m["reference_lo"][0] == l


@pytest.mark.parametrize("bad", [0, -5, 2**63, 1.5, True])
def test_bad_n(bad):
    with pytest.raises(InputError, match="n must be an integer between 1 and"):
        roundoff.run(None, bad)


def test_bad_max_exp():
    with pytest.raises(InputError, match="--max-exp"):
        roundoff.run(None, sweep=True, max_exp=19)
