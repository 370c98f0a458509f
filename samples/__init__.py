"""Bundled sample datasets and checkpoints (rebuilt by ``samples/build_samples.py``)."""
