"""The FPCore reader (stabench.expr.fpcore): the whole FPBench suite (vendored under
benchmarks/fpbench, FPBench/FPBench commit 7e2b76b, MIT licence in LICENSE.txt), exact trees,
box extraction from :pre, and every refusal as one line naming its construct."""
import os
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from stabench.errors import InputError
from stabench.expr import fpcore
from stabench.expr.fpcore import load, read, select, unparse

SUITE = Path(__file__).parent.parent / "benchmarks" / "fpbench"  # the vendored suite (one copy)
FILES = sorted(SUITE.glob("*.fpcore"))


def _suite():
    cores, refused = [], []
    for f in FILES:
        cores += load(f, refused)
    return cores, refused


def _refusal(text):
    with pytest.raises(InputError) as e:
        read(text, "t.fpcore")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --- the suite -------------------------------------------------------------------------------

def test_suite_files_present():
    assert len(FILES) == 12 and (SUITE / "LICENSE.txt").read_text().startswith("Copyright 2021 FPBench")
    assert sum(f.read_text().count("(FPCore") for f in FILES) == 136


def test_whole_suite_parses_except_three():
    cores, refused = _suite()
    assert len(cores) == 133 and len(refused) == 3
    msgs = [str(e).replace(str(SUITE) + os.sep, "") for e in refused]
    assert msgs == [
        'fptaylor-extra.fpcore:11:9: FPCore "intro-example-mixed": mixed precision (! :precision binary64 …) '
        "inside an expression is not supported (the core's precision is binary32)",
        'precimonious.fpcore:3:10: FPCore "arclength of a wiggly function": argument precision '
        "(! :precision integer n) is not supported (binary16, binary32, binary64 or the core's binary64)",
        'precimonious.fpcore:54:24: FPCore "arclength of a wiggly function (old version)": mixed precision '
        "(! :precision binary32 …) inside an expression is not supported (the core's precision is binary64)",
    ]
    kinds = {}
    for c in cores:
        for n in _walk(c.body):
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
    # the constructs the suite uses all arrive as the documented kinds
    assert {"let", "let*", "while", "while*", "if", "array", "cmp", "and", "call", "pow"} <= set(kinds)
    assert sum(c.body.kind == "array" or _final(c.body).kind == "array" for c in cores) == 5
    loops = sum(any(n.kind in ("while", "while*") for n in _walk(c.body)) for c in cores)
    assert loops == 19  # 21 loop benchmarks in the suite, 2 of them precimonious (refused)
    assert sum(1 for c in cores if c.precision == "binary32") == 16  # 17 in the suite, 1 refused
    assert {c.precision for c in cores} == {"binary32", "binary64"}
    assert sum(len(c.alts) for c in cores) == 2 and sum(c.spec is not None for c in cores) == 4


def _walk(root):
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.args)


def _final(n):
    while n.kind in ("let", "let*", "while", "while*"):
        n = n.args[-1]
    return n


def test_suite_round_trips_through_unparse():
    """unparse(tree) read back gives the same tree (spans aside) for every suite core."""
    cores, _ = _suite()
    for c in cores:
        src = f"(FPCore ({' '.join(c.arguments)}) :precision {c.precision} {unparse(c.body)})"
        again = read(src)[0]
        assert _strip(again.body) == _strip(c.body), c.name


def _strip(n):
    return (n.kind, n.name, n.value, n.names, tuple(_strip(a) for a in n.args))


