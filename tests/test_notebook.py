"""Where KAN users work: live objects and state dicts (``kanx.from_module``), formulas as code
(``--export`` / ``SymbolicResult.function``), notebook display, CLI choices and a fast start-up."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
import yaml
from conftest import FIXTURES, assert_clean_failure, invoke
from torch import nn

import kanx
from kanx.core.errors import KanxError
from kanx.io.data import Dataset
from kanx.io.importers import reference_difference
from kanx.io.modules import module_options
from kanx.training import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def reference(name: str) -> tuple[object, torch.Tensor]:
    folder = FIXTURES / name
    return torch.load(folder / "inputs.pt", weights_only=True), torch.load(folder / "outputs.pt", weights_only=True)


def load_module_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- from_module: state dicts
@pytest.mark.parametrize(("name", "options"), [("efficient_kan", {}), ("fast_kan", {"rbf_width": 4 / 7}), ("chebykan", {})])
def test_state_dicts_reproduce_the_libraries_outputs(name: str, options: dict) -> None:
    state = torch.load(FIXTURES / name / "model.pt", weights_only=True)
    model = kanx.from_module(state, **options)
    x, expected = reference(name)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, **TOLERANCE)
    assert model.provenance["source_file"].startswith("<")


@pytest.mark.parametrize("name", ["pykan_spline", "pykan_mult", "pykan_symbolic"])
def test_pykan_state_dict_with_its_config_reproduces_pykan(name: str) -> None:
    state = torch.load(FIXTURES / name / "model_state", weights_only=True)
    config = yaml.safe_load((FIXTURES / name / "model_config.yml").read_text())
    model = kanx.from_module(state, config=config)
    x, expected = reference(name)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, **TOLERANCE)


@pytest.mark.parametrize("name", ["pykan_spline", "pykan_mult"])
def test_pykan_state_dict_alone_infers_the_widths(name: str) -> None:
    model = kanx.from_module(torch.load(FIXTURES / name / "model_state", weights_only=True))
    x, expected = reference(name)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, **TOLERANCE)
    assert "inferred" in model.provenance["layout"]


def test_pykan_state_dict_with_symbolic_edges_needs_the_config() -> None:
    state = torch.load(FIXTURES / "pykan_symbolic" / "model_state", weights_only=True)
    with pytest.raises(KanxError, match="symbolic edges.*config"):
        kanx.from_module(state)


def test_karsein_state_dict_with_a_config_dict() -> None:
    state = torch.load(FIXTURES / "karsein" / "model.pt", weights_only=True)
    config = json.loads((FIXTURES / "karsein" / "meta.json").read_text())
    model = kanx.from_module(state, config=config)
    inputs, expected = reference("karsein")
    assert reference_difference(model, inputs, expected, strict=True) < 1e-5


# --------------------------------------------------------------------------- from_module: live modules
def stand_in(state: dict[str, torch.Tensor], extras: dict[str, dict]) -> nn.Module:
    """An ``nn.Module`` whose ``state_dict()`` is ``state`` (parameters under the same dotted
    names) and whose submodules carry the attributes in ``extras`` (``"layers.0.rbf": {...}``):
    what a live third-party module looks like to kanx, built without the library."""
    root = nn.Module()
    for key, tensor in state.items():
        *path, leaf = key.split(".")
        owner = root
        for part in path:
            if not hasattr(owner, part):
                owner.add_module(part, nn.Module())
            owner = getattr(owner, part)
        owner.register_parameter(leaf, nn.Parameter(tensor.clone(), requires_grad=False))
    for path, attributes in extras.items():
        owner = root.get_submodule(path)
        for name, value in attributes.items():
            setattr(owner, name, value)
    return root


def test_live_fastkan_module_supplies_its_own_hyper_parameters() -> None:
    state = torch.load(FIXTURES / "fast_kan" / "model.pt", weights_only=True)
    extras = {f"layers.{i}.rbf": {"denominator": 4 / 7} for i in range(2)}
    extras.update({f"layers.{i}": {"base_activation": torch.nn.functional.silu} for i in range(2)})
    module = stand_in(state, extras)
    for index in range(2):  # FastKAN's LayerNorm: a real nn.LayerNorm module with its eps
        norm = nn.LayerNorm(3 if index == 0 else 4, eps=1e-5)
        norm.load_state_dict({"weight": state[f"layers.{index}.layernorm.weight"], "bias": state[f"layers.{index}.layernorm.bias"]})
        module.get_submodule(f"layers.{index}").layernorm = norm
    assert module_options(module, "fastkan", "<m>") == {"base_fn": "silu", "rbf_width": 4 / 7, "norm_eps": 1e-5}
    model = kanx.from_module(module)
    x, expected = reference("fast_kan")
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, **TOLERANCE)


def test_live_efficient_kan_module_reads_its_base_activation() -> None:
    state = torch.load(FIXTURES / "efficient_kan" / "model.pt", weights_only=True)
    module = stand_in(state, {f"layers.{i}": {"base_activation": nn.Identity()} for i in range(2)})
    assert module_options(module, "efficient-kan", "<m>") == {"base_fn": "identity"}
    assert kanx.from_module(module).base_fn == "identity"
    module = stand_in(state, {f"layers.{i}": {"base_activation": nn.SiLU()} for i in range(2)})
    x, expected = reference("efficient_kan")
    with torch.no_grad():
        torch.testing.assert_close(kanx.from_module(module)(x), expected, **TOLERANCE)
    odd = stand_in(state, {f"layers.{i}": {"base_activation": nn.GELU()} for i in range(2)})
    with pytest.raises(KanxError, match="base activation GELU has no kanx counterpart"):
        kanx.from_module(odd)


@pytest.mark.parametrize(
    ("thing", "source", "message"),
    [
        ("a string", None, "expected a KAN nn.Module or its state_dict"),
        (nn.Linear(2, 3), None, "not recognised"),
        ({"weight": torch.zeros(2)}, None, "not recognised"),
        ({}, None, "not a state dict"),
        ("efficient_kan", "pykan", "not a pykan MultKAN"),
        ("efficient_kan_state", "chebykan", "not a state dict written by ChebyKAN"),
    ],
)
def test_not_a_kan_is_a_one_line_error(thing, source, message) -> None:
    if thing == "efficient_kan":
        thing = stand_in(torch.load(FIXTURES / "efficient_kan" / "model.pt", weights_only=True), {})
    elif thing == "efficient_kan_state":
        thing = torch.load(FIXTURES / "efficient_kan" / "model.pt", weights_only=True)
    with pytest.raises(KanxError, match=message) as caught:
        kanx.from_module(thing, source=source)
    assert "\n" not in str(caught.value)


def test_unknown_option_and_kanx_models() -> None:
    model = kanx.load_model(ROOT / "samples" / "exp_sin.pt")
    assert kanx.from_module(model) is model
    with pytest.raises(TypeError, match="unknown option 'grid'"):
        kanx.from_module(model, grid=5)


@pytest.mark.slow
def test_live_pykan_multkan_end_to_end(tmp_path: Path) -> None:
    """The issue's notebook: train a MultKAN a few steps, read its formula, export, display."""
    pytest.importorskip("kan", reason="the pykan extra is not installed")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import notebook
    finally:
        sys.path.pop(0)
    outcome = notebook.main(tmp_path)
    x1, x2 = sympy.symbols("x_1 x_2", real=True)
    assert sympy.simplify(outcome["formula"] - sympy.exp(sympy.sin(sympy.pi * x1) + x2**2)) == 0
    assert outcome["code_gap"] == 0
    assert r"\sin{\left(\pi x_{1} \right)}" in outcome["latex"] and outcome["latex"].startswith("$$")
    module = load_module_file(Path(outcome["module"]))
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(module.y_1(x[:, 0], x[:, 1]), torch.exp(torch.sin(torch.pi * x[:, 0]) + x[:, 1] ** 2))


