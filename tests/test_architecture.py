"""The package's shape: family-generic stages, library-validated settings, one numerics core,
no private names across modules, no family switches in the CLI."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import SAMPLES, assert_clean_failure, invoke

import kanx
from kanx.core.errors import KanxError
from kanx.core.numerics import r2, r2_value, split_rows
from kanx.families.registry import FAMILIES, family_named, family_of
from kanx.interaction import InteractionSettings
from kanx.io.checkpoint import model_from_payload, save_model
from kanx.io.data import read_model_rows
from kanx.io.load import load_model
from kanx.pruning import PruneSettings
from kanx.symbolic import SymbolifySettings
from kanx.training import KarSeinSettings, TrainSettings

PACKAGE = Path(__file__).resolve().parents[1] / "kanx"


@pytest.fixture(scope="module")
def kan_model():
    return load_model(SAMPLES / "exp_sin.pt")


@pytest.fixture(scope="module")
def karsein_model():
    return load_model(SAMPLES / "karsein_ctr.pt")


# --------------------------------------------------------------------------- structure of the code
def test_cli_has_no_family_switch() -> None:
    for path in (PACKAGE / "cli").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"isinstance\([^)]*(KarSein|KAN)\b", text), path.name


def test_no_family_name_is_compared_outside_the_families() -> None:
    """Stages and the CLI dispatch on a model's family through tables keyed by its name; only
    ``kanx/families`` may compare one (an import's source library or ``--arch``, which share the
    names, are options, not a model's family)."""
    names = "|".join(f.name for f in FAMILIES)
    compared = re.compile(rf"""family.*?(==|!=|\bnot in|\bin)\s*\(?["']({names})["']|["']({names})["']\s*(==|!=).*family""")
    offenders = [f"{path.relative_to(PACKAGE)}:{number}" for path in PACKAGE.rglob("*.py")
                 if "families" not in path.relative_to(PACKAGE).parts
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if compared.search(line)]
    assert not offenders, offenders


def test_no_private_name_crosses_a_module_boundary() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kanx"):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")
                              and not a.name.startswith("__")]
    assert not offenders, offenders


