"""Import pykan 0.2.x ``saveckpt`` checkpoints (``MultKAN``; ``KAN`` is an alias).

``model.saveckpt(prefix)`` writes ``<prefix>_config.yml`` (widths, grid, k, mult_arity,
base_fun_name, symbolic_enabled, ``symbolic.funs_name.{l}`` names indexed ``[out][in]``),
``<prefix>_state`` (``torch.save(state_dict)``) and ``<prefix>_cache_data`` (last input batch).

Layer ``l`` tensors: ``act_fun.{l}.grid [in, G+2k+1]``, ``coef [in, n_sub, G+k]``, ``mask``,
``scale_base``, ``scale_sp [in, n_sub]`` (input-major); ``symbolic_fun.{l}.mask [n_sub, in]`` and
``affine [n_sub, in, 4]`` (output-major); ``subnode_scale_{l}``/``subnode_bias_{l} [n_sub]``,
``node_scale_{l}``/``node_bias_{l} [n_out]``. Edge
``phi = mask_n*(scale_base*b(x) + scale_sp*spline(x)) + mask_s*(c*f(a*x+b)+d)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from kanx.core.choices import BASE_FUNCTIONS
from kanx.core.errors import KanxError
from kanx.families import checks
from kanx.families.kan.codec import MAX_ARITY, MAX_LAYERS, MAX_WIDTH
from kanx.families.kan.network import KAN
from kanx.functions.library import canonical_name
from kanx.io.files import read_text_file
from kanx.io.importers.common import Imported, assign, check_knots, expect_shape, knot_ranges, require, state_dict_of
from kanx.io.torchfile import read_payload

SOURCE = "pykan"
SUFFIXES = ("_config.yml", "_state", "_cache_data")
# pykan SYMBOLIC_LIB names with no kanx builtin: registered as custom functions (sympy text).
# ('sgn' is left out: sympy lambdifies sign() to scalar Python code that cannot take tensors.)
EXTRA_FUNCTIONS = {
    "x^5": "x**5", "1/x^3": "x**(-3)", "1/x^4": "x**(-4)", "1/x^5": "x**(-5)",
    "x^1.5": "sqrt(x)**3", "arccos": "acos(x)",
}
MAX_SAMPLE_ROWS = 1000


# --------------------------------------------------------------------------- locating files
def locate(path: str | Path) -> Path | None:
    """The saveckpt prefix for ``path`` (the prefix itself, one of its files, or the folder
    holding exactly one ``*_config.yml``), or ``None`` when ``path`` is not a pykan checkpoint."""
    path = Path(path)
    if path.is_dir():
        configs = sorted(path.glob("*_config.yml"))
        if len(configs) > 1:
            names = ", ".join(c.name for c in configs)
            example = str(configs[0])[: -len("_config.yml")]
            raise KanxError(f"{path}: holds several pykan checkpoints ({names}); pass the prefix, e.g. {example}")
        return Path(str(configs[0])[: -len("_config.yml")]) if configs else None
    for suffix in SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            prefix = Path(str(path)[: -len(suffix)])
            if suffix == "_config.yml" or Path(f"{prefix}_config.yml").is_file():
                return prefix
    if not path.is_file() and (Path(f"{path}_config.yml").is_file() or Path(f"{path}_state").is_file()):
        return path
    return None


def matches(state: dict[str, torch.Tensor]) -> bool:
    """True when a state dict looks like pykan's (``act_fun.{l}.coef`` keys)."""
    return any(k.startswith("act_fun.") for k in state) and any(k.startswith("node_scale_") for k in state)


def read_config(prefix: Path) -> dict:
    """``<prefix>_config.yml`` through ``yaml.safe_load``."""
    path = Path(f"{prefix}_config.yml")
    if not path.is_file():
        raise KanxError(f"{path}: no such file (pykan's saveckpt writes it beside {prefix.name}_state)")
    text = read_text_file(path, str(path))
    try:
        config = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KanxError(f"{path}: not a readable YAML config ({reason})") from None
    return check_config(config, str(path))


def check_config(config: object, where: str) -> dict:
    """``config`` when it is a pykan config dict (it has a ``width`` entry)."""
    if not isinstance(config, dict) or "width" not in config:
        raise KanxError(f"{where}: not a pykan config (no 'width' entry)")
    return config


def read_cache(prefix: Path, n_in: int) -> torch.Tensor | None:
    """The cached input batch ``[N, n_in]`` from ``<prefix>_cache_data``, if present and usable."""
    path = Path(f"{prefix}_cache_data")
    if not path.is_file():
        return None
    return usable_cache(read_payload(path), n_in)


