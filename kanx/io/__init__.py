"""Checkpoints, datasets and safe file output."""
