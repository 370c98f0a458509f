"""Symbolic stage: per-edge fits, composition, cleaning, structure-first search, export.

This package module only re-exports; see ``symbolify`` (entry point), ``edges`` (the per-edge
strategy), ``selection`` (candidate choice), ``results`` (result types), ``compose`` (network →
expression, cleaning), ``export`` (LaTeX/JSON), ``structure`` (structure-first) and ``karsein``.
"""

from kanx.symbolic.results import EdgeReport, Fidelity, SymbolicResult
from kanx.symbolic.settings import STRATEGIES, SymbolifySettings
from kanx.symbolic.symbolify import symbolify

__all__ = ["STRATEGIES", "EdgeReport", "Fidelity", "SymbolicResult", "SymbolifySettings", "symbolify"]
