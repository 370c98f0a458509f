"""The fixed vocabularies of kanx options, defined once.

Settings objects validate against these tuples and the CLI offers them as choices (``--help``
and shell completion list them). This module imports nothing, so the CLI can read it without
loading torch, sympy or matplotlib.
"""

from __future__ import annotations

ENGINES = ("builtin", "operon", "pysr")
"""Per-edge / per-piece symbolic regression engines (``symbolify --engine``)."""

STRATEGIES = ("auto", "edges", "structure-first")
"""How ``symbolify`` reads a network: fit every edge, decompose the network's function first, or
(``auto``) both when the data hold the targets, keeping per output the better formula."""

ROUTES = ("structure-first", "edges", "sparse-regression", "sparse-logistic")
"""Where a formula of ``symbolify`` (and so of ``discover``) came from: the structure search with
the network as oracle, the network's edges fitted one by one, a sparse regression on the data's
rows themselves (``kanx.symbolic.sparse``), or, for a two-class classifier's logit, a sparse
logistic regression on the labelled rows (``kanx.symbolic.logistic``). Recorded per output in
``strategy_used``."""

SPARSE_ROUTE = ROUTES[2]
LOGISTIC_ROUTE = ROUTES[3]

FALLBACKS = ("numeric", "poly")
"""What an edge no library function fits becomes (``symbolify --fallback``)."""

EXPORT_LANGUAGES = ("py", "numpy", "torch")
"""Code a formula can be exported as (``symbolify --export``): plain ``math``, NumPy or torch."""

BASES = ("bspline", "rbf", "chebyshev")
"""Edge bases a kanx KAN can train with (``train --basis``)."""

TARGET_TRANSFORMS = ("none", "log", "auto")
"""How ``train`` fits each target: as it is, or ``log|y|`` under an ``exp`` output layer (``log``:
every target, which must keep one sign; ``auto``: targets of one sign spanning two decades)."""

OPTIMIZERS = ("adam", "lbfgs")
"""Training optimisers (``train --optimizer``)."""

ARCHITECTURES = ("kan", "karsein")
"""Model families ``kanx train`` builds (``--arch``)."""

BASE_FUNCTIONS = ("silu", "identity", "zero")
"""The residual ``b(x)`` of an edge ``w_b·b(x) + w_s·spline(x)``."""

FIGURE_FORMATS = ("png", "svg", "pdf")
"""Figure file types ``plot-activations`` writes (pdf: one multipage file)."""

NODE_ORDERS = ("auto", "crossings", "index")
"""How the diagram places each hidden layer's nodes (``plot-activations --node-order``): the order
stored with the model, else a crossing-minimal one (``auto``); a crossing-minimal order computed
afresh (``crossings``); or by node index (``index``)."""

SOURCES = ("pykan", "efficient-kan", "fastkan", "chebykan", "karsein")
"""KAN libraries whose checkpoints kanx imports (``--from``)."""

DEVICES = ("cpu", "cuda", "auto")
"""Where the numerics run (``auto``: CUDA when present, else CPU); ``--device``."""

TASKS = ("regression", "classify")
"""What a KAN's outputs are (``kanx train --task``): values of the targets, or class logits."""

CLASS_WEIGHTS = ("none", "balanced")
"""How a classifier's loss weighs its classes (``kanx train --class-weights``)."""

TRAINABLE = ("all", "numeric")
"""What trains when a network is continued (``kanx train --init --trainable``): every edge (symbolic
ones become splines fitted to their functions), or the spline edges only."""