@pytest.mark.slow
def test_live_pykan_model_matches_pykan_forward(tmp_path: Path) -> None:
    kan = pytest.importorskip("kan", reason="the pykan extra is not installed")
    torch.manual_seed(0)
    model = kan.KAN(width=[3, [1, 1], 1], grid=4, k=3, seed=1, auto_save=False, ckpt_path=str(tmp_path / "ck"))
    x = torch.rand(40, 3) * 2 - 1
    with torch.no_grad():
        expected = model(x)
    converted = kanx.from_module(model)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), expected.to(converted(x).dtype), **TOLERANCE)
    assert converted.mult[1] == [2] and converted.provenance["imported_from"] == "pykan"
    assert converted.sample_inputs.shape == (40, 3)  # the batch pykan cached on that forward pass


# --------------------------------------------------------------------------- formulas as code
@pytest.fixture(scope="module")
def exp_sin_result():
    return kanx.symbolify(kanx.load_model(ROOT / "samples" / "exp_sin.pt"))


def test_exported_modules_reproduce_the_formula(exp_sin_result, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, 64), rng.uniform(-1, 1, 64)
    truth = np.exp(np.sin(np.pi * x) + y**2)
    assert sympy.sstr(exp_sin_result.expressions[0]) == "exp(y**2 + sin(pi*x))"
    for language in ("py", "numpy", "torch"):
        path = tmp_path / f"formula_{language}.py"
        path.write_text(exp_sin_result.to_code(language))
        module = load_module_file(path)
        assert module.__all__ == ["f"]
        assert "Arguments: x = input 'x', y = input 'y'" in module.f.__doc__ and "R² = " in module.f.__doc__
        if language == "py":
            values = np.array([module.f(a, b) for a, b in zip(x, y)])
        elif language == "numpy":
            values = module.f(x, y)
        else:
            values = module.f(torch.from_numpy(x), torch.from_numpy(y)).numpy()
        np.testing.assert_allclose(values, truth, rtol=1e-12)
        callable_values = exp_sin_result.function("f", language)
        same = [callable_values(a, b) for a, b in zip(x, y)] if language == "py" else callable_values(
            *(torch.from_numpy(v) if language == "torch" else v for v in (x, y)))
        np.testing.assert_allclose(np.asarray(same, dtype=float), truth, rtol=1e-12)


