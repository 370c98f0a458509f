"""The KAN family's checkpoint codec: model ⇄ JSON-able config + tensors, and the validation
that runs on every loaded config before a model is built."""

from __future__ import annotations

import torch

from kanx.core.classes import MAX_CLASSES, ClassLabels
from kanx.core.errors import KanxError
from kanx.core.version import __version__
from kanx.families import checks
from kanx.families.kan.basis import BASIS_KINDS, basis_size
from kanx.families.kan.layer import BASE_FUNCTIONS, LayerShape
from kanx.families.kan.network import KAN, validate_architecture
from kanx.functions.library import custom_function, resolve


def kan_config(model: KAN) -> dict:
    """The JSON-able description of a KAN (everything except tensors)."""
    meta = model.meta
    return {
        "family": "kan",
        "kanx_version": __version__,
        "widths": list(model.widths),
        "mult": [list(m) for m in model.mult],
        "basis": dict(model.basis),
        "base_fn": model.base_fn,
        "layer_norm": list(model.layer_norm),
        "input_names": list(meta.input_names),
        "output_names": list(meta.output_names),
        "input_ranges": [list(r) for r in meta.input_ranges],
        "symbolic_functions": list(model.symbolic_functions),
        "custom_functions": dict(model.custom_functions),
        "provenance": dict(meta.provenance),
        "training": dict(meta.training),
        **({"task": {"kind": "classify", "label": meta.label, "classes": list(meta.classes)}} if meta.label is not None else {}),
        **({"node_order": order} if (order := model.stored_node_order()) else {}),  # one that no longer fits is dropped
    }


def kan_state(model: KAN) -> dict[str, torch.Tensor]:
    state = {name: tensor.detach().clone().cpu() for name, tensor in model.state_dict().items()}
    state["sample_inputs"] = model.sample_inputs.detach().clone().cpu()
    if len(model.held_out_inputs):
        state["held_out_inputs"] = model.held_out_inputs.detach().clone().cpu()
        state["held_out_targets"] = model.held_out_targets.detach().clone().cpu()
    return state


