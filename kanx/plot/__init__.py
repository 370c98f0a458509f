"""Plotting stage: every learned activation, symbolic overlays, the network diagram."""

from kanx.plot.kan import plot_activations, plot_network

__all__ = ["plot_activations", "plot_network"]
