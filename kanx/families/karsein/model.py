"""KarSein: a KAN for click-through-rate prediction (arXiv 2408.08713).

Inputs are categorical *fields* (one embedding table of dimension ``D`` each) and optional
dense features. The model input is one float tensor ``x [N, F + n_dense]``: the first ``F``
columns hold vocabulary indices (integral values), the rest the dense features.

A KarSein layer puts ONE learnable activation on each input feature and then mixes linearly:
``y_j = sum_i w_base[i, j] * silu(x_i) + w_sp[i, j] * s_i(x_i)``, ``s_i(x) = sum_k coef[i, k] B_k(x)``
(B-splines on the per-input knots ``knots[i]``; zero outside the knot support).

* Bit-wise branch: a KarSein stack over the flattened embeddings ``concat_f(E_f)`` (index
  ``f*D + d``) followed by the dense features, ending in one logit.
* Vector-wise branch: fields are ``D``-vectors ``X1 [N, F, D]``; layer ``v`` reads
  ``M_{v-1}`` (``M_{-1} = X1``) or, when ``v`` is in ``pairwise``, ``concat_rows(X1, C)`` with
  ``C[a*R + c] = X1[a] * M_{v-1}[c]``; every activation acts coordinate-wise with the same function
  for all ``D`` coordinates. The last layer has one row; ``head = Linear(D, 1)`` reads it.
* Output: ``combine = "sum"`` gives ``sigmoid(vec_logit + bit_logit)`` (models kanx trains);
  ``"double_sigmoid"`` gives ``sigmoid(vec_logit + sigmoid(bit_logit))`` (what the authors'
  code computes; kept for imported checkpoints so they reproduce exactly).

Vocabularies: ``vocabularies[field]`` lists the tokens of a field in index order. With
``oov = True`` the table has one extra last row that every unknown token maps to; without it
(imported models) an unknown token is an error.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kanx.core.errors import KanxError
from kanx.families.kan.basis import bspline_basis, knot_spans, uniform_knots

COMBINE_MODES = ("sum", "double_sigmoid")


class KarSeinLayer(nn.Module):
    """One KarSein layer: per-input activation, then linear mixing.

    Tensors (input-major): ``coef [n_in, G+k]``, ``knots [n_in, G+2k+1]``,
    ``w_base [n_in, n_out]``, ``w_sp [n_in, n_out]``, ``mask [n_in]`` (1 = feature used,
    0 = pruned: its contribution is exactly zero; checkpoints without it load as all ones).
    """

    def __init__(self, n_in: int, n_out: int, grid: int, k: int, generator: torch.Generator | None = None,
                 grid_range: tuple[float, float] = (-1.0, 1.0), noise_scale: float = 0.1) -> None:
        super().__init__()
        self.n_in, self.n_out, self.grid, self.k = n_in, n_out, grid, k
        scale = 1 / math.sqrt(n_in)

        def uniform(*size: int) -> torch.Tensor:
            return torch.rand(*size, generator=generator) * 2 - 1

        self.coef = nn.Parameter(uniform(n_in, grid + k) * noise_scale)
        self.w_base = nn.Parameter(uniform(n_in, n_out) * scale)
        self.w_sp = nn.Parameter(uniform(n_in, n_out) * scale)
        lo, hi = torch.full((n_in,), grid_range[0]), torch.full((n_in,), grid_range[1])
        self.register_buffer("knots", uniform_knots(lo, hi, grid, k))
        self.register_buffer("mask", torch.ones(n_in))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Older state dicts (and imported ones) have no ``mask``: every feature is used."""
        state_dict.setdefault(prefix + "mask", torch.ones(self.n_in))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """Spline activation ``s_i(x_i)`` of every input: ``[N, n_in]`` → ``[N, n_in]``."""
        basis = bspline_basis(x, self.knots, self.k, knot_spans(self.knots, self.k))
        return torch.einsum("nik,ik->ni", basis, self.coef)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, n_in]`` → ``[N, n_out]`` (one basis evaluation for all inputs; masked features
        contribute exactly zero)."""
        keep = self.mask[:, None]
        return nn.functional.silu(x) @ (self.w_base * keep) + self.activations(x) @ (self.w_sp * keep)

    def forward_rows(self, m: torch.Tensor) -> torch.Tensor:
        """Vector-wise use: ``[N, n_in, D]`` → ``[N, n_out, D]``, the same functions applied to
        every coordinate ``d`` (batched as ``N*D`` rows)."""
        n, rows, dim = m.shape
        flat = m.transpose(1, 2).reshape(n * dim, rows)
        return self(flat).reshape(n, dim, self.n_out).transpose(1, 2)


def pairwise_inputs(fields: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Input of a vector-wise layer with pairwise products: the field embeddings ``fields [..., F, D]``
    and every product ``fields[f] ⊙ rows[r]`` of them with the previous layer's rows ``[..., R, D]``
    (index ``f·R + r``; leading dimensions broadcast) → ``[..., F + F·R, D]``."""
    products = (fields.unsqueeze(-2) * rows.unsqueeze(-3)).flatten(-3, -2)
    return torch.cat([fields.expand(*products.shape[:-2], *fields.shape[-2:]), products], dim=-2)


