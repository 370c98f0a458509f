"""KAN model: bases, layers, networks."""

from kanx.families.kan.layer import KANLayer, LayerShape
from kanx.families.kan.network import KAN, EdgeTrace

__all__ = ["KAN", "EdgeTrace", "KANLayer", "LayerShape"]
