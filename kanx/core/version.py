"""The kanx version (one place; the package and checkpoints report it)."""

__version__ = "0.1.0"
