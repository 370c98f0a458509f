"""Symbolic stage: per-edge fits, composition, cleaning, structure-first search, export.

This package module only re-exports; see ``dispatch`` (the entry point ``symbolify``), ``edges`` (the per-edge
strategy), ``selection`` (candidate choice), ``results`` (result types), ``cleaning`` and
``canonical`` (clean-up), ``export`` (LaTeX and code), ``structure`` (structure-first), ``karsein``,
``logistic`` (a classifier's labelled rows' route) and ``compile`` (formula → KAN).
"""

from kanx.symbolic.dispatch import symbolify
from kanx.symbolic.results import EdgeReport, Fidelity, SymbolicResult
from kanx.symbolic.settings import STRATEGIES, SymbolifySettings

__all__ = ["STRATEGIES", "EdgeReport", "Fidelity", "SymbolicResult", "SymbolifySettings", "symbolify"]