def test_hamming_ch3_boxes():
    cores = {c.name: c for c in load(SUITE / "hamming-ch3.fpcore")}
    assert len(cores) == 28
    c = cores["NMSE example 3.1"]
    assert c.box == {"x": (Fraction(0), None)} and c.rest is None and c.text == "(- (sqrt (+ x 1)) (sqrt x))"
    c = cores["NMSE example 3.4"]
    assert c.box == {"x": (None, None)} and unparse(c.rest) == "(!= x 0)"
    c = cores["NMSE problem 3.3.3"]
    assert unparse(c.rest) == "(!= x 0 1 -1)"
    c = cores["NMSE example 3.10"]  # (< -1 x 1): the closed box, and the filter removes both ends
    assert c.box == {"x": (Fraction(-1), Fraction(1))} and unparse(c.rest) == "(< -1 x 1)"
    c = cores["NMSE problem 3.3.6"]  # (> N 0)
    assert c.box == {"N": (Fraction(0), None)} and unparse(c.rest) == "(> N 0)"


def test_triangle_relational_pre_goes_to_rest():
    cores = {c.name: c for c in load(SUITE / "rosa.fpcore")}
    t = cores["triangle"]
    assert t.box == {"a": (Fraction(9), Fraction(9)), "b": (Fraction(471, 100), Fraction(489, 100)),
                     "c": (Fraction(471, 100), Fraction(489, 100))} and t.rest is None
    for k in range(1, 13):
        t = cores[f"triangle{k}"]
        assert t.box == {v: (Fraction(1), Fraction(9)) for v in "abc"}
        assert t.rest.kind == "and" and len(t.rest.args) == 3
        assert unparse(t.rest.args[0]) == f"(> (+ a b) (+ c {'0.1' if k == 1 else f'1e-{k}'}))"
    t = cores["triangleSorted"]
    assert [unparse(a) for a in t.rest.args[3:]] == ["(< a c)", "(< b c)"]


def test_box_with_pi_bound_is_outward_and_filtered():
    c = {c.name: c for c in load(SUITE / "salsa.fpcore")}["Odometry"]
    lo, hi = c.box["sl*"]
    assert lo == Fraction(1, 20) and Fraction(6283185307179586, 10 ** 15) < hi < Fraction(6283185307179587, 10 ** 15)
    assert hi - 2 * Fraction("3.14159265358979323846264338327950288") > 0  # outward: above 2π
    assert "(< 0.05 sl* (* 2 PI))" in unparse(c.rest)


def test_box_variants():
    def box(pre, args="x y"):
        c = read(f"(FPCore ({args}) :pre {pre} {args.split()[0]})")[0]
        return c.box, (unparse(c.rest) if c.rest is not None else None)

    assert box("(<= v 0 1)", "v") == ({"v": (None, Fraction(0))}, None)
    assert box("(>= 2 x -1)") == ({"x": (Fraction(-1), Fraction(2)), "y": (None, None)}, None)
    assert box("(== x 3/8)") == ({"x": (Fraction(3, 8), Fraction(3, 8)), "y": (None, None)}, None)
    assert box("(and (<= 0 x 10) (<= 2 x 20) (<= (- 1/2) y (/ 1 3)))") == (
        {"x": (Fraction(2), Fraction(10)), "y": (Fraction(-1, 2), Fraction(1, 3))}, None)
    assert box("(and (<= 5 x 1))") == ({"x": (Fraction(5), Fraction(1)), "y": (None, None)}, None)  # empty: kept
    assert box("(<= x y 1)") == ({"x": (None, None), "y": (None, None)}, "(<= x y 1)")
    assert box("(or (<= 0 x 1) (<= 2 x 3))")[1] == "(or (<= 0 x 1) (<= 2 x 3))"
    assert box("(<= 3 2 x)")[1] == "(<= 3 2 x)"  # a false constant chain: a filter only
    assert box("(and TRUE (<= 0 x 1))") == ({"x": (Fraction(0), Fraction(1)), "y": (None, None)}, None)
    assert box("(<= 0 x (sqrt 2))")[1] == "(<= 0 x (sqrt 2))"  # a function: not a constant bound


