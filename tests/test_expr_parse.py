"""The expression parser: the grammar it accepts, what it refuses (with the offending part marked),
and that no input can make it run code."""
import sys
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from stabench.errors import InputError
from stabench.expr.functions import FUNCTIONS
from stabench.expr.parse import MAX_DEPTH, parse, unparse

KINDS = {"num", "const", "var", "neg", "add", "sub", "mul", "div", "pow", "call"}


@pytest.mark.parametrize("text, tree, variables", [
    ("sqrt(x + 1) - sqrt(x)", "(sqrt((x + 1)) - sqrt(x))", ("x",)),
    ("-x**2", "(-(x ** 2))", ("x",)),  # Python precedence: ** binds tighter than unary minus
    ("2**3**2", "(2 ** (3 ** 2))", ()),
    ("+x", "x", ("x",)),
    ("hypot(a, b) / max(a, 1e-3)", "(hypot(a, b) / max(a, 1e-3))", ("a", "b")),
    ("pi * e", "(pi * e)", ()),
    ("1_000 + 0x10", "(1_000 + 0x10)", ()),
])
def test_grammar(text, tree, variables):
    e = parse(text)
    assert unparse(e.tree) == tree and e.variables == variables and e.label == text


def test_literals_are_exact_decimals():
    e = parse("0.1 + 1e-3 + 7")
    nums = [n.value for n in e.nodes() if n.kind == "num"]
    assert sorted(nums) == [Fraction(1, 1000), Fraction(1, 10), Fraction(7)]


def test_labels():
    assert parse("naive: log(1 + x)").label == "naive"
    assert parse("log1p: log1p(x)").label == "log1p"  # a function name is fine as a label
    with pytest.raises(InputError, match="lambda"):
        parse("lambda: 1")  # a keyword is not a label
    with pytest.raises(InputError, match="assignment"):
        parse("(y := 2)")


@pytest.mark.parametrize("text, message", [
    ("exp(x)+foo(x)", "unknown function 'foo' at column 8: exp(x)+«foo»(x); allowed: abs, acos,"),
    ("x.real", "attribute access is not allowed at column 1: «x.real»"),
    ("__import__('os').system('ls')", "only named functions can be called at column 1: «__import__('os').system»('ls')"),
    ("x[0]", "subscripts are not allowed at column 1: «x[0]»"),
    ("(lambda: 1)()", "only named functions can be called"),
    ("[x for x in y]", "comprehensions are not allowed"),
    ("'abc'", "strings are not allowed at column 1: «'abc'»"),
    ("f'{x}'", "f-strings are not allowed"),
    ("exp(x=1)", "keyword arguments are not allowed at column 5: exp(«x=1»)"),
    ("exp(*x)", "starred arguments are not allowed"),
    ("x % 2", "operator '%' is not allowed at column 2: x« % »2; allowed: + - * / ** and unary -"),
    ("~x", "operator '~' is not allowed"),
    ("not x", "the expression must be a number, got a comparison at column 1: «not x»"),
    ("1 if not x else 2", "an operand of 'not' must be a condition (a comparison), got a number at column 10"),
    ("x < 1", "the expression must be a number, got a comparison at column 1: «x < 1»"),
    ("x and y", "the expression must be a number, got a comparison"),
    ("x if y else 1", "the condition of a conditional must be a condition (a comparison), got a number at column 6: x if «y» else 1"),
    ("x if x < 1 else x > 2", "each branch of a conditional must be a number, got a comparison at column 17"),
    ("exp(x > 1)", "an operand of an arithmetic operation or function must be a number, got a comparison at column 5"),
    ("(x < 1) + 1", "must be a number, got a comparison at column 2"),
    ("x if x is 1 else 2", "operators 'is' and 'in' are not allowed at column 7"),
    ("where(x < 1, 2)", "where takes 3 arguments (condition, value if true, value if false), got 2"),
    ("exp(x, y)", "exp takes 1 argument, got 2 at column 1: «exp(x, y)»"),
    ("hypot(x)", "hypot takes 2 arguments, got 1"),
    ("exp + 1", "function 'exp' used without arguments at column 1: «exp» + 1"),
    ("1j", "complex numbers are not allowed"),
    ("True", "True is not a number"),
    ("None", "None is not a number"),
    ("1e999", "number 1e999 is beyond 1e±400 (no dtype can hold it) at column 1: «1e999»"),
    ("1e-999 + x", "number 1e-999 is beyond"),
    ("__class__", "variable name '__class__' is not allowed"),
    ("(x", "syntax error: '(' was never closed"),
    ("x +", "syntax error"),
    ("x; y", "syntax error"),
    ("{x: 1}", "dicts are not allowed"),
    ("(x, y)", "tuples are not allowed"),
    ("x\n+ 1", "non-printable character '\\n' at column 2"),
    ("", "empty expression"),
    ("   ", "empty expression"),
    ("x" * 1001, "expression too long: 1001 characters"),
])
def test_refusals_mark_the_offending_part(text, message):
    with pytest.raises(InputError) as e:
        parse(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value).replace("'\\n'", "")  # one line


