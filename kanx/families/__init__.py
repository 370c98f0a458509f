"""Model families (KAN, KarSein): the models, their checkpoint codecs and the per-family pieces
the stages need. ``registry`` lists them."""