# --- trees -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, tree, kinds", [
    ("(- (sqrt (+ x 1)) (sqrt x))", "(- (sqrt (+ x 1)) (sqrt x))", ["sub", "call", "add", "var", "num", "call", "var"]),
    ("(- x)", "(- x)", ["neg", "var"]),
    ("(fabs (pow x 2))", "(fabs (pow x 2))", ["call", "pow", "var", "num"]),
    ("(fma x x 1)", "(fma x x 1)", ["call", "var", "var", "num"]),
    ("(if (< x 0 1) PI E)", "(if (< x 0 1) PI E)", ["if", "cmp", "var", "num", "num", "const", "const"]),
    ("(if (and (not (isnan x)) TRUE) 1 2)", "(if (and (not (isnan x)) TRUE) 1 2)",
     ["if", "and", "not", "pred", "var", "bool", "num", "num"]),
    ("(let ([a x] [b 2]) (* a b))", "(let ([a x] [b 2]) (* a b))", ["let", "var", "num", "mul", "var", "var"]),
    ("(let* ([a x] [b a]) b)", "(let* ([a x] [b a]) b)", ["let*", "var", "var", "var"]),
    ("(while (< i 3) ([i 0 (+ i 1)] [s x (* s 2)]) s)", "(while (< i 3) ([i 0 (+ i 1)] [s x (* s 2)]) s)",
     ["while", "cmp", "var", "num", "num", "var", "add", "var", "num", "mul", "var", "num", "var"]),
    ("(! :precision binary64 (cast (+ x 0x1.8p3)))", "(+ x 0x1.8p3)", ["add", "var", "num"]),
    ("(array x (- x))", "(array x (- x))", ["array", "var", "neg", "var"]),
    ("(let ([y 1]) (array x y))", "(let ([y 1]) (array x y))", ["let", "num", "array", "var", "var"]),
])
def test_trees(body, tree, kinds):
    c = read(f"(FPCore (x) {body})")[0]
    assert unparse(c.body) == tree
    assert [n.kind for n in _preorder(c.body)] == kinds


def _preorder(n):
    yield n
    for a in n.args:
        yield from _preorder(a)


def test_numbers_are_exact():
    c = read("(FPCore () (+ (+ (+ 1e-9 -1.5) (+ .5 3/8)) (+ (+ -1/2 0x1.8p3) (+ (digits 5 -1 10) -0x.8))))")[0]
    vals = [n.value for n in _preorder(c.body) if n.kind == "num"]
    assert vals == [Fraction(1, 10 ** 9), Fraction(-3, 2), Fraction(1, 2), Fraction(3, 8), Fraction(-1, 2),
                    Fraction(12), Fraction(1, 2), Fraction(-1, 2)]
    assert [n.text for n in _preorder(c.body) if n.kind == "num"][-2] == "(digits 5 -1 10)"


def test_core_fields():
    text = """; a comment
(FPCore foo (x (! :precision binary32 y))
  :name "the \\"name\\""
  :description "d" ; trailing comment
  :pre (and (<= 0 x 1) (!= y 0))
  :spec (/ x y)
  :alt (* x (/ 1 y))
  :alt
  ;; a comment between key and value
  (let ([r (/ 1 y)]) (* x r))
  :cite (a b)
  (/   x
       y))
(FPCore bar (z) z)
(FPCore (z) z)"""
    a, b, c = read(text, "f.fpcore")
    assert a.index == 1 and a.name == 'the "name"' and a.ident == "foo" and a.line == 2
    assert a.arguments == ("x", "y") and a.arg_precisions == {"y": "binary32"}
    assert a.precision == "binary64" and a.text == "(/ x y)" and a.spec_text == "(/ x y)"
    assert a.alt_texts == ("(* x (/ 1 y))", "(let ([r (/ 1 y)]) (* x r))") and len(a.alts) == 2
    assert a.properties == {"description": '"d"', "cite": "(a b)"}
    assert a.box == {"x": (Fraction(0), Fraction(1)), "y": (None, None)} and unparse(a.rest) == "(!= y 0)"
    assert unparse(a.pre) == "(and (<= 0 x 1) (!= y 0))"
    assert (b.name, b.index, c.name, c.index, c.line) == ("bar", 2, "FPCore 3", 3, 15)
    assert [x.index for x in select([a, b, c], ['the "name"', "bar"])] == [1, 2]
    assert [x.index for x in select([a, b, c], ["foo"])] == [1]
    assert select([a, b, c], []) == [a, b, c]
    with pytest.raises(InputError, match=r"""no FPCore named 'nope'; available \(3\): 'the "name"', 'bar', 'FPCore 3'"""):
        select([a, b, c], ["nope"])