def vec_layer_inputs(n_fields: int, vec_widths: list[int], pairwise: list[int]) -> list[int]:
    """Rows entering each vector-wise layer: ``F + F*R_prev`` for layers in ``pairwise``, else ``R_prev``."""
    sizes, rows = [], n_fields
    for v in range(len(vec_widths) - 1):
        sizes.append(n_fields + n_fields * rows if v in pairwise else rows)
        rows = vec_widths[v + 1]
    return sizes


def normalise_token(value: object) -> str:
    """Canonical text of a categorical value: stripped; integral numbers without ``.0``."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number == int(number) else text


def labels_from(values: list[str], target: str) -> torch.Tensor:
    """0/1 labels ``[N]`` from a target column (``0``/``1``, ``true``/``false``)."""
    mapping = {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0}
    labels = [mapping.get(normalise_token(v).lower()) for v in values]
    if None in labels:
        bad = values[labels.index(None)]
        raise KanxError(f"--target {target}: value {bad!r} is not a 0/1 click label")
    return torch.tensor(labels, dtype=torch.float32)



class KarSein(nn.Module):
    """KarSein CTR model. ``forward(x [N, F + n_dense]) → [N, 1]`` click probabilities."""

    family = "karsein"

    def __init__(self, fields: list[str], vocabularies: dict[str, list[str]], emb_dim: int = 4,
                 bit_width: list[int] | None = None, vec_width: list[int] | None = None,
                 pairwise: list[int] | None = None, dense: list[str] | None = None, grid: int = 5, k: int = 3,
                 combine: str = "sum", oov: bool = True, output_name: str = "click", seed: int = 0) -> None:
        super().__init__()
        check_architecture(fields, vocabularies, emb_dim, bit_width or [], vec_width or [], pairwise or [], combine, grid, k)
        self.fields, self.dense = list(fields), list(dense or [])
        self.vocabularies = {f: [str(t) for t in vocabularies[f]] for f in fields}
        self.emb_dim, self.grid, self.k = int(emb_dim), int(grid), int(k)
        self.bit_width, self.vec_width = list(bit_width or []), list(vec_width or [])
        self.pairwise, self.combine, self.oov = sorted(set(pairwise or [])), combine, bool(oov)
        self.output_name = output_name
        self.provenance: dict = {}
        self.training_info: dict = {}
        self._index = {f: {t: i for i, t in enumerate(self.vocabularies[f])} for f in fields}
        generator = torch.Generator().manual_seed(seed)
        self.embeddings = nn.ModuleList(nn.Embedding(self.table_size(f), self.emb_dim) for f in fields)
        with torch.no_grad():
            for table in self.embeddings:
                table.weight.copy_(torch.randn(table.weight.shape, generator=generator) * 0.1)
        bit = self.bit_widths
        self.bit_layers = nn.ModuleList(KarSeinLayer(bit[i], bit[i + 1], grid, k, generator) for i in range(len(bit) - 1))
        vec, sizes = self.vec_widths, vec_layer_inputs(len(fields), self.vec_widths, self.pairwise)
        self.vec_layers = nn.ModuleList(KarSeinLayer(sizes[v], vec[v + 1], grid, k, generator) for v in range(len(sizes)))
        self.head = nn.Linear(self.emb_dim, 1)
        with torch.no_grad():  # nn.Linear's own initial range, drawn from the seeded generator
            bound = 1 / math.sqrt(self.emb_dim)
            self.head.weight.copy_((torch.rand(self.head.weight.shape, generator=generator) * 2 - 1) * bound)
            self.head.bias.copy_((torch.rand(self.head.bias.shape, generator=generator) * 2 - 1) * bound)
        self.sample_inputs = torch.empty(0, self.n_inputs)

    # ----------------------------------------------------------------- structure
    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def n_inputs(self) -> int:
        return len(self.fields) + len(self.dense)

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def bit_widths(self) -> list[int]:
        return [self.n_fields * self.emb_dim + len(self.dense), *self.bit_width, 1]

    @property
    def vec_widths(self) -> list[int]:
        return [self.n_fields, *self.vec_width, 1]

    @property
    def input_names(self) -> list[str]:
        return self.fields + self.dense

    def table_size(self, field: str) -> int:
        return len(self.vocabularies[field]) + (1 if self.oov else 0)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def row_bytes(self) -> int:
        """Working bytes one input row takes through a forward pass that keeps every layer's
        per-feature activations and mixing terms: what chunked evaluation plans with."""
        total = 32 * self.n_fields * self.emb_dim
        for layer in [*self.bit_layers, *self.vec_layers]:
            total += 12 * layer.n_in * layer.n_out + 32 * layer.n_in * (self.grid + 2 * self.k + 8)
        return total * (self.emb_dim if self.vec_layers else 1)

    # ----------------------------------------------------------------- encoding
    def encode(self, columns: dict[str, list], where: str = "inputs") -> torch.Tensor:
        """Raw column values (field tokens, dense numbers) → model input ``[N, F + n_dense]``.

        Unknown tokens map to the out-of-vocabulary row (last index) when ``oov``; else error."""
        missing = [name for name in self.input_names if name not in columns]
        if missing:
            raise KanxError(f"{where}: missing column(s) {', '.join(missing)} (model inputs: {', '.join(self.input_names)})")
        parts = []
        for field in self.fields:
            lookup, fallback = self._index[field], len(self.vocabularies[field]) if self.oov else None
            ids = [lookup.get(normalise_token(v), fallback) for v in columns[field]]
            if None in ids:
                bad = columns[field][ids.index(None)]
                raise KanxError(f"{where}: column {field} has value {bad!r} outside the model's vocabulary (no OOV row)")
            parts.append(torch.tensor(ids, dtype=torch.float32))
        for name in self.dense:
            try:
                parts.append(torch.tensor([float(v) for v in columns[name]], dtype=torch.float32))
            except ValueError:
                raise KanxError(f"{where}: dense column {name} holds a non-numeric value") from None
        return torch.stack(parts, dim=1) if parts else torch.empty(0, 0)

    def field_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, F + n_dense]`` → ``X1 [N, F, D]``."""
        ids = x[:, : self.n_fields].round().long()
        sizes = torch.tensor([self.table_size(f) for f in self.fields], device=x.device)
        if ids.numel() and (bool((ids < 0).any()) or bool((ids >= sizes).any())):
            raise KanxError("inputs: a field index lies outside its vocabulary")
        return torch.stack([table(ids[:, f]) for f, table in enumerate(self.embeddings)], dim=1)

    # ----------------------------------------------------------------- evaluation
    def bit_logit(self, emb: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """``emb [N, F, D]``, ``dense [N, n_dense]`` → ``[N, 1]``."""
        h = torch.cat([emb.reshape(emb.shape[0], -1), dense], dim=1)
        for layer in self.bit_layers:
            h = layer(h)
        return h

    def vec_logit(self, emb: torch.Tensor) -> torch.Tensor:
        """``emb [N, F, D]`` → ``[N, 1]``."""
        m = emb
        for v, layer in enumerate(self.vec_layers):
            if v in self.pairwise:
                m = pairwise_inputs(emb, m)
            m = layer.forward_rows(m)
        return self.head(m.reshape(m.shape[0], -1))

    def logits_from_embeddings(self, emb: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid score ``[N, 1]`` (for ``double_sigmoid``: ``vec + sigmoid(bit)``)."""
        bit = self.bit_logit(emb, dense)
        if self.combine == "double_sigmoid":
            bit = torch.sigmoid(bit)
        return self.vec_logit(emb) + bit

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, F + n_dense]`` → score ``[N, 1]`` whose sigmoid is the click probability."""
        return self.logits_from_embeddings(self.field_embeddings(x), x[:, self.n_fields :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, F + n_dense]`` → click probabilities ``[N, 1]``."""
        return torch.sigmoid(self.logit(x))

    def all_layers(self) -> list[tuple[str, KarSeinLayer]]:
        return [(f"bit_layers.{i}", layer) for i, layer in enumerate(self.bit_layers)] + [
            (f"vec_layers.{i}", layer) for i, layer in enumerate(self.vec_layers)
        ]


def check_architecture(fields: list[str], vocabularies: dict, emb_dim: int, bit_width: list[int], vec_width: list[int],
                       pairwise: list[int], combine: str, grid: int, k: int) -> None:
    """Raise ``ValueError`` naming the first inconsistency."""
    if not fields or len(set(fields)) != len(fields):
        raise ValueError(f"fields must be a non-empty list of distinct names, got {fields}")
    for field in fields:
        if not isinstance(vocabularies.get(field), list) or not vocabularies[field]:
            raise ValueError(f"field {field!r} needs a non-empty vocabulary")
    if int(emb_dim) < 1 or any(int(w) < 1 for w in [*bit_width, *vec_width]):
        raise ValueError("emb_dim and layer widths must be positive")
    if any(int(p) < 0 or int(p) > len(vec_width) for p in pairwise):
        raise ValueError(f"pairwise layers {pairwise} must lie in 0..{len(vec_width)}")
    if combine not in COMBINE_MODES:
        raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
    if int(grid) < 1 or int(k) < 1:
        raise ValueError("grid and k must be at least 1")
