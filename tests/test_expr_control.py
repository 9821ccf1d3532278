"""Conditionals, comparisons, bindings and loops (issue 23): the dtype program takes each branch
where its condition holds and loops on the points still looping; the exact reference decides each
branch from balls, with more bits where needed, and marks what no precision decides."""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from stabench import dtypes
from stabench.errors import InputError
from stabench.experiments import expr as E
from stabench.expr.evaluate import MAX_ITERATIONS, Marks, evaluate
from stabench.expr.parse import Node, free_variables, parse
from stabench.expr.reference import BRANCH_UNDECIDED, reference, truth

F16, F32, F64 = (dtypes.get(n) for n in ("float16", "float32", "float64"))


def _num(q):
    return Node("num", value=Fraction(q), text=str(q))


def _var(n):
    return Node("var", name=n)


def test_a_conditional_takes_each_branch_where_its_condition_holds():
    e = parse("r: x if x < 1 else -x")
    x = np.array([0.5, 1.0, 2.0, -3.0, np.nan], dtype=np.float32)
    got = evaluate(e.tree, F32, {"x": x})
    assert got.dtype == np.float32
    # nan < 1 is false (C): the else branch
    np.testing.assert_array_equal(got[:4], [0.5, -1.0, -2.0, -3.0])
    assert np.isnan(got[4])
    ref = reference(e.tree, {"x": np.array([0.5, 1.0, 2.0, -3.0])})
    np.testing.assert_array_equal(ref[0], [0.5, -1.0, -2.0, -3.0])


def test_where_and_chains_and_logic():
    e = parse("where(0 < x <= 2 and not (x == 1) or x > 100, 1, 0)")
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 1000.0])
    want = [0, 0, 1, 0, 1, 0, 1]
    np.testing.assert_array_equal(evaluate(e.tree, F64, {"x": x}), want)
    np.testing.assert_array_equal(reference(e.tree, {"x": x})[0], want)


def test_a_branch_not_taken_is_not_evaluated_in_either_program():
    # log of a negative number sits in the branch the point does not take: valid, exact 0
    p = E.plan(["where(x > 0, log(x), 0)"], ["x=-1,-0.5,2"], "float16")
    df = E.run(p)
    assert list(df["status"]) == ["exact", "exact", "exact"]
    assert df["note"].tolist() == ["", "", ""]
    assert df["reference"].iloc[2] == pytest.approx(float(mpmath.log(2)), rel=1e-15)


def test_a_domain_error_inside_a_condition_is_named():
    p = E.plan(["1 if log(x) < 0 else 2"], ["x=-1,0.5,2"], "float64")
    df = E.run(p)
    assert df["note"].tolist() == ["log of a number ≤ 0", "", ""]
    assert df["status"].tolist() == ["invalid-input", "exact", "exact"]


def test_a_branch_no_precision_decides_is_marked_never_guessed():
    # sin(pi·x) at x = 1 is exactly 0 (pi exact in the reference): no ball decides 0 > 0
    p = E.plan(["1 if sin(pi * x) > 0 else 2"], ["x=1,0.5"], "float64")
    df = E.run(p)
    assert df["note"].iloc[0] == BRANCH_UNDECIDED
    assert df["status"].iloc[0] == "invalid-input"
    # the program's own value is kept: float64's pi makes sin(pi) = 1.22e-16 > 0
    assert df["value"].iloc[0] == 1.0
    assert df["status"].iloc[1] == "exact" and df["value"].iloc[1] == 1.0


def test_a_branch_decided_with_more_bits():
    # x + 2^-300 > x: the ball at 128 bits cannot tell, 512 can
    p = E.plan(["1 if x + 2**-300 > x else 2"], ["x=1"], "float64")
    df = E.run(p)
    assert df["reference"].iloc[0] == 1.0 and df["note"].iloc[0] == ""
    # the float64 program rounds x + 2^-300 to x: it takes the other branch
    assert df["value"].iloc[0] == 2.0 and df["status"].iloc[0] == "inaccurate"


def _count_loop(bound):
    """(while (< i n) ([i 0 (+ i 1)] [s 0 (+ s x)]) s): x added n times."""
    i, s, x, n = _var("i"), _var("s"), _var("x"), _var("n")
    cond = Node("cmp", (i, n), name="<")
    return Node("while", (cond, _num(0), _num(0), Node("add", (i, _num(1))), Node("add", (s, x)), s),
                names=("i", "s"))


def test_a_loop_runs_per_point_in_the_dtype_and_exactly():
    loop = _count_loop(None)
    assert free_variables(loop) == ("n", "x")
    x = np.array([0.1, 0.1, 1.0])
    n = np.array([10.0, 3.0, 0.0])
    got = evaluate(loop, F32, {"x": x.astype(np.float32), "n": n.astype(np.float32)})
    s = np.float32(0)
    for _ in range(10):
        s = np.float32(s + np.float32(0.1))
    assert got[0] == s and got[2] == 0
    hi, lo, note = reference(loop, {"x": x.astype(np.float32).astype(np.float64), "n": n})
    assert hi[0] == float(10 * Fraction(float(np.float32(0.1))))
    assert hi[2] == 0 and list(note) == ["", "", ""]