def usable_cache(data: object, n_in: int) -> torch.Tensor | None:
    """pykan's cached input batch as kanx's stored sample ``[<=1000, n_in]``, or ``None`` when it
    is not a finite ``[N, n_in]`` tensor."""
    if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[1] != n_in or data.shape[0] == 0:
        return None
    data = data.detach().cpu().float()
    return data[: MAX_SAMPLE_ROWS] if bool(torch.isfinite(data).all()) else None


# --------------------------------------------------------------------------- architecture
def parse_architecture(config: dict, where: str) -> tuple[list[int], list[list[int]]]:
    """kanx ``widths`` and ``mult`` from pykan's ``width`` and ``mult_arity``."""
    raw = config["width"]
    if not isinstance(raw, list) or len(raw) < 2:
        raise KanxError(f"{where}: config 'width' must list at least 2 layers, got {raw!r}")
    checks.sequence(raw, "'width'", where, 2, MAX_LAYERS)
    pairs = []
    for index, entry in enumerate(raw):
        pair = [entry, 0] if isinstance(entry, int) and not isinstance(entry, bool) else entry
        if not (isinstance(pair, list) and len(pair) == 2):
            raise KanxError(f"{where}: config 'width' entry {index} is not n or [n_sum, n_mult]")
        pairs.append(checks.integers(pair, f"'width'[{index}]", where, 0, MAX_WIDTH))
    arity = config.get("mult_arity", 2)
    mult = []
    for index, (_, n_mult) in enumerate(pairs):
        if isinstance(arity, int) and not isinstance(arity, bool):
            mult.append([checks.integer(arity, "'mult_arity'", where, 2, MAX_ARITY)] * n_mult)
        elif isinstance(arity, list) and index < len(arity) and isinstance(arity[index], list) and len(arity[index]) == n_mult:
            mult.append(checks.integers(arity[index], f"'mult_arity'[{index}]", where, 2, MAX_ARITY))
        else:
            raise KanxError(f"{where}: config 'mult_arity' does not match 'width' (one arity, or a list per layer)")
    widths = [n_sum + n_mult for n_sum, n_mult in pairs]
    if any(width < 1 for width in widths):
        raise KanxError(f"{where}: config 'width' has a layer without nodes")
    return widths, mult


def layer_keys(index: int) -> dict[str, str]:
    """pykan state-dict key for each tensor of layer ``index``."""
    act, sym = f"act_fun.{index}.", f"symbolic_fun.{index}."
    keys = {name: act + name for name in ("grid", "coef", "mask", "scale_base", "scale_sp")}
    keys.update({"sym_mask": sym + "mask", "affine": sym + "affine"})
    keys.update({name: f"{name}_{index}" for name in ("subnode_scale", "subnode_bias", "node_scale", "node_bias")})
    return keys