def test_binary32_core_and_annotations():
    c = read("(FPCore (x) :precision binary32 (! :precision binary32 (+ x 1)))")[0]
    assert c.precision == "binary32" and unparse(c.body) == "(+ x 1)"


def test_while_star_scoping_and_shadowing():
    # while*: an init sees the earlier loop variables; let shadows an argument
    c = read("(FPCore (x) (while* (< i 3) ([i 0 (+ i 1)] [j i (+ j i)]) (let ([x j]) x)))")[0]
    assert c.body.names == ("i", "j")
    # while: an init sees only the outer scope
    msg = _refusal("(FPCore (x) (while (< i 3) ([i 0 (+ i 1)] [j i j]) j))")
    assert msg == ("t.fpcore:1:46: FPCore 1: unbound variable 'i' (not an argument nor bound by let/while)")


# --- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("(FPCore (x) (foo x))", "t.fpcore:1:14: FPCore 1: unknown operator 'foo'"),
    ('(FPCore (x) :name "T" (tensor ([i 3]) x))', "t.fpcore:1:23: FPCore \"T\": 'tensor' (arrays) is not supported"),
    ("(FPCore (x) (for ([i 3]) ([s 0 s]) s))", "t.fpcore:1:13: FPCore 1: 'for' (arrays) is not supported"),
    ("(FPCore (x) (ref x 0))", "t.fpcore:1:13: FPCore 1: 'ref' (arrays) is not supported"),
    ("(FPCore ((x 3)) x)", "t.fpcore:1:10: FPCore 1: dimensioned argument '(x 3)' (arrays) is not supported"),
    ("(FPCore (x) (+ x 1 2))", "t.fpcore:1:13: FPCore 1: '+' takes 2 arguments, got 3"),
    ("(FPCore (x) (sqrt))", "t.fpcore:1:13: FPCore 1: 'sqrt' takes 1 argument, got 0"),
    ("(FPCore (x) (fma x x))", "t.fpcore:1:13: FPCore 1: 'fma' takes 3 arguments, got 2"),
    ("(FPCore (x) (- x x x))", "t.fpcore:1:13: FPCore 1: '-' takes 1 or 2 arguments, got 3"),
    ("(FPCore (x) (< x))", "t.fpcore:1:13: FPCore 1: '<' takes 2 or more arguments, got 1"),
    ("(FPCore (x)\n  (+ x 1)", "t.fpcore:1:1: FPCore 1: unbalanced parentheses: '(' at line 1 column 1 is never closed"),
    ("(FPCore (x) x))", "t.fpcore:1:15: FPCore 2: unexpected ')' (no '(' or '[' open)"),
    ("(FPCore (x) (let ([y 1)) y))", "t.fpcore:1:23: FPCore 1: ')' closes the '[' at line 1 column 19; expected ']'"),
    ("(FPCore (x) (+ x y))", "t.fpcore:1:18: FPCore 1: unbound variable 'y' (not an argument nor bound by let/while)"),
    ("(FPCore (x) (let ([y (+ y 1)]) y))",
     "t.fpcore:1:25: FPCore 1: unbound variable 'y': a 'let' binding sees only the enclosing scope "
     "(recursive let); use let* or bind 'y' outside"),
    ("(FPCore (x) (let ([a 1] [b a]) b))",
     "t.fpcore:1:28: FPCore 1: unbound variable 'a': a 'let' binding sees only the enclosing scope "
     "(recursive let); use let* or bind 'a' outside"),
    ("(FPCore (x) (if x 1 2))", "t.fpcore:1:17: FPCore 1: a number ('x') where a boolean is expected"),
    ("(FPCore (x) (+ x (< x 1)))", "t.fpcore:1:18: FPCore 1: a boolean ('(< x 1)') where a number is expected"),
    ("(FPCore (x) (and x TRUE))", "t.fpcore:1:18: FPCore 1: a number ('x') where a boolean is expected"),
    ("(FPCore (x) (< x 1))", "t.fpcore:1:13: FPCore 1: the body is a boolean ('(< x 1)'); an FPCore computes numbers"),
    ("(FPCore (x) :pre (+ x 1) x)", "t.fpcore:1:18: FPCore 1: a number ('(+ x 1)') where a boolean is expected"),
    ("(FPCore (x) :spec TRUE x)", "t.fpcore:1:19: FPCore 1: ':spec' is a boolean; it must compute numbers"),
    ("(FPCore (x) :alt (== x 1) x)", "t.fpcore:1:18: FPCore 1: ':alt' is a boolean; it must compute numbers"),
    ("(FPCore (x) (if (< x 1) TRUE 2))", "t.fpcore:1:13: FPCore 1: 'if' branches differ in type: then is boolean, else is real"),
    ("(FPCore (x x) x)", "t.fpcore:1:12: FPCore 1: argument 'x' appears twice"),
    ("(FPCore (x) :name \"N\")", "t.fpcore:1:1: FPCore \"N\": FPCore without a body (an expression after the properties)"),
    ("(FPCore (x))", "t.fpcore:1:1: FPCore 1: FPCore without a body (an expression after the properties)"),
    ("(FPCore (x) :name foo x)", "t.fpcore:1:19: FPCore 1: ':name' must be a string (\"…\"), got 'foo'"),
    ("(FPCore (x) :precision binary32 (! :precision binary64 x))",
     "t.fpcore:1:33: FPCore 1: mixed precision (! :precision binary64 …) inside an expression is not supported "
     "(the core's precision is binary32)"),
    ("(FPCore ((! :precision integer n)) n)",
     "t.fpcore:1:10: FPCore 1: argument precision (! :precision integer n) is not supported "
     "(binary16, binary32, binary64 or the core's binary64)"),
    ("(FPCore (x) (digits 1.5 2 10))", "t.fpcore:1:13: FPCore 1: malformed 'digits': write (digits m e b) with three integers, b ≥ 2"),
    ("(FPCore (x) (digits 1 2 1))", "t.fpcore:1:13: FPCore 1: malformed 'digits': base 1 is not ≥ 2"),
    ("(FPCore (x) (array x x) )".replace("(array x x)", "(+ (array x) 1)"),
     "t.fpcore:1:16: FPCore 1: 'array' is supported only as the whole result (each element an output)"),
    ("(FPCore (x) (+ x 1) x)", "t.fpcore:1:21: FPCore 1: unexpected 'x' after the body (properties come before the body; one body per FPCore)"),
    ("(FPCore (x) \"s\")", "t.fpcore:1:13: FPCore 1: a string ('\"s\"') where an expression is expected; strings are property values only"),
    ("(FPCore (x) :name \"A\" :name \"B\" x)", "t.fpcore:1:23: FPCore \"A\": property ':name' given twice"),
    ("(FPCore (x) :pre)", "t.fpcore:1:13: FPCore 1: property ':pre' has no value"),
    ("(FPCore (x) (+ x 1e999))", "t.fpcore:1:18: FPCore 1: number 1e999 is beyond 1e±400 (no dtype can hold it)"),
    ("(FPCore (x) (+ x 1/0))", "t.fpcore:1:18: FPCore 1: rational '1/0' has a zero denominator"),
    ("(FPCore (x) (+ x 1#))", "t.fpcore:1:18: FPCore 1: malformed token '1#' (not a number nor a symbol)"),
    ("(FPCore (x) (+ x \"a))", "t.fpcore:1:18: FPCore 1: unterminated string (a '\"' is never closed)"),
    ("(FPCore (x) ())", "t.fpcore:1:13: FPCore 1: empty expression '()'"),
    ("(FPCore (x) (sin))".replace("(sin)", "sin"), "t.fpcore:1:13: FPCore 1: operator 'sin' used as a value (write (sin …))"),
    ("(FPCore (x) (let ([PI 3]) PI))", "t.fpcore:1:20: FPCore 1: 'let' cannot bind 'PI' (a constant or property name)"),
    ("(FPCore (x) (let ([y 1] [y 2]) y))", "t.fpcore:1:25: FPCore 1: 'let' binds 'y' twice"),
    ("(FPCore (x) (while (< x 1) ([x x TRUE]) x))",
     "t.fpcore:1:34: FPCore 1: 'while' variable 'x' starts as a real but is updated to a boolean"),
    ("(FPCore (x) (! :round toZero x))", "t.fpcore:1:13: FPCore 1: rounding mode (! :round toZero …) is not supported (only nearestEven)"),
    ("(FPCore (x) MAXFLOAT)", "t.fpcore:1:13: FPCore 1: constant 'MAXFLOAT' (precision-dependent) is not supported"),
    ("(x)", "t.fpcore:1:1: FPCore 1: expected a form (FPCore …) at the top level, got '(x)'"),
    ("(FPCore x)", "t.fpcore:1:1: FPCore x: expected (FPCore name? (arguments …) properties … body): the argument list is missing"),
    ("", "t.fpcore: no FPCore in the input (it is empty or only comments); expected forms like "
         "(FPCore (x) :pre (<= 0 x 1) (- (sqrt (+ x 1)) (sqrt x)))"),
    ("; nothing\n", None),
])
def test_refusals(text, message):
    msg = _refusal(text)
    if message is not None:
        assert msg == message