def test_nesting_limit():
    parse("-" * (MAX_DEPTH - 5) + "x")
    with pytest.raises(InputError, match="nested too deeply"):
        parse("-" * 200 + "x")
    with pytest.raises(InputError):
        parse("(" * 300 + "x" + ")" * 300)


# -- no input can run code --------------------------------------------------------------------

_EVENTS: list = []
_WATCH = False
_DANGEROUS = ("exec", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "subprocess.Popen", "open",
              "os.remove", "shutil", "socket", "ctypes", "builtins.input", "code.__new__", "function.__new__")


def _hook(event, args):
    if _WATCH and event.startswith(_DANGEROUS):
        _EVENTS.append(event)


sys.addaudithook(_hook)  # audit hooks cannot be removed; it records only while _WATCH is set


def _parse_watched(text):
    global _WATCH
    _EVENTS.clear()
    _WATCH = True
    try:
        try:
            e = parse(text)
        except InputError as err:
            assert str(err)
            return None
    finally:
        _WATCH = False
    assert not _EVENTS, (text, _EVENTS)
    return e


def test_the_audit_hook_sees_code_being_run():
    """The watch below is not vacuous: running code while watched is recorded."""
    global _WATCH
    _EVENTS.clear()
    _WATCH = True
    try:
        exec("1 + 1")  # noqa: S102 - the point of the test
    finally:
        _WATCH = False
    assert "exec" in _EVENTS


def test_parse_prints_nothing(capfd):
    with pytest.raises(InputError):
        parse("1if x else 2")
    assert capfd.readouterr().err == ""


TOKENS = ["x", "y", "1", "2.5e3", "exp", "log1p", "hypot", "(", ")", "+", "-", "*", "/", "**", ",",
          "__import__", "'os'", ".", "system", "eval", "exec", "open", "[", "]", "lambda", ":", "=",
          "not", "if", "else", "for", "in", "{", "}", "@", "f'{x}'", "\\", "#", ";", "%", "~", "<",
          ":=", "*", "yield", "await", "1e999", "0x1F", "1j", "True", "__class__", "__subclasses__",
          "globals", "getattr", " ", "\t", "\n", "\x00", "λ", "π", "\u200b", '"', "'", "`"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=25).map("".join))
def test_token_soup_never_runs_code_and_never_tracebacks(text):
    e = _parse_watched(text)
    if e is not None:
        assert {n.kind for n in e.nodes()} <= KINDS
        assert {n.name for n in e.nodes() if n.kind == "call"} <= set(FUNCTIONS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_runs_code_and_never_tracebacks(text):
    _parse_watched(text)


def _exprs():
    leaf = st.sampled_from(["x", "y", "1", "0.5", "pi", "1e-300", "__import__('os')", "x.y", "x[0]",
                            "'s'", "open('f')", "eval('1')"])

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "%", "@", "<"]), inner).map(" ".join),
            st.tuples(st.sampled_from(list(FUNCTIONS) + ["eval", "exec", "getattr"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
            inner.map(lambda s: f"-({s})"),
        )
    return st.recursive(leaf, extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_exprs())
def test_random_expression_trees_parse_or_refuse_cleanly(text):
    e = _parse_watched(text)
    bad = any(s in text for s in ("__import__", "x.y", "x[0]", "'s'", "open(", "eval(", "exec(", "getattr(", "%", "@", "<"))
    if bad:  # anything with a forbidden construct is refused
        assert e is None
