"""Formula → KAN: lay a formula out as a network whose edges compute it (KAN 2.0's "kanpiler").

The formula (text, read by the safe parser) is walked as a tree of sums, products, compositions
and one-variable functions:

* a one-variable function of the library sits on an edge, as ``c * f(a * v + b) + d``; affine
  pieces (constant factors and offsets) fold into that edge;
* a sum of such terms is a summing node, a product of two or more factors a multiplication node
  whose subnodes each sum one factor's terms;
* a function of something that is not affine in one node first gets a node of its own;
* a term whose source lies more than one layer below its node travels up through identity nodes.

Functions outside the library are rewritten into it (``cosh`` into exponentials, ``acos`` into
``arcsin``, ``sec`` into ``1/cos``...), powers with an exponent of 2, 3, 4, -1, -2, 1/2 or -1/2
are library edges, other integer powers products of them, and other powers ``exp(p log(base))``
where the base is positive on the ranges. What cannot be laid out (a power of a base that is not
positive, a formula that is not finite on the ranges, a constant) is refused with the reason.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import sympy
import torch

from kanx.core.display import html_table
from kanx.core.errors import KanxError
from kanx.core.lambdify import formula_on_rows
from kanx.families.kan.edit import splines_from_symbolic
from kanx.families.kan.network import KAN
from kanx.functions.library import BUILTIN_FUNCTIONS
from kanx.functions.parser import parse_expression

EDGE_KINDS = ("symbolic", "spline")
CHECK_ROWS = 4096
LIBRARY_OF = {sympy.exp: "exp", sympy.log: "log", sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan",
              sympy.tanh: "tanh", sympy.atan: "arctan", sympy.asin: "arcsin", sympy.atanh: "arctanh", sympy.Abs: "abs"}
REWRITES = {sympy.cot: sympy.tan, sympy.sec: sympy.cos, sympy.csc: sympy.sin, sympy.acos: sympy.asin,
            sympy.sinh: sympy.exp, sympy.cosh: sympy.exp, sympy.asinh: sympy.log, sympy.acosh: sympy.log}
POWER_EDGES = {2.0: "x^2", 3.0: "x^3", 4.0: "x^4", -1.0: "1/x", -2.0: "1/x^2", 0.5: "sqrt", -0.5: "1/sqrt"}


@dataclass(frozen=True)
class Unary:
    """A one-variable map ``c * f(a * v + b) + d`` of library function ``f`` (``x``: affine)."""

    function: str = "x"
    a: float = 1.0
    b: float = 0.0
    c: float = 1.0
    d: float = 0.0

    @property
    def affine(self) -> bool:
        return self.function == "x"

    def scaled(self, factor: float) -> Unary:
        return Unary(self.function, self.a, self.b, self.c * factor, self.d * factor)

    def line(self, offset: float = 0.0) -> tuple[float, float]:
        """``(slope, intercept)`` of an affine map plus ``offset``: ``c·(a·v + b) + d + offset``."""
        return self.c * self.a, self.c * self.b + self.d + offset


IDENTITY = Unary()


@dataclass(eq=False)
class Node:
    """A node of the laid-out network: an input, a summing node (one subnode) or a
    multiplication node (one subnode per factor). ``factors[s]`` lists the terms entering subnode
    ``s`` and ``offsets[s]`` its constant."""

    layer: int
    kind: str
    factors: list[list[tuple[Node, Unary]]] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    input_index: int = -1
    scale: float = 1.0
    bias: float = 0.0


@dataclass(frozen=True)
class Value:
    """``sum of unary(node) over terms + constant``: what a subexpression computes."""

    terms: tuple[tuple[Node, Unary], ...]
    constant: float = 0.0

    @property
    def is_constant(self) -> bool:
        return not self.terms

    def scaled(self, factor: float) -> Value:
        return Value(tuple((node, unary.scaled(factor)) for node, unary in self.terms), self.constant * factor)


class Layout:
    """Builds the node graph of one formula (see the module docstring)."""

    def __init__(self, names: list[str], symbols: list[sympy.Symbol], samples: torch.Tensor) -> None:
        self.inputs = [Node(0, "input", input_index=k) for k in range(len(names))]
        self.symbols = symbols
        self.samples = samples
        self.nodes: list[Node] = []
        self.memo: dict[sympy.Expr, Value] = {}
        self.relays: dict[tuple[int, int], Node] = {}

    # ----------------------------------------------------------------- expressions → values
    def value(self, expr: sympy.Expr) -> Value:
        if expr not in self.memo:
            self.memo[expr] = self.build(expr)
        return self.memo[expr]

    def build(self, expr: sympy.Expr) -> Value:
        if expr.is_Symbol:
            return Value(((self.inputs[self.symbols.index(expr)], IDENTITY),))
        if expr.is_number:
            return Value((), self.number(expr))
        if expr.is_Add:
            constant, terms = 0.0, []
            for part in expr.args:
                value = self.value(part)
                constant += value.constant
                terms += value.terms
            return Value(tuple(terms), constant)
        if expr.is_Mul:
            coefficient, rest = expr.as_coeff_Mul()
            return self.product([self.value(f) for f in sympy.Mul.make_args(rest)]).scaled(self.number(coefficient))
        if expr.is_Pow:
            return self.power(expr.base, expr.exp)
        if expr.func in LIBRARY_OF:
            return self.apply(self.value(expr.args[0]), LIBRARY_OF[expr.func])
        if expr.func in REWRITES:
            rewritten = expr.rewrite(REWRITES[expr.func])
            if rewritten.func is not expr.func:
                return self.value(rewritten)
        raise KanxError(f"cannot lay out {sympy.sstr(expr)!r}: {expr.func.__name__} has no form in the edge library")

    def number(self, expr: sympy.Expr) -> float:
        value = complex(sympy.N(expr))
        if value.imag != 0 or not math.isfinite(value.real):
            raise KanxError(f"the constant {sympy.sstr(expr)} is not a finite real number")
        return value.real

    def power(self, base: sympy.Expr, exponent: sympy.Expr) -> Value:
        if exponent.is_number:
            return self.numeric_power(base, self.number(exponent))
        if base.is_number:
            logarithm = self.number(sympy.log(base)) if self.number(base) > 0 else None
            if logarithm is None:
                raise KanxError(f"cannot lay out {sympy.sstr(base ** exponent)!r}: a variable power of a base that is not positive")
            return self.apply(self.value(exponent).scaled(logarithm), "exp")
        self.require_positive(base, base**exponent)
        return self.apply(self.product([self.value(exponent), self.apply(self.value(base), "log")]), "exp")

    def numeric_power(self, base: sympy.Expr, p: float) -> Value:
        value = self.value(base)
        if p == 1:
            return value
        if p in POWER_EDGES:
            return self.apply(value, POWER_EDGES[p])
        if p == int(p):
            return self.power_of_value(value, int(p))
        if (2 * p) == int(2 * p):  # odd halves: sqrt(base) ** (2p)
            return self.power_of_value(self.apply(value, "sqrt"), int(2 * p))
        self.require_positive(base, base**p)
        return self.apply(self.apply(value, "log").scaled(p), "exp")

    def power_of_value(self, value: Value, whole: int) -> Value:
        """``value ** whole``: a library edge, else a product of edges of at most the 4th power
        (of its reciprocal for a negative power)."""
        if whole in (1, -1):
            return value if whole == 1 else self.apply(value, "1/x")
        if float(whole) in POWER_EDGES:
            return self.apply(value, POWER_EDGES[float(whole)])
        chunks = [4] * (abs(whole) // 4) + ([abs(whole) % 4] if abs(whole) % 4 else [])
        product = self.product([self.apply(value, POWER_EDGES[float(c)]) if c > 1 else value for c in chunks])
        return product if whole > 0 else self.apply(product, "1/x")

    def require_positive(self, base: sympy.Expr, power: sympy.Expr) -> None:
        values = formula_on_rows(base, self.symbols, list(self.samples.T), len(self.samples))
        if not bool((values > 0).all()):
            low = float(values.min())
            raise KanxError(f"cannot lay out {sympy.sstr(power)!r}: it is exp(p·log(base)), and the base "
                            f"{sympy.sstr(base)!r} reaches {low:.4g} (not positive) on the ranges")

    # ----------------------------------------------------------------- values → nodes
    def apply(self, value: Value, function: str) -> Value:
        """``function`` of a value: folded into the edge when the value is affine in one node."""
        if value.is_constant:
            result = BUILTIN_FUNCTIONS[function].torch_fn(torch.tensor(value.constant, dtype=torch.float64))
            if not bool(torch.isfinite(result)):
                raise KanxError(f"{function} of the constant {value.constant:.6g} is not finite")
            return Value((), float(result))
        if len(value.terms) == 1 and value.terms[0][1].affine:
            node, unary = value.terms[0]
            return Value(((node, Unary(function, *unary.line(value.constant))),))
        return Value(((self.node_of(value), Unary(function)),))

    def product(self, values: list[Value]) -> Value:
        coefficient = math.prod(v.constant for v in values if v.is_constant)
        factors = []
        for value in values:
            if value.is_constant:
                continue
            inner = self.product_factors(value)
            if inner is None:
                factors.append(value)
            else:  # a product of a product: one multiplication node
                coefficient *= inner[0]
                factors += inner[1]
        if not factors:
            return Value((), coefficient)
        if len(factors) == 1:
            return factors[0].scaled(coefficient)
        node = self.add_node("mult", factors)
        return Value(((node, Unary("x", 1.0, 0.0, coefficient, 0.0)),))

    @staticmethod
    def product_factors(value: Value) -> tuple[float, list[Value]] | None:
        """``(coefficient, factors)`` when ``value`` is a multiple of a multiplication node."""
        if len(value.terms) != 1 or value.constant != 0:
            return None
        node, unary = value.terms[0]
        if node.kind != "mult" or not unary.affine or (unary.a, unary.b, unary.d) != (1.0, 0.0, 0.0):
            return None
        return unary.c * node.scale, [Value(tuple(terms), offset) for terms, offset in zip(node.factors, node.offsets)]

    def node_of(self, value: Value) -> Node:
        """The node that computes ``value`` (a new summing node unless it is one node as it is)."""
        if len(value.terms) == 1 and value.terms[0][1] == IDENTITY and value.constant == 0:
            return value.terms[0][0]
        return self.add_node("sum", [value])

    def add_node(self, kind: str, factors: list[Value]) -> Node:
        """A node one layer above its highest source; a source that feeds one subnode twice
        sends its second term through a node of its own first (one edge per pair of nodes)."""
        parts = []
        for factor in factors:
            seen, terms = set(), []
            for source, unary in factor.terms:
                if id(source) in seen:
                    source, unary = self.add_node("sum", [Value(((source, unary),))]), IDENTITY
                seen.add(id(source))
                terms.append((source, unary))
            parts.append((terms, factor.constant))
        layer = 1 + max(source.layer for terms, _ in parts for source, _ in terms)
        node = Node(layer, kind)
        for terms, constant in parts:
            node.factors.append([(self.relay(source, layer - 1), unary) for source, unary in terms])
            node.offsets.append(constant)
        self.nodes.append(node)
        return node

    def relay(self, source: Node, layer: int) -> Node:
        """``source``'s value carried up to ``layer`` through identity nodes (shared)."""
        if source.layer == layer:
            return source
        key = (id(source), layer)
        if key not in self.relays:
            below = self.relay(source, layer - 1)
            node = Node(layer, "sum", [[(below, IDENTITY)]], [0.0])
            self.nodes.append(node)
            self.relays[key] = node
        return self.relays[key]

    def output(self, value: Value) -> Node:
        """The output node of the whole formula."""
        if value.is_constant:
            raise KanxError("the formula is a constant; there is nothing to lay out")
        if len(value.terms) == 1 and value.terms[0][1].affine and value.terms[0][0].kind != "input":
            node, unary = value.terms[0]
            scale, bias = unary.line(value.constant)
            node.scale, node.bias = scale * node.scale, scale * node.bias + bias
            return node
        return self.add_node("sum", [value])


