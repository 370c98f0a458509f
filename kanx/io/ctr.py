"""Click-through-rate data: a synthetic generator with planted interactions, and CSV reading.

Synthetic model (``generate_ctr``): six categorical fields ``user, item, hour, device, site,
ad`` with ids ``0..V_f-1`` drawn uniformly. Each field value ``a`` carries a fixed random score
``u_f[a]`` (standard normal, normalised to mean 0 and variance 1 per field). The click logit is

    logit = bias + 0.3 * (u_user + u_item + u_hour + u_device + u_site + u_ad)    (main effects)
                 + 1.5 * u_user * u_item                                        (pair)
                 + 1.5 * u_hour * u_device * u_site                             (three-way)

so the planted field groups are ``{user, item}`` and ``{hour, device, site}``; ``ad`` only has a
main effect. Clicks are Bernoulli(sigmoid(logit)); the true probabilities come back too, so the
Bayes-optimal AUC of a split is the AUC of the true probabilities on its labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kanx.core.errors import KanxError
from kanx.io.data import read_csv_columns

FIELDS = ("user", "item", "hour", "device", "site", "ad")
VOCAB_SIZES = {"user": 6, "item": 6, "hour": 3, "device": 3, "site": 3, "ad": 4}
PLANTED_GROUPS = (("user", "item"), ("hour", "device", "site"))
MAIN_WEIGHT, PAIR_WEIGHT, TRIPLE_WEIGHT, BIAS = 0.3, 1.5, 1.5, -0.5


@dataclass
class CTRData:
    """Synthetic impressions: ``ids[field]`` int arrays ``[N]``, ``clicks`` ``[N]`` (0/1),
    ``probabilities`` ``[N]`` (true click probabilities) and the planted field groups."""

    ids: dict[str, np.ndarray]
    clicks: np.ndarray
    probabilities: np.ndarray
    groups: tuple[tuple[str, ...], ...] = PLANTED_GROUPS


def field_scores(seed: int) -> dict[str, np.ndarray]:
    """Per field, the fixed scores ``u_f`` ``[V_f]`` (mean 0, variance 1)."""
    rng = np.random.default_rng(seed + 1000)
    scores = {}
    for field in FIELDS:
        u = rng.standard_normal(VOCAB_SIZES[field])
        scores[field] = (u - u.mean()) / u.std()
    return scores


def true_logit(ids: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> np.ndarray:
    """The generator's click logit ``[N]`` for id arrays ``[N]`` per field."""
    u = {f: scores[f][ids[f]] for f in FIELDS}
    main = sum(u[f] for f in FIELDS)
    return BIAS + MAIN_WEIGHT * main + PAIR_WEIGHT * u["user"] * u["item"] + TRIPLE_WEIGHT * u["hour"] * u["device"] * u["site"]


def generate_ctr(rows: int, seed: int = 0, score_seed: int = 0) -> CTRData:
    """``rows`` impressions; ``seed`` draws ids and clicks, ``score_seed`` fixes the scores
    (keep it the same to draw more data from the same click model)."""
    rng = np.random.default_rng(seed)
    ids = {f: rng.integers(0, VOCAB_SIZES[f], rows) for f in FIELDS}
    probabilities = 1 / (1 + np.exp(-true_logit(ids, field_scores(score_seed))))
    clicks = (rng.random(rows) < probabilities).astype(np.int64)
    return CTRData(ids=ids, clicks=clicks, probabilities=probabilities)


def write_ctr_csv(data: CTRData, path: str | Path, with_probability: bool = False) -> None:
    """Columns: the fields (ids written as ``<field-initial><id>`` tokens, e.g. ``u3``), ``click``
    and, optionally, ``p_true``."""
    header = [*FIELDS, "click"] + (["p_true"] if with_probability else [])
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for n in range(len(data.clicks)):
            row = [f"{f[0]}{int(data.ids[f][n])}" for f in FIELDS] + [int(data.clicks[n])]
            writer.writerow(row + ([f"{data.probabilities[n]:.9g}"] if with_probability else []))


def ctr_columns(data: CTRData) -> dict[str, list[str]]:
    """The field columns as the tokens ``write_ctr_csv`` writes."""
    return {f: [f"{f[0]}{int(i)}" for i in data.ids[f]] for f in FIELDS}


@dataclass
class ClickTable:
    """Click-through-rate rows as text: ``columns`` (name → values), the 0/1 ``target`` column,
    the categorical ``fields`` and the numeric ``dense`` columns among them, and the ``source``
    they were read from (for messages and provenance). What ``kanx.train`` takes with
    ``KarSeinSettings``."""

    columns: dict[str, list[str]]
    target: str
    fields: list[str]
    dense: list[str]
    source: str = ""

    @property
    def rows(self) -> int:
        return len(self.columns[self.target])


def read_click_table(path: str | Path, target: str, fields: list[str], dense: list[str]) -> ClickTable:
    """The ``fields``, ``dense`` and ``target`` columns of a CSV as a :class:`ClickTable`."""
    columns = read_columns(path, fields + dense + [target], "--fields/--dense/--target")
    return ClickTable(columns, target, fields, dense, str(path))


def read_columns(path: str | Path, names: list[str], option: str = "DATA") -> dict[str, list[str]]:
    """Text columns ``names`` of a CSV with a header row (values stripped, kept as strings)."""
    header, columns = read_csv_columns(path)
    missing = [n for n in names if n not in header]
    if missing:
        raise KanxError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(header)}); check {option}")
    if not columns[header[0]]:
        raise KanxError(f"{path}: needs a header row and at least one data row")
    return {n: columns[n] for n in names}
