"""What symbolify returns: per-edge reports, fidelity measurements and the result object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sympy
import torch

from kanx.core.display import html_table
from kanx.core.errors import KanxFailure
from kanx.core.numerics import misfit_beyond_noise, r2_value
from kanx.symbolic.canonical import representable
from kanx.symbolic.classify import ClassifierFidelity, probability_formulas
from kanx.symbolic.engines import Candidate
from kanx.symbolic.export import fidelity_text, formula_function, formula_module, to_latex
from kanx.symbolic.oracle import OracleQuality

if TYPE_CHECKING:
    from kanx.families.kan.network import KAN


@dataclass
class EdgeReport:
    """What happened to one edge ``(layer, i, j)``."""

    layer: int
    i: int
    j: int
    importance: float
    status: str  # "symbolic" | "negligible" | "numeric" | "poly" | "masked" | "structure" (its subnode has a formula)
    chosen: Candidate | None = None
    front: list[Candidate] = field(default_factory=list)
    note: str | None = None  # how a second chance (kanx.symbolic.retry) went

    def to_dict(self) -> dict:
        def cand(c: Candidate) -> dict:
            return {"function": c.name, "affine": {"a": c.affine[0], "b": c.affine[1], "c": c.affine[2], "d": c.affine[3]},
                    "r2": c.r2, "complexity": c.complexity}

        return {
            "layer": self.layer, "input": self.i, "subnode": self.j, "importance": self.importance,
            "status": self.status, "chosen": cand(self.chosen) if self.chosen else None,
            "candidates": [cand(c) for c in self.front], "note": self.note,
        }


@dataclass
class Fidelity:
    """Agreement of a formula with a reference on ``rows`` held-out samples. Against noisy data,
    ``noise_floor`` is the best R² any formula can reach there (``1 −`` the estimated noise
    share of the target's variance); ``None`` where the noise is not known, and then no fit is
    read as at the floor."""

    r2: float
    rmse: float
    max_abs: float
    rows: int = 0
    noise_floor: float | None = None

    @property
    def at_noise_floor(self) -> bool | None:
        """Whether the formula fits the data as well as their noise allows: no misfit beyond the
        noise on these rows (:func:`kanx.core.numerics.misfit_beyond_noise`). ``None`` without a
        noise estimate."""
        if self.noise_floor is None:
            return None
        return misfit_beyond_noise(self.r2, 1.0 - self.noise_floor, self.rows) <= 1e-12

    def to_dict(self) -> dict:
        return {"r2": self.r2, "rmse": self.rmse, "max_abs_error": self.max_abs, "rows": self.rows,
                "noise_floor": self.noise_floor, "at_noise_floor": self.at_noise_floor}


@dataclass
class OutputFidelity:
    """One output's formula on the held-out rows: against the ``network`` and, when the rows had
    targets, against the ``data``. Every family's result gives one per output (``.fidelity``)."""

    network: Fidelity
    data: Fidelity | None = None

    def to_dict(self) -> dict:
        return {"network": self.network.to_dict(), "data": self.data.to_dict() if self.data is not None else None}


@dataclass
class SymbolicResult:
    """Outcome of :func:`symbolify`.

    ``model``: a copy of the input with the chosen edges symbolic; ``expressions``: one sympy
    expression per output in the input symbols (for wide networks, in named hidden nodes whose
    definitions are ``hidden``, in order); ``edges``: per-edge reports; ``fidelity``:
    per output an :class:`OutputFidelity`; ``flagged``: edges kept
    numeric or polynomial because nothing fitted above the threshold; ``classification``: for a
    classifier (whose outputs are logits), the formulas' decisions against the network's and
    their accuracy on labelled rows (:class:`kanx.symbolic.classify.ClassifierFidelity`).
    """

    model: KAN
    expressions: list[sympy.Expr]
    output_names: list[str]
    edges: list[EdgeReport]
    fidelity: list[OutputFidelity]
    flagged: list[EdgeReport]
    settings: dict
    timings: dict
    log: list[dict]
    strategy_used: list[str] = field(default_factory=list)
    oracle_quality: OracleQuality | None = None
    hidden: dict[sympy.Symbol, sympy.Expr] = field(default_factory=dict)
    classification: ClassifierFidelity | None = None

    def __post_init__(self) -> None:
        """Every number of the formulas within float64 (:func:`kanx.symbolic.canonical.representable`);
        one that cannot be brought there is a failure naming it, not a formula nobody can evaluate."""
        names = [*self.output_names, *(str(name) for name in self.hidden)]
        fixed = []
        for name, expr in zip(names, [*self.expressions, *self.hidden.values()]):
            if isinstance(expr, sympy.Expr):
                expr, beyond = representable(expr)
                if beyond:
                    raise KanxFailure(f"the formula of {name} needs the constant {sympy.sstr(sympy.Float(beyond[0], 4))}, "
                                      "beyond float64 (the inputs' or the target's units are too far apart; rescale them)")
            fixed.append(expr)
        self.expressions = fixed[: len(self.expressions)]
        self.hidden = dict(zip(self.hidden, fixed[len(self.expressions):]))

    def in_inputs(self, expr: sympy.Expr) -> sympy.Expr:
        """``expr`` with the named hidden nodes (``hidden``: a wide network's formulas are written
        in them) replaced by their definitions, the latest first: a formula in the inputs only."""
        for name, definition in reversed(list(self.hidden.items())):
            expr = expr.xreplace({name: definition})
        return expr

    def to_dict(self) -> dict:
        return {
            "oracle_quality": self.oracle_quality.to_dict() if self.oracle_quality is not None else None,
            "outputs": [
                {
                    "name": name, "expression": sympy.sstr(expr), "srepr": sympy.srepr(expr),
                    "latex": sympy.latex(expr),
                    "fidelity": fid.to_dict(),
                    "cleanup": log,
                }
                for name, expr, fid, log in zip(self.output_names, self.expressions, self.fidelity, self.log)
            ],
            "hidden": [{"name": str(name), "expression": sympy.sstr(expr)} for name, expr in self.hidden.items()],
            "edges": [e.to_dict() for e in self.edges],
            "flagged": [[e.layer, e.i, e.j] for e in self.flagged],
            "strategy_used": self.strategy_used,
            "classification": self.classification_dict(),
            "settings": self.settings,
            "timings": self.timings,
        }

    def classification_dict(self) -> dict | None:
        """A classifier's :class:`ClassifierFidelity` with its probability formulas, as plain values."""
        if self.classification is None:
            return None
        formulas = self.probability_formulas()
        return self.classification.to_dict() | {"probabilities": [{"name": name, "expression": sympy.sstr(expr)}
                                                                  for name, expr in formulas]}

    def probability_formulas(self) -> list[tuple[str, sympy.Expr]]:
        """A classifier's class probabilities in its logits (the outputs): ``[(P(c), formula)]``;
        empty for a regression model."""
        classes = self.model.classes
        return probability_formulas(classes, self.output_names) if classes is not None else []

    @property
    def input_names(self) -> list[str]:
        """The model's input names, in the order the formulas' functions take them."""
        return list(self.model.meta.input_names)

    def function(self, output: int | str = 0, language: str = "torch") -> Callable:
        """Output ``output`` (index or name) as a callable of the inputs (positional, in
        ``input_names`` order): ``language`` ``"torch"`` (tensors), ``"numpy"`` (arrays) or
        ``"py"`` (floats). It computes what :meth:`to_code` writes. Raises ``KanxError`` when the
        formula still has numeric parts."""
        return formula_function(self, output, language)

    def to_latex(self) -> str:
        """A LaTeX fragment: one equation per output, then the per-edge fits (``symbolify --out``)."""
        return to_latex(self)

    def to_code(self, language: str = "torch", source: str | None = None) -> str:
        """Python source of a module with one function per output (``kanx symbolify --export``)."""
        return formula_module(self, language, source)

    def __repr__(self) -> str:
        laws = "; ".join(f"{name} = {sympy.sstr(expr)}" for name, expr in zip(self.output_names, self.expressions))
        routes = f", route={'/'.join(self.strategy_used)}" if self.strategy_used else ""
        agreement = self.classification.agreement if self.classification is not None else None
        decided = f", decision agreement {agreement:.2%}" if agreement is not None else ""
        return f"SymbolicResult({laws}{routes}{decided})"

    def _repr_latex_(self) -> str:
        """Jupyter: every output's formula with its fidelity against the network."""
        rows = []
        for name, expr, fid in zip(self.output_names, self.expressions, self.fidelity):
            r2 = fid.network.r2
            rows.append(rf"{sympy.latex(sympy.Symbol(name))} &= {sympy.latex(expr)} && (R^2_\text{{network}} = {r2:.6f})")
        return "$$\\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}$$"

    def _repr_html_(self) -> str:
        """Jupyter (HTML front ends): a table of output, formula and fidelity."""
        rows = [(name, sympy.sstr(expr), fidelity_text(fid)) for name, expr, fid in zip(self.output_names, self.expressions, self.fidelity)]
        if self.classification is not None:
            rows += [(name, sympy.sstr(expr), "") for name, expr in self.probability_formulas()]
            rows.append(("classes", ", ".join(self.classification.classes), self.classification.text()))
        return html_table(("output", "formula", "fidelity"), rows, "kanx symbolify")


def fidelity(prediction: torch.Tensor, target: torch.Tensor) -> Fidelity:
    """R², RMSE and max |error| of ``prediction`` against ``target`` (``[N]``)."""
    p, t = prediction.double(), target.double()
    error = p - t
    if not bool(torch.isfinite(error).all()):
        return Fidelity(float("-inf"), float("inf"), float("inf"), int(t.numel()))
    return Fidelity(r2_value(p, t), float((error**2).mean().sqrt()), float(error.abs().max()), int(t.numel()))


def with_noise_floors(fidelities: list[OutputFidelity], noise: list[float | None]) -> None:
    """Set each output's data fidelity's ``noise_floor`` to ``1 − noise[k]`` (``noise``: the
    estimated noise share of each target's variance, ``OracleQuality.noise``), or to ``None``
    where that share is unknown."""
    for fid, share in zip(fidelities, noise):
        if fid.data is not None:
            fid.data.noise_floor = None if share is None else 1.0 - share