def resolved(dotted: str) -> object | None:
    """The module or object a dotted ``kanx.…`` name refers to; ``None`` when there is none."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attribute in parts[k:]:
            obj = getattr(obj, attribute, None)
        return obj
    return None


def test_every_kanx_name_the_docs_and_docstrings_give_exists() -> None:
    """``kanx.a.b`` and ``kanx/a/b.py`` named in the docs, the README and the package's own text
    name a module, or a name in one, that exists (no stale references after a move)."""
    root = PACKAGE.parent
    texts = [*PACKAGE.rglob("*.py"), *(root / "docs").rglob("*.md"), root / "README.md"]
    stale = set()
    for path in texts:
        text = path.read_text(encoding="utf-8")
        stale |= {ref for ref in re.findall(r"\bkanx/[\w/]+\.py\b", text) if not (root / ref).is_file()}
        for ref in set(re.findall(r"\bkanx(?:\.[A-Za-z_]\w*)+", text)) - {"kanx.pt"}:
            if resolved(ref) is None:
                stale.add(f"{ref} ({path.relative_to(root)})")
    assert not stale, sorted(stale)


def test_no_subpackage_exports_a_name_of_one_of_its_modules() -> None:
    """``kanx.symbolic.dispatch`` is a module and ``kanx.symbolic.symbolify`` the function: no
    package attribute hides a submodule of the same name."""
    import pkgutil

    hidden = []
    for folder in sorted(p for p in PACKAGE.rglob("__init__.py")):
        package = importlib.import_module(".".join(folder.parent.relative_to(PACKAGE.parent).parts))
        for module in pkgutil.iter_modules(package.__path__):
            attribute = package.__dict__.get(module.name)
            if attribute is not None and not inspect.ismodule(attribute):
                hidden.append(f"{package.__name__}.{module.name}")
    assert not hidden, hidden


# --------------------------------------------------------------------------- families
def test_every_family_round_trips_through_its_codec(kan_model, karsein_model, tmp_path: Path) -> None:
    assert [f.name for f in FAMILIES] == ["kan", "karsein"]
    for model in (kan_model, karsein_model):
        family = family_of(model)
        payload = {"format": "kanx", "version": 1, "config": family.to_config(model), "state": family.to_state(model)}
        rebuilt = model_from_payload(payload, "memory")
        x = model.sample_inputs[:32]
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x))
        assert family_of(load_model(save_model(model, tmp_path / f"{family.name}.pt"))).name == family.name
    with pytest.raises(KanxError, match="unknown model family 'cnn'"):
        family_named("cnn", "m.pt")
    with pytest.raises(TypeError, match="not a kanx model"):
        family_of(torch.nn.Linear(2, 2))


def test_one_reader_gives_rows_and_targets_for_both_families(kan_model, karsein_model) -> None:
    kan_rows = read_model_rows(kan_model, SAMPLES / "exp_sin.csv")
    assert kan_rows.x.shape[1] == 2 and kan_rows.y.shape == (kan_rows.x.shape[0], 1)
    ctr_rows = read_model_rows(karsein_model, SAMPLES / "karsein_ctr.csv")
    assert ctr_rows.x.shape[1] == len(karsein_model.fields) and set(ctr_rows.y.unique().tolist()) == {0.0, 1.0}


# --------------------------------------------------------------------------- stages from Python, both families
def test_prune_from_python_on_both_families(kan_model, karsein_model) -> None:
    report = kanx.prune(kan_model)
    pruned = report.model
    assert pruned.widths == [2, 1, 1] and report.fidelity >= 0.99
    rows = read_model_rows(karsein_model, SAMPLES / "karsein_ctr.csv")
    ctr_report = kanx.prune(karsein_model, rows, PruneSettings(seed=0))
    assert ctr_report.fidelity >= 0.99 and sum(ctr_report.features_after.values()) < sum(ctr_report.features_before.values())
    with pytest.raises(KanxError, match="--feature-threshold applies to KarSein"):
        kanx.prune(kan_model, feature_threshold=0.1)
    with pytest.raises(KanxError, match="apply to KAN models"):
        kanx.prune(karsein_model, edge_threshold=0.1)


@pytest.mark.slow
def test_symbolify_plot_and_interactions_from_python_on_both_families(kan_model, karsein_model) -> None:
    pruned = kanx.prune(kan_model).model
    formula = kanx.symbolify(pruned)
    assert str(formula.expressions[0]) == "exp(y**2 + sin(pi*x))"
    ctr = kanx.symbolify(karsein_model)
    assert ctr.logit_fidelity.r2 > 0.99
    assert len(kanx.plot_activations(kan_model)) == 2
    assert len(kanx.plot_activations(karsein_model)) == len(karsein_model.bit_layers) + len(karsein_model.vec_layers)
    groups = {tuple(sorted(g.fields)) for g in kanx.interactions(karsein_model).groups}
    assert ("device", "hour", "site") in groups and ("item", "user") in groups
    report = kanx.interactions(pruned)
    assert report.outputs[0].tree.describe() == "φ(x) · φ(y)"


# --------------------------------------------------------------------------- one call shape, one result protocol
@pytest.mark.parametrize("stage", [kanx.prune, kanx.symbolify, kanx.interactions, kanx.plot_activations, kanx.plot_network])
def test_every_stage_has_the_one_call_shape(stage) -> None:
    parameters = list(inspect.signature(stage).parameters.values())
    assert [p.name for p in parameters] == ["model", "data", "settings", "options"]
    assert parameters[1].default is None and parameters[2].default is None and parameters[3].kind is inspect.Parameter.VAR_KEYWORD


def test_options_build_or_replace_the_settings_and_unknown_ones_are_named(kan_model) -> None:
    given = kanx.PlotSettings(top=3)
    assert len(kanx.plot_activations(kan_model, None, given, layer=1)) == 1  # layer replaced, top kept
    with pytest.raises(KanxError, match=r"^prune: unknown option lamda \(the fields of PruneSettings"):
        kanx.prune(kan_model, lamda=0.1)
    with pytest.raises(KanxError, match="^interactions: settings must be InteractionSettings, not PruneSettings"):
        kanx.interactions(kan_model, None, PruneSettings())
    with pytest.raises(KanxError, match="^train: TrainSettings trains on a Dataset, not ClickTable"):
        kanx.train(kanx.ClickTable({"c": ["1"] * 20, "a": ["x"] * 20}, "c", ["a"], []), TrainSettings(widths=[1, 1]))


@pytest.mark.slow
def test_every_result_has_to_dict_a_short_repr_and_a_notebook_display(kan_model, karsein_model) -> None:
    rows = read_model_rows(karsein_model, SAMPLES / "karsein_ctr.csv")
    results = [kanx.prune(kan_model), kanx.prune(karsein_model, rows), kanx.symbolify(kan_model, strategy="edges"),
               kanx.symbolify(karsein_model), kanx.interactions(kan_model), kanx.interactions(karsein_model),
               kanx.plot_activations(kan_model), kanx.compile_formula("x*y + sin(z)", {"x": (0, 1), "y": (0, 1), "z": (0, 1)}),
               kanx.refine_grid(kan_model, 8)]
    for result in results:
        json.dumps(result.to_dict(), default=str)
        text = repr(result)
        assert "\n" not in text and len(text) < 400 and text.startswith(type(result).__name__ + "("), text
        assert result._repr_html_().startswith(("<table>", "<figure>"))
    assert results[0].model.widths == [2, 1, 1] and results[3].model is not None


# --------------------------------------------------------------------------- settings validated in the library
@pytest.mark.parametrize(("build", "option"), [
    (lambda: PruneSettings(min_fidelity=1.5), "--min-fidelity"),
    (lambda: PruneSettings(edge_threshold=-0.1), "--edge-threshold"),
    (lambda: PruneSettings(lr=0), "--lr"),
    (lambda: SymbolifySettings(engine="magic"), "--engine"),
    (lambda: SymbolifySettings(lib_add=("x.__class__",)), "--lib-add"),
    (lambda: SymbolifySettings(digits=0), "--digits"),
    (lambda: InteractionSettings(max_samples=3), "--samples"),
    (lambda: TrainSettings(widths=[2, 5, 1], test_fraction=1.0), "--test-fraction"),
    (lambda: KarSeinSettings(test_fraction=-0.1), "--test-fraction"),
    (lambda: TrainSettings(widths=[2, 5, 1], optimizer="sgd"), "--optimizer"),
])
def test_settings_raise_the_cli_errors(build, option) -> None:
    with pytest.raises(KanxError) as info:
        build()
    assert str(info.value).startswith(option) and "\n" not in str(info.value)


def test_python_and_cli_give_the_same_message(runner, tmp_path: Path) -> None:
    with pytest.raises(KanxError) as info:
        PruneSettings(min_fidelity=1.5)
    result = invoke(runner, "prune", SAMPLES / "exp_sin.pt", "--min-fidelity", "1.5", "-o", tmp_path / "p.pt")
    assert assert_clean_failure(result) == f"error: {info.value}"


# --------------------------------------------------------------------------- the one R² and the one split
def test_r2_definition() -> None:
    target = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(r2(target, target)) == 1.0
    assert float(r2(torch.full((4,), 2.5), target)) == 0.0
    assert float(r2(torch.ones(4), torch.ones(4))) == 1.0 and float(r2(torch.zeros(4), torch.ones(4))) == -1.0
    batch = torch.stack([target, target.flip(0)])[..., None]  # [B=2, N=4, O=1] against [N, O]
    assert r2(batch, target[:, None], dim=-2).flatten().tolist() == [1.0, -3.0]
    assert r2_value(torch.tensor(2.5), target) == 0.0 and r2_value(torch.tensor([float("nan")] * 4), target) == float("-inf")
    with pytest.raises(ValueError, match="predicted samples"):
        r2(target[:, None], target)


def test_split_rows() -> None:
    kept, held = split_rows(10, 0.3, seed=1)
    assert len(held) == 3 and sorted(kept.tolist() + held.tolist()) == list(range(10))
    assert len(split_rows(10, 0.0, 1)[1]) == 0 and len(split_rows(3, 0.01, 1)[1]) == 1 and len(split_rows(2, 0.99, 1)[0]) == 1
    assert torch.equal(split_rows(50, 0.2, 7)[1], split_rows(50, 0.2, 7)[1])