def read_layer(state: dict, index: int, n_in: int, n_sub: int, n_out: int, where: str) -> dict[str, torch.Tensor]:
    """Layer ``index``'s tensors under short names, shape-checked against the config widths."""
    keys = layer_keys(index)
    missing = [key for key in keys.values() if key not in state]
    if missing:
        raise KanxError(f"{where}: missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    ndims = {"grid": 2, "coef": 3, "affine": 3, "subnode_scale": 1, "subnode_bias": 1, "node_scale": 1, "node_bias": 1}
    out = {name: require({key: state[key]}, key, ndims.get(name, 2), where) for name, key in keys.items()}
    n_basis = out["coef"].shape[2]
    expected = {
        "coef": (n_in, n_sub, n_basis), "mask": (n_in, n_sub), "scale_base": (n_in, n_sub), "scale_sp": (n_in, n_sub),
        "sym_mask": (n_sub, n_in), "affine": (n_sub, n_in, 4), "subnode_scale": (n_sub,), "subnode_bias": (n_sub,),
        "node_scale": (n_out,), "node_bias": (n_out,), "grid": (n_in, out["grid"].shape[1]),
    }
    for name, shape in expected.items():
        expect_shape(out[name], shape, keys[name], where, "from the config's width")
    check_knots(out["grid"], keys["grid"], where)
    return out


def spline_sizes(layers: list[dict], config: dict, where: str) -> tuple[int, int]:
    """``(G, k)`` from the grid and coef shapes, cross-checked with the config."""
    sizes = {(t["grid"].shape[1] - t["coef"].shape[2] - 1, t["coef"].shape[2]) for t in layers}
    if len(sizes) != 1:
        raise KanxError(f"{where}: layers differ in grid size or spline order")
    order, n_basis = sizes.pop()
    grid = n_basis - order
    if order < 0 or grid < 1:
        raise KanxError(f"{where}: act_fun grid/coef shapes do not fit a B-spline (G+2k+1 knots, G+k coefficients)")
    for key, value in (("grid", grid), ("k", order)):
        if key in config and config[key] != value:
            raise KanxError(f"{where}: config {key!r} = {config[key]!r} but the tensors imply {value}")
    return grid, order


# --------------------------------------------------------------------------- conversion
def function_names(config: dict, index: int, n_sub: int, n_in: int, where: str) -> list[list[str]]:
    """``symbolic.funs_name.{index}`` as an ``[out][in]`` list of strings."""
    key = f"symbolic.funs_name.{index}"
    names = config.get(key)
    ok = isinstance(names, list) and len(names) == n_sub and all(isinstance(r, list) and len(r) == n_in for r in names)
    if not ok:
        raise KanxError(f"{where}: config {key!r} must be a [{n_sub}][{n_in}] list of function names")
    return [[checks.text(name, f"{key!r}[{j}][{i}]", where) for i, name in enumerate(row)] for j, row in enumerate(names)]


def set_layer(model: KAN, index: int, tensors: dict, config: dict, symbolic: bool, where: str) -> None:
    """Copy pykan layer ``index`` into the kanx model, including its symbolic edges."""
    target = model.layers[index]
    numeric_mask = tensors["mask"]
    n_in, n_sub = numeric_mask.shape
    symbolic_mask = tensors["sym_mask"].T.clone() if symbolic else torch.zeros_like(numeric_mask)
    affine = tensors["affine"].transpose(0, 1)  # [in, n_sub, 4]
    names = function_names(config, index, n_sub, n_in, where) if bool((symbolic_mask != 0).any()) else None
    sub_bias = tensors["subnode_bias"].clone()
    if names is not None:
        sub_bias += fold_constant_edges(numeric_mask, symbolic_mask, affine, names) * tensors["subnode_scale"]
    both = (numeric_mask != 0) & (symbolic_mask != 0)
    if bool(both.any()):
        i, j = (int(v) for v in both.nonzero()[0])
        raise KanxError(
            f"{where}: layer {index} edge {i}->{j} has both its spline and its symbolic branch active (pykan mode 'ns'); "
            "kanx edges are one or the other: fix it in pykan with set_mode(..., 's') or ('n') first"
        )
    scale = torch.where(numeric_mask != 0, numeric_mask, torch.ones_like(numeric_mask))
    assign(
        target, coef=tensors["coef"], knots=tensors["grid"], w_base=tensors["scale_base"] * scale,
        w_sp=tensors["scale_sp"] * scale, mask=((numeric_mask != 0) | (symbolic_mask != 0)).double(),
        sub_scale=tensors["subnode_scale"], sub_bias=sub_bias,
        node_scale=tensors["node_scale"], node_bias=tensors["node_bias"],
    )
    for i, j in (symbolic_mask != 0).nonzero().tolist():
        a, b, c, d = affine[i, j].tolist()
        weight = float(symbolic_mask[i, j])
        register(model, names[j][i], where)
        model.set_symbolic(index, i, j, names[j][i], (a, b, c * weight, d * weight))


def fold_constant_edges(
    numeric_mask: torch.Tensor, symbolic_mask: torch.Tensor, affine: torch.Tensor, names: list[list[str]]
) -> torch.Tensor:
    """Edges with a numeric branch and an active symbolic ``'0'`` (pykan mode 'ns' before fixing)
    add the constant ``mask_s * d``: return it per subnode ``[n_sub]`` and clear those symbolic
    masks in place (``symbolic_mask`` ``[in, n_sub]``, ``affine`` ``[in, n_sub, 4]``)."""
    zero = torch.tensor([[canonical_name(name) == "0" for name in row] for row in names]).T  # [in, n_sub]
    fold = zero & (numeric_mask != 0) & (symbolic_mask != 0)
    constant = (symbolic_mask * affine[..., 3] * fold).sum(dim=0)
    symbolic_mask[fold] = 0
    return constant


def register(model: KAN, name: str, where: str) -> None:
    """Make a pykan function name known to the model (custom function when kanx lacks it)."""
    if name.strip() in EXTRA_FUNCTIONS and name.strip() not in model.custom_functions:
        model.custom_functions[name.strip()] = EXTRA_FUNCTIONS[name.strip()]
    try:
        model.function_index(name)
    except KanxError as exc:
        raise KanxError(f"{where}: pykan symbolic function {name!r} has no kanx counterpart ({exc})") from None


def convert_files(prefix: Path, options: dict, state: dict | None = None) -> Imported:
    """Build the kanx model from a saveckpt prefix (``state``: the already-read ``_state``)."""
    config = read_config(prefix)
    where = f"{prefix}_state"
    if state is None:
        state, _ = state_dict_of(read_payload(Path(where)), where)
    widths, _ = parse_architecture(config, f"{prefix}_config.yml")
    cache = read_cache(prefix, widths[0])
    return convert_parts(config, state, cache, f"{prefix}_config.yml", where)


def convert_parts(config: dict, state: dict, cache: torch.Tensor | None, config_where: str, where: str) -> Imported:
    """Build the kanx model from a pykan config dict, its state dict and an optional cached input
    batch (``config_where``/``where`` name their origin in errors)."""
    config = check_config(config, config_where)
    widths, mult = parse_architecture(config, config_where)
    subs = [w - len(m) + sum(m) for w, m in zip(widths, mult)]
    depth = len(widths) - 1
    layers = [read_layer(state, index, widths[index], subs[index + 1], widths[index + 1], where) for index in range(depth)]
    known = {key for index in range(depth) for key in layer_keys(index).values()}
    extra = sorted(set(state) - known)
    if extra:
        raise KanxError(f"{where}: unexpected key {extra[0]!r} for a pykan model of width {config['width']}")
    grid, order = spline_sizes(layers, config, where)
    base_fn = checks.choice(config.get("base_fun_name", "silu"), "'base_fun_name'", config_where, BASE_FUNCTIONS)
    ranges = knot_ranges(layers[0]["grid"], order)
    if cache is not None:
        ranges = [(float(lo), float(hi)) for lo, hi in zip(cache.min(dim=0).values, cache.max(dim=0).values)]
    model = KAN(widths, basis={"kind": "bspline", "grid": grid, "k": order}, mult=mult, base_fn=base_fn, input_ranges=ranges)
    symbolic = checks.boolean(config.get("symbolic_enabled", True), "'symbolic_enabled'", config_where)
    for index, tensors in enumerate(layers):
        set_layer(model, index, tensors, config, symbolic, where)
    if cache is not None:
        model.sample_inputs = cache.clone()
    inferred = {
        "grid": grid, "spline_order": order, "mult": mult, "base_function": base_fn,
        "symbolic_enabled": symbolic, "input_id": "identity (pykan does not save it)",
        "input_ranges": "min/max of the cached input batch" if cache is not None else "interior of act_fun.0.grid",
    }
    return Imported(model, "pykan 0.2.x saveckpt (_config.yml + _state + _cache_data)", inferred)


def config_from_state(state: dict[str, torch.Tensor], where: str) -> dict:
    """A pykan config inferred from a bare state dict: widths from the node and subnode tensors,
    multiplication nodes of arity 2 (pykan's default). Refused when an edge is symbolic, since the
    function names live only in the config."""
    depth = 0
    while f"node_scale_{depth}" in state and f"subnode_scale_{depth}" in state:
        depth += 1
    if depth == 0 or "act_fun.0.coef" not in state:
        raise KanxError(f"{where}: a pykan state dict needs act_fun.0.coef and node_scale_0/subnode_scale_0")
    width: list = [[int(state["act_fun.0.coef"].shape[0]), 0]]
    for index in range(depth):
        nodes, subnodes = int(state[f"node_scale_{index}"].shape[0]), int(state[f"subnode_scale_{index}"].shape[0])
        if subnodes < nodes:
            raise KanxError(f"{where}: layer {index} has fewer subnodes ({subnodes}) than nodes ({nodes})")
        products = subnodes - nodes  # each arity-2 product node has two subnodes
        width.append([nodes - products, products])
        masks = state.get(f"symbolic_fun.{index}.mask")
        if masks is not None and bool((masks != 0).any()):
            raise KanxError(f"{where}: layer {index} has symbolic edges, whose function names only pykan's config holds; "
                            "pass the live model, or config=<the model's saveckpt config dict>")
    return {"width": width, "mult_arity": 2, "symbolic_enabled": False}