def test_export_of_hostile_names_and_awkward_formulas(exp_sin_result) -> None:
    model = kanx.load_model(ROOT / "samples" / "exp_sin.pt")
    model.meta.input_names = ["__import__('os').system('x')", 'a"""b']
    a, b = sympy.Symbol(model.meta.input_names[0], real=True), sympy.Symbol(model.meta.input_names[1], real=True)
    result = type(exp_sin_result)(
        model=model, expressions=[sympy.cot(a) + sympy.sqrt(2) * b, sympy.Float(2.5)], output_names=["lambda", "torch"],
        edges=[], fidelity=exp_sin_result.fidelity * 2, flagged=[], settings={}, timings={}, log=[{}, {}])
    code = result.to_code("torch")
    code_lines = [line for line in code.splitlines() if line.startswith(("def ", "    return "))]
    assert code_lines and not any("'" in line for line in code_lines)  # no name's text reaches the code
    assert "def lambda_(import____os___system__x, a___b):" in code  # names in code are sanitised identifiers
    namespace: dict = {}
    exec(compile(code, "<test>", "exec"), namespace)  # noqa: S102 - running the generated module is the test
    first, second = namespace["__all__"]
    assert first == "lambda_" and second == "torch_2"
    u, v = torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(namespace[first](u, v), 1 / torch.tan(u) + 2**0.5 * v)
    torch.testing.assert_close(namespace[second](u, v), torch.full((2,), 2.5, dtype=torch.float32))
    assert np.allclose(result.function(1, "numpy")(np.zeros(3), np.zeros(3)), [2.5, 2.5, 2.5])


def test_numeric_edges_are_not_exported(exp_sin_result) -> None:
    x = sympy.Symbol("x", real=True)
    result = type(exp_sin_result)(
        model=exp_sin_result.model, expressions=[sympy.Function("phi_0_1_2")(x) + 1], output_names=["f"], edges=[],
        fidelity=exp_sin_result.fidelity, flagged=[], settings={}, timings={}, log=[{}])
    with pytest.raises(KanxError, match="numeric parts \\(phi_0_1_2\\)"):
        result.to_code("numpy")
    with pytest.raises(KanxError, match="numeric parts"):
        result.function(0)
    with pytest.raises(KanxError, match="'g'"):
        exp_sin_result.function("g")