def test_refusal_names_core_by_name_and_line():
    text = '(FPCore (x) x)\n\n(FPCore (y)\n  :name "second"\n  (+ y (bar y)))'
    assert _refusal(text) == "t.fpcore:5:9: FPCore \"second\": unknown operator 'bar'"
    refused = []
    cores = read(text, "t.fpcore", refused)
    assert [c.name for c in cores] == ["FPCore 1"] and len(refused) == 1


def test_deep_nesting_is_refused_without_recursion_error():
    deep = "(FPCore (x) " + "(- " * 5000 + "x" + ")" * 5000 + ")"
    assert _refusal(deep) == (f"t.fpcore:1:{13 + 3 * (fpcore.MAX_DEPTH - 1)}: FPCore 1: nested too deeply "
                              f"(limit {fpcore.MAX_DEPTH} levels of parentheses)")
    ok = "(FPCore (x) " + "(- " * (fpcore.MAX_DEPTH - 1) + "x" + ")" * (fpcore.MAX_DEPTH - 1) + ")"
    c = read(ok)[0]
    assert unparse(c.body).count("(- ") == fpcore.MAX_DEPTH - 1


def test_load_refusals(tmp_path):
    with pytest.raises(InputError, match=r"is a directory"):
        load(tmp_path)
    with pytest.raises(InputError, match=r"no such FPCore file"):
        load(tmp_path / "missing.fpcore")
    bad = tmp_path / "bad.fpcore"
    bad.write_bytes(b"(FPCore (x) \xff x)")
    with pytest.raises(InputError) as e:
        load(bad)
    assert str(e.value) == f"{bad}: not UTF-8 text: byte 0xff at byte offset 12 cannot be decoded"
    big = tmp_path / "big.fpcore"
    with open(big, "wb") as f:
        f.truncate(fpcore.MAX_BYTES + 1)
    with pytest.raises(InputError, match=r"has 4194305 bytes \(limit 4194304, 4 MiB\)"):
        load(big)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"is not a regular file"):
        load(fifo)  # refused by stat, never opened (opening a FIFO would block)
    bom = tmp_path / "bom.fpcore"
    bom.write_bytes("\ufeff(FPCore (x) x)".encode())
    assert load(bom)[0].arguments == ("x",)


