"""Import the authors' KarSein (Ancientshi/KarSein) ``KARSEIN`` state dicts.

The state dict holds ``sparse2emb_embeddings.<field>.weight [V, D]``,
``karsein_bit.layers.{l}.{base_weight, spline_weight [out, in], B_spline_weight [in, G+k], grid [in, G+2k+1]}``,
``karsein_vec_list.{v}.layers.0.*`` (same four tensors) and ``vec_pred_layer.{weight [1, D], bias [1]}``.
Everything else comes from a JSON config (see docs/karsein.md):

    {"fields": [...], "vocab_sizes": {field: V}, "emb_dim": D, "bit_width": [...], "vec_width": [...],
     "pairwise_multiplication_P": [...], "grid": G, "k": k,
     optional: "dense_features": [], "varlen_sparse_features": [], "combine": "double_sigmoid",
     "base_fun": "torch.nn.SiLU", "use_bit_wise": true, "use_vec_wise": true}

A file whose top level has a ``"hyperparameters"`` object (the fixture's meta.json) is read
from that object. Imported models keep the authors' output ``sigmoid(vec + sigmoid(bit))``
(``combine = "double_sigmoid"``) unless the config says ``"combine": "sum"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kanx.core.errors import KanxError
from kanx.families import checks
from kanx.families.karsein.codec import MAX_FIELDS, MAX_LAYERS, MAX_WIDTH, karsein_shapes
from kanx.families.karsein.model import COMBINE_MODES, KarSein
from kanx.io.files import read_text_file
from kanx.io.importers.common import Imported

PREFIXES = ("sparse2emb_embeddings.", "karsein_bit.", "karsein_vec_list.", "vec_pred_layer.")
REQUIRED = ("fields", "vocab_sizes", "emb_dim", "bit_width", "vec_width", "pairwise_multiplication_P", "grid", "k")


def matches(state: dict[str, torch.Tensor]) -> bool:
    """True for a KarSein state dict: every key under one of the KARSEIN module names."""
    return any(key.startswith("sparse2emb_embeddings.") for key in state) and all(key.startswith(PREFIXES) for key in state)


def read_config(path: str | Path | dict | None, where: str) -> dict:
    """The hyper-parameter dict from ``--config`` (plain, or under ``"hyperparameters"``); in
    Python the option may also be the dict itself."""
    if path is None:
        raise KanxError(f"{where}: a KarSein state dict does not store its hyper-parameters; pass --config karsein.json")
    if isinstance(path, dict):
        return check_hyperparameters(path, "config")
    source = Path(path)
    text = read_text_file(source, f"--config {source}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise KanxError(f"--config {source}: not readable JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return check_hyperparameters(data, f"--config {source}")


def check_hyperparameters(data: object, source: str) -> dict:
    """The KARSEIN hyper-parameter dict inside ``data``, checked for what kanx supports."""
    if isinstance(data, dict) and isinstance(data.get("hyperparameters"), dict):
        data = data["hyperparameters"]
    if not isinstance(data, dict):
        raise KanxError(f"{source}: expected a JSON object")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise KanxError(f"{source}: missing {', '.join(missing)}")
    if data.get("varlen_sparse_features"):
        raise KanxError(f"{source}: multi-valued (varlen) fields are not supported by kanx yet")
    if not data.get("use_bit_wise", True) or not data.get("use_vec_wise", True):
        raise KanxError(f"{source}: kanx imports KarSein models with both the bit-wise and vector-wise branch")
    if "SiLU" not in str(data.get("base_fun", "torch.nn.SiLU")):
        raise KanxError(f"{source}: base_fun {data['base_fun']!r} is not supported (only SiLU)")
    return data


def _tensor(state: dict, key: str, shape: tuple[int, ...], where: str) -> torch.Tensor:
    if key not in state:
        raise KanxError(f"{where}: missing key {key!r} for the architecture in --config")
    tensor = state[key]
    if tuple(tensor.shape) != shape:
        raise KanxError(f"{where}: {key!r} has shape {list(tensor.shape)}, --config implies {list(shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise KanxError(f"{where}: {key!r} holds NaN or Inf")
    return tensor.detach().float()


def check_config(config: dict, label: str) -> dict[str, tuple[int, ...]]:
    """Type- and range-check the hyper-parameters; return the kanx tensor shapes they imply
    (``label`` names the ``--config`` file in errors)."""
    fields = checks.names(config["fields"], "'fields'", label)
    if not 1 <= len(fields) <= MAX_FIELDS:
        raise KanxError(f"{label}: config 'fields' must list 1..{MAX_FIELDS} fields")
    sizes = checks.mapping(config["vocab_sizes"], "'vocab_sizes'", label, MAX_FIELDS)
    if sorted(sizes) != sorted(fields):
        raise KanxError(f"{label}: vocab_sizes must give one size per field in fields")
    rows = [checks.integer(sizes[f], f"'vocab_sizes'[{f!r}]", label, 1, 10**9) for f in fields]
    dense = checks.names(config.get("dense_features", []), "'dense_features'", label)
    emb_dim = checks.integer(config["emb_dim"], "'emb_dim'", label, 1, 4096)
    bit = checks.integers(config["bit_width"], "'bit_width'", label, 1, MAX_WIDTH, 0, MAX_LAYERS)
    vec = checks.integers(config["vec_width"], "'vec_width'", label, 1, MAX_WIDTH, 0, MAX_LAYERS)
    pairwise = checks.integers(config["pairwise_multiplication_P"], "'pairwise_multiplication_P'", label, 0, len(vec), 0, MAX_LAYERS)
    grid = checks.integer(config["grid"], "'grid'", label, 1, 10_000)
    order = checks.integer(config["k"], "'k'", label, 1, 16)
    checks.choice(config.get("combine", "double_sigmoid"), "'combine'", label, COMBINE_MODES)
    return karsein_shapes(rows, len(dense), emb_dim, bit, vec, pairwise, grid, order)


def build(config: dict, label: str, state: dict[str, torch.Tensor], where: str) -> KarSein:
    """An empty kanx KarSein for the hyper-parameters in ``config``, after checking that they
    describe no more parameters than the state dict holds (so nothing of arbitrary size is
    allocated for a hostile config)."""
    shapes = check_config(config, label)
    implied = checks.element_count(shape for name, shape in shapes.items() if not name.endswith(".mask"))
    present = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    if implied > present:
        raise KanxError(f"{label}: describes a model of {implied} parameters but {where} holds {present} numbers")
    fields = list(config["fields"])
    sizes = config["vocab_sizes"]
    try:
        return KarSein(
            fields=fields, vocabularies={f: [str(i) for i in range(sizes[f])] for f in fields},
            emb_dim=config["emb_dim"], bit_width=list(config["bit_width"]), vec_width=list(config["vec_width"]),
            pairwise=list(config["pairwise_multiplication_P"]), dense=list(config.get("dense_features", [])),
            grid=config["grid"], k=config["k"], combine=config.get("combine", "double_sigmoid"), oov=False,
        )
    except (ValueError, TypeError) as exc:
        raise KanxError(f"{label}: invalid KarSein hyper-parameters: {exc}") from None


def _load_layer(state: dict, prefix: str, layer, where: str) -> dict[str, torch.Tensor]:
    n_in, n_out, basis = layer.n_in, layer.n_out, layer.grid + layer.k
    return {
        "w_base": _tensor(state, prefix + "base_weight", (n_out, n_in), where).T,
        "w_sp": _tensor(state, prefix + "spline_weight", (n_out, n_in), where).T,
        "coef": _tensor(state, prefix + "B_spline_weight", (n_in, basis), where),
        "knots": _tensor(state, prefix + "grid", (n_in, basis + layer.k + 1), where),
    }


def convert(state: dict[str, torch.Tensor], where: str, options: dict) -> Imported:
    """Map a KARSEIN state dict onto a kanx ``KarSein`` using the ``config`` option's JSON."""
    config = read_config(options.get("config"), where)
    label = "config" if isinstance(options.get("config"), dict) else f"--config {options.get('config')}"
    model = build(config, label, state, where)
    mapped: dict[str, torch.Tensor] = {}
    for f, field in enumerate(model.fields):
        shape = (model.table_size(field), model.emb_dim)
        mapped[f"embeddings.{f}.weight"] = _tensor(state, f"sparse2emb_embeddings.{field}.weight", shape, where)
    for index, layer in enumerate(model.bit_layers):
        for name, value in _load_layer(state, f"karsein_bit.layers.{index}.", layer, where).items():
            mapped[f"bit_layers.{index}.{name}"] = value
    for v, layer in enumerate(model.vec_layers):
        for name, value in _load_layer(state, f"karsein_vec_list.{v}.layers.0.", layer, where).items():
            mapped[f"vec_layers.{v}.{name}"] = value
    mapped["head.weight"] = _tensor(state, "vec_pred_layer.weight", (1, model.emb_dim), where)
    mapped["head.bias"] = _tensor(state, "vec_pred_layer.bias", (1,), where)
    used = set(_source_keys(model))
    extra = sorted(set(state) - used)
    if extra:
        raise KanxError(f"{where}: unexpected key {extra[0]!r} for the architecture in --config")
    for name, knots in mapped.items():
        if name.endswith("knots") and bool((knots.diff(dim=1) < 0).any()):
            raise KanxError(f"{where}: knots of {name} are not non-decreasing")
    model.load_state_dict({n: t.contiguous() for n, t in mapped.items()})
    inferred = {"combine": model.combine, "config": label}
    return Imported(model=model, layout="KARSEIN state dict (sparse2emb_embeddings, karsein_bit, karsein_vec_list)",
                    inferred=inferred)


