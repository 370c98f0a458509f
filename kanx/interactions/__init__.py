"""Interaction stage: which inputs interact, at what order, with what share of the variance."""

from kanx.interactions.kan import InteractionReport, interactions

__all__ = ["InteractionReport", "interactions"]
