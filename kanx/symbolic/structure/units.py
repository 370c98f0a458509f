"""Working units for the structure search: powers of ten that bring every variable and the
target to order 1.

Measured data come in units where an input is 1e-28 and the target 1e+33. The search's tests,
its 1-D fits and its snapping to simple numbers all assume numbers of order 1, so the search
runs on ``z_i = x_i / 10^a_i`` and ``w = f / 10^b`` and the formula it finds is written back in
the data's units at the end (``f = 10^b · g(x / 10^a)``, the powers of ten folded into the
formula's constants). A scale is only applied when a column's typical magnitude (the median of
``log10 |v|``, rounded) is at least two decades away from 1, so data already near unit scale are
searched exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
import torch

MIN_DECADES = 2  # a typical magnitude at least this many decades from 1 gets a working scale


def decade(values: torch.Tensor) -> int:
    """The power of ten of ``values``' typical magnitude (median of ``log10 |v|`` over the finite,
    non-zero values, rounded), or 0 when it is within ``MIN_DECADES`` decades of 1."""
    finite = values[torch.isfinite(values) & (values != 0)].double()
    if finite.numel() == 0:
        return 0
    exponent = round(float(finite.abs().log10().median()))
    return exponent if abs(exponent) >= MIN_DECADES else 0


@dataclass(frozen=True)
class WorkingUnits:
    """``inputs[i]`` and ``output``: the powers of ten dividing input ``i`` and the target."""

    inputs: tuple[int, ...]
    output: int

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> WorkingUnits:
        """Units for inputs ``x [N, n]`` and target ``y [N]``."""
        return cls(tuple(decade(x[:, i]) for i in range(x.shape[1])), decade(y))

    @property
    def identity(self) -> bool:
        return self.output == 0 and not any(self.inputs)

    def input_scale(self, like: torch.Tensor) -> torch.Tensor:
        """``[n]`` the factors ``10^a_i`` (dtype and device of ``like``)."""
        return torch.tensor([10.0**a for a in self.inputs], dtype=like.dtype, device=like.device)

    def to_working(self, x: torch.Tensor) -> torch.Tensor:
        """Rows ``x [N, n]`` in the data's units → working units."""
        return x / self.input_scale(x)

    def from_working(self, z: torch.Tensor) -> torch.Tensor:
        """Rows ``z [N, n]`` in working units → the data's units."""
        return z * self.input_scale(z)

    def target_to_working(self, y: torch.Tensor) -> torch.Tensor:
        return y / 10.0**self.output

    def oracle(self, oracle):
        """The oracle ``x → f`` as seen in working units ``z → w``."""
        if self.identity:
            return oracle
        factor = 10.0**self.output
        return lambda z: oracle(self.from_working(z)) / factor

    def restore(self, expr: sympy.Expr, symbols: list[sympy.Symbol]) -> sympy.Expr:
        """A formula ``w = g(z)`` over ``symbols`` → ``f = 10^b · g(x / 10^a)`` in the data's units
        (sympy folds the exact powers of ten into the formula's numbers)."""
        if self.identity:
            return expr
        mapping = {s: s / sympy.Integer(10) ** a for s, a in zip(symbols, self.inputs) if a}
        return sympy.Integer(10) ** self.output * expr.xreplace(mapping)

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs), "output": self.output}