@dataclass
class CompiledFormula:
    """A formula laid out as a KAN: ``model`` computes ``formula`` on ``ranges`` (name → (low,
    high)) with the largest difference ``max_relative_error`` (as a share of the formula's largest
    magnitude there, on ``CHECK_ROWS`` seeded rows, in float64) and ``edges`` symbolic or spline."""

    model: KAN
    formula: sympy.Expr
    ranges: dict[str, tuple[float, float]]
    max_relative_error: float
    edges: str

    def to_dict(self) -> dict:
        counts = self.model.edge_counts()
        return {"formula": sympy.sstr(self.formula), "widths": list(self.model.widths),
                "mult": [list(m) for m in self.model.mult], "edges": self.edges,
                "active_edges": sum(c["active"] for c in counts),
                "ranges": {name: list(bounds) for name, bounds in self.ranges.items()},
                "max_relative_error": self.max_relative_error}

    def __repr__(self) -> str:
        return (f"CompiledFormula({sympy.sstr(self.formula)!r} → widths {self.model.widths}, {self.edges} edges, "
                f"max relative error {self.max_relative_error:.2g})")

    def _repr_html_(self) -> str:
        rows = [(key, value) for key, value in self.to_dict().items()]
        return html_table(["", "value"], rows, caption="kanx compile")


