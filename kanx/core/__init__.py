"""The numerics core every layer may use: errors, the version, R², row splits, threads, and
turning sympy expressions into torch/numpy functions. Imports nothing else from kanx."""