def test_a_loop_that_does_not_end_in_the_dtype_is_marked_and_nan():
    # bfloat16 counts to 256 and stops there: i + 1 == i; the exact count ends at 300
    loop = _count_loop(None)
    bf16 = dtypes.get("bfloat16")
    marks = Marks(2)
    x = bf16.cast(np.array([1.0, 1.0]))
    n = bf16.cast(np.array([300.0, 10.0]))
    got = evaluate(loop, bf16, {"x": x, "n": n}, marks)
    assert marks.unfinished.tolist() == [True, False]
    assert np.isnan(float(got[0])) and float(got[1]) == 10
    hi, _, note = reference(loop, {"x": np.array([1.0, 1.0]), "n": np.array([300.0, 10.0])})
    assert hi.tolist() == [300.0, 10.0]
    # past the bound the exact loop is marked too
    hi, _, note = reference(loop, {"x": np.array([1.0]), "n": np.array([float(MAX_ITERATIONS + 1)])})
    assert np.isnan(hi[0]) and note[0] == f"loop did not end within {MAX_ITERATIONS:,} iterations (exact)"


def test_a_loop_that_never_ends_is_marked_in_both_without_running_to_the_bound():
    loop = Node("while", (Node("bool", name="TRUE"), _var("x"), Node("mul", (_var("y"), _num(2))), _var("y")),
                names=("y",))
    marks = Marks(3)
    got = evaluate(loop, F64, {"x": np.array([1.0, 2.0, 3.0])}, marks)
    assert marks.unfinished.all() and np.isnan(got).all()
    _, _, note = reference(loop, {"x": np.array([1.0])})
    assert note[0] == f"loop did not end within {MAX_ITERATIONS:,} iterations (exact)"


def test_let_and_let_star_scopes():
    x = _var("x")
    a, b = _var("a"), _var("b")
    # let: b's value sees the outer a (= x), not the new a; let*: it sees the new a
    outer = lambda kind: Node("let", (x, Node(kind, (Node("add", (x, _num(1))), Node("mul", (a, _num(10))), b),
                                                     names=("a", "b"))), names=("a",))
    pts = {"x": np.array([2.0])}
    assert reference(outer("let"), pts)[0][0] == 20.0
    assert reference(outer("let*"), pts)[0][0] == 30.0
    assert evaluate(outer("let"), F64, pts)[0] == 20.0
    assert evaluate(outer("let*"), F64, pts)[0] == 30.0


def test_truth_decides_a_precondition_exactly():
    pre = parse("1 if x + y > z and x != y else 0").tree.args[0]
    pts = {"x": np.array([1.0, 1.0, 0.1, 2.0]), "y": np.array([2.0, 1.0, 0.2, 0.5]),
           "z": np.array([2.5, 1.0, 0.30000000000000004, 3.0])}
    # 0.1 + 0.2 > 0.30000000000000004 is false exactly (the three are floats): no rounding
    assert truth(pre, pts).tolist() == [True, False, False, False]


def test_spec_scores_every_form_against_the_spec_exact_value():
    # issue 23's example: 0.225·x² − 0.5 reads 0.504 ulp against its own exact value at x = 0.4;
    # against a spec it approximates (here cos(x) − 1.5 + 0.725·x², chosen to be near it) it is far
    p = E.plan(["approx: 0.225*x*x - 0.5", "x*x"], ["x=0.4"], "float64", spec="cos(x) - 1.5 + 0.725*x*x")
    df = E.run(p)
    approx = df[df["form"] == "approx"].iloc[0]
    assert approx["ulp_error"] == pytest.approx(0.504, abs=5e-4)  # accurate for what it computes ...
    exact = float(mpmath.cos(mpmath.mpf(0.4)) - mpmath.mpf(1.5) + mpmath.mpf("0.725") * mpmath.mpf(0.4) ** 2)
    value = approx["value"]
    ulp = np.spacing(abs(exact))
    assert approx["spec_ulp_error"] == pytest.approx(abs(value - exact) / ulp, rel=1e-6)  # ... far from the spec
    assert approx["spec_bits_error"] == pytest.approx(44.12, abs=0.01)  # docs/expr.md "Scoring against a spec"
    s = E.summary(df)
    assert (s["spec"] == "cos(x) - 1.5 + 0.725*x*x").all()
    assert s.loc[s["form"] == "approx", "spec_mean_bits"].iloc[0] == pytest.approx(approx["spec_bits_error"])


def test_without_spec_the_spec_columns_are_empty():
    df = E.run(E.plan(["x + 1"], ["x=1,2"], "float32"))
    assert df["spec_ulp_error"].isna().all()
    s = E.summary(df)
    assert s["spec"].iloc[0] == "" and np.isnan(s["spec_mean_bits"].iloc[0])


@pytest.mark.parametrize("spec, message", [
    ("log(", "--spec: syntax error"),
    ("x < 1", "--spec: the expression must be a number, got a comparison"),
])
def test_bad_spec_refused(spec, message):
    with pytest.raises(InputError) as e:
        E.plan(["x"], ["x=1"], "float64", spec=spec)
    assert message in str(e.value)


def test_spec_variable_must_be_given():
    with pytest.raises(InputError) as e:
        E.plan(["x"], ["x=1"], "float64", spec="x + y")
    assert "variable y is used but not given" in str(e.value)


def test_an_exact_tie_in_a_condition_is_decided_by_exact_rationals():
    # Salsa's Runge-Kutta counts e = 1 − k·0.005 down to eps = 0.005: at k = 199 the two are equal,
    # which no ball proves (0.005 is not dyadic); the reference keeps + − × ÷ of the inputs and
    # literals as exact rationals in a tree with conditions, so the tie is decided: not greater
    p = E.plan(["where(1 - k*0.005 > 0.005, 1, 2)"], ["k=198,199,200"], "float64")
    df = E.run(p)
    assert df["reference"].tolist() == [1.0, 2.0, 2.0]
    assert df["note"].tolist() == ["", "", ""]
    # float64 computes 1 − 199·0.005 = 0.0050000000000000044 > 0.005: the other branch
    assert df["value"].tolist() == [1.0, 1.0, 2.0]
    assert df["status"].tolist() == ["exact", "inaccurate", "exact"]
