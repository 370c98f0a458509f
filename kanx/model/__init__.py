"""KAN model: bases, layers, networks."""

from kanx.model.layer import KANLayer, LayerShape
from kanx.model.network import KAN, EdgeTrace

__all__ = ["KAN", "EdgeTrace", "KANLayer", "LayerShape"]
