"""KarSein in ``prune``, ``plot-activations`` and ``symbolify``: feature masks (exact, persistent,
backward compatible), pruning fidelity on the bundled sample, recovery of known activations and
of the composed vector-wise formula, plot labels, and the CLI paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import sympy
import torch
from conftest import SAMPLES, assert_clean_failure, invoke

from kanx.core.errors import KanxError
from kanx.families.kan.basis import bspline_basis
from kanx.families.karsein.codec import karsein_config, karsein_state
from kanx.families.karsein.features import current_masks, feature_layers
from kanx.families.karsein.model import KarSein
from kanx.io.checkpoint import model_from_payload, save_model
from kanx.io.load import load_model
from kanx.plot import PlotSettings, figure_names, plot_activations
from kanx.pruning import prune
from kanx.pruning.karsein import batched_logits
from kanx.symbolic import symbolify

SAMPLE = SAMPLES / "karsein_ctr.pt"
SAMPLE_CSV = SAMPLES / "karsein_ctr.csv"


def r2(prediction: torch.Tensor, reference: torch.Tensor) -> float:
    prediction, reference = prediction.double().flatten(), reference.double().flatten()
    return float(1 - ((prediction - reference) ** 2).sum() / ((reference - reference.mean()) ** 2).sum())


def set_functions(layer, functions) -> None:
    """Spline coefficients with ``s_i ≈ functions[i]`` on the grid range [-1, 1] (least squares;
    cubic B-splines reproduce polynomials of degree <= 3 exactly there)."""
    t = torch.linspace(-1, 1, 201, dtype=torch.float64)
    basis = bspline_basis(t[:, None].expand(-1, layer.n_in).contiguous(), layer.knots.double(), layer.k)
    with torch.no_grad():
        for i, function in enumerate(functions):
            layer.coef[i] = torch.linalg.lstsq(basis[:, i, :], function(t)[:, None]).solution[:, 0].float()


def known_model(silu_only: bool = False, fields: tuple[str, ...] = ("user", "item")) -> KarSein:
    """Two fields, D = 3, one pairwise vector-wise layer (rows user, item, user⊙user, user⊙item,
    item⊙user, item⊙item → 1) and one bit-wise layer; embeddings in [-0.9, 0.9].
    Spline mode: w_base = 0, s = x except s(user⊙item) = x², so
    g = 0.8 u - 0.5 i + 0.6 u² + 0.4 u²i² + 0.3 u i - 0.7 i². SiLU mode: w_sp = 0."""
    vocab = {f: [f"{f[0]}{k}" for k in range(5)] for f in fields}
    model = KarSein(list(fields), vocab, emb_dim=3, bit_width=[], vec_width=[], pairwise=[0], seed=0)
    generator = torch.Generator().manual_seed(1)
    vec, bit = model.vec_layers[0], model.bit_layers[0]
    with torch.no_grad():
        for table in model.embeddings:
            table.weight.copy_(torch.rand(table.weight.shape, generator=generator) * 1.8 - 0.9)
        weights = torch.linspace(-0.7, 0.8, vec.n_in)[torch.randperm(vec.n_in, generator=generator)][:, None]
        if len(fields) == 2:
            weights = torch.tensor([[0.8], [-0.5], [0.6], [0.4], [0.3], [-0.7]])
        (vec.w_base if silu_only else vec.w_sp).copy_(weights)
        (vec.w_sp if silu_only else vec.w_base).zero_()
        bit.w_base.zero_()
        bit.w_sp.copy_(torch.linspace(-0.5, 0.7, bit.n_in)[:, None])
        model.head.weight.copy_(torch.tensor([[1.0, -0.5, 0.25]]))
        model.head.bias.fill_(0.1)
    square = {3} if len(fields) == 2 else set()  # row 3 = user⊙item
    set_functions(vec, [(lambda x: x**2) if i in square else (lambda x: x) for i in range(vec.n_in)])
    set_functions(bit, [lambda x: x] * bit.n_in)
    model.sample_inputs = torch.randint(0, 5, (400, len(fields)), generator=generator).float()
    return model.eval()


@pytest.fixture
def sample_model(karsein_sample: KarSein) -> KarSein:
    """The session-wide bundled sample (conftest.karsein_sample): read only, deepcopy to change it."""
    return karsein_sample


# --------------------------------------------------------------------------- masks
def test_mask_is_exact_persistent_and_backward_compatible(tmp_path: Path) -> None:
    model = known_model()
    x = model.sample_inputs
    layer = model.vec_layers[0]
    with torch.no_grad():
        layer.w_base[2] = 0.9  # known_model leaves w_base at 0: give row 2 both a SiLU and a spline part
        layer.w_sp[2] = -0.6
        before = model.logit(x)
        layer.mask[2] = 0
        after = model.logit(x)
        base, spline = layer.w_base[2].clone(), layer.w_sp[2].clone()
        layer.w_base[2], layer.w_sp[2] = 0, 0
        layer.mask[2] = 1
        zeroed = model.logit(x)  # the same feature removed by zeroing its weights instead
        layer.w_base[2], layer.w_sp[2] = base, spline
        layer.mask[2] = 0
    assert (after - before).abs().max() > 1e-2  # the feature mattered, so the check below can fail
    assert (after - zeroed).abs().max() < 1e-6  # masking drops exactly that feature's contribution
    torch.testing.assert_close(layer.w_base[2], torch.tensor([0.9]))  # masking leaves the weights alone
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    assert loaded.vec_layers[0].mask.tolist() == [1, 1, 0, 1, 1, 1]
    with torch.no_grad():
        assert torch.equal(loaded.logit(x), after)
    payload = {"format": "kanx", "version": 1, "config": karsein_config(model), "state": karsein_state(model)}
    old = {"format": "kanx", "version": 1, "config": payload["config"],
           "state": {k: v for k, v in payload["state"].items() if not k.endswith(".mask")}}
    assert current_masks(model_from_payload(old, "old.pt")).all()  # files written before masks existed
    payload["state"]["vec_layers.0.mask"] = torch.ones(5)
    with pytest.raises(KanxError, match="vec_layers.0.mask"):
        model_from_payload(payload, "m.pt")
    payload["state"]["vec_layers.0.mask"] = torch.full((6,), 0.5)
    with pytest.raises(KanxError, match="only 0 and 1"):
        model_from_payload(payload, "m.pt")


def test_labels_follow_the_architecture(sample_model: KarSein) -> None:
    layers = {f.name: f for f in feature_layers(sample_model)}
    assert layers["bit_layers.0"].labels[:2] == ["user[0]", "user[1]"]
    assert layers["bit_layers.1"].labels[4] == "b1.4"
    vec0, vec1 = layers["vec_layers.0"].labels, layers["vec_layers.1"].labels
    assert vec0[:2] == ["user", "item"] and vec0[6 + 1] == "user⊙item" and len(vec0) == 42
    assert vec1[6 + 2] == "user⊙v1.2" and vec1[-1] == "ad⊙v1.3"


# --------------------------------------------------------------------------- prune
def test_prune_sample_keeps_fidelity_and_drops_what_it_reports(sample_model: KarSein, tmp_path: Path) -> None:
    x = sample_model.sample_inputs
    with torch.no_grad():
        assert torch.allclose(batched_logits(sample_model, x[:64], current_masks(sample_model)[None])[0],
                              sample_model.logit(x[:64])[:, 0], atol=1e-5)
    report = prune(sample_model)
    pruned = report.model
    assert report.fidelity >= 0.99 and not report.nothing_pruned
    with torch.no_grad():
        assert r2(pruned.logit(x), sample_model.logit(x)) >= 0.985  # all rows, incl. those the search saw
    assert sum(report.features_after.values()) < sum(report.features_before.values())
    masks = {name: layer.mask for name, layer in pruned.all_layers()}
    labels = {f.name: f.labels for f in feature_layers(pruned)}
    for row in report.dropped:
        assert masks[row["layer"]][labels[row["layer"]].index(row["feature"])] == 0
    assert len(report.dropped) == sum(report.features_before.values()) - sum(report.features_after.values())
    revived = copy.deepcopy(pruned)  # dropped features get their original (nonzero) weights back, masks kept
    restored = 0.0
    with torch.no_grad():
        for (_, layer), (_, kept), (_, original) in zip(revived.all_layers(), pruned.all_layers(), sample_model.all_layers()):
            dead = layer.mask == 0
            assert not (kept.w_base[dead].any() or kept.w_sp[dead].any())  # pruned parameters are zeroed
            layer.w_base[dead], layer.w_sp[dead] = original.w_base[dead], original.w_sp[dead]
            restored += float(layer.w_base[dead].abs().sum() + layer.w_sp[dead].abs().sum())
        assert restored > 0
        torch.testing.assert_close(revived.logit(x), pruned.logit(x), atol=1e-6, rtol=0)  # the masks alone silence them
    reloaded = load_model(save_model(pruned, tmp_path / "p.pt"))
    assert torch.equal(current_masks(reloaded), current_masks(pruned))
    assert reloaded.provenance["pruning"]["mode"] == "auto"


def test_prune_drops_an_unused_field_and_keeps_masks_when_finetuning() -> None:
    model = known_model(fields=("user", "item", "site"))
    site = torch.cat([f.fields[:, 2] for f in feature_layers(model)])
    with torch.no_grad():
        for (_, layer), reads in zip(model.all_layers(), torch.split(site, [layer.n_in for _, layer in model.all_layers()])):
            layer.w_sp[reads] = 0
            layer.w_base[reads] = 0
    report = prune(model, feature_threshold=0.0)
    pruned = report.model
    assert report.dropped_fields == ["site"] and report.fidelity > 1 - 1e-9
    with torch.no_grad():
        assert (pruned.logit(model.sample_inputs) - model.logit(model.sample_inputs)).abs().max() < 1e-6
    report = prune(model, torch.cat([model.sample_inputs] * 2), feature_threshold=0.0, finetune_steps=3, lr=1e-2)
    tuned = report.model
    assert torch.equal(current_masks(tuned), current_masks(pruned))
    assert all(float(layer.w_sp.detach()[layer.mask == 0].abs().sum()) == 0 for _, layer in tuned.all_layers())
    assert any("fine-tuned 3" in note for note in report.notes)


# --------------------------------------------------------------------------- symbolify
def test_symbolify_recovers_known_activations_and_vector_formula() -> None:
    model = known_model()
    result = symbolify(model)
    names = {(f.layer, f.label): f.chosen.name for f in result.features if f.chosen}
    assert names[("vec_layers.0", "user⊙item")] == "x^2"
    assert all(name == "x" for key, name in names.items() if key != ("vec_layers.0", "user⊙item"))
    assert all(f.chosen.r2 > 0.9999 for f in result.features if f.chosen)
    assert result.vec.composed and result.vec.fidelity.r2 > 0.999 and result.logit_fidelity.r2 > 0.999
    terms = {t.term: t for t in result.vec.terms}
    assert set(terms) == {"e_user", "e_item", "e_user^2", "e_item^2", "e_item ⊙ e_user", "e_item^2 ⊙ e_user^2"}
    assert terms["e_item ⊙ e_user"].coefficient == pytest.approx(0.3, abs=1e-3)
    assert terms["e_item^2 ⊙ e_user^2"].weights == pytest.approx([0.4, -0.2, 0.1], abs=1e-3)  # c·h
    e_user, e_item = sympy.symbols("e_user e_item", real=True)
    target = 0.8 * e_user - 0.5 * e_item + 0.6 * e_user**2 + 0.4 * e_user**2 * e_item**2 + 0.3 * e_user * e_item - 0.7 * e_item**2
    difference = sympy.expand(result.vec.expression - target)
    assert all(abs(float(c)) < 1e-3 for c in sympy.Poly(difference, e_user, e_item).coeffs())
    assert result.bit.composed and result.bit.fidelity.r2 > 0.999
    assert r"\odot" in result.to_latex()


def test_symbolify_silu_only_features_compose_exactly() -> None:
    result = symbolify(known_model(silu_only=True))
    vec_features = [f for f in result.features if f.layer == "vec_layers.0"]
    assert {f.status for f in vec_features} == {"silu"}
    assert result.vec.composed and result.vec.fidelity.r2 > 0.999
    assert "silu(e_item*e_user)" in {t.term for t in result.vec.terms}


@pytest.mark.slow
def test_symbolify_sample_fidelity(sample_model: KarSein) -> None:
    result = symbolify(sample_model, sample_model.sample_inputs[:400])
    assert not result.vec.composed and result.vec.hidden  # too large to expand: layered definitions
    assert result.vec.fidelity.r2 > 0.98 and result.bit.fidelity.r2 > 0.999 and result.logit_fidelity.r2 > 0.99
    assert {f.status for f in result.features} <= {"symbolic", "numeric", "negligible", "silu"}
    numeric = {f.tag for f in result.flagged}
    named = {node.func.__name__ for s, e in result.vec.hidden + [(None, result.vec.expression)]
             for node in e.atoms(sympy.core.function.AppliedUndef)}
    assert named <= numeric


# --------------------------------------------------------------------------- plot
def test_plot_labels_files_and_determinism(sample_model: KarSein, tmp_path: Path) -> None:
    drawn = plot_activations(sample_model, top=8)
    figures = dict(zip(drawn.names, drawn))
    assert list(figures) == figure_names(sample_model, PlotSettings()) == ["bit_layer0", "bit_layer1", "vec_layer0", "vec_layer1"]
    titles = [t.get_text() for t in figures["vec_layer0"].axes[0].texts if (t.get_gid() or "").startswith("panel-")]
    assert len(titles) == 8
    every = plot_activations(sample_model)
    full = dict(zip(every.names, every))
    texts = {t.get_text() for t in full["vec_layer0"].axes[0].texts}
    assert {"user⊙item", "user", "ad⊙ad"} <= texts and "user[0]" in {t.get_text() for t in full["bit_layer0"].axes[0].texts}
    first = plot_activations(sample_model, top=3).save(tmp_path / "a", "svg")
    second = plot_activations(sample_model, top=3).save(tmp_path / "b", "svg")
    assert [p.name for p in first] == [f"a_{n}.svg" for n in figure_names(sample_model, PlotSettings())]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(first, second))
    model = known_model()
    model.vec_layers[0].mask[3] = 0
    drawn = plot_activations(model, show_pruned=True)
    greyed = drawn[drawn.names.index("vec_layer0")]
    assert "pruned" in {t.get_text() for t in greyed.axes[0].texts}


# --------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_commands_on_sample(runner, tmp_path: Path) -> None:
    if not SAMPLE.is_file():
        pytest.skip("bundled KarSein sample missing")
    out = tmp_path / "pruned.pt"
    result = invoke(runner, "prune", SAMPLE, "--data", SAMPLE_CSV, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["fidelity"] >= 0.99 and report["metrics"]["rows"] == 2000
    assert report["metrics"]["after"]["auc"] > report["metrics"]["before"]["auc"] - 0.01
    assert isinstance(load_model(out), KarSein) and SAMPLE.is_file()
    result = invoke(runner, "prune", SAMPLE, "--feature-threshold", "0.3", "-o", tmp_path / "t.pt")
    assert result.exit_code == 0 and "fields dropped entirely" in result.stdout
    result = invoke(runner, "plot-activations", out, "-o", tmp_path / "plots", "--top", "5", "--json")
    assert result.exit_code == 0, result.output
    names = figure_names(load_model(out), PlotSettings())
    assert [Path(p).name for p in json.loads(result.stdout)["files"]] == [f"plots_{n}.png" for n in names]
    tex = tmp_path / "karsein.tex"
    result = invoke(runner, "symbolify", SAMPLE, "--out", tex, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["family"] == "karsein" and summary["fidelity"]["r2"] > 0.98 and tex.is_file()
    result = invoke(runner, "symbolify", SAMPLE, "--data", SAMPLE_CSV)
    assert result.exit_code == 0 and "⟨w," in result.stdout and "AUC formula" in result.stdout


def test_cli_bad_inputs_fail_cleanly(runner, tmp_path: Path) -> None:
    if not SAMPLE.is_file():
        pytest.skip("bundled KarSein sample missing")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("user,item\nu1,i2\n")
    labels = tmp_path / "labels.csv"
    labels.write_text(SAMPLE_CSV.read_text().replace(",0\n", ",maybe\n", 1))
    cases = [
        (("prune", SAMPLE, "--feature-threshold", "2", "-o", tmp_path / "a.pt"), "--feature-threshold"),
        (("prune", SAMPLE, "--edge-threshold", "0.1", "-o", tmp_path / "a.pt"), "--feature-threshold"),
        (("prune", SAMPLE, "--data", bad_csv, "-o", tmp_path / "a.pt"), "bad.csv"),
        (("prune", SAMPLE, "--data", labels, "-o", tmp_path / "a.pt"), "0/1 labels"),
        (("prune", SAMPLE, "--max-auc-drop", "-1", "-o", tmp_path / "a.pt"), "--max-auc-drop"),
        (("prune", SAMPLES / "xy_sinz.pt", "--feature-threshold", "0.1", "-o", tmp_path / "a.pt"), "KarSein"),
        (("plot-activations", SAMPLE, "--layer", "0", "-o", tmp_path / "p"), "--layer"),
        (("plot-activations", SAMPLE, "--top", "0", "-o", tmp_path / "p"), "--top"),
        (("symbolify", SAMPLE, "--output", tmp_path / "s.pt"), "--output"),
        (("symbolify", SAMPLE, "--finetune", "5"), "--finetune"),
        (("symbolify", SAMPLE, "--data", bad_csv), "bad.csv"),
        (("symbolify", SAMPLE, "--lib", "x,nosuch"), "--lib"),
    ]
    for args, fragment in cases:
        assert_clean_failure(invoke(runner, *args), fragment)
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "s.pt").exists()
