"""KarSein (CTR) model family: model, checkpoint codec, per-feature views."""
