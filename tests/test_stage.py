"""``kanx.core.stage`` (the call shape every stage shares) and ``kanx.io.figures`` (the Figures
result and the one figure writer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import SAMPLES

import kanx
from kanx.core.errors import KanxError
from kanx.core.stage import Rows, as_rows, inputs_and_targets, result_dict, rows_on, settings_of
from kanx.io.data import Dataset
from kanx.io.figures import Figures, output_paths
from kanx.pruning import PruneSettings


def test_rows_come_from_a_rows_object_a_dataset_or_a_tensor() -> None:
    x, y = torch.rand(12, 2), torch.rand(12, 1)
    assert inputs_and_targets(None, "stage") == (None, None)
    assert inputs_and_targets(x, "stage")[0] is x and inputs_and_targets(x, "stage")[1] is None
    dataset = Dataset(x, y, ["a", "b"], ["f"], "mem")
    assert as_rows(dataset, "stage") is dataset
    assert inputs_and_targets(Rows(x, y), "stage") == (x, y)
    moved = rows_on(Rows(x.double(), y), torch.device("cpu"))
    assert moved.x.dtype == torch.float64 and moved.y is y
    with pytest.raises(KanxError, match="^prune: data must be rows .* not list"):
        as_rows([[1.0, 2.0]], "prune")


def test_options_build_settings_replace_fields_and_are_checked() -> None:
    assert settings_of(PruneSettings, None, {"seed": 3}, "prune") == PruneSettings(seed=3)
    given = PruneSettings(seed=3, min_fidelity=0.95)
    assert settings_of(PruneSettings, given, {}, "prune") is given
    replaced = settings_of(PruneSettings, given, {"seed": 4}, "prune")
    assert replaced.seed == 4 and replaced.min_fidelity == 0.95 and given.seed == 3
    with pytest.raises(KanxError, match="--min-fidelity"):  # the settings' own check runs on the replaced fields
        settings_of(PruneSettings, given, {"min_fidelity": 1.5}, "prune")
    with pytest.raises(KanxError, match="^prune: unknown option seeds"):
        settings_of(PruneSettings, None, {"seeds": 3}, "prune")


def test_a_result_dict_leaves_the_model_out_and_copies_the_rest() -> None:
    @dataclass
    class Inner:
        value: float

    @dataclass
    class Result:
        numbers: list[float]
        inner: Inner
        tags: dict = field(default_factory=dict)
        model: object | None = None

    result = Result([1.0], Inner(2.0), {"a": (1, 2)}, model=torch.nn.Linear(1, 1))
    plain = result_dict(result)
    assert plain == {"numbers": [1.0], "inner": {"value": 2.0}, "tags": {"a": (1, 2)}}
    plain["numbers"].append(3.0)
    assert result.numbers == [1.0]


def test_figures_save_by_name_in_one_pdf_or_each_beside_a_path(tmp_path: Path) -> None:
    figures = kanx.plot_activations(kanx.load_model(SAMPLES / "exp_sin.pt"), top=2)
    assert figures.names == ["layer0", "layer1"] and len(figures) == 2 and list(figures) == figures.figures
    assert [p.name for p in figures.save(tmp_path / "a")] == ["a_layer0.png", "a_layer1.png"]
    assert [p.name for p in figures.save(tmp_path / "a", "pdf")] == ["a.pdf"]
    assert output_paths(tmp_path / "s", ["x"], "svg") == [tmp_path / "s_x.svg"]
    assert [p.name for p in figures.save_each(tmp_path / "b.svg", 72)] == ["b_layer0.svg", "b_layer1.svg"]
    one = Figures(["only"], figures.figures[:1])
    assert one.save_each(tmp_path / "c.png", 72) == [tmp_path / "c.png"]
    again = one.save_each(tmp_path / "d.png", 72)
    assert again[0].read_bytes() == (tmp_path / "c.png").read_bytes()  # fixed metadata: the same figure, the same bytes
    with pytest.raises(KanxError, match="use a .png, .svg or .pdf"):
        one.save_each(tmp_path / "e.jpg", 72)
    with pytest.raises(KanxError, match="--format 'gif'"):
        one.save(tmp_path / "f", "gif")
    assert repr(one) == "Figures(only)" and one._repr_html_().startswith("<figure><img src='data:image/png;base64,")