# --- no other exception, whatever the input -----------------------------------------------------

_TOKENS = ["(", ")", "[", "]", "FPCore", "(FPCore (x)", "x", "y", ":pre", ":name", '"n"', "1", "-1/2",
           "0x1p3", "1e5", "+", "-", "*", "/", "let", "let*", "while", "while*", "if", "<", "==", "!=",
           "and", "not", "TRUE", "PI", "sqrt", "fma", "!", ":precision", "binary32", "cast", "array",
           "digits", "tensor", ";c\n", "\n", "#", "\"", "1/0", "é", "."]


def _one_line_or_ok(text):
    try:
        read(text, "h.fpcore")
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith("h.fpcore")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40))
def test_token_soup_never_crashes(tokens):
    _one_line_or_ok(" ".join(tokens))


_SUITE_TEXT = [f.read_text() for f in FILES]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(FILES) - 1), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6))
def test_truncated_or_spliced_suite_files_never_crash(k, cut, cut2):
    text = _SUITE_TEXT[k]
    a, b = sorted((cut % (len(text) + 1), cut2 % (len(text) + 1)))
    _one_line_or_ok(text[:a])
    _one_line_or_ok(text[:a] + text[b:])  # a piece cut out of the middle


_ATOMS = ["x", "y", "z", "1", "-2", "1/3", "0x1p-2", "1e300", "PI", "TRUE", "FALSE", "INFINITY", "+", "-",
          "*", "/", "pow", "sqrt", "fma", "fabs", "<", "<=", "!=", "and", "or", "not", "isnan", "if", "let",
          "let*", "while", "while*", "array", "!", ":precision", "binary64", "binary32", "cast", "digits",
          "tensor", "foo", '"s"']