def check_rows(ranges: dict[str, tuple[float, float]], rows: int, seed: int) -> torch.Tensor:
    """``rows`` seeded uniform rows over the ranges, the corners among them: ``[rows, n]`` float64."""
    low = torch.tensor([lo for lo, _ in ranges.values()], dtype=torch.float64)
    high = torch.tensor([hi for _, hi in ranges.values()], dtype=torch.float64)
    uniform = torch.rand(rows, len(ranges), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    n = len(ranges)
    if n <= 10:
        corners = torch.tensor([[(k >> bit) & 1 for bit in range(n)] for k in range(2**n)], dtype=torch.float64)
        uniform[: len(corners)] = corners
    return low + (high - low) * uniform


def compile_formula(text: str | sympy.Expr, ranges: dict[str, tuple[float, float]], edges: str = "symbolic",
                    grid: int = 5, output_name: str = "f", seed: int = 0) -> CompiledFormula:
    """Lay ``text`` out as a KAN over the variables of ``ranges`` (name → (low, high), in input
    order; every variable of the formula needs one). ``edges="spline"`` fits B-spline edges (on
    ``grid`` intervals) to the symbolic ones, so every edge trains. Raises ``KanxError`` naming
    what cannot be laid out."""
    if edges not in EDGE_KINDS:
        raise KanxError(f"--edges {edges!r}: choose one of {', '.join(EDGE_KINDS)}")
    if not ranges:
        raise KanxError("--var: give the range of every variable, e.g. --var x=-1:1")
    for name, (lo, hi) in ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise KanxError(f"--var {name}: need finite LOW < HIGH, got {lo}:{hi}")
    if grid < 1:
        raise KanxError(f"--grid {grid}: must be >= 1")
    names = list(ranges)
    if output_name in names:
        raise KanxError(f"--name {output_name!r}: is also a variable's name")
    symbols = [sympy.Symbol(name) for name in names]
    expr = text if isinstance(text, sympy.Expr) else parse_expression(text, dict(zip(names, symbols)), "formula")
    samples = check_rows(ranges, CHECK_ROWS, seed)
    truth = formula_on_rows(expr, symbols, list(samples.T), len(samples))
    if not bool(torch.isfinite(truth).all()):
        where = samples[~torch.isfinite(truth)][0]
        at = ", ".join(f"{name}={float(v):.4g}" for name, v in zip(names, where))
        raise KanxError(f"{sympy.sstr(expr)!r} is not finite everywhere on the ranges (at {at}); narrow the --var ranges")
    layout = Layout(names, symbols, samples)
    root = layout.output(layout.value(expr))
    model = network_of(layout, root, names, ranges, grid, output_name)
    model.sample_inputs = samples[:1000].float()
    if edges == "spline":
        model = splines_from_symbolic(model, samples.float())
    error = relative_error(model, samples, truth)
    model.meta.provenance = {"created_by": "kanx compile", "formula": sympy.sstr(expr)}
    model.meta.training = {"compiled": {"formula": sympy.sstr(expr), "edges": edges, "max_relative_error": error,
                                        "ranges": {name: list(bounds) for name, bounds in ranges.items()}}}
    return CompiledFormula(model, expr, dict(ranges), error, edges)


def relative_error(model: KAN, x: torch.Tensor, truth: torch.Tensor) -> float:
    """Largest ``|model(x) - truth|`` over rows as a share of ``max |truth|``, in float64."""
    with torch.no_grad():
        values = copy.deepcopy(model).double()(x)[:, 0]
    scale = float(truth.abs().max().clamp_min(torch.finfo(torch.float64).tiny))
    difference = (values - truth).abs().max()
    return float(difference) / scale if bool(torch.isfinite(difference)) else math.inf


def reachable(root: Node) -> list[Node]:
    """The non-input nodes that ``root`` depends on, itself included, in a fixed order (by layer,
    then by when the walk first meets them)."""
    seen: dict[int, Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or node.kind == "input":
            continue
        seen[id(node)] = node
        stack += [source for terms in reversed(node.factors) for source, _ in reversed(terms)]
    return sorted(seen.values(), key=lambda node: node.layer)


def network_of(layout: Layout, root: Node, names: list[str], ranges: dict[str, tuple[float, float]], grid: int,
               output_name: str) -> KAN:
    """The KAN of a layout: node layers in order (summing nodes, then multiplication nodes), the
    edges the terms name, every other edge masked."""
    depth = root.layer
    layers: list[list[Node]] = [list(layout.inputs)] + [[] for _ in range(depth)]
    for node in reachable(root):
        layers[node.layer].append(node)
    layers = [nodes if index == 0 else [n for n in nodes if n.kind == "sum"] + [n for n in nodes if n.kind == "mult"]
              for index, nodes in enumerate(layers)]
    if layers[-1] != [root]:
        raise AssertionError("the output layer holds the output node alone")
    mult = [[len(n.factors) for n in nodes if n.kind == "mult"] for nodes in layers]
    model = KAN([len(nodes) for nodes in layers], {"kind": "bspline", "grid": grid, "k": 3}, mult,
                input_ranges=list(ranges.values()), input_names=names, output_names=[output_name])
    position = {id(node): k for nodes in layers for k, node in enumerate(nodes)}
    with torch.no_grad():
        for index, layer in enumerate(model.layers):
            layer.mask.zero_()
            subnode = 0
            for node in layers[index + 1]:
                for terms, offset in zip(node.factors, node.offsets):
                    for source, unary in terms:
                        i = position[id(source)]
                        layer.mask[i, subnode] = 1.0
                        model.set_symbolic(index, i, subnode, unary.function, (unary.a, unary.b, unary.c, unary.d))
                    if node.kind == "mult":
                        layer.sub_bias[subnode] = offset
                    subnode += 1
                k = position[id(node)]
                sum_offset = node.offsets[0] if node.kind == "sum" else 0.0
                layer.node_scale[k] = node.scale
                layer.node_bias[k] = node.scale * sum_offset + node.bias
    return model
