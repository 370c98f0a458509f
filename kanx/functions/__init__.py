"""The symbolic function library and the safe text → expression parser (above the core,
below the model families)."""