_HEADS = [a for a in _ATOMS if not a[0].isdigit() and a not in ("x", "y", "z", '"s"', "-2", "1/3")]
_SEXP = st.recursive(
    st.sampled_from(_ATOMS),
    lambda inner: st.tuples(st.sampled_from(_HEADS), st.lists(inner, max_size=4)).map(
        lambda t: "(" + " ".join((t[0], *t[1])) + ")")
    | st.lists(inner, max_size=3).map(lambda xs: "[" + " ".join(xs) + "]"),
    max_leaves=30)


@settings(max_examples=500, deadline=None)
@given(_SEXP, st.one_of(st.none(), _SEXP))
def test_random_well_formed_bodies_never_crash(body, pre):
    """Balanced s-expressions reach every check of the converter: a Core or one line."""
    text = f"(FPCore (x y) {'' if pre is None else ':pre ' + pre} {body})"
    try:
        c = read(text, "h.fpcore")[0]
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith("h.fpcore:1:")
    else:
        assert read(f"(FPCore (x y) {unparse(c.body)})")[0].text == unparse(c.body)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_text_never_crashes(text):
    _one_line_or_ok(text)


def test_large_file_reads_in_linear_time():
    """0.5 MiB of FPCore (40 copies of rosa.fpcore) in well under the time a quadratic reader
    would take (about 0.6 s measured on the 2-core machine; the bound leaves room for load)."""
    import time

    text = ((SUITE / "rosa.fpcore").read_text() + "\n") * 40
    t0 = time.perf_counter()
    cores = read(text)
    assert len(cores) == 40 * 37 and time.perf_counter() - t0 < 10
