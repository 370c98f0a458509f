"""Hostile inputs: crafted checkpoints, foreign configs and data files.

Every case must end with exit code 2 and one line naming the file, with no traceback, no file
written, no input changed and no code run (the payloads would create a marker file).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FIXTURES, SAMPLES, assert_clean_failure, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kanx.core.errors import KanxError
from kanx.io.checkpoint import model_from_payload
from kanx.io.load import load_model
from kanx.summary import describe

MARKER = "KANX_PWNED"
PAYLOAD = f"__import__('os').system('touch {MARKER}') or x"


# --------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file below ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_refused(runner: CliRunner, folder: Path, args: list, name: str) -> None:
    """Run the CLI in ``folder``; require a clean exit-2 refusal naming ``name``, and the folder unchanged."""
    before = snapshot(folder)
    result = invoke(runner, *args)
    assert_clean_failure(result, name)
    assert snapshot(folder) == before, f"{args}: files changed or written"
    assert not (folder / MARKER).exists()


def kan_payload() -> dict:
    return torch.load(SAMPLES / "exp_sin.pt", weights_only=True)


def karsein_payload() -> dict:
    return torch.load(SAMPLES / "karsein_ctr.pt", weights_only=True)


def setter(*path_and_value) -> Callable[[dict], None]:
    *path, value = path_and_value

    def change(payload: dict) -> None:
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def deleter(*path) -> Callable[[dict], None]:
    def change(payload: dict) -> None:
        target = payload
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


class Exploit:
    """An object whose unpickling runs a shell command (what weights_only must refuse)."""

    def __reduce__(self):
        import os

        return (os.system, (f"touch {MARKER}",))


# --------------------------------------------------------------------------- crafted checkpoints
KAN_CASES: dict[str, Callable[[dict], None]] = {
    "exploit_custom_function": lambda p: (setter("config", "custom_functions", {"evil": PAYLOAD})(p),
                                          setter("config", "symbolic_functions", ["evil"])(p)),
    "exploit_unused_custom_function": setter("config", "custom_functions", {"evil": PAYLOAD}),
    "custom_function_attribute": setter("config", "custom_functions", {"f": "x.__class__"}),
    "custom_function_huge_power": setter("config", "custom_functions", {"f": "x**10**10"}),
    "custom_function_not_text": setter("config", "custom_functions", {"f": ["x"]}),
    "custom_function_too_long": setter("config", "custom_functions", {"f": "x+" * 5000 + "x"}),
    "nan_and_reversed_ranges": setter("config", "input_ranges", [[math.nan, 1.0], [1.0, -1.0]]),
    "reversed_range": setter("config", "input_ranges", [[-1.0, 1.0], [1.0, -1.0]]),
    "infinite_range": setter("config", "input_ranges", [[-math.inf, 1.0], [-1.0, 1.0]]),
    "range_not_pair": setter("config", "input_ranges", [[0.0], [-1.0, 1.0]]),
    "widths_as_text": setter("config", "widths", ["2", "5", "1"]),
    "widths_huge": setter("config", "widths", [2, 10**12, 1]),
    "widths_bool": setter("config", "widths", [True, 5, 1]),
    "widths_negative": setter("config", "widths", [2, -5, 1]),
    "widths_not_list": setter("config", "widths", 2),
    "grid_as_text": setter("config", "basis", {"kind": "bspline", "grid": "5", "k": 3}),
    "grid_huge": setter("config", "basis", {"kind": "bspline", "grid": 10**9, "k": 3}),
    "basis_extra_key": setter("config", "basis", {"kind": "bspline", "grid": 5, "k": 3, "evil": 1}),
    "basis_unknown_kind": setter("config", "basis", {"kind": "wavelet"}),
    "mult_arity_one": setter("config", "mult", [[], [1], []]),
    "node_order_not_permutation": setter("config", "node_order", [[0, 1], [0, 0, 2, 3, 4], [0]]),
    "layer_norm_not_bool": setter("config", "layer_norm", ["yes", 0]),
    "name_not_text": setter("config", "input_names", [123, "y"]),
    "name_too_long": setter("config", "input_names", ["x" * 10_000, "y"]),
    "name_with_newline": setter("config", "input_names", ["x\nerror: fake", "y"]),
    "names_duplicate": setter("config", "input_names", ["x", "x"]),
    "base_fn_unknown": setter("config", "base_fn", "os.system"),
    "family_unknown": setter("config", "family", "evil"),
    "family_unhashable": setter("config", "family", ["kan"]),
    "symbolic_table_not_list": setter("config", "symbolic_functions", "sin"),
    "symbolic_name_unknown": setter("config", "symbolic_functions", ["no_such_function"]),
    "provenance_with_tensor": setter("config", "provenance", {"note": torch.zeros(3)}),
    "provenance_deep": setter("config", "provenance", {"deep": deep_list(100)}),
    "training_not_dict": setter("config", "training", [1, 2]),
    "config_missing_key": deleter("config", "widths"),
    "config_not_dict": setter("config", ["not", "a", "dict"]),
    "state_not_dict": setter("state", [1, 2, 3]),
    "version_text": setter("version", "1"),
    "tensor_replaced_by_text": setter("state", "layers.0.coef", "x"),
    "tensor_complex": setter("state", "layers.0.w_base", torch.zeros(2, 5, dtype=torch.complex64)),
    "tensor_nan": lambda p: p["state"]["layers.0.coef"].__setitem__((0, 0, 0), math.nan),
    "tensor_wrong_shape": setter("state", "layers.0.coef", torch.zeros(1, 1, 1)),
    "mask_fractional": lambda p: p["state"]["layers.0.mask"].fill_(0.5),
    "sym_index_float": setter("state", "layers.0.sym_index", torch.zeros(2, 5)),
    "sym_index_out_of_table": lambda p: p["state"]["layers.0.sym_index"].fill_(7),
    "sample_inputs_nan": lambda p: p["state"]["sample_inputs"].__setitem__((0, 0), math.nan),
    "state_key_not_text": setter("state", 7, torch.zeros(1)),
}

KARSEIN_CASES: dict[str, Callable[[dict], None]] = {
    "karsein_emb_dim_huge": setter("config", "emb_dim", 10**9),
    "karsein_emb_dim_text": setter("config", "emb_dim", "4"),
    "karsein_vocabulary_numbers": setter("config", "vocabularies", None),
    "karsein_fields_duplicate": setter("config", "fields", ["user", "user", "hour", "device", "site", "ad"]),
    "karsein_combine_unknown": setter("config", "combine", "exec"),
    "karsein_pairwise_negative": setter("config", "pairwise", [-1]),
    "karsein_grid_float": setter("config", "grid", 5.0),
    "karsein_widths_huge": setter("config", "bit_width", [10**7]),
    "karsein_oov_text": setter("config", "oov", "yes"),
    "karsein_mask_fractional": setter("state", "bit_layers.0.mask", torch.full((24,), 0.5)),
}


def write_case(folder: Path, name: str) -> Path:
    payload = karsein_payload() if name.startswith("karsein") else kan_payload()
    (KARSEIN_CASES.get(name) or KAN_CASES[name])(payload)
    path = folder / f"{name}.pt"
    torch.save(payload, path)
    return path


CORRUPT_FILES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "random_bytes": lambda: bytes(range(256)) * 4,
    "truncated": lambda: (SAMPLES / "exp_sin.pt").read_bytes()[:700],
    "text_file": lambda: b"widths: [2, 5, 1]\n",
    "pickle_exploit": lambda: pickle.dumps(Exploit()),
}


def write_corrupt(folder: Path, name: str) -> Path:
    path = folder / f"{name}.pt"
    if name == "torch_exploit":
        buffer = io.BytesIO()
        torch.save({"format": "kanx", "config": Exploit()}, buffer)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(CORRUPT_FILES[name]())
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch) -> Path:
    """A folder with a good model and data; the tests run inside it."""
    shutil.copy(SAMPLES / "exp_sin.pt", tmp_path / "good.pt")
    shutil.copy(SAMPLES / "exp_sin.csv", tmp_path / "good.csv")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def model_commands(model: str) -> list[list[str]]:
    return [
        ["info", model], ["predict", model, "good.csv"], ["prune", model], ["plot-activations", model],
        ["symbolify", model], ["interactions", model],
    ]


@pytest.mark.parametrize("case", sorted(KAN_CASES) + sorted(KARSEIN_CASES))
def test_crafted_checkpoint_is_refused_by_every_command(workspace: Path, runner: CliRunner, case: str) -> None:
    path = write_case(workspace, case)
    for args in model_commands(path.name):
        run_refused(runner, workspace, args, path.name)


@pytest.mark.parametrize("case", sorted(CORRUPT_FILES) + ["torch_exploit"])
def test_corrupt_checkpoint_is_refused_by_every_command(workspace: Path, runner: CliRunner, case: str) -> None:
    path = write_corrupt(workspace, case)
    for args in [*model_commands(path.name), ["import", path.name, "--from", "efficient-kan", "-o", "out.pt"]]:
        run_refused(runner, workspace, args, path.name)


def test_the_reported_exploit_runs_nothing(workspace: Path, runner: CliRunner) -> None:
    path = write_case(workspace, "exploit_custom_function")
    result = invoke(runner, "info", path.name)
    line = assert_clean_failure(result, path.name, "custom_functions")
    assert "not allowed" in line
    with pytest.raises(KanxError, match="custom_functions"):
        load_model(path)
    assert not (workspace / MARKER).exists()


def test_the_same_payload_in_options_runs_nothing(workspace: Path, runner: CliRunner) -> None:
    cases = [
        (["symbolify", "good.pt", "--lib-add", PAYLOAD], "--lib-add"),
        (["train", "--formula", PAYLOAD, "--var", "x=0:1", "-o", "t.pt"], "--formula"),
        (["train", "--formula", "x", "--var", f"x=0:{PAYLOAD}", "-o", "t.pt"], "--var"),
        (["interactions", "good.pt", "--formula", PAYLOAD], "--formula"),
    ]
    for args, option in cases:
        run_refused(runner, workspace, args, option)


# --------------------------------------------------------------------------- hostile data files
def write_data(folder: Path, name: str) -> Path:
    header = "x,y,f\n"
    good_rows = "".join(f"{i / 20:.3f},{-i / 30:.3f},{i / 10:.3f}\n" for i in range(20))
    files: dict[str, bytes] = {
        "nul.csv": (header + good_rows + "0.1,\x00,0.2\n").encode(),
        "huge_field.csv": (header + good_rows + "1" * 200_000 + ",0,0\n").encode(),
        "latin1.csv": header.encode() + good_rows.encode() + b"0.1,\xe9,0.2\n",
        "nan.csv": (header + good_rows + "nan,0,0\n").encode(),
        "formula_cell.csv": (header + good_rows + f"{PAYLOAD},0,0\n").encode(),
        "ragged.csv": (header + good_rows + "0.1,0.2\n").encode(),
        "no_columns.csv": b"a,b\n" + b"1,2\n" * 20,
        "empty.csv": b"",
    }
    path = folder / name
    if name in files:
        path.write_bytes(files[name])
    elif name == "truncated.npy":
        buffer = io.BytesIO()
        np.save(buffer, np.ones((20, 2)))
        path.write_bytes(buffer.getvalue()[:-16])
    elif name == "huge_header.npy":
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)})
        path.write_bytes(buffer.getvalue() + b"\0" * 64)
    elif name == "objects.npy":
        np.save(path, np.array([[1, "a"], [None, 2]], dtype=object), allow_pickle=True)
    elif name == "complex.npy":
        np.save(path, np.ones((20, 2), dtype=complex))
    elif name == "strings.npy":
        np.save(path, np.array([["1", "2"]] * 20))
    elif name == "dict.pt":
        torch.save({"x": torch.ones(20, 2)}, path)
    elif name == "complex.pt":
        torch.save(torch.ones(20, 2, dtype=torch.complex64), path)
    elif name == "exploit.pt":
        path.write_bytes(pickle.dumps(Exploit()))
    else:
        raise AssertionError(name)
    return path


DATA_CASES = ["nul.csv", "huge_field.csv", "latin1.csv", "nan.csv", "formula_cell.csv", "ragged.csv", "no_columns.csv",
              "empty.csv", "truncated.npy", "huge_header.npy", "objects.npy", "complex.npy", "strings.npy", "dict.pt",
              "complex.pt", "exploit.pt"]


@pytest.mark.parametrize("case", DATA_CASES)
def test_hostile_data_is_refused_by_every_command_that_reads_data(workspace: Path, runner: CliRunner, case: str) -> None:
    path = write_data(workspace, case)
    commands = [["predict", "good.pt", path.name], ["prune", "good.pt", "--data", path.name],
                ["symbolify", "good.pt", "--data", path.name], ["interactions", "good.pt", "--data", path.name]]
    for args in commands:
        run_refused(runner, workspace, args, path.name)


# --------------------------------------------------------------------------- foreign files
def pykan_copy(folder: Path, change: Callable[[dict], None] | None = None, text: str | None = None) -> Path:
    target = folder / "pk"
    shutil.copytree(FIXTURES / "pykan_spline", target)
    config_path = target / "model_config.yml"
    if text is not None:
        config_path.write_text(text)
    elif change is not None:
        config = yaml.safe_load(config_path.read_text())
        change(config)
        config_path.write_text(yaml.safe_dump(config))
    return target / "model"


PYKAN_CASES: dict[str, tuple[Callable[[dict], None] | None, str | None]] = {
    "python_tag": (None, f"width: !!python/object/apply:os.system ['touch {MARKER}']\n"),
    "not_yaml": (None, "width: [2, 5\n  - ]: :\n"),
    "width_text": (setter("width", ["2", "5", "1"]), None),
    "width_huge": (setter("width", [[2, 0], [10**9, 0], [1, 0]]), None),
    "mult_arity_one": (setter("mult_arity", 1), None),
    "base_fun_list": (setter("base_fun_name", ["silu"]), None),
    "symbolic_enabled_text": (setter("symbolic_enabled", "yes"), None),
    "grid_mismatch": (setter("grid", "5"), None),
}


@pytest.mark.parametrize("case", sorted(PYKAN_CASES))
def test_hostile_pykan_config_is_refused(workspace: Path, runner: CliRunner, case: str) -> None:
    change, text = PYKAN_CASES[case]
    prefix = pykan_copy(workspace, change, text)
    for args in (["import", "pk/model", "--from", "pykan", "-o", "out.pt"], ["info", "pk/model"]):
        run_refused(runner, workspace, args, "pk/model")
    assert not (workspace / MARKER).exists() and prefix.parent.is_dir()


def test_symbolic_pykan_names_must_be_text(workspace: Path, runner: CliRunner) -> None:
    target = workspace / "pks"
    shutil.copytree(FIXTURES / "pykan_symbolic", target)
    config = yaml.safe_load((target / "model_config.yml").read_text())
    config["symbolic.funs_name.0"][0][0] = ["sin"]
    (target / "model_config.yml").write_text(yaml.safe_dump(config))
    run_refused(runner, workspace, ["import", "pks/model", "--from", "pykan", "-o", "out.pt"], "pks/model")


def karsein_json(folder: Path, **changes) -> Path:
    meta = json.loads((FIXTURES / "karsein" / "meta.json").read_text())
    meta["hyperparameters"].update(changes)
    path = folder / "karsein.json"
    path.write_text(json.dumps(meta))
    shutil.copy(FIXTURES / "karsein" / "model.pt", folder / "karsein_state.pt")
    return path


@pytest.mark.parametrize("changes", [
    {"vocab_sizes": {"f0": 10**9, "f1": 8, "f2": 6, "f3": 5}},
    {"emb_dim": "4"},
    {"bit_width": [10**6]},
    {"grid": 5.5},
    {"combine": "eval"},
    {"fields": "f0"},
])
def test_hostile_karsein_config_is_refused(workspace: Path, runner: CliRunner, changes: dict) -> None:
    fixture_fields = json.loads((FIXTURES / "karsein" / "meta.json").read_text())["hyperparameters"]["fields"]
    if "vocab_sizes" in changes:
        changes = {"vocab_sizes": dict(zip(fixture_fields, [10**9, 8, 6, 5]))}
    karsein_json(workspace, **changes)
    args = ["import", "karsein_state.pt", "--from", "karsein", "--config", "karsein.json", "-o", "out.pt"]
    run_refused(runner, workspace, args, "karsein.json")


@pytest.mark.parametrize("library", ["efficient-kan", "fastkan", "chebykan"])
def test_hostile_state_dicts_are_refused(workspace: Path, runner: CliRunner, library: str) -> None:
    folder = {"efficient-kan": "efficient_kan", "fastkan": "fast_kan", "chebykan": "chebykan"}[library]
    state = torch.load(FIXTURES / folder / "model.pt", weights_only=True)
    first = next(key for key in sorted(state) if state[key].is_floating_point())
    variants = {
        "nan": {**state, first: torch.full_like(state[first], math.nan)},
        "shape": {**state, first: torch.zeros(1)},
        "not_tensor": {**state, first: "x"},
        "extra": {**state, "evil": torch.zeros(1)},
    }
    for name, variant in variants.items():
        path = workspace / f"{name}.pt"
        torch.save(variant, path)
        run_refused(runner, workspace, ["import", path.name, "--from", library, "-o", "out.pt"], path.name)


# --------------------------------------------------------------------------- generated mutations
HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.text(min_size=300, max_size=400),
    st.binary(max_size=8), st.lists(st.integers(min_value=-3, max_value=10**7), max_size=4),
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=20)), max_size=3),
    st.just(deep_list(200)), st.just(torch.zeros(2)), st.just(PAYLOAD), st.just({"evil": PAYLOAD}),
)


def mutate(config: dict, data) -> None:
    """Replace, delete or re-nest one entry (top level, or one level down) of ``config``."""
    key = data.draw(st.sampled_from(sorted(config)))
    container, slot = config, key
    inner = config[key]
    if isinstance(inner, (list, dict)) and inner and data.draw(st.booleans()):
        container, slot = inner, data.draw(st.sampled_from(sorted(inner) if isinstance(inner, dict) else range(len(inner))))
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
    if action == "delete" and isinstance(container, dict):
        del container[slot]
    elif action == "wrap":
        container[slot] = [container[slot]]
    else:
        container[slot] = copy.deepcopy(data.draw(HOSTILE_VALUES))  # st.just values are shared between examples


def loads_or_refuses(payload: dict) -> None:
    try:
        model = model_from_payload(payload, "fuzz.pt")
    except KanxError as exc:
        message = str(exc)
        assert message.startswith("fuzz.pt: ") and "\n" not in message, message
        return
    describe(model)  # what `kanx info` shows
    with torch.no_grad():
        model(model.sample_inputs[:8])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          print_blob=True)
@given(st.data())
def test_mutated_kan_configs_load_or_are_refused_in_one_line(data) -> None:
    payload = copy.deepcopy(KAN_BASE)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        if not payload["config"]:
            break
        mutate(payload["config"], data)
    loads_or_refuses(payload)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_karsein_configs_load_or_are_refused_in_one_line(data) -> None:
    payload = copy.deepcopy(KARSEIN_BASE)
    mutate(payload["config"], data)
    loads_or_refuses(payload)


KAN_BASE = kan_payload()
KARSEIN_BASE = karsein_payload()


# --------------------------------------------------------------------------- legitimate text still works
def test_custom_functions_round_trip_through_a_checkpoint(workspace: Path, runner: CliRunner) -> None:
    model = load_model(workspace / "good.pt")
    model.custom_functions["x*exp(-x)"] = "x*exp(-x)"
    model.set_symbolic(0, 0, 0, "x*exp(-x)", (1.5, 0.2, 2.0, -0.1))
    from kanx.io.checkpoint import save_model

    save_model(model, workspace / "custom.pt")
    reloaded = load_model(workspace / "custom.pt")
    x = model.sample_inputs[:64]
    with torch.no_grad():
        expected = 2.0 * (1.5 * x[:, 0] + 0.2) * torch.exp(-(1.5 * x[:, 0] + 0.2)) - 0.1
        assert torch.allclose(reloaded.edge_activations(x)[0].edges[:, 0, 0], expected, atol=1e-5)
        assert torch.equal(reloaded(x), model(x))
    result = invoke(runner, "info", "custom.pt", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["edges"]["symbolic"] == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_checkpoints_through_the_cli(workspace: Path, runner: CliRunner, data) -> None:
    payload = copy.deepcopy(KAN_BASE)
    mutate(payload["config"], data)
    path = workspace / "mutated.pt"
    torch.save(payload, path)
    before = snapshot(workspace)
    for args in (["info", path.name], ["predict", path.name, "good.csv"], ["interactions", path.name, "--json"]):
        result = invoke(runner, *args)
        if result.exit_code != 0:  # the model, or (for a model that loads with other input names) the data
            line = assert_clean_failure(result)
            assert path.name in line or "good.csv" in line, line
    assert snapshot(workspace) == before
    assert not (workspace / MARKER).exists()
