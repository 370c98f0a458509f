"""Symbolic layer: function library, per-edge fits, composition, export."""