def expected_kan_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape that a KAN with this config must store."""
    widths, mult, basis = config["widths"], config["mult"], config["basis"]
    k_basis = basis_size(basis)
    shapes: dict[str, tuple[int, ...]] = {}
    for index in range(len(widths) - 1):
        shape = LayerShape(widths[index], widths[index + 1], tuple(mult[index + 1]))
        n_in, n_sub, n_out = shape.n_in, shape.n_sub, shape.n_out
        prefix = f"layers.{index}."
        shapes.update(
            {
                prefix + "coef": (n_in, n_sub, k_basis),
                prefix + "w_base": (n_in, n_sub),
                prefix + "w_sp": (n_in, n_sub),
                prefix + "mask": (n_in, n_sub),
                prefix + "sym_active": (n_in, n_sub),
                prefix + "sym_index": (n_in, n_sub),
                prefix + "sym_affine": (n_in, n_sub, 4),
                prefix + "sub_scale": (n_sub,),
                prefix + "sub_bias": (n_sub,),
                prefix + "node_scale": (n_out,),
                prefix + "node_bias": (n_out,),
            }
        )
        if config["layer_norm"][index]:
            shapes[prefix + "norm_weight"] = (n_in,)
            shapes[prefix + "norm_bias"] = (n_in,)
        if basis["kind"] == "bspline":
            shapes[prefix + "knots"] = (n_in, int(basis["grid"]) + 2 * int(basis["k"]) + 1)
        elif basis["kind"] == "rbf":
            shapes[prefix + "centers"] = (n_in, k_basis)
    return shapes


DATA_TENSORS = {"sample_inputs", "held_out_inputs", "held_out_targets"}  # stored rows, not weights
MAX_LAYERS = 256
MAX_WIDTH = 1_000_000
MAX_ARITY = 64
MAX_TABLE = 100_000
# per basis kind: key → (check, required)
BASIS_KEYS = {
    "bspline": {"grid": ("grid", True), "k": ("order", True)},
    "rbf": {"num": ("count", True), "h": ("width", True), "norm_eps": ("width", False), "min": ("real", False), "max": ("real", False)},
    "chebyshev": {"degree": ("degree", True)},
}


def check_basis(value: object, where: str) -> dict:
    """The ``basis`` entry: a known kind with exactly its parameters, each of the right type."""
    basis = checks.mapping(value, "'basis'", where, max_length=16)
    kind = checks.choice(basis.get("kind"), "'basis'['kind']", where, BASIS_KINDS)
    allowed = BASIS_KEYS[kind]
    unknown = sorted(set(basis) - set(allowed) - {"kind"})
    if unknown:
        raise KanxError(f"{where}: config 'basis' has {unknown[0]!r}, which a {kind} basis does not take")
    for key, (check, required) in allowed.items():
        what = f"'basis'[{key!r}]"
        if key not in basis:
            if required:
                raise KanxError(f"{where}: config 'basis' has no {key!r} (a {kind} basis needs it)")
            continue
        if check == "grid":
            checks.integer(basis[key], what, where, 1, 10_000)
        elif check == "order":
            checks.integer(basis[key], what, where, 0, 16)
        elif check == "count":
            checks.integer(basis[key], what, where, 1, 10_000)
        elif check == "degree":
            checks.integer(basis[key], what, where, 0, 1_000)
        else:
            checks.number(basis[key], what, where, positive=check == "width")
    return basis


def check_kan_config(config: dict, where: str) -> None:
    """Type- and range-check every entry of a KAN config before any of it is used; custom
    function texts go through the safe parser here."""
    widths = checks.integers(checks.entry(config, "widths", where), "'widths'", where, 1, MAX_WIDTH, 2, MAX_LAYERS)
    mult = checks.sequence(checks.entry(config, "mult", where), "'mult'", where, len(widths), len(widths))
    for layer, arities in enumerate(mult):
        checks.integers(arities, f"'mult'[{layer}]", where, 2, MAX_ARITY, 0, widths[layer])
    check_basis(checks.entry(config, "basis", where), where)
    checks.choice(checks.entry(config, "base_fn", where), "'base_fn'", where, BASE_FUNCTIONS)
    layer_norm = checks.sequence(checks.entry(config, "layer_norm", where), "'layer_norm'", where, len(widths) - 1, len(widths) - 1)
    for layer, flag in enumerate(layer_norm):
        checks.boolean(flag, f"'layer_norm'[{layer}]", where)
    checks.names(checks.entry(config, "input_names", where), "'input_names'", where, widths[0])
    checks.names(checks.entry(config, "output_names", where), "'output_names'", where, widths[-1])
    checks.value_ranges(checks.entry(config, "input_ranges", where), "'input_ranges'", where, widths[0])
    table = checks.sequence(checks.entry(config, "symbolic_functions", where), "'symbolic_functions'", where, 0, MAX_TABLE)
    for index, name in enumerate(table):
        checks.text(name, f"'symbolic_functions'[{index}]", where)
    custom = checks.mapping(checks.entry(config, "custom_functions", where), "'custom_functions'", where, MAX_TABLE)
    for name, source in custom.items():
        what = f"'custom_functions'[{name!r}]"
        checks.text(source, what, where, checks.MAX_TEXT_LENGTH)
        custom_function(name, source, where=f"{where}: config {what}")
    for name in table:
        try:
            resolve(name, custom)
        except KanxError as exc:
            raise KanxError(f"{where}: config 'symbolic_functions': {exc}") from None
    for key in ("provenance", "training"):
        if key in config:
            checks.json_tree(config[key], repr(key), where)
    if "kanx_version" in config:
        checks.text(config["kanx_version"], "'kanx_version'", where)
    if "task" in config:
        check_task(config["task"], widths[-1], where)
    if "node_order" in config:
        check_node_order(config["node_order"], widths, where)


def check_node_order(value: object, widths: list[int], where: str) -> list[list[int]]:
    """The optional ``node_order`` entry (the diagram's stored order): ``[]``, or one list per
    node layer, each a permutation of that layer's node indices."""
    order = checks.sequence(value, "'node_order'", where, 0, len(widths))
    if order and len(order) != len(widths):
        raise KanxError(f"{where}: config 'node_order' has {len(order)} entries, the model has {len(widths)} node layers")
    for layer, row in enumerate(order):
        what = f"'node_order'[{layer}]"
        items = checks.integers(row, what, where, 0, widths[layer] - 1, widths[layer], widths[layer])
        if len(set(items)) != len(items):
            raise KanxError(f"{where}: config {what} is not a permutation of the nodes 0..{widths[layer] - 1}")
    return order


def check_task(task: object, outputs: int, where: str) -> ClassLabels:
    """A classifier's ``task`` entry: ``{"kind": "classify", "label": text, "classes": [...]}``,
    with as many outputs as the classes have logits."""
    task = checks.mapping(task, "'task'", where, 3)
    checks.choice(checks.entry(task, "kind", where), "'task'['kind']", where, ("classify",))
    checks.text(checks.entry(task, "label", where), "'task'['label']", where)
    names = checks.names(checks.entry(task, "classes", where), "'task'['classes']", where)
    if not 2 <= len(names) <= MAX_CLASSES:
        raise KanxError(f"{where}: config 'task'['classes'] lists {len(names)} classes; a classifier has 2 to {MAX_CLASSES}")
    classes = ClassLabels(tuple(names))
    if not classes.accepts(outputs):
        raise KanxError(f"{where}: config 'task' lists {len(names)} classes, which need {classes.logit_count} output(s); "
                        f"the model has {outputs}")
    return classes


def validate_kan(config: dict, state: dict, where: str) -> None:
    """Check a KAN config and its tensors; raise ``KanxError`` naming the first problem."""
    check_kan_config(config, where)
    widths, mult, basis, base_fn = config["widths"], config["mult"], config["basis"], config["base_fn"]
    try:
        validate_architecture(widths, mult, basis, base_fn)
    except (ValueError, TypeError) as exc:
        raise KanxError(f"{where}: invalid architecture: {exc}") from None
    table = config["symbolic_functions"]
    expected = expected_kan_shapes(config)
    expected["sample_inputs"] = (-1, widths[0])
    if "held_out_inputs" in state or "held_out_targets" in state:  # optional, always as a pair
        targets = 1 if "task" in config else widths[-1]  # a classifier's are class indices
        expected.update({"held_out_inputs": (-1, widths[0]), "held_out_targets": (-1, targets)})
    checks.validate_tensors(state, expected, where)
    if "task" in config and "held_out_targets" in state:
        labels, count = state["held_out_targets"], len(config["task"]["classes"])
        if not bool(((labels >= 0) & (labels < count) & (labels == labels.round())).all()):
            raise KanxError(f"{where}: tensor held_out_targets must hold class indices 0 to {count - 1}")
    if "held_out_inputs" in state and len(state["held_out_inputs"]) != len(state["held_out_targets"]):
        raise KanxError(f"{where}: tensors held_out_inputs and held_out_targets hold {len(state['held_out_inputs'])} "
                        f"and {len(state['held_out_targets'])} rows")
    for index in range(len(widths) - 1):
        prefix = f"layers.{index}."
        sym_index = state[prefix + "sym_index"]
        if sym_index.is_floating_point():
            raise KanxError(f"{where}: tensor {prefix}sym_index must hold integers")
        if sym_index.numel() and (int(sym_index.min()) < 0 or int(sym_index.max()) >= max(len(table), 1)):
            raise KanxError(f"{where}: tensor {prefix}sym_index points outside the symbolic function table")
        for flags in ("mask", "sym_active"):
            tensor = state[prefix + flags]
            if not bool(((tensor == 0) | (tensor == 1)).all()):
                raise KanxError(f"{where}: tensor {prefix}{flags} must hold only 0 and 1")
        active = state[prefix + "sym_active"] > 0
        if active.any() and not table:
            raise KanxError(f"{where}: symbolic edges are active but no symbolic functions are listed")
        if prefix + "knots" in state and (state[prefix + "knots"].diff(dim=1) < 0).any():
            raise KanxError(f"{where}: tensor {prefix}knots is not non-decreasing")


def build_kan(config: dict, state: dict) -> KAN:
    """Construct a KAN from a validated config and state."""
    model = KAN(
        widths=config["widths"],
        basis=config["basis"],
        mult=config["mult"],
        base_fn=config["base_fn"],
        layer_norm=config["layer_norm"],
        input_ranges=[tuple(r) for r in config["input_ranges"]],
        input_names=config["input_names"],
        output_names=config["output_names"],
    )
    model.custom_functions = dict(config["custom_functions"])
    model.symbolic_functions = list(config["symbolic_functions"])
    model._sync_symbolic_tables()
    weights = {name: tensor for name, tensor in state.items() if name not in DATA_TENSORS}
    model.load_state_dict({n: t.to(model.state_dict()[n].dtype) for n, t in weights.items()})
    model.sample_inputs = state["sample_inputs"].float().clone()
    if "held_out_inputs" in state:
        model.held_out_inputs = state["held_out_inputs"].float().clone()
        model.held_out_targets = state["held_out_targets"].float().clone()
    model.meta.provenance = dict(config.get("provenance", {}))
    model.meta.training = dict(config.get("training", {}))
    model.meta.node_order = [list(row) for row in config.get("node_order", [])]
    if "task" in config:
        held_out = (model.held_out_inputs, model.held_out_targets)
        model.make_classifier(config["task"]["label"], ClassLabels(tuple(config["task"]["classes"])))
        model.meta.output_names = list(config["output_names"])
        model.held_out_inputs, model.held_out_targets = held_out
    return model
