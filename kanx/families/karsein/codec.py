"""The KarSein family's checkpoint codec: model ⇄ JSON-able config + tensors, and the
validation that runs on every loaded config (tensor shapes computed from the config alone, so
nothing is allocated before the file is known to hold what the config claims)."""

from __future__ import annotations

import torch

from kanx.core.errors import KanxError
from kanx.core.version import __version__
from kanx.families import checks
from kanx.families.karsein.model import COMBINE_MODES, KarSein, check_architecture, vec_layer_inputs


def karsein_config(model: KarSein) -> dict:
    """JSON-able description of a KarSein model."""
    return {
        "family": "karsein", "kanx_version": __version__, "fields": list(model.fields),
        "vocabularies": {f: list(v) for f, v in model.vocabularies.items()}, "dense": list(model.dense),
        "emb_dim": model.emb_dim, "bit_width": list(model.bit_width), "vec_width": list(model.vec_width),
        "pairwise": list(model.pairwise), "grid": model.grid, "k": model.k, "combine": model.combine,
        "oov": model.oov, "output_name": model.output_name, "provenance": dict(model.provenance),
        "training": dict(model.training_info),
    }


def karsein_state(model: KarSein) -> dict[str, torch.Tensor]:
    state = {name: tensor.detach().clone().cpu() for name, tensor in model.state_dict().items()}
    state["sample_inputs"] = model.sample_inputs.detach().clone().cpu()
    return state


MAX_FIELDS = 100_000
MAX_WIDTH = 1_000_000
MAX_LAYERS = 64


def empty_model(config: dict) -> KarSein:
    return KarSein(
        fields=config["fields"], vocabularies=config["vocabularies"], emb_dim=config["emb_dim"],
        bit_width=config["bit_width"], vec_width=config["vec_width"], pairwise=config["pairwise"],
        dense=config["dense"], grid=config["grid"], k=config["k"], combine=config["combine"], oov=config["oov"],
        output_name=config["output_name"],
    )


def karsein_shapes(table_sizes: list[int], n_dense: int, emb_dim: int, bit_width: list[int], vec_width: list[int],
                   pairwise: list[int], grid: int, k: int) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a KarSein state dict, computed from the hyper-parameters alone
    (nothing is allocated, so a config can be checked against a file before a model is built).
    ``table_sizes``: rows of each field's embedding table (vocabulary, plus one with ``oov``)."""
    n_fields = len(table_sizes)
    shapes: dict[str, tuple[int, ...]] = {f"embeddings.{f}.weight": (size, emb_dim) for f, size in enumerate(table_sizes)}

    def layer(prefix: str, n_in: int, n_out: int) -> None:
        shapes.update({prefix + "coef": (n_in, grid + k), prefix + "w_base": (n_in, n_out), prefix + "w_sp": (n_in, n_out),
                       prefix + "knots": (n_in, grid + 2 * k + 1), prefix + "mask": (n_in,)})

    bit = [n_fields * emb_dim + n_dense, *bit_width, 1]
    for index in range(len(bit) - 1):
        layer(f"bit_layers.{index}.", bit[index], bit[index + 1])
    vec = [n_fields, *vec_width, 1]
    for index, n_in in enumerate(vec_layer_inputs(n_fields, vec, sorted(set(pairwise)))):
        layer(f"vec_layers.{index}.", n_in, vec[index + 1])
    shapes.update({"head.weight": (1, emb_dim), "head.bias": (1,)})
    return shapes


