"""The Feynman benchmark runner's CSV validation and the SRBench judge (no training)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
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
    path = write(tmp_path, "a,f,2\n", header="id,output,n_vars\n")
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


SRSD_HEADER = ("id,set,formula,n_vars,v1_name,v1_low,v1_high,v1_sampling,v1_sign,v2_name,v2_low,v2_high,v2_sampling,v2_sign,"
               "v3_name,v3_low,v3_high,v3_sampling,v3_sign\n")


def test_srsd_rows_draw_as_each_variable_says(run, tmp_path):
    body = "e1,easy,x0*x1/x2,3,x0,0.001,0.1,log-uniform,both,x1,1,100,integer,positive,x2,2,3,uniform,negative\n"
    (equation,) = run.load_equations(write(tmp_path, body, header=SRSD_HEADER))
    assert equation.set == "easy" and equation.rounding == "significant"
    assert equation.samplings == ["log-uniform", "integer", "uniform"] and equation.signs == ["both", "positive", "negative"]
    x, y = run.sample(equation, 4000, seed=0)
    magnitude = np.abs(x[:, 0])
    assert magnitude.min() >= 0.001 and magnitude.max() <= 0.1
    assert 0.4 < (x[:, 0] < 0).mean() < 0.6  # random signs
    assert 0.4 < (np.log10(magnitude) < -2).mean() < 0.6  # log-uniform: half the samples in each decade
    assert (x[:, 1] == np.round(x[:, 1])).all() and x[:, 1].min() >= 1 and x[:, 1].max() <= 99
    assert (x[:, 2] <= -2).all() and (x[:, 2] >= -3).all()
    assert np.allclose(y, x[:, 0] * x[:, 1] / x[:, 2])
    assert equation.data_range(0) == (-0.1, 0.1) and equation.data_range(2) == (-3.0, -2.0)


def test_dummy_columns_copy_the_real_variables_sampling_and_leave_the_target_alone(run, tmp_path):
    body = "e1,easy,x0*x1,2,x0,0.001,0.1,log-uniform,both,x1,1,2,uniform,positive,,,,,\n"
    (equation,) = run.load_equations(write(tmp_path, body, header=SRSD_HEADER))
    dummied = equation.with_dummies(3)
    assert dummied.names == ["x0", "x1", "dummy1", "dummy2", "dummy3"] and dummied.dummies == 3
    assert dummied.samplings[2:] == ["log-uniform", "uniform", "log-uniform"]
    x, y = run.sample(dummied, 1000, seed=1)
    assert x.shape == (1000, 5) and np.allclose(y, x[:, 0] * x[:, 1])
    assert (np.abs(x[:, 2]) <= 0.1).all() and (x[:, 3] >= 1).all()


def test_srsd_judge_rounds_to_significant_digits(run, tmp_path):
    import judge

    x0, x1 = sympy.symbols("x0 x1", real=True)
    true = x0 / sympy.sqrt(1 - sympy.Float("1.11265005605362e-17") * x1**2)
    close = x0 / sympy.sqrt(1 - sympy.Float("1.11266e-17") * x1**2)
    assert judge.is_symbolic_solution(true, close, "significant")
    assert not judge.is_symbolic_solution(true, close, "decimals")  # 3 decimals turn 1.1e-17 into 0
    assert not judge.is_symbolic_solution(true, x0 / sympy.sqrt(1 - sympy.Float("1.2e-17") * x1**2), "significant")
    assert judge.is_symbolic_solution(sympy.Float("4.427e-12") * x0**2, sympy.Float("4.42712e-12") * x0**2, "significant")
    exact = x0 * x1 - sympy.Rational(8, 3) * x0  # an exact fraction meets the file's written float
    assert judge.is_symbolic_solution(x0 * x1 - sympy.Float("2.66666666666667") * x0, exact, "significant")
    assert not judge.is_symbolic_solution(x0 * x1 - sympy.Float("2.66666666666667") * x0, x0 * x1 - 5 * x0 / 2, "significant")


def test_the_same_law_with_other_constants_is_told_apart_from_another_law(run):
    import judge

    x, y = sympy.symbols("x_0 x_1", real=True)
    logistic = sympy.Float(0.79) * x * (1 - x / sympy.Float(74.3))
    factored = sympy.Float(-0.0106326) * x * (x - sympy.Rational(743, 10))
    assert not judge.is_symbolic_solution(logistic, factored, "significant")  # the rounding hides it
    assert judge.same_expanded_law(logistic, factored)
    gompertz = sympy.Float(0.032) * x * sympy.log(sympy.Float(2.29) * x)
    assert judge.same_expanded_law(gompertz, sympy.Float(0.0265137) * x * (sympy.Float(1.20692) * sympy.log(x) + 1))
    assert not judge.same_expanded_law(logistic, sympy.Float(-0.0107) * x * (x - sympy.Rational(743, 10)))  # 0.6% off
    assert not judge.same_expanded_law(x * y, x * y + x / 2)
    assert not judge.same_expanded_law(x, x * y)


def test_bundled_srsd_csv_loads(run):
    path = run.DEFAULT_EQUATIONS.with_name("srsd_feynman_equations.csv")
    if not path.exists():
        pytest.skip("no bundled SRSD equations")
    equations = run.load_equations(path)
    assert len(equations) == 70 and sum(e.set == "easy" for e in equations) == 30


# --------------------------------------------------------------------------- noise, seeds, Dask, resume
TWO = "T.1,f,x*y,2,x,1,5,y,1,5\nT.2,f,x+y,2,x,1,5,y,1,5\n"


def test_noise_goes_on_training_targets_at_the_srbench_scale(run):
    y = np.linspace(1.0, 3.0, 20000)
    assert run.noisy_targets(y, 0.0, seed=1) is y
    noisy = run.noisy_targets(y, 0.1, seed=1)
    assert np.std(noisy - y) == pytest.approx(0.1 * np.std(y), rel=0.03) and abs(np.mean(noisy - y)) < 0.01
    assert np.array_equal(noisy, run.noisy_targets(y, 0.1, seed=1))  # deterministic per (seed, level)
    assert not np.array_equal(noisy, run.noisy_targets(y, 0.1, seed=2))
    assert not np.array_equal(noisy - y, (run.noisy_targets(y, 0.01, seed=1) - y) * 10)  # levels draw independently


def test_bad_noise_and_seeds_exit_2(run, tmp_path, capsys):
    path = write(tmp_path, TWO)
    for args in (["--noise", "-0.1"], ["--noise", "0.1", "0.1"], ["--noise", "nan"], ["--seeds", "0"]):
        assert run.main(["--equations", str(path), "--out", str(tmp_path / "r.csv"), *args]) == 2
        assert "error:" in capsys.readouterr().err


def runner_rows(path: Path) -> list[dict]:
    import csv

    with path.open() as handle:
        return list(csv.DictReader(handle))


def run_script(*args: str) -> str:
    """The runner as a user runs it (its own process: Dask ships its task function from ``__main__``)."""
    import subprocess

    pytest.importorskip("distributed", reason="the runner schedules its tasks with Dask (the bench extra)")
    done = subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_local_cluster_runs_every_noise_and_seed_and_resumes(run, tmp_path):
    """Budgets of 1 s: every task is stopped inside its Dask task (status timeout), which exercises
    the cluster, the per-task budget, the streamed CSV, the per-noise summary and --resume."""
    path, out = write(tmp_path, TWO), tmp_path / "r.csv"
    args = ["--equations", str(path), "--out", str(out), "--timeout", "1", "--jobs", "2", "--noise", "0", "0.01", "--seeds", "2"]
    run_script(*args)
    rows = runner_rows(out)
    assert [(r["id"], float(r["noise"]), int(r["seed"])) for r in rows] == [
        (i, level, seed) for level in (0.0, 0.01) for seed in (0, 1) for i in ("T.1", "T.2")]
    assert {r["status"] for r in rows} == {"timeout"} and all(float(r["seconds"]) < 30 for r in rows)
    summary = run.json.loads(run.summary_path(out).read_text())
    assert summary["runs"] == 8 and summary["equations"] == 2 and set(summary["by_noise"]) == {"0", "0.01"}
    assert set(summary["by_noise"]["0.01"]["per_seed"]) == {"0", "1"}
    assert summary["by_noise"]["0"]["symbolic_solution_spread"] == [0.0, 0.0]
    # an interrupted run: drop two finished rows, resume, and only those two run again
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-2]) + "\n")
    assert "6 already in" in run_script(*args, "--resume")
    assert len(runner_rows(out)) == 8


@pytest.mark.slow
def test_tasks_go_to_a_running_scheduler_with_two_workers(run, tmp_path):
    import json
    import subprocess
    import time

    scheduler_file = tmp_path / "scheduler.json"
    common = ["--scheduler-file", str(scheduler_file), "--no-dashboard"]
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", *common],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--nthreads", "1",
                                               "--scheduler-file", str(scheduler_file), "--no-dashboard"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        path, out = write(tmp_path, TWO), tmp_path / "r.csv"
        run_script("--equations", str(path), "--out", str(out), "--timeout", "1", "--scheduler", address)
        rows = runner_rows(out)
        assert [r["id"] for r in rows] == ["T.1", "T.2"] and {r["status"] for r in rows} == {"timeout"}
        assert run.json.loads(run.summary_path(out).read_text())["scheduler"] == address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def trajectory_system(ident: int = 7, points: int = 256) -> dict:
    """An ODEBench-shaped system: x' = −x + x·y, y' = 1 − y, two Euler trajectories of ``points`` steps."""
    trajectories = []
    for start in ((0.5, 0.2), (1.5, 2.0)):
        x, y, rows = *start, []
        for _ in range(points):
            rows.append((x, y))
            x, y = x + 0.02 * (-x + x * y), y + 0.02 * (1 - y)
        states = np.array(rows)
        trajectories.append({"t": list(np.arange(points) * 0.02), "y": states.T.tolist()})
    return {"id": ident, "substituted": [["-x_0 + x_0*x_1", "1 - x_1"]], "solutions": [trajectories]}


def test_odebench_trajectories_become_one_problem_per_state(run, tmp_path):
    import json

    path = tmp_path / "ode.json"
    path.write_text(json.dumps([trajectory_system()]))
    first, second = run.load_equations(path)
    assert (first.id, second.id) == ("ode7.x_0", "ode7.x_1") and first.names == ["x_0", "x_1"]
    assert first.split == (300, 100) and first.rounding == "significant" and first.states.shape == (512, 2)
    x, y = run.sample(first, 400, seed=3)
    assert x.shape == (400, 2) and len({tuple(row) for row in x}) == 400  # chosen without replacement
    np.testing.assert_allclose(y, -x[:, 0] + x[:, 0] * x[:, 1])
    assert all(tuple(row) in {tuple(s) for s in first.states} for row in x[:20])
    again, _ = run.sample(first, 400, seed=3)
    np.testing.assert_array_equal(again, x)
    bundled = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "odebench_trajectories.json"
    assert len(run.load_equations(bundled)) == 105


@pytest.mark.parametrize(("content", "fragment"), [
    ("{", "cannot read"),
    ("{}", "list of ODEBench systems"),
    ('[{"id": 1}]', "not an ODEBench system"),
    ('[{"id": 1, "substituted": [["x_0"]], "solutions": [[{"y": [[1, 2]]}]]}]', "at least 400"),
])
def test_odebench_file_errors_name_the_file(run, tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(run.BenchmarkError, match=fragment):
        run.load_equations(path)
