"""The safe text → expression parser, and the guarantee that no other path evaluates text."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kanx.core.errors import KanxError
from kanx.functions.parser import FUNCTIONS, ParseLimits, parse_expression, parse_number

PACKAGE = Path(__file__).resolve().parents[1] / "kanx"
x, y = sympy.symbols("x y")


@pytest.mark.parametrize(("text", "expected"), [
    ("x*exp(-x)", x * sympy.exp(-x)),
    ("x^2 + 1/2*y", x**2 + sympy.Rational(1, 2) * y),
    ("-x**3 - +y", -x**3 - y),
    ("sqrt(x)*Abs(y)", sympy.sqrt(x) * sympy.Abs(y)),
    ("arcsin(x) + atan(y) + ln(x)", sympy.asin(x) + sympy.atan(y) + sympy.log(x)),
    ("2*pi*E", 2 * sympy.pi * sympy.E),
    ("square(x) + cube(y)", x**2 + y**3),
    ("1.5e-3*x", sympy.Float(1.5e-3) * x),
    ("(0.5 * x) ^ 2", (sympy.Float(0.5) * x) ** 2),
])
def test_parses_formulas_into_the_expected_sympy_objects(text, expected):
    assert parse_expression(text, ["x", "y"], "--test") == expected


def test_declared_variables_shadow_constants():
    energy = sympy.Symbol("E")
    assert parse_expression("E*pi", ["E"], "t") == energy * sympy.pi
    assert parse_expression("E", [], "t") == sympy.E


def test_every_table_function_builds():
    for name, (_, arity) in FUNCTIONS.items():
        args = ", ".join(["x"] * arity)
        assert isinstance(parse_expression(f"{name}({args})", ["x"], "t"), sympy.Expr)


MARKER_PAYLOAD = "__import__('os').system('touch MARKER') or x"


@pytest.mark.parametrize(("text", "reason"), [
    (MARKER_PAYLOAD, "boolean operation"),
    ("__import__('os')", "unknown function '__import__'"),
    ("__builtins__", "undeclared name '__builtins__'"),
    ("x.__class__", "attribute access"),
    ("(lambda: 0)()", "only plain function names"),
    ("eval('1')", "unknown function 'eval'"),
    ("exp(x=1)", "positional arguments only"),
    ("sin(x, y)", "takes 1 argument"),
    ("x[0]", "indexing"),
    ("'text'", "not a number"),
    ("True", "not a number"),
    ("1j*x", "not a number"),
    ("x if y else 1", "conditional"),
    ("x < y", "comparison"),
    ("[x for x in (1,)]", "comprehension"),
    ("x % y", "'%'"),
    ("x // 2", "'//'"),
    ("z + x", "undeclared name 'z'"),
    ("sin", "needs an argument"),
    ("x = 1", "does not parse"),
    ("x +", "does not parse"),
    ("", "empty formula"),
    ("1e400 * x", "overflows"),
    ("2**10**10", "exponent larger"),
    ("(x**60)**60", "exponent larger"),
    ("(10**50)**50", "more than 400 digits"),
    ("x" + "+x" * 3000, "longer than"),
    ("exp(" * 80 + "x" + ")" * 80, "nested deeper"),
    ("(" * 300 + "x" + ")" * 300, "does not parse"),
    ("-" * 100 + "x", "nested deeper"),
])
def test_refuses_anything_outside_the_allowlist(text, reason, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KanxError) as info:
        parse_expression(text, ["x", "y"], "--lib-add")
    message = str(info.value)
    assert message.startswith("--lib-add: ") and "\n" not in message
    assert re.search(reason, message), message
    assert not (tmp_path / "MARKER").exists()


def test_limits_are_settings():
    tight = ParseLimits(max_length=5)
    with pytest.raises(KanxError, match="longer than 5"):
        parse_expression("x + x + x", ["x"], "t", tight)


def test_parse_number():
    assert parse_number("-1", "--var") == -1.0
    assert parse_number("2*pi", "--var") == pytest.approx(6.283185307)
    for text, reason in (("x", "undeclared"), ("log(-1)", "not a real number"), ("exp(1000)", "not finite"), ("1/0", "not")):
        with pytest.raises(KanxError, match=reason):
            parse_number(text, "--var")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("xy0123456789.+-*/^()eEpi_ ,[]'\"=<>%&|~!:;lambdaimportsqrtexp")), max_size=60))
def test_any_text_gives_an_expression_or_a_one_line_error(text):
    start = time.perf_counter()
    try:
        result = parse_expression(text, ["x", "y"], "--formula")
    except KanxError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--formula: ")
    else:
        assert isinstance(result, sympy.Expr)
    assert time.perf_counter() - start < 5


# Calls that evaluate text as code. `def eval(` (a sympy Function's evaluation hook) and method calls
# such as `module.eval()` are not text evaluation.
EVALUATING_CALL = re.compile(r"\bsympify\s*\(|\bparse_expr\s*\(|(?<![.\w])eval\s*\(|(?<![.\w])exec\s*\(|\bsympy\.S\s*\(")


def test_no_module_of_the_package_evaluates_text():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if code.lstrip().startswith("def eval("):
                continue
            if EVALUATING_CALL.search(code):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "text evaluated outside the safe parser:\n" + "\n".join(offenders)
