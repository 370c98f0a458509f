"""The AI Feynman benchmark for kanx: how often does ``kanx.discover`` recover the formula?

Run by hand (not a test)::

    python benchmarks/feynman/run.py [--equations CSV] [--ids ID ...] [--set NAME ...] [--dummy K]
                                     [--jobs N] [--budget WORK] [--timeout SECONDS] [--out results.csv]
                                     [--seed S] [--json]

For each equation of ``--equations`` (default: ``benchmarks/data/feynman_equations.csv``; any CSV
with the columns ``id, formula, n_vars, v1_name, v1_low, v1_high …`` works, and SRSD's ``set,
vK_sampling, vK_sign`` columns are honoured): draw ``BENCHMARK["train_rows"] +
BENCHMARK["test_rows"]`` rows as each variable says (uniform on the published range for AI
Feynman; log-uniform, integer, random signs for SRSD), optionally with ``--dummy K`` irrelevant
columns, give the training rows to ``kanx.discover`` (the public function behind ``kanx
discover``, with its defaults: the library's training recipe, structure-first extraction, a work
budget), and judge its law with the SRBench rule (``judge.py``; constants to 3 significant digits
for SRSD) and on the held-out rows. ``--budget`` is the work budget a user would give ``kanx
discover --budget`` (default: its default). Each equation runs in its own process under a
wall-clock safety cap (``--timeout``; killed after that plus a grace: status ``timeout``), which a
run within its work budget does not reach.

Writes ``--out`` (one row per equation, in CSV order) and its summary JSON in the same folder, and
prints the symbolic-solution rate, the accuracy-solution rate (R² > 0.999 on the held-out rows of
the recovered formula) and the median and total time, per set when the file has sets.
"""

from __future__ import annotations

import argparse
import csv
import json
import keyword
import math
import os
import signal
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import sympy
import torch

from kanx.core.errors import KanxError
from kanx.core.lambdify import numpy_function
from kanx.core.numerics import r2_value
from kanx.functions.parser import parse_expression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge import is_symbolic_solution  # noqa: E402

DEFAULT_EQUATIONS = Path(__file__).resolve().parents[1] / "data" / "feynman_equations.csv"
DEFAULT_OUT = Path(__file__).resolve().parent / "results.csv"

# How the benchmark draws and judges; how kanx trains and extracts is kanx.discovery's (its defaults).
BENCHMARK: dict[str, float | int] = {
    "train_rows": 2000,  # rows given to kanx.discovery
    "test_rows": 500,  # held-out rows for the test R² of the recovered formula (and of the network)
    "judge_seconds": 60.0,  # time limit for sympy in the SRBench judge (timeout = not a solution)
    "accuracy_r2": 0.999,  # accuracy solution: test R² of the formula above this
    "grace_seconds": 5.0,  # a task kills its run at --timeout plus this
}

COLUMNS = ["id", "set", "n_vars", "dummies", "noise", "seed", "solved", "accuracy_solved", "test_r2", "network_r2", "strategy",
           "seconds", "train_seconds", "symbolify_seconds", "judge_seconds", "work", "status", "true_formula", "formula", "structure"]


class BenchmarkError(Exception):
    """A one-line problem with the command line or the equations file (exit status 2)."""


SAMPLINGS = ("uniform", "log-uniform", "integer")
SIGNS = ("positive", "negative", "both")


