"""The Feynman benchmark runner's CSV validation and the SRBench judge (no training)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import sympy

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "feynman" / "run.py"
HEADER = "id,output,formula,n_vars,v1_name,v1_low,v1_high,v2_name,v2_low,v2_high\n"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("feynman_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["feynman_run"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "eq.csv"
    path.write_text(header + body)
    return path


def test_parses_names_that_clash_with_sympy(run, tmp_path):
    header = HEADER.replace("\n", ",v3_name,v3_low,v3_high\n")
    path = write(tmp_path, "a,f,I*gamma + arcsin(E/5),3,I,1,2,gamma,1,3,E,1,4\nb,g,x**2,1,x,-1,1,,,,,,\n", header=header)
    first, second = run.load_equations(path)
    current, gamma, energy = (sympy.Symbol(n) for n in ("I", "gamma", "E"))
    assert first.expr == current * gamma + sympy.asin(energy / 5)
    assert first.names == ["I", "gamma", "E"] and first.ranges[2] == (1.0, 4.0)
    assert second.id == "b" and second.expr == sympy.Symbol("x") ** 2
    x, y = run.sample(first, 50, seed=0)
    assert x.shape == (50, 3) and (x[:, 2] >= 1).all() and (x[:, 2] <= 4).all()


def test_bundled_csv_loads(run):
    if not run.DEFAULT_EQUATIONS.exists():
        pytest.skip("no bundled equations")
    assert len(run.load_equations(run.DEFAULT_EQUATIONS)) == 100


@pytest.mark.parametrize(("body", "fragment"), [
    ("a,f,x*y,3,x,1,2,y,1,2\n", "n_vars is 3 but 2"),
    ("a,f,x*y,2,x,2,1,y,1,2\n", "low < high"),
    ("a,f,x*(y,2,x,1,2,y,1,2\n", "does not parse"),
    ("a,f,x*z,2,x,1,2,y,1,2\n", "undeclared name 'z'"),
    ("a,f,x*y,two,x,1,2,y,1,2\n", "not an integer"),
    ("a,f,x*y,2,x,1,2,y,1,b\n", "not numeric"),
    ("a,f,x,1,x,1,2,,,\na,f,x,1,x,1,2,,,\n", "appears twice"),
    ("a,f,__import__('os').system('touch PWNED') or x,1,x,1,2,,,\n", "boolean operation is not allowed"),
    ("a,f,x.__class__,1,x,1,2,,,\n", "attribute access is not allowed"),
])
def test_bad_rows_name_file_and_row(run, tmp_path, body, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, body)
    with pytest.raises(run.BenchmarkError) as info:
        run.load_equations(path)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message
    assert not (tmp_path / "PWNED").exists()


def test_missing_columns_and_exit_status(run, tmp_path, capsys):
    path = write(tmp_path, "a,x*y,2\n", header="id,formula,n_vars\n")
    with pytest.raises(run.BenchmarkError, match="missing column"):
        run.load_equations(path)
    assert run.main(["--equations", str(path), "--out", str(tmp_path / "r.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_payload_in_equations_file_exits_2_and_runs_nothing(run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "a,f,__import__('os').system('touch PWNED') or x,1,x,1,2,,,\n")
    assert run.main(["--equations", str(path), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eq.csv"]


def test_srbench_judge(run):
    x, y = sympy.symbols("x y", real=True)
    assert run.judge(x * y, 2 * x * y, 10)
    assert run.judge(x * y, x * y + 3, 10)
    assert run.judge(x * y, x * y + sympy.Float(1e-5) * x, 10)  # rounded to 0
    assert run.judge(x * y, sympy.Float(1.00001) * x * y, 10)  # rounded to 1.0
    assert not run.judge(x * y, x * y + x, 10)
    assert not run.judge(x * y, sympy.Integer(0), 10)
    assert not run.judge(x * y, x * y * sympy.Symbol("z"), 10)
    assert run.r_squared(run.np.array([1.0, 2.0]), run.np.array([1.0, 2.0])) == 1.0
    assert run.r_squared(run.np.array([1.0, run.np.inf]), run.np.array([1.0, 2.0])) == float("-inf")
