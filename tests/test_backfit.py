"""Refitting a formula's one-variable pieces to the data (``kanx.symbolic.structure.backfit``):
the structure stays the network's, the pieces become what the data require."""

from __future__ import annotations

import sympy
import torch

from kanx.core.numerics import r2_value
from kanx.functions.library import build_library
from kanx.symbolic.structure.backfit import backfit, isolate
from kanx.symbolic.structure.search import StructureSettings, formula_values
from kanx.symbolic.structure.strategy import clean_formula, refitted_on_data

FUNCTIONS, _ = build_library(None, [])
X0, X1, X2 = sympy.symbols("x0 x1 x2", real=True)


def rows(n: int, seed: int) -> torch.Tensor:
    """``[n, 3]``: x0 over a decade, x1 in (0, 1.3) (a speed in units where c = 3), x2 of either sign."""
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    return torch.stack([10 ** u[:, 0], 1.3 * u[:, 1], 4 * u[:, 2] - 2], 1)


def test_isolate_inverts_sums_products_and_reciprocals_down_to_one_variable() -> None:
    """``y = 2·x0 / (x2² + g(x1))``: the values required of ``g`` are ``2·x0/y − x2²`` on every
    row, whatever the formula's current ``g``."""
    x = rows(500, 0)
    truth = torch.cos(x[:, 1]) + 3
    y = 2 * x[:, 0] / (x[:, 2] ** 2 + truth)
    current = 2 * X0 / (X2**2 + sympy.Float(1.5) * X1 + 7)
    isolated = isolate(current, X1, [X0, X1, X2], x, y)
    assert isolated is not None and isolated.piece == sympy.Float(1.5) * X1 + 7
    assert torch.allclose(isolated.target, truth[isolated.rows], rtol=1e-10)
    assert isolated.rebuild(sympy.cos(X1) + 3) == 2 * X0 / (X2**2 + sympy.cos(X1) + 3)
    # a variable in two factors has no piece of its own
    assert isolate(X0 * X1 + X0 * X2, X0, [X0, X1, X2], x, y) is None
    # nor one inside a function of another variable
    assert isolate(sympy.sin(X0 * X1), X1, [X0, X1, X2], x, y) is None


def test_products_skip_the_rows_where_a_divisor_vanishes() -> None:
    """Dividing by the other factors leaves out the rows where they are ~0 (x2 crosses 0)."""
    x = rows(500, 1)
    x[::50, 2] = 1e-6  # ten rows on the zero of the divisor
    y = x[:, 2] * torch.exp(x[:, 1])
    isolated = isolate(X2 * (1 + X1), X1, [X0, X1, X2], x, y)
    assert isolated is not None and isolated.rows.numel() == 490
    assert bool((x[isolated.rows, 2].abs() > 1e-3 * x[:, 2].abs().median()).all())
    assert torch.allclose(isolated.target, torch.exp(x[isolated.rows, 1]), rtol=1e-9)


def test_a_relativistic_factor_replaces_its_parabola_look_alike() -> None:
    """``x0/√(1 − x1²/9)``: the network's slice gave ``x0·(1 + a·x1²)`` (the factor's first order,
    within a network's error of it); refitted to the data, the factor is the inverse square root
    again and the formula fits the data exactly."""
    x = rows(800, 2)
    y = x[:, 0] / torch.sqrt(1 - x[:, 1] ** 2 / 9)
    symbols = [X0, X1, X2]
    lookalike = X0 * (1 + sympy.Float(0.061) * X1**2)
    refitted, changed = backfit(lookalike, symbols, x, y, FUNCTIONS, tolerance=2e-3)
    assert changed == ["x1"]
    assert r2_value(formula_values(lookalike, symbols, x), y) < 1 - 1e-6
    assert r2_value(formula_values(refitted, symbols, x), y) > 1 - 1e-10
    cleaned, r2, _ = clean_formula(refitted, symbols, x, y, digits=6, simplify_timeout=5.0)
    assert r2 > 1 - 1e-12
    assert sympy.simplify(cleaned - X0 / sympy.sqrt(1 - X1**2 / 9)) == 0


def test_the_refit_is_kept_only_where_the_targets_prefer_it() -> None:
    """``refitted_on_data`` keeps the network's formula when it already is the law (nothing to
    change), and takes the refit when the data show the look-alike's error."""
    x = rows(800, 3)
    symbols = [X0, X1, X2]
    settings = StructureSettings()
    exact_y = x[:, 0] * (x[:, 2] + 2)
    exact = clean_formula(X0 * (X2 + 2), symbols, x, exact_y, 6, 5.0)
    kept, changed = refitted_on_data(exact, symbols, x, exact_y, FUNCTIONS, settings, 6, 5.0, 0.0)
    assert changed == [] and kept[0] == exact[0]

    y = x[:, 0] / (1 - x[:, 2] / 30)  # a line 1 + x2/30 is its first order
    lookalike = clean_formula(X0 * (1 + X2 / 30), symbols, x, y, 6, 5.0)
    assert lookalike[1] < 1 - 1e-7
    better, changed = refitted_on_data(lookalike, symbols, x, y, FUNCTIONS, settings, 6, 5.0, 0.0)
    assert changed == ["x2"] and better[1] > 1 - 1e-12
    assert sympy.simplify(better[0] - X0 / (1 - X2 / 30)) == 0


class LookAlikeNetwork(torch.nn.Module):
    """A stand-in for a trained network that renders ``m/√(1 − v²/9)`` as its first order
    ``m·(1 + v²/18)`` (the structure right, the small factor a look-alike), in float32 as a
    network's outputs are."""

    def __init__(self) -> None:
        super().__init__()
        self.meta = type("Meta", (), {"input_names": ["m", "v"], "output_names": ["E"]})()
        self.n_outputs = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] * (1 + x[:, 1:2] ** 2 / 18)).float()

    def row_bytes(self) -> int:
        return 64


def test_structure_first_takes_the_data_s_factor_over_the_network_s_look_alike() -> None:
    """The search on the look-alike network finds ``m·g(v)`` with a parabola for ``g``; the
    targets (the law itself) turn ``g`` back into ``1/√(1 − v²/9)``, and the log says so."""
    from kanx.symbolic.structure.strategy import structure_formulas, structure_settings

    generator = torch.Generator().manual_seed(5)
    u = torch.rand(1200, 2, generator=generator, dtype=torch.float64)
    x = torch.stack([10 ** (2 * u[:, 0] - 1), 1.3 * u[:, 1]], 1)
    target = (x[:, 0] / torch.sqrt(1 - x[:, 1] ** 2 / 9))[:, None]
    network = LookAlikeNetwork()
    formulas, logs = structure_formulas(network, FUNCTIONS, x, target, structure_settings(1e-6, 1_000_000), digits=6,
                                        simplify_timeout=5.0, seed=0, noise=1e-6, data_noise=[0.0])
    m, v = sympy.symbols("m v", real=True)
    assert logs[0]["refitted_on_data"] == ["v"]
    assert sympy.simplify(formulas[0] - m / sympy.sqrt(1 - v**2 / 9)) == 0
