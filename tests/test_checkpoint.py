"""Checkpoint format: round trips and validation of everything loaded."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from kanx.core.errors import KanxError
from kanx.families.kan.network import KAN
from kanx.io.checkpoint import save_model
from kanx.io.load import load_model


def make_model() -> KAN:
    model = KAN([3, 3, 1], mult=[[], [2], []], input_names=["a", "b", "c"], output_names=["out"], seed=7)
    model.set_symbolic(0, 2, 1, "exp", (0.5, 0.1, 2.0, -1.0))
    model.layers[1].mask[0, 0] = 0
    model.sample_inputs = torch.rand(20, 3)
    model.held_out_inputs, model.held_out_targets = torch.rand(10, 3), torch.rand(10, 1)
    model.meta.provenance = {"created_by": "test"}
    return model


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = make_model()
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    x = torch.rand(50, 3) * 2 - 1
    torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    assert loaded.meta.input_names == ["a", "b", "c"]
    assert loaded.symbolic_edge(0, 2, 1) == ("exp", pytest.approx((0.5, 0.1, 2.0, -1.0)))
    assert loaded.meta.provenance == {"created_by": "test"}
    torch.testing.assert_close(loaded.sample_inputs, model.sample_inputs)
    torch.testing.assert_close(loaded.held_out_inputs, model.held_out_inputs)
    torch.testing.assert_close(loaded.held_out_targets, model.held_out_targets)


@pytest.mark.parametrize("basis", [{"kind": "rbf", "num": 6, "h": 0.5}, {"kind": "chebyshev", "degree": 3}])
def test_other_bases_round_trip(tmp_path: Path, basis: dict) -> None:
    model = KAN([2, 2, 1], basis=basis, layer_norm=[True, False], seed=3)
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    x = torch.rand(10, 2)
    torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


def save_raw(path: Path, payload: object) -> Path:
    torch.save(payload, path)
    return path


def tamper(tmp_path: Path, change) -> Path:
    model = make_model()
    save_model(model, tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    change(payload)
    return save_raw(tmp_path / "bad.pt", payload)


class CarriesCode:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "make_file,message",
    [
        (lambda d: d / "missing.pt", "no such file"),
        (lambda d: (d / "notes.pt").write_text("hello, not a checkpoint") and d / "notes.pt", "not a"),
        (lambda d: save_raw(d / "code.pt", {"x": CarriesCode()}), "refuses to unpickle"),
        (lambda d: (d / "raw.pkl").write_bytes(pickle.dumps(CarriesCode())) and d / "raw.pkl", "not a"),
        (lambda d: save_raw(d / "plain.pt", {"weights": torch.zeros(3)}), "not a kanx checkpoint"),
    ],
)
def test_unloadable_files_give_clear_errors(tmp_path: Path, make_file, message: str, capsys) -> None:
    path = make_file(tmp_path)
    with pytest.raises(KanxError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert "this must never run" not in capsys.readouterr().out


def test_truncated_checkpoint(tmp_path: Path) -> None:
    good = save_model(make_model(), tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(KanxError, match="truncated or corrupt"):
        load_model(tmp_path / "cut.pt")


def _set(payload: dict, path: list, value) -> None:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda p: _set(p, ["state", "layers.0.coef"], torch.zeros(3, 5, 8)), "shape"),
        (lambda p: p["state"]["layers.1.w_base"].__setitem__((0, 0), float("nan")), "NaN or Inf"),
        (lambda p: p["state"]["layers.0.w_sp"].__setitem__((0, 0), float("inf")), "NaN or Inf"),
        (lambda p: p["state"].pop("layers.0.knots"), "missing tensor"),
        (lambda p: _set(p, ["state", "layers.0.extra"], torch.zeros(1)), "unexpected tensor"),
        (lambda p: _set(p, ["config", "widths"], [3, 4, 1]), "shape|entries"),
        (lambda p: _set(p, ["version"], 99), "version"),
        (lambda p: _set(p, ["config", "input_names"], ["a"]), "input_names"),
        (lambda p: _set(p, ["config", "symbolic_functions"], ["no_such_fn"]), "unknown symbolic function"),
        (lambda p: p["state"]["layers.0.sym_index"].fill_(5), "symbolic function table"),
        (lambda p: p["state"]["layers.0.knots"].__setitem__((0, 4), 10.0), "non-decreasing"),
        (lambda p: _set(p, ["config", "basis"], {"kind": "wavelet"}), r"'basis'\['kind'\] must be one of"),
        (lambda p: p["state"].pop("held_out_targets"), "missing tensor 'held_out_targets'"),
        (lambda p: _set(p, ["state", "held_out_targets"], torch.zeros(10, 2)), "held_out_targets' has shape"),
        (lambda p: _set(p, ["state", "held_out_targets"], torch.zeros(9, 1)), "hold 10 and 9 rows"),
        (lambda p: p["state"]["held_out_targets"].__setitem__((0, 0), float("nan")), "NaN or Inf"),
    ],
)
def test_config_and_tensor_validation(tmp_path: Path, change, message: str) -> None:
    path = tamper(tmp_path, change)
    with pytest.raises(KanxError, match=message):
        load_model(path)


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "m.pt"
    target.write_bytes(b"previous")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("kanx.io.files.os.replace", broken_replace)
    with pytest.raises(OSError):
        save_model(make_model(), target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_saving_is_byte_deterministic(tmp_path: Path) -> None:
    model = make_model()
    first = save_model(model, tmp_path / "a.pt").read_bytes()
    second = save_model(model, tmp_path / "much_longer_name.pt").read_bytes()
    assert first == second
