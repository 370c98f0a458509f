"""Structure-first symbolify: the network as an oracle for separability, power laws, scaling
and symmetries before 1-D pieces are fitted (``strategy.structure_first`` is the entry point)."""

from kanx.symbolic.structure.strategy import structure_first

__all__ = ["structure_first"]