def check_karsein_config(config: dict, where: str) -> None:
    """Type- and range-check every entry of a KarSein config before any of it is used."""
    fields = checks.names(checks.entry(config, "fields", where), "'fields'", where)
    if not 1 <= len(fields) <= MAX_FIELDS:
        raise KanxError(f"{where}: config 'fields' must list 1..{MAX_FIELDS} fields, got {len(fields)}")
    vocabularies = checks.mapping(checks.entry(config, "vocabularies", where), "'vocabularies'", where, MAX_FIELDS)
    if set(vocabularies) != set(fields):
        raise KanxError(f"{where}: config 'vocabularies' must have one entry per field of 'fields'")
    for field in fields:
        tokens = checks.sequence(vocabularies[field], f"'vocabularies'[{field!r}]", where, min_length=1)
        for index, token in enumerate(tokens):
            if not isinstance(token, str) or len(token) > checks.MAX_NAME_LENGTH:
                raise KanxError(f"{where}: config 'vocabularies'[{field!r}][{index}] must be text of at most "
                                f"{checks.MAX_NAME_LENGTH} characters")
    dense = checks.names(checks.entry(config, "dense", where), "'dense'", where)
    if set(dense) & set(fields):
        raise KanxError(f"{where}: config 'dense' repeats a name of 'fields'")
    checks.integer(checks.entry(config, "emb_dim", where), "'emb_dim'", where, 1, 4096)
    for key in ("bit_width", "vec_width"):
        checks.integers(checks.entry(config, key, where), repr(key), where, 1, MAX_WIDTH, 0, MAX_LAYERS)
    checks.integers(checks.entry(config, "pairwise", where), "'pairwise'", where, 0, len(config["vec_width"]), 0, MAX_LAYERS)
    checks.integer(checks.entry(config, "grid", where), "'grid'", where, 1, 10_000)
    checks.integer(checks.entry(config, "k", where), "'k'", where, 1, 16)
    checks.choice(checks.entry(config, "combine", where), "'combine'", where, COMBINE_MODES)
    checks.boolean(checks.entry(config, "oov", where), "'oov'", where)
    checks.text(checks.entry(config, "output_name", where), "'output_name'", where)
    for key in ("provenance", "training"):
        if key in config:
            checks.json_tree(config[key], repr(key), where)


def config_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """:func:`karsein_shapes` for a checked kanx KarSein config, plus ``sample_inputs``."""
    extra = 1 if config["oov"] else 0
    shapes = karsein_shapes([len(config["vocabularies"][f]) + extra for f in config["fields"]], len(config["dense"]),
                            config["emb_dim"], config["bit_width"], config["vec_width"], config["pairwise"],
                            config["grid"], config["k"])
    shapes["sample_inputs"] = (-1, len(config["fields"]) + len(config["dense"]))
    return shapes


def validate_karsein(config: dict, state: dict, where: str) -> None:
    """Check a KarSein config and its tensors; raise ``KanxError`` naming the first problem."""
    check_karsein_config(config, where)
    expected = config_shapes(config)
    state = with_default_masks(expected, state)
    checks.validate_tensors(state, expected, where)
    try:
        check_architecture(config["fields"], config["vocabularies"], config["emb_dim"], config["bit_width"],
                           config["vec_width"], config["pairwise"], config["combine"], config["grid"], config["k"])
    except (ValueError, TypeError) as exc:
        raise KanxError(f"{where}: invalid KarSein architecture: {exc}") from None
    for name, tensor in state.items():
        if name.endswith("knots") and (tensor.diff(dim=1) < 0).any():
            raise KanxError(f"{where}: tensor {name} is not non-decreasing")
        if name.endswith(".mask") and not bool(((tensor == 0) | (tensor == 1)).all()):
            raise KanxError(f"{where}: tensor {name} must hold only 0 and 1")


def with_default_masks(shapes: dict[str, tuple[int, ...]], state: dict) -> dict:
    """``state`` with an all-ones ``mask`` for every layer that has none (files written before
    pruning existed); ``shapes`` as from :func:`config_shapes`."""
    filled = dict(state)
    for name, shape in shapes.items():
        if name.endswith(".mask"):
            filled.setdefault(name, torch.ones(shape))
    return filled


def build_karsein(config: dict, state: dict) -> KarSein:
    """A KarSein model from a validated config and state."""
    model = empty_model(config)
    weights = {n: t.float() for n, t in with_default_masks(config_shapes(config), state).items() if n != "sample_inputs"}
    model.load_state_dict(weights)
    model.sample_inputs = state["sample_inputs"].float().clone()
    model.provenance = dict(config.get("provenance", {}))
    model.training_info = dict(config.get("training", {}))
    model.eval()
    return model