def test_cli_export_writes_a_module(runner, tmp_path: Path) -> None:
    target = tmp_path / "law.py"
    result = invoke(runner, "symbolify", ROOT / "samples" / "exp_sin.pt", "--export", "numpy", target, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"]["code"] == str(target)
    module = load_module_file(target)
    assert abs(module.f(0.5, 0.5) - np.exp(1.25)) < 1e-12
    assert_clean_failure(invoke(runner, "symbolify", ROOT / "samples" / "exp_sin.pt", "--export", "julia", target), "--export 'julia'")
    assert_clean_failure(invoke(runner, "symbolify", ROOT / "samples" / "exp_sin.pt", "--export", "py",
                                ROOT / "samples" / "exp_sin.pt"), "--export")


# --------------------------------------------------------------------------- notebook display
def test_results_render_in_jupyter(exp_sin_result) -> None:
    latex = exp_sin_result._repr_latex_()
    assert latex.startswith("$$") and latex.endswith("$$") and r"e^{y^{2} + \sin{\left(\pi x \right)}}" in latex
    assert "R^2_\\text{network}" in latex
    page = exp_sin_result._repr_html_()
    assert "<td>exp(y**2 + sin(pi*x))</td>" in page and "R² = 0.99" in page
    report = kanx.interactions(kanx.load_model(ROOT / "samples" / "xy_sinz.pt"))
    page = report._repr_html_()
    assert "<td>x, y</td><td>2</td>" in page and "<td>z</td><td>1</td>" in page
    assert "<td>{x, y}</td><td>2</td>" in page and "interaction sets of f" in page


def test_results_and_networks_have_short_reprs_and_tables(exp_sin_result) -> None:
    """Every stage's result names what it found in one line (never the whole network), and shows
    a table in a notebook."""
    text = repr(exp_sin_result)
    assert text.startswith("SymbolicResult(f = exp(y**2 + sin(pi*x))") and len(text) < 200
    model = kanx.load_model(ROOT / "samples" / "exp_sin.pt")
    assert f"widths={model.widths}, basis=bspline(" in repr(model)
    report = kanx.prune(model)
    assert repr(report).startswith(f"PruneReport(widths {model.widths} → ") and "fidelity R² " in repr(report)
    assert "<caption>kanx prune" in report._repr_html_() and "<td>edges</td>" in report._repr_html_()
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    trained = kanx.train(Dataset(x, 2 * x, ["x"], ["y"], "line"), TrainSettings(widths=[1, 1], steps=20))
    assert repr(trained).startswith("TrainResult(widths=[1, 1], train R² ") and "held-out R² " in repr(trained)
    assert "<td>held out</td>" in trained._repr_html_() and trained.to_dict()["widths"] == [1, 1]


def test_plot_activations_keeps_the_matplotlib_backend() -> None:
    import matplotlib

    before = matplotlib.get_backend()
    figures = kanx.plot_activations(kanx.load_model(ROOT / "samples" / "exp_sin.pt"))
    assert figures and all(type(f).__name__ == "Figure" for f in figures)
    assert matplotlib.get_backend() == before


# --------------------------------------------------------------------------- CLI choices and start-up
def test_help_lists_the_choices(runner) -> None:
    text = invoke(runner, "symbolify", "--help").stdout
    for choice in ("<builtin|operon|pysr>", "<auto|edges|structure-first>", "<numeric|poly>", "[py|numpy|torch] FILE"):
        assert choice in text
    text = invoke(runner, "train", "--help").stdout
    for choice in ("<bspline|rbf|chebyshev>", "<adam|lbfgs>", "<kan|karsein>"):
        assert choice in text
    assert "<png|svg|pdf>" in invoke(runner, "plot-activations", "--help").stdout
    assert "<pykan|efficient-kan|fastkan|chebykan|karsein>" in invoke(runner, "import", "--help").stdout
    assert_clean_failure(invoke(runner, "train", "--basis", "fourier"), "--basis", "'fourier' is not one of")


def test_cli_start_up_imports_no_numerics() -> None:
    """``kanx --help`` must not pay for torch, sympy, numpy or matplotlib (each command imports
    what it uses when it runs)."""
    probe = ("import sys, kanx.cli; heavy = sorted(m for m in ('torch', 'sympy', 'numpy', 'matplotlib') if m in sys.modules); "
             "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_lazy_names_are_the_functions() -> None:
    """No module of kanx is named like one of its public names, so importing modules in any
    order leaves every public function a function (``import kanx.discovery`` once made
    ``kanx.discover`` a module)."""
    import kanx.discovery
    import kanx.interaction
    import kanx.pruning.kan
    import kanx.training  # noqa: F401

    assert not [name for name in kanx.__all__ if importlib.util.find_spec(f"kanx.{name}") is not None]
    assert callable(kanx.prune) and kanx.prune.__module__ == "kanx.pruning.dispatch"
    assert callable(kanx.discover) and kanx.pruning.PruneSettings is kanx.PruneSettings
    assert callable(kanx.train) and callable(kanx.interactions) and callable(kanx.from_module)
    assert {"symbolify", "from_module", "KAN"} <= set(dir(kanx))
    with pytest.raises(AttributeError):
        kanx.no_such_name  # noqa: B018
