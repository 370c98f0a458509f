"""Importers for pykan / efficient-kan / FastKAN / ChebyKAN checkpoints, checked against the
real fixtures in tests/fixtures (written by each library's own code)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FIXTURES, assert_clean_failure
from typer.testing import CliRunner

from kanx.cli import app
from kanx.core.errors import KanxError
from kanx.io.checkpoint import save_model
from kanx.io.importers import detect, import_checkpoint
from kanx.io.load import load_model

# fixture folder → (library, path handed to the importer, relative to the folder)
CASES = {
    "pykan_spline": ("pykan", "model"),
    "pykan_mult": ("pykan", "model"),
    "pykan_symbolic": ("pykan", "model"),
    "efficient_kan": ("efficient-kan", "model.pt"),
    "fast_kan": ("fastkan", "model.pt"),
    "chebykan": ("chebykan", "model.pt"),
}
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
SLOW_FOREIGN_FILES = {"pykan_mult", "chebykan", "efficient_kan"}  # > 5 s each in test_every_command_runs_on_the_foreign_file


def reference(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = FIXTURES / name
    return (torch.load(folder / "inputs.pt", weights_only=True), torch.load(folder / "outputs.pt", weights_only=True))


def evaluate(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def source_path(name: str) -> Path:
    return FIXTURES / name / CASES[name][1]


def copy_fixture(name: str, tmp_path: Path) -> Path:
    """A writable copy of a fixture folder."""
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    for path in [target, *target.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target




@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --------------------------------------------------------------------------- exact reproduction
@pytest.mark.parametrize("name", sorted(CASES))
def test_imported_model_reproduces_library_outputs(name: str) -> None:
    library, _ = CASES[name]
    x, y = reference(name)
    model = import_checkpoint(source_path(name), library)
    torch.testing.assert_close(evaluate(model, x), y, **TOLERANCE)
    provenance = model.meta.provenance
    assert provenance["imported_from"] == library
    assert provenance["source_file"] == str(source_path(name))
    assert provenance["layout"] and isinstance(provenance["inferred"], dict)


@pytest.mark.parametrize("name", sorted(CASES))
def test_auto_detection_through_load_model(name: str) -> None:
    library, _ = CASES[name]
    assert detect(source_path(name)) == library
    x, y = reference(name)
    torch.testing.assert_close(evaluate(load_model(source_path(name)), x), y, **TOLERANCE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_of_converted_checkpoint(name: str, tmp_path: Path) -> None:
    model = import_checkpoint(source_path(name))
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    x, _ = reference(name)
    torch.testing.assert_close(evaluate(loaded, x), evaluate(model, x), atol=0, rtol=0)
    assert loaded.meta.provenance == model.meta.provenance
    torch.testing.assert_close(loaded.sample_inputs, model.sample_inputs)


@pytest.mark.parametrize("form", ["model", "model_state", "model_config.yml", "model_cache_data", "."])
def test_pykan_accepts_prefix_files_and_folder(form: str) -> None:
    x, y = reference("pykan_mult")
    model = load_model(FIXTURES / "pykan_mult" / form)
    torch.testing.assert_close(evaluate(model, x), y, **TOLERANCE)
    assert model.mult == [[], [2], []]


def test_pykan_grid_is_read_per_input() -> None:
    state = torch.load(FIXTURES / "pykan_spline" / "model_state", weights_only=True)
    model = import_checkpoint(FIXTURES / "pykan_spline")
    for index, layer in enumerate(model.layers):
        torch.testing.assert_close(layer.knots, state[f"act_fun.{index}.grid"])
    assert not torch.equal(model.layers[0].knots[0], model.layers[0].knots[1])
    assert model.sample_inputs.shape == (1000, 2)  # pykan's model_cache_data


def test_pykan_symbolic_edges_match_stored_ones() -> None:
    folder = FIXTURES / "pykan_symbolic"
    config = yaml.safe_load((folder / "model_config.yml").read_text())
    state = torch.load(folder / "model_state", weights_only=True)
    model = import_checkpoint(folder / "model")
    assert model.widths == [2, 1, 1]
    for index in range(len(model.layers)):
        names = config[f"symbolic.funs_name.{index}"]  # [out][in]
        affine = state[f"symbolic_fun.{index}.affine"]  # [out, in, 4]
        n_out, n_in = affine.shape[:2]
        for i in range(n_in):
            for j in range(n_out):
                function, coefficients = model.symbolic_edge(index, i, j)
                assert function == names[j][i]
                assert coefficients == pytest.approx(affine[j, i].tolist(), rel=0, abs=0)
        assert model.edge_counts()[index]["symbolic"] == n_in * n_out
    meta = json.loads((folder / "meta.json").read_text())
    listed = {(e["layer"], e["in_i"], e["out_j"]): (e["fun_name"], e["affine_abcd"]) for e in meta["symbolic_edges"]}
    for (layer, i, j), (function, abcd) in listed.items():
        assert model.symbolic_edge(layer, i, j) == (function, pytest.approx(abcd))
    x, y = reference("pykan_symbolic")
    torch.testing.assert_close(evaluate(model, x), y, **TOLERANCE)


@pytest.mark.parametrize(
    "names,expected",
    [
        (["x^5", "1/x^0.5"], ["x^5", "1/sqrt"]),
        (["arccos", "x^1.5"], ["arccos", "x^1.5"]),
        (["1/x^3", "x^0.5"], ["1/x^3", "sqrt"]),
    ],
)
def test_pykan_function_names_map_to_kanx(names: list[str], expected: list[str], tmp_path: Path) -> None:
    folder = copy_fixture("pykan_symbolic", tmp_path)
    config_path = folder / "model_config.yml"
    config = yaml.safe_load(config_path.read_text())
    config["symbolic.funs_name.0"] = [names]
    config_path.write_text(yaml.safe_dump(config))
    model = import_checkpoint(folder)
    assert [model.symbolic_edge(0, i, 0)[0] for i in range(2)] == expected
    x = torch.rand(16, 2) * 0.8 + 0.1
    state = torch.load(folder / "model_state", weights_only=True)
    torch_fns = {"x^5": lambda u: u**5, "1/x^0.5": lambda u: 1 / torch.sqrt(u), "arccos": torch.arccos,
                 "x^1.5": lambda u: torch.sqrt(u) ** 3, "1/x^3": lambda u: 1 / u**3, "x^0.5": torch.sqrt}
    affine = state["symbolic_fun.0.affine"][0]  # [in, 4]
    hidden = sum(affine[i, 2] * torch_fns[names[i]](affine[i, 0] * x[:, i] + affine[i, 1]) + affine[i, 3] for i in range(2))
    torch.testing.assert_close(model.layers[0](x)[:, 0], hidden, equal_nan=True, atol=1e-5, rtol=1e-5)
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    torch.testing.assert_close(evaluate(loaded, x), evaluate(model, x), atol=0, rtol=0, equal_nan=True)


def test_fastkan_rbf_width_option(tmp_path: Path) -> None:
    x, y = reference("fast_kan")
    model = import_checkpoint(source_path("fast_kan"), rbf_width=4 / 7)
    torch.testing.assert_close(evaluate(model, x), y, **TOLERANCE)
    assert model.basis["h"] == pytest.approx(4 / 7)
    assert model.layer_norm == [True, True]
    other = import_checkpoint(source_path("fast_kan"), rbf_width=1.0)
    assert not torch.allclose(evaluate(other, x), y, atol=1e-3)


# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_import_info_predict(name: str, runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "converted.pt"
    result = runner.invoke(app, ["import", str(source_path(name)), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["library"] == CASES[name][0]
    assert summary["max_abs_difference"] < 1e-5
    x, y = reference(name)
    torch.testing.assert_close(evaluate(load_model(out), x), y, **TOLERANCE)
    torch.save(x, tmp_path / "x.pt")
    for target, extra in ((out, []), (source_path(name), []), (source_path(name), ["--from", CASES[name][0]])):
        info = runner.invoke(app, ["info", str(target), "--json", *extra])
        assert info.exit_code == 0, info.output
        assert json.loads(info.stdout)["provenance"]["imported_from"] == CASES[name][0]
        predicted = runner.invoke(app, ["predict", str(target), str(tmp_path / "x.pt"), "--json", *extra])
        assert predicted.exit_code == 0, predicted.output
        values = torch.tensor(json.loads(predicted.stdout)["predictions"])
        torch.testing.assert_close(values, y, **TOLERANCE)


def test_cli_import_text_summary_and_default_output(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    folder = copy_fixture("pykan_symbolic", tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = runner.invoke(app, ["import", str(folder)])
    assert result.exit_code == 0, result.output
    assert (workdir / "model.kanx.pt").is_file()
    assert not (folder / "model.kanx.pt").exists()
    assert "max |kanx - pykan|" in result.stdout and "wrote" in result.stdout
    again = runner.invoke(app, ["info", str(workdir / "model.kanx.pt")])
    assert again.exit_code == 0, again.output
    assert "sin" in again.stdout and "imported_from: pykan" in again.stdout


def test_cli_import_refuses_to_overwrite_input(runner: CliRunner, tmp_path: Path) -> None:
    folder = copy_fixture("efficient_kan", tmp_path)
    result = runner.invoke(app, ["import", str(folder / "model.pt"), "-o", str(folder / "model.pt")])
    assert_clean_failure(result, "--output", "overwrite")
    pykan_folder = copy_fixture("pykan_spline", tmp_path)
    result = runner.invoke(app, ["import", str(pykan_folder), "-o", str(pykan_folder / "model_state")])
    assert_clean_failure(result, "--output", "overwrite")


def test_fastkan_uneven_grid_needs_rbf_width(runner: CliRunner, tmp_path: Path) -> None:
    state = torch.load(source_path("fast_kan"), weights_only=True)
    state["layers.0.rbf.grid"][3] += 0.1
    state["layers.1.rbf.grid"][3] += 0.1
    torch.save(state, tmp_path / "uneven.pt")
    result = runner.invoke(app, ["import", str(tmp_path / "uneven.pt"), "-o", str(tmp_path / "o.pt")])
    assert_clean_failure(result, "--rbf-width", "uneven.pt")
    result = runner.invoke(app, ["import", str(tmp_path / "uneven.pt"), "-o", str(tmp_path / "o.pt"), "--rbf-width", "0.5714285714285714"])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- bad files
def _edit_state(name: str, tmp_path: Path, change) -> Path:
    state = torch.load(source_path(name), weights_only=True)
    change(state)
    path = tmp_path / f"{name}_bad.pt"
    torch.save(state, path)
    return path


def _truncate(name: str, tmp_path: Path) -> Path:
    data = source_path(name).read_bytes()
    path = tmp_path / f"{name}_cut.pt"
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_STATE_FILES = [
    ("efficient_kan", lambda s: s.pop("layers.0.grid"), None, ["missing key 'grid'"]),
    ("efficient_kan", lambda s: s.pop("layers.1.spline_scaler"), None, ["spline_scaler"]),
    ("efficient_kan", lambda s: s.__setitem__("layers.1.spline_weight", torch.zeros(1, 5, 8)), None, ["spline_weight", "shape"]),
    ("efficient_kan", lambda s: s.__setitem__("layers.1.base_weight", torch.zeros(1, 5)), None, ["'spline_weight' has shape"]),
    ("efficient_kan", lambda s: s["layers.0.base_weight"].__setitem__((0, 0), float("nan")), None, ["NaN or Inf"]),
    ("efficient_kan", lambda s: s.__setitem__("layers.0.grid", s["layers.0.grid"].flip(1)), None, ["non-decreasing"]),
    ("fast_kan", lambda s: s.__setitem__("layers.0.spline_linear.weight", torch.zeros(4, 25)), None, ["not a multiple"]),
    ("fast_kan", lambda s: s.pop("layers.1.layernorm.weight"), None, ["layernorm.weight"]),
    ("chebykan", lambda s: s.__setitem__("1.cheby_coeffs", torch.zeros(5, 1, 5)), None, ["layer 1 takes 5 inputs"]),
    ("chebykan", lambda s: s.update({"1.cheby_coeffs": torch.zeros(4, 1, 4), "1.arange": torch.arange(4)}), None, ["Chebyshev degree"]),
    ("chebykan", lambda s: s.__setitem__("1.cheby_coeffs", torch.zeros(4, 1, 4)), None, ["'arange'"]),
    ("chebykan", lambda s: s.__setitem__("0.extra", torch.zeros(2)), "chebykan", ["unexpected key '0.extra'"]),
]


@pytest.mark.parametrize("name,change,forced,fragments", BAD_STATE_FILES)
def test_corrupted_state_dicts_give_one_line_errors(name, change, forced, fragments, runner: CliRunner, tmp_path: Path) -> None:
    path = _edit_state(name, tmp_path, change)
    extra = ["--from", forced] if forced else []
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out.pt"), *extra])
    assert_clean_failure(result, str(path), *fragments)
    assert not (tmp_path / "out.pt").exists()
    info = runner.invoke(app, ["info", str(path), *extra])
    assert_clean_failure(info, *fragments)


@pytest.mark.parametrize(
    "name,forced,fragments",
    [
        ("efficient_kan", "fastkan", ["--from fastkan", "not a state dict written by FastKAN", "efficient-kan"]),
        ("chebykan", "efficient-kan", ["--from efficient-kan", "look like ChebyKAN"]),
        ("fast_kan", "pykan", ["--from pykan", "not a state dict written by pykan"]),
        ("pykan_spline", "chebykan", ["--from chebykan", "written by ChebyKAN", "look like pykan"]),
        ("efficient_kan", "keras-kan", ["--from", "keras-kan", "is not one of"]),
    ],
)
def test_wrong_library_forced(name, forced, fragments, runner: CliRunner, tmp_path: Path) -> None:
    target = source_path(name) if name != "pykan_spline" else FIXTURES / name / "model_state"
    result = runner.invoke(app, ["import", str(target), "--from", forced, "-o", str(tmp_path / "o.pt")])
    assert_clean_failure(result, *fragments)
    with pytest.raises(KanxError):
        load_model(target, source=forced)


@pytest.mark.parametrize("name", ["efficient_kan", "fast_kan", "chebykan"])
def test_truncated_state_dict(name: str, runner: CliRunner, tmp_path: Path) -> None:
    path = _truncate(name, tmp_path)
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "o.pt")])
    assert_clean_failure(result, str(path), "truncated or corrupt")
    result = runner.invoke(app, ["predict", str(path), str(FIXTURES / name / "inputs.pt")])
    assert_clean_failure(result, "truncated or corrupt")


def _pykan_truncate_state(folder: Path) -> None:
    data = (folder / "model_state").read_bytes()
    (folder / "model_state").write_bytes(data[: len(data) // 3])


def _pykan_edit_state(change):
    def edit(folder: Path) -> None:
        state = torch.load(folder / "model_state", weights_only=True)
        change(state)
        torch.save(state, folder / "model_state")

    return edit


def _pykan_edit_config(change):
    def edit(folder: Path) -> None:
        config = yaml.safe_load((folder / "model_config.yml").read_text())
        change(config)
        (folder / "model_config.yml").write_text(yaml.safe_dump(config))

    return edit


def _both_branches(state: dict) -> None:
    state["act_fun.0.mask"][0, 0] = 1.0  # spline on while the symbolic 'sin' stays on


BAD_PYKAN = [
    ("pykan_spline", _pykan_truncate_state, ["model_state", "truncated or corrupt"]),
    ("pykan_spline", _pykan_edit_state(lambda s: s.pop("act_fun.1.coef")), ["missing key 'act_fun.1.coef'"]),
    ("pykan_spline", _pykan_edit_state(lambda s: s.__setitem__("act_fun.0.coef", torch.zeros(2, 4, 8))), ["act_fun.0.coef", "shape"]),
    ("pykan_spline", _pykan_edit_config(lambda c: c.__setitem__("grid", 6)), ["config 'grid' = 6", "tensors imply 5"]),
    ("pykan_spline", _pykan_edit_state(lambda s: s.__setitem__("act_fun.0.grid", torch.zeros(2, 13))), ["differ in grid size"]),
    ("pykan_mult", _pykan_edit_config(lambda c: c.__setitem__("width", [[2, 0], [3, 0], [1, 0]])), ["node_scale_0", "shape"]),
    ("pykan_spline", lambda f: (f / "model_config.yml").write_text("width: [2, 5\n  grid: ]"), ["model_config.yml", "YAML"]),
    ("pykan_spline", lambda f: (f / "model_config.yml").unlink(), ["model_config.yml", "missing"]),
    ("pykan_symbolic", _pykan_edit_config(lambda c: c.__setitem__("symbolic.funs_name.1", [["no_such_fn"]])), ["no_such_fn"]),
    ("pykan_symbolic", _pykan_edit_config(lambda c: c.__setitem__("symbolic.funs_name.1", [["sgn"]])), ["'sgn'", "no kanx counterpart"]),
    ("pykan_symbolic", _pykan_edit_config(lambda c: c.pop("symbolic.funs_name.0")), ["symbolic.funs_name.0"]),
    ("pykan_symbolic", _pykan_edit_state(_both_branches), ["both", "symbolic branch"]),
]


@pytest.mark.parametrize("name,damage,fragments", BAD_PYKAN)
def test_corrupted_pykan_checkpoints(name, damage, fragments, runner: CliRunner, tmp_path: Path) -> None:
    folder = copy_fixture(name, tmp_path)
    damage(folder)
    target = folder / "model_state" if (folder / "model_state").exists() else folder / "model"
    result = runner.invoke(app, ["import", str(target), "--from", "pykan", "-o", str(tmp_path / "o.pt")])
    assert_clean_failure(result, *fragments)
    assert not (tmp_path / "o.pt").exists()


def test_pykan_constant_symbolic_zero_is_folded(tmp_path: Path) -> None:
    folder = copy_fixture("pykan_spline", tmp_path)
    state = torch.load(folder / "model_state", weights_only=True)
    state["symbolic_fun.1.mask"][0, 2] = 1.0  # edge 2 -> 0 of layer 1, function '0': adds d
    state["symbolic_fun.1.affine"][0, 2, 3] = 0.25
    torch.save(state, folder / "model_state")
    x, y = reference("pykan_spline")
    model = import_checkpoint(folder)
    torch.testing.assert_close(evaluate(model, x), y + 0.25, **TOLERANCE)


def test_unrecognised_files_keep_the_kanx_error(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(KanxError, match="not a kanx checkpoint"):
        load_model(tmp_path / "plain.pt")
    assert detect(tmp_path / "plain.pt") is None
    karsein = FIXTURES / "karsein" / "model.pt"
    if karsein.is_file():  # KarSein has its own importer; none of these four may claim it
        assert detect(karsein) not in {"pykan", "efficient-kan", "fastkan", "chebykan"}


def test_wrapped_and_single_layer_state_dicts(tmp_path: Path) -> None:
    state = torch.load(source_path("efficient_kan"), weights_only=True)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")
    x, y = reference("efficient_kan")
    wrapped = load_model(tmp_path / "wrapped.pt")
    torch.testing.assert_close(evaluate(wrapped, x), y, **TOLERANCE)
    assert "wrapped" in wrapped.meta.provenance["layout"]
    first = {key.removeprefix("layers.0."): value for key, value in state.items() if key.startswith("layers.0.")}
    torch.save(first, tmp_path / "single.pt")
    single = import_checkpoint(tmp_path / "single.pt", "efficient-kan")
    reference_model = import_checkpoint(source_path("efficient_kan"))
    assert single.widths == [3, 4]
    torch.testing.assert_close(evaluate(single, x), reference_model.layers[0](x), atol=0, rtol=0)


def test_cli_check_pair_must_fit(runner: CliRunner, tmp_path: Path) -> None:
    args = ["import", str(source_path("chebykan")), "-o", str(tmp_path / "c.pt")]
    good = runner.invoke(app, [*args, "--check-inputs", str(FIXTURES / "chebykan" / "inputs.pt"),
                               "--check-outputs", str(FIXTURES / "chebykan" / "outputs.pt"), "--json"])
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["max_abs_difference"] < 1e-5
    bad = runner.invoke(app, [*args, "--check-inputs", str(FIXTURES / "pykan_mult" / "inputs.pt"),
                              "--check-outputs", str(FIXTURES / "chebykan" / "outputs.pt")])
    assert_clean_failure(bad, "--check-inputs")
    half = runner.invoke(app, [*args, "--check-inputs", str(FIXTURES / "chebykan" / "inputs.pt")])
    assert_clean_failure(half, "--check-outputs")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FOREIGN_FILES else n for n in sorted(CASES)])
def test_every_command_runs_on_the_foreign_file(name: str, runner: CliRunner, tmp_path: Path) -> None:
    """prune, plot-activations, symbolify and interactions read each library's file directly
    (auto-detected); fixtures without a stored sample get their inputs.pt as --data."""
    source = str(source_path(name))
    data = [] if name.startswith("pykan") else ["--data", str(FIXTURES / name / "inputs.pt")]
    commands = [
        ["prune", source, "-o", str(tmp_path / "pruned.pt"), "--json", *data],
        ["plot-activations", source, "-o", str(tmp_path / "plot"), "--json"],
        ["symbolify", source, "--json", "--out", str(tmp_path / "f.tex"), *data],
        ["interactions", source, "--json", *data],
    ]
    reports = {}
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
        reports[command[0]] = json.loads(result.stdout)
    model = load_model(source_path(name))
    edges = sum(counts["total"] for counts in model.edge_counts())
    pruning = reports["prune"]
    assert pruning["output"] == str(tmp_path / "pruned.pt") and pruning["widths_before"] == model.widths
    assert pruning["edges_before"] == edges and pruning["fidelity"] >= pruning["settings"]["min_fidelity"] == 0.99
    expected_plots = [f"plot_layer{index}.png" for index in range(len(model.layers))] + ["plot_diagram.png"]
    assert [Path(p).name for p in reports["plot-activations"]["files"]] == expected_plots
    assert all((tmp_path / p).is_file() for p in expected_plots)
    symbolic = reports["symbolify"]
    assert len(symbolic["outputs"]) == len(model.meta.output_names) and len(symbolic["edges"]) == edges
    assert symbolic["written"]["latex"] == str(tmp_path / "f.tex")
    inter = reports["interactions"]
    assert inter["inputs"] == model.meta.input_names and len(inter["outputs"]) == len(model.meta.output_names)
    assert [s["output"] for s in inter["structural"]] == model.meta.output_names
    pruned = load_model(tmp_path / "pruned.pt")
    assert pruned.meta.provenance["imported_from"] == CASES[name][0]
    assert (tmp_path / "f.tex").read_text().count("\\begin{equation}") == 1


def test_pykan_symbolic_formula_matches_pykan_functions() -> None:
    """The composed formula of the imported symbolic model equals the one built by hand from
    pykan's stored function names, affines (c*f(a*x+b)+d) and node affines."""
    import sympy

    from kanx.families.kan.compose import compose

    folder = FIXTURES / "pykan_symbolic"
    config = yaml.safe_load((folder / "model_config.yml").read_text())
    state = torch.load(folder / "model_state", weights_only=True)
    functions = {"sin": sympy.sin, "cos": sympy.cos, "exp": sympy.exp}
    nodes = list(sympy.symbols("x_1 x_2", real=True))
    for layer in range(2):
        names, affine = config[f"symbolic.funs_name.{layer}"], state[f"symbolic_fun.{layer}.affine"]
        outputs = []
        for j, row in enumerate(names):
            total = 0
            for i, function in enumerate(row):
                a, b, c, d = (float(v) for v in affine[j, i])
                total += c * functions[function](a * nodes[i] + b) + d
            total = total * float(state[f"subnode_scale_{layer}"][j]) + float(state[f"subnode_bias_{layer}"][j])
            outputs.append(total * float(state[f"node_scale_{layer}"][j]) + float(state[f"node_bias_{layer}"][j]))
        nodes = outputs
    expected = nodes[0]
    model = import_checkpoint(folder / "model")
    composed = compose(model)[0]
    symbols = sorted(composed.free_symbols | expected.free_symbols, key=str)
    assert [str(s) for s in symbols] == model.meta.input_names
    x, _ = reference("pykan_symbolic")
    ours = sympy.lambdify(symbols, composed, "numpy")(*x.double().numpy().T)
    theirs = sympy.lambdify(sympy.symbols("x_1 x_2", real=True), expected, "numpy")(*x.double().numpy().T)
    assert abs(ours - theirs).max() < 1e-6
    assert {type(f).__name__ for f in composed.atoms(sympy.Function)} == {"sin", "cos", "exp"}