@dataclass
class Equation:
    """One row of the equations CSV. ``samplings[k]`` and ``signs[k]`` say how variable ``k`` is
    drawn (AI Feynman rows: uniform and positive); ``set`` is the SRSD difficulty (or empty);
    ``rounding`` is how the judge rounds the model's constants (``decimals`` for AI Feynman,
    ``significant`` for SRSD, whose physical constants would round to 0)."""

    id: str
    output: str
    formula: str
    names: list[str]
    ranges: list[tuple[float, float]]
    expr: sympy.Expr
    samplings: list[str] = field(default_factory=list)
    signs: list[str] = field(default_factory=list)
    set: str = ""
    rounding: str = "decimals"
    dummies: int = 0
    states: np.ndarray | None = None  # [points, n]: fixed rows to choose from (ODEBench trajectories) instead of sampling

    @property
    def symbols(self) -> list[sympy.Symbol]:
        """The inputs as real symbols (the kind kanx's formulas use)."""
        return [sympy.Symbol(name, real=True) for name in self.names]

    def truth(self) -> sympy.Expr:
        """The formula over :attr:`symbols`."""
        return self.expr.xreplace({sympy.Symbol(n): s for n, s in zip(self.names, self.symbols)})

    @property
    def n_real(self) -> int:
        """The number of variables the formula uses (the dummies come after them)."""
        return len(self.names) - self.dummies

    @property
    def split(self) -> tuple[int, int]:
        """Training and test rows: ``ODE_ROWS`` split 75/25 for trajectory rows, else the benchmark's."""
        if self.states is not None:
            return ODE_TRAIN_ROWS, ODE_ROWS - ODE_TRAIN_ROWS
        return int(BENCHMARK["train_rows"]), int(BENCHMARK["test_rows"])

    def with_dummies(self, count: int) -> Equation:
        """The equation with ``count`` irrelevant inputs ``dummy1 …`` appended; dummy ``j`` is
        drawn the way real variable ``(j - 1) mod n`` is (range, sampling and sign), so nothing
        but the formula tells them apart."""
        n = len(self.names)
        picks = [j % n for j in range(count)]
        names = self.names + [f"dummy{j + 1}" for j in range(count)]
        return replace(self, names=names, ranges=self.ranges + [self.ranges[p] for p in picks],
                       samplings=self.samplings + [self.samplings[p] for p in picks],
                       signs=self.signs + [self.signs[p] for p in picks], dummies=count)

    def data_range(self, k: int) -> tuple[float, float]:
        """The interval variable ``k``'s samples fill (its magnitude range with the sign applied)."""
        lo, hi = self.ranges[k]
        if self.signs[k] == "both":
            return (-max(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
        if self.signs[k] == "negative":
            return (-hi, -lo)
        return (lo, hi)


# --------------------------------------------------------------------------- equations file
def load_equations(path: Path) -> list[Equation]:
    """Read and validate an equations CSV (or an ODEBench trajectories JSON, by its ``.json``
    suffix); raise ``BenchmarkError`` naming the file and row."""
    if path.suffix == ".json":
        return load_trajectories(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    if not rows:
        raise BenchmarkError(f"{path}: no equations")
    missing = [c for c in ("id", "formula", "n_vars") if c not in rows[0]]
    if missing:
        raise BenchmarkError(f"{path}: missing column(s) {', '.join(missing)}")
    equations = [parse_row(row, f"{path}: line {line}") for line, row in enumerate(rows, start=2)]
    ids = [e.id for e in equations]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise BenchmarkError(f"{path}: id {duplicate!r} appears twice")
    return equations


def parse_row(row: dict[str, str | None], where: str) -> Equation:
    """One CSV row → :class:`Equation` (``where`` prefixes error messages)."""
    eq_id = (row.get("id") or "").strip()
    where = f"{where} ({eq_id})" if eq_id else where
    if not eq_id:
        raise BenchmarkError(f"{where}: empty id")
    try:
        n_vars = int((row.get("n_vars") or "").strip())
    except ValueError:
        raise BenchmarkError(f"{where}: n_vars {row.get('n_vars')!r} is not an integer") from None
    declared = sum(1 for key, value in row.items() if key and key.startswith("v") and key.endswith("_name") and (value or "").strip())
    if n_vars < 1 or declared != n_vars:
        raise BenchmarkError(f"{where}: n_vars is {n_vars} but {declared} variable name(s) are given")
    names, ranges, samplings, signs = [], [], [], []
    srsd = "set" in row
    for k in range(1, n_vars + 1):
        name, low, high = (row.get(f"v{k}_{part}") for part in ("name", "low", "high"))
        if name is None or low is None or high is None:
            raise BenchmarkError(f"{where}: missing column(s) v{k}_name/v{k}_low/v{k}_high")
        name = name.strip()
        if not name.isidentifier() or keyword.iskeyword(name) or name in names:
            raise BenchmarkError(f"{where}: v{k}_name {name!r} is not a usable, unique variable name")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise BenchmarkError(f"{where}: v{k} range {low!r}..{high!r} is not numeric") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise BenchmarkError(f"{where}: v{k} ({name}) needs finite low < high, got {lo}..{hi}")
        sampling = (row.get(f"v{k}_sampling") or "uniform").strip()
        sign = (row.get(f"v{k}_sign") or "positive").strip()
        if sampling not in SAMPLINGS or sign not in SIGNS:
            raise BenchmarkError(f"{where}: v{k} ({name}) sampling {sampling!r} / sign {sign!r}: use one of "
                                 f"{', '.join(SAMPLINGS)} / {', '.join(SIGNS)}")
        if sampling == "log-uniform" and lo <= 0:
            raise BenchmarkError(f"{where}: v{k} ({name}) is log-uniform, so its range must be positive, got {lo}..{hi}")
        names.append(name)
        ranges.append((lo, hi))
        samplings.append(sampling)
        signs.append(sign)
    expr = parse_formula(row.get("formula") or "", names, where)
    difficulty = (row.get("set") or "").strip()
    return Equation(eq_id, (row.get("output") or "f").strip() or "f", (row.get("formula") or "").strip(), names, ranges, expr,
                    samplings, signs, difficulty, "significant" if srsd else "decimals")


ODE_ROWS = 400  # SRBench's Strogatz problems: 400 rows of states along the trajectories, split 75/25
ODE_TRAIN_ROWS = 300
MAX_STATES = 10


def load_trajectories(path: Path) -> list[Equation]:
    """ODEBench systems as equations, one per state: inputs ``x_0 … x_{d-1}`` (the states at every
    point of the stored trajectories of the first constant set), formula that state's right-hand
    side. Raises ``BenchmarkError`` naming the file and system."""
    try:
        systems = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{path}: cannot read ({exc.__class__.__name__}: {' '.join(str(exc).split())[:200]})") from None
    if not isinstance(systems, list) or not systems:
        raise BenchmarkError(f"{path}: expected a list of ODEBench systems")
    equations = []
    for number, system in enumerate(systems, start=1):
        where = f"{path}: system {number}"
        try:
            ident, formulas = system["id"], system["substituted"][0]
            trajectories = system["solutions"][0]
            states = np.concatenate([np.asarray(t["y"], dtype=np.float64).T for t in trajectories])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BenchmarkError(f"{where}: not an ODEBench system ({exc.__class__.__name__}: {exc})") from None
        if not (isinstance(formulas, list) and 1 <= len(formulas) <= MAX_STATES and states.ndim == 2
                and states.shape[1] == len(formulas) and states.shape[0] >= ODE_ROWS and np.isfinite(states).all()):
            raise BenchmarkError(f"{where}: needs 1..{MAX_STATES} right-hand sides and at least {ODE_ROWS} finite "
                                 f"trajectory points of that many states")
        names = [f"x_{k}" for k in range(len(formulas))]
        lows, highs = states.min(axis=0), states.max(axis=0)
        ranges = [(float(lo), float(hi) if hi > lo else float(lo) + 1.0) for lo, hi in zip(lows, highs)]
        for k, text in enumerate(formulas):
            expr = parse_formula(str(text), names, f"{where} (state {k})")
            equations.append(Equation(f"ode{ident}.x_{k}", f"dx_{k}", str(text), list(names), list(ranges), expr,
                                      ["uniform"] * len(names), ["both"] * len(names), "", "significant", states=states))
    return equations


def parse_formula(text: str, names: list[str], where: str) -> sympy.Expr:
    """Parse with kanx's safe parser, every variable a plain Symbol (so ``I``, ``E``, ``gamma``
    stay variables); the file's text is never evaluated."""
    try:
        return parse_expression(text, names, f"{where}: formula")
    except KanxError as exc:
        raise BenchmarkError(str(exc)) from None


# --------------------------------------------------------------------------- data and scoring
def evaluate(expr: sympy.Expr, symbols: list[sympy.Symbol], x: np.ndarray) -> np.ndarray:
    """``expr`` on rows ``x [N, n]`` in float64 (numpy), always an array ``[N]``."""
    function = numpy_function(symbols, expr)
    with np.errstate(all="ignore"):
        out = np.asarray(function(*x.T), dtype=np.float64)
    return np.broadcast_to(out, (x.shape[0],)).copy()


def draw(equation: Equation, rows: int, rng: np.random.Generator) -> np.ndarray:
    """``[rows, n]`` inputs drawn as each variable's sampling and sign say (uniform, log-uniform
    ``10**U(log10 lo, log10 hi)`` or integers in ``[lo, hi)``; a random sign for ``both``)."""
    columns = []
    for (lo, hi), sampling, sign in zip(equation.ranges, equation.samplings, equation.signs):
        if sampling == "log-uniform":
            column = 10.0 ** rng.uniform(math.log10(lo), math.log10(hi), size=rows)
        elif sampling == "integer":
            column = rng.integers(math.ceil(lo), math.ceil(hi), size=rows).astype(np.float64)
        else:
            column = rng.uniform(lo, hi, size=rows)
        if sign == "both":
            column = column * rng.choice([-1.0, 1.0], size=rows)
        elif sign == "negative":
            column = -column
        columns.append(column)
    return np.stack(columns, axis=1)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def sample(equation: Equation, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` samples drawn as :func:`draw` says whose target is finite (and within float32's
    range, as SRSD requires); resamples the others. For an equation with fixed ``states`` (ODEBench),
    a seeded choice of ``rows`` of its trajectory points instead (in random order), with the exact
    right-hand side."""
    rng = np.random.default_rng(seed)
    if equation.states is not None:
        x = equation.states[rng.choice(equation.states.shape[0], size=rows, replace=False)]  # in random order: any prefix is a random split
        return x, evaluate(equation.expr, [sympy.Symbol(n) for n in equation.names], x)
    xs, ys, have = [], [], 0
    for _ in range(20):
        x = draw(equation, rows, rng)
        y = evaluate(equation.expr, [sympy.Symbol(n) for n in equation.names[:equation.n_real]], x[:, :equation.n_real])
        keep = np.isfinite(y) & (np.abs(y) <= FLOAT32_MAX)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
        if have >= rows:
            return np.concatenate(xs)[:rows], np.concatenate(ys)[:rows]
    raise ValueError(f"only {have} of {rows} samples have a finite target")


def r_squared(prediction: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination; ``-inf`` when the prediction is not finite."""
    if prediction.shape != target.shape:
        return float("-inf")
    return r2_value(torch.from_numpy(np.asarray(prediction, dtype=np.float64)), torch.from_numpy(np.asarray(target, dtype=np.float64)))


def judge(true: sympy.Expr, model: sympy.Expr, seconds: float, rounding: str = "decimals") -> bool:
    """SRBench's rule under a SIGALRM time limit (worker processes only); a timeout, or sympy failing
    on a number it cannot represent, is no."""
    def expire(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.1))
    try:
        return bool(is_symbolic_solution(true, model, rounding))
    except (TimeoutError, RecursionError, ArithmeticError):
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def structure_text(log: dict | None) -> str:
    """The structure search's description of its formula, if any, as one line."""
    text = (log or {}).get("structure_text") or ""
    return "; ".join(map(str, text)) if isinstance(text, list | tuple) else str(text)


def kanx_commit() -> str:
    """The commit of the kanx checkout this runner belongs to (``unknown`` outside a git checkout)."""
    import subprocess

    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def equation_seed(seed: int, eq_id: str) -> int:
    """``--seed`` plus a stable offset per equation (data, network and search all use it)."""
    return seed + zlib.crc32(eq_id.encode()) % 100_000


def noisy_targets(y: np.ndarray, level: float, seed: int) -> np.ndarray:
    """SRBench's target noise: ``y + N(0, (level · std y)²)`` per row (``y`` unchanged at level 0)."""
    if level == 0:
        return y
    rng = np.random.default_rng([seed, zlib.crc32(repr(float(level)).encode())])
    return y + rng.normal(0.0, level * float(np.std(y)), size=y.shape)


def solve(equation: Equation, seed: int, send, noise: float = 0.0, budget: int | None = None) -> None:
    """Discover and judge one equation with ``noise`` (SRBench level) on its training targets only;
    ``send(dict)`` reports progress (merged into the row). ``budget``: ``kanx.discover``'s work
    budget (``None``: its default)."""
    import torch

    import kanx
    from kanx.io.data import Dataset

    start = time.perf_counter()
    seed = equation_seed(seed, equation.id)
    n_train, n_test = equation.split
    x, y = sample(equation, n_train + n_test, seed)
    x_test, y_test = x[n_train:], y[n_train:]  # clean: formulas and networks are judged on the law itself
    y_train = noisy_targets(y[:n_train], noise, seed)
    data = Dataset(torch.tensor(x[:n_train], dtype=torch.float32), torch.tensor(y_train[:, None], dtype=torch.float32),
                   list(equation.names), [equation.output], f"feynman:{equation.id}")
    options = {"budget": budget} if budget is not None else {}
    result = kanx.discover(data, seed=seed, **options)
    with torch.no_grad():
        network = result.model(torch.tensor(x_test, dtype=torch.float32)).double().numpy()[:, 0]
    law = result.laws[0]
    send({"network_r2": r_squared(network, y_test), "train_seconds": result.seconds.get("train", float("nan")),
          "symbolify_seconds": result.seconds.get("extract", float("nan"))})
    expr = result.expressions[0]
    symbols = equation.symbols
    expr = expr.xreplace({s: symbols[equation.names.index(s.name)] for s in expr.free_symbols if s.name in equation.names})
    closed = not expr.atoms(sympy.core.function.AppliedUndef)
    test_r2 = r_squared(evaluate(expr, symbols, x_test), y_test) if closed else float("-inf")
    send({"formula": sympy.sstr(expr), "test_r2": test_r2, "strategy": law.route, "structure": "; ".join(law.structure),
          "accuracy_solved": int(closed and test_r2 > float(BENCHMARK["accuracy_r2"])), "work": law.work})

    began = time.perf_counter()
    solved = closed and judge(equation.truth(), expr, float(BENCHMARK["judge_seconds"]), equation.rounding)
    send({"solved": int(solved), "judge_seconds": time.perf_counter() - began, "status": "ok",
          "discover_seconds": began - start})


@dataclass(frozen=True)
class Task:
    """One run of the benchmark: equation ``id`` of ``equations`` (with ``dummies`` extra columns) at
    target ``noise`` level and ``seed``, with ``budget`` work units (``None``: kanx's default) and
    a wall-clock safety cap of ``timeout`` seconds. Plain data, so any Dask worker can run it."""

    equations: str
    id: str
    noise: float
    seed: int
    timeout: float
    dummies: int = 0
    budget: int | None = None

    @property
    def key(self) -> tuple[str, float, int]:
        return (self.id, self.noise, self.seed)


def run_task(fields: dict) -> dict:
    """The Dask task, on a :class:`Task`'s fields (plain data): run it in a child process of its own
    session and enforce its wall-clock safety cap here, inside the task (killed at ``timeout`` + grace: status
    ``timeout``). The child streams each part of its row as one JSON line, so a killed run keeps what
    it had (its network R², say)."""
    import subprocess

    task = Task(**fields)
    began = time.perf_counter()
    command = [sys.executable, str(Path(__file__).resolve()), "--task", json.dumps(task.__dict__)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = child.communicate(timeout=task.timeout + float(BENCHMARK["grace_seconds"]))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        timed_out = True
    row = {**empty_row(), "id": task.id, "noise": task.noise, "seed": task.seed, "dummies": task.dummies, "status": ""}
    for line in out.splitlines():
        try:
            row.update(json.loads(line))
        except json.JSONDecodeError:
            continue
    if timed_out:
        row.update(status="timeout", solved=0, accuracy_solved=0, test_r2=float("nan"))
    elif not row["status"]:
        row["status"] = f"error: the run exited with code {child.returncode}"
    row["seconds"] = time.perf_counter() - began
    return row


def task_main(text: str) -> int:
    """``run.py --task JSON``: one task in this process, its row streamed as JSON lines on stdout."""
    task = Task(**json.loads(text))

    def send(part: dict) -> None:
        print(json.dumps(part, default=float), flush=True)

    import torch

    torch.set_num_threads(1)
    equation = next(e for e in load_equations(Path(task.equations)) if e.id == task.id)
    if task.dummies and equation.states is not None:
        raise BenchmarkError("--dummy: trajectory rows have no sampling to draw dummy columns from")
    equation = equation.with_dummies(task.dummies) if task.dummies else equation
    send(blank_row(equation, task))
    try:
        solve(equation, task.seed, send, task.noise, task.budget)
    except Exception as exc:  # noqa: BLE001 - any failure is one row of the benchmark
        send({"status": "error: " + " ".join(f"{exc.__class__.__name__}: {exc}".split())[:300]})
    return 0


def empty_row() -> dict:
    """A row with every column: NaN for the measured numbers, 0 for counts and flags, empty text
    (what a run killed before it reported anything keeps)."""
    return {column: (float("nan") if NUMERIC.get(column) is float else 0 if column in NUMERIC else "") for column in COLUMNS}


def blank_row(equation: Equation, task: Task) -> dict:
    return {"id": equation.id, "set": equation.set, "n_vars": equation.n_real, "dummies": equation.dummies,
            "noise": task.noise, "seed": task.seed, "solved": 0, "accuracy_solved": 0, "test_r2": float("nan"),
            "network_r2": float("nan"), "strategy": "", "seconds": float("nan"), "train_seconds": float("nan"), "work": 0,
            "symbolify_seconds": float("nan"), "judge_seconds": float("nan"), "status": "", "true_formula": equation.formula,
            "formula": "", "structure": ""}


def cluster_client(jobs: int, scheduler: str | None):
    """A Dask client: on ``scheduler`` (an address) when given, else on a ``LocalCluster`` of ``jobs``
    single-threaded worker processes on this machine."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s")
    cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def run_all(tasks: list[Task], jobs: int, scheduler: str | None, on_done) -> list[dict]:
    """Every task as one Dask task; ``on_done(row)`` as each finishes (any order); rows in task order."""
    from distributed import as_completed

    client = cluster_client(jobs, scheduler)
    try:
        futures = {client.submit(run_task, dict(task.__dict__), pure=False, key=f"kanx-feynman-{task.id}-{task.noise}-{task.seed}-"
                                 f"{time.time_ns()}"): task for task in tasks}
        rows = {}
        for future in as_completed(futures):
            row = future.result()
            rows[futures[future].key] = row
            on_done(row)
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
    return [rows[task.key] for task in tasks]


# --------------------------------------------------------------------------- reporting
def summarize(rows: list[dict], wall: float, args: argparse.Namespace) -> dict:
    """Solution rates and times of a finished run: overall, per set, and per noise level with the
    rates of each seed and their spread."""
    n = len(rows)
    seconds = [r["seconds"] for r in rows]
    summary = {
        "equations_file": str(args.equations), "runs": n, "equations": len({r["id"] for r in rows}), "seed": args.seed,
        "seeds": args.seeds, "noise_levels": args.noise, "work_budget": args.budget, "timeout_seconds": args.timeout,
        "jobs": args.jobs,
        "scheduler": args.scheduler or "LocalCluster", "dummy_inputs": args.dummy, **rates(rows),
        "timeouts": sum(r["status"] == "timeout" for r in rows), "errors": sum(r["status"].startswith("error") for r in rows),
        "median_seconds": statistics.median(seconds), "total_seconds": sum(seconds), "wall_seconds": wall,
        "benchmark": BENCHMARK, "kanx_commit": kanx_commit(),
    }
    sets = sorted({r["set"] for r in rows if r["set"]})
    if sets:
        summary["sets"] = {name: {"equations": sum(r["set"] == name for r in rows), **rates([r for r in rows if r["set"] == name])}
                           for name in sets}
    summary["by_noise"] = {f"{level:g}": noise_summary([r for r in rows if r["noise"] == level]) for level in args.noise}
    return summary


def noise_summary(rows: list[dict]) -> dict:
    """Rates at one noise level: per seed, their mean, and their spread (min, max) across seeds."""
    per_seed = {str(seed): rates([r for r in rows if r["seed"] == seed]) for seed in sorted({r["seed"] for r in rows})}
    summary = {"runs": len(rows), "per_seed": per_seed}
    for measure in ("symbolic_solution_rate", "accuracy_solution_rate"):
        values = [part[measure] for part in per_seed.values()]
        summary[measure] = statistics.fmean(values) if values else float("nan")
        summary[measure.replace("rate", "spread")] = [min(values), max(values)] if values else []
    return summary


def rates(rows: list[dict]) -> dict:
    """Symbolic- and accuracy-solution counts and rates of ``rows``."""
    symbolic = sum(r["solved"] for r in rows)
    accurate = sum(r["accuracy_solved"] for r in rows)
    count = max(len(rows), 1)
    return {"symbolic_solutions": symbolic, "symbolic_solution_rate": symbolic / count,
            "accuracy_solutions": accurate, "accuracy_solution_rate": accurate / count}


def write_results(path: Path, rows: list[dict]) -> None:
    """The finished results CSV, rows in task order, written atomically over the streamed one."""
    from kanx.io.files import atomic_write_text

    atomic_write_text(path, ",".join(COLUMNS) + "\n" + "".join(csv_line(row) for row in rows))


NUMERIC = {"n_vars": int, "dummies": int, "seed": int, "solved": int, "accuracy_solved": int, "work": int, "noise": float, "test_r2": float,
           "network_r2": float, "seconds": float, "train_seconds": float, "symbolify_seconds": float, "judge_seconds": float}


def csv_line(row: dict) -> str:
    """``row`` as one CSV line in ``COLUMNS`` order (no header)."""
    from io import StringIO

    text = StringIO()
    csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore").writerow(
        {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return text.getvalue()


def stream_row(path: Path, row: dict) -> None:
    """Append ``row`` to the results CSV as it finishes (the header first when the file is new)."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8") as handle:
        if new:
            handle.write(",".join(COLUMNS) + "\n")
        handle.write(csv_line(row))
        handle.flush()


def read_results(path: Path) -> list[dict]:
    """Finished rows of an earlier (perhaps interrupted) run's CSV, typed; rows without a status are skipped."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("id", "noise", "seed", "status") if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchmarkError(f"--resume: {path} is not a results file of this runner (no {', '.join(missing)} column)")
        rows = []
        for line, raw in enumerate(reader, start=2):
            try:
                row = {k: (NUMERIC[k](float(v)) if k in NUMERIC and v not in ("", None) else v) for k, v in raw.items() if k in COLUMNS}
            except ValueError as exc:
                raise BenchmarkError(f"--resume: {path} line {line}: {exc}") from None
            if row.get("status"):
                rows.append(row)
    return rows


def summary_path(out: Path) -> Path:
    """``summary.json`` beside ``results.csv``; ``<stem>_summary.json`` beside any other name."""
    return out.with_name("summary.json" if out.name == "results.csv" else f"{out.stem}_summary.json")


def progress_line(row: dict, done: int, total: int) -> str:
    mark = "[green]solved[/]" if row["solved"] else ("[yellow]accurate[/]" if row["accuracy_solved"] else "[red]no[/]")
    status = "" if row["status"] == "ok" else f" [red]{row['status']}[/]"
    return (f"[{done}/{total}] {row['id']}: {mark}  R²={row['test_r2']:.6g} (net {row['network_r2']:.4g})  {row['seconds']:.0f}s"
            f"  {row['strategy']}{status}\n    {row['formula'] or '—'}")


def final_table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="kanx on Feynman")
    for column in ("id", "solved", "acc.", "test R²", "net R²", "strategy", "s", "formula / status"):
        table.add_column(column)
    for r in rows:
        shown = r["formula"] if r["status"] == "ok" else f"{r['status']} {r['formula']}".strip()
        table.add_row(r["id"], "yes" if r["solved"] else "no", "yes" if r["accuracy_solved"] else "no", f"{r['test_r2']:.6g}",
                      f"{r['network_r2']:.4g}", r["strategy"], f"{r['seconds']:.0f}", shown[:100])
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equations", type=Path, default=DEFAULT_EQUATIONS, help="equations CSV (default: %(default)s)")
    parser.add_argument("--ids", nargs="+", help="only these equation ids")
    parser.add_argument("--set", dest="sets", nargs="+", help="only equations of these sets (SRSD: easy, medium)")
    parser.add_argument("--dummy", type=int, default=0, metavar="K",
                        help="add K irrelevant input columns to every equation (drawn like its real variables)")
    parser.add_argument("--jobs", type=int, default=1, help="workers of the LocalCluster, one thread each (default 1)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="send the tasks to this running Dask scheduler (e.g. tcp://10.0.0.1:8786) instead")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0], metavar="LEVEL",
                        help="SRBench target noise levels: y + N(0, (LEVEL·std y)²) on the training rows only (default 0)")
    parser.add_argument("--seeds", type=int, default=1, metavar="N", help="runs per equation and level: seeds --seed … --seed+N-1")
    parser.add_argument("--resume", action="store_true", help="keep the finished rows of --out and run only the others")
    parser.add_argument("--budget", type=int, default=None, metavar="WORK",
                        help="work units of structure search per equation, as kanx discover --budget (default: kanx's)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="wall-clock safety cap per equation in seconds (default 900; a run that reaches it is 'timeout')")
    parser.add_argument("--out", type=Path, default=None,
                        help="per-equation results CSV (default: results.csv here; srsd_results.csv, or "
                             "srsd_dummyK_results.csv, for an equations file with a set column)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (progress goes to stderr)")
    parser.add_argument("--task", help=argparse.SUPPRESS)  # internal: run one task in this process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    if args.task is not None:
        return task_main(args.task)
    try:
        if args.jobs < 1 or (args.budget is not None and args.budget < 1) or args.timeout <= 0 or args.dummy < 0 or args.seeds < 1:
            raise BenchmarkError("--jobs, --seeds and --budget must be >= 1, --timeout > 0 and --dummy >= 0")
        if any(not (math.isfinite(level) and level >= 0) for level in args.noise) or len(set(args.noise)) != len(args.noise):
            raise BenchmarkError(f"--noise {' '.join(map(str, args.noise))}: levels must be distinct, finite and >= 0")
        from kanx.io.files import check_output_path

        equations = load_equations(args.equations)
        if args.out is None:
            srsd = any(e.set for e in equations)
            prefix = "odebench_" if args.equations.suffix == ".json" else ("srsd_" + (f"dummy{args.dummy}_" if args.dummy else "")) * srsd
            args.out = DEFAULT_OUT.with_name(prefix + "results.csv")
        try:
            check_output_path(args.out, "--out", [args.equations])
        except KanxError as exc:
            raise BenchmarkError(str(exc)) from None
        if args.ids:
            known = {e.id for e in equations}
            unknown = [i for i in args.ids if i not in known]
            if unknown:
                raise BenchmarkError(f"--ids: {', '.join(unknown)} not in {args.equations}")
            equations = [e for e in equations if e.id in set(args.ids)]
        if args.sets:
            equations = [e for e in equations if e.set in set(args.sets)]
            if not equations:
                raise BenchmarkError(f"--set {' '.join(args.sets)}: no such equations in {args.equations}")
        tasks = [Task(str(args.equations.resolve()), e.id, level, args.seed + k, args.timeout, args.dummy, args.budget)
                 for level in args.noise for k in range(args.seeds) for e in equations]
        earlier = {(r["id"], r["noise"], r["seed"]): r for r in read_results(args.out)} if args.resume else {}
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stream = sys.stderr if args.json else sys.stdout
    console = Console(stderr=args.json, highlight=False, width=None if stream.isatty() else 160)
    todo = [t for t in tasks if t.key not in earlier]
    console.print(f"{len(equations)} equation(s) × {len(args.noise)} noise level(s) × {args.seeds} seed(s): {len(tasks)} runs"
                  + (f", {len(tasks) - len(todo)} already in {args.out}" if args.resume else "")
                  + f"; work budget {args.budget or 'default'}, safety cap {args.timeout:g}s each, on "
                  + f"{args.scheduler or f'a LocalCluster of {args.jobs} worker(s)'}")
    if not args.resume and args.out.exists():
        args.out.unlink()
    done = []

    def report(row: dict) -> None:
        done.append(row)
        stream_row(args.out, row)
        console.print(progress_line(row, len(done), len(todo)), soft_wrap=True)

    began = time.perf_counter()
    try:
        finished = {t.key: r for t, r in zip(todo, run_all(todo, args.jobs, args.scheduler, report))} if todo else {}
    except (OSError, TimeoutError) as exc:  # no scheduler at --scheduler, or the cluster could not start
        print(f"error: {'--scheduler ' + args.scheduler if args.scheduler else 'LocalCluster'}: "
              f"{' '.join(str(exc).split())[:200]}", file=sys.stderr)
        return 2
    rows = [finished.get(t.key) or earlier[t.key] for t in tasks]
    summary = summarize(rows, time.perf_counter() - began, args)
    write_results(args.out, rows)
    from kanx.io.files import atomic_write_text

    atomic_write_text(summary_path(args.out), json.dumps(summary, indent=2) + "\n")
    console.print(final_table(rows))
    for name, part in summary.get("sets", {}).items():
        console.print(f"{name}: symbolic {part['symbolic_solutions']}/{part['equations']} ({part['symbolic_solution_rate']:.1%}), "
                      f"accuracy {part['accuracy_solutions']}/{part['equations']} ({part['accuracy_solution_rate']:.1%})")
    for level, part in summary["by_noise"].items():
        low, high = part["symbolic_solution_spread"]
        console.print(f"noise {level}: symbolic {part['symbolic_solution_rate']:.1%} (seeds {low:.1%}–{high:.1%}), "
                      f"accuracy {part['accuracy_solution_rate']:.1%} over {part['runs']} runs")
    console.print(f"symbolic solutions {summary['symbolic_solutions']}/{len(rows)} ({summary['symbolic_solution_rate']:.1%}), "
                  f"accuracy solutions {summary['accuracy_solutions']}/{len(rows)} ({summary['accuracy_solution_rate']:.1%}), "
                  f"timeouts {summary['timeouts']}, errors {summary['errors']}; median {summary['median_seconds']:.1f}s, "
                  f"total {summary['total_seconds']:.0f}s summed, {summary['wall_seconds']:.0f}s wall → {args.out}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