def _source_keys(model: KarSein) -> list[str]:
    tails = ("base_weight", "spline_weight", "B_spline_weight", "grid")
    keys = [f"sparse2emb_embeddings.{f}.weight" for f in model.fields] + ["vec_pred_layer.weight", "vec_pred_layer.bias"]
    keys += [f"karsein_bit.layers.{i}.{t}" for i in range(len(model.bit_layers)) for t in tails]
    keys += [f"karsein_vec_list.{v}.layers.0.{t}" for v in range(len(model.vec_layers)) for t in tails]
    return keys


def reference_inputs(payload: object, model: KarSein) -> torch.Tensor | None:
    """Model inputs ``[N, F + n_dense]`` from the authors' forward inputs: a dict (or tuple)
    ``(dense [N, n_dense], sparse [N, F], varsparse)``; ``None`` when ``payload`` does not fit."""
    if isinstance(payload, dict):
        dense, sparse = payload.get("dense"), payload.get("sparse")
    elif isinstance(payload, (list, tuple)) and len(payload) >= 2:
        dense, sparse = payload[0], payload[1]
    else:
        return None
    if not isinstance(sparse, torch.Tensor) or sparse.dim() != 2 or sparse.shape[1] != model.n_fields:
        return None
    if not isinstance(dense, torch.Tensor) or dense.dim() != 2 or dense.shape != (sparse.shape[0], len(model.dense)):
        return None
    return torch.cat([sparse.float(), dense.float()], dim=1)
