"""Hide part of the counts, so that imputation can be scored against what was hidden (benchmark mode).

Three schemes, each a function of the counts and the seed only:

- ``uniform``: in every cell, ``floor(fraction * n)`` of its ``n`` non-zero entries, drawn uniformly
  without replacement, are set to 0.
- ``low-count``: the same number per cell, drawn without replacement with probability proportional to
  ``exp(-count / low_count_scale)`` (scale 20), the exponential weighting of the DANCE benchmark's
  cell-wise mask: a count of 1 is drawn about 1.6x as often as a count of 10 and 12x as often as a
  count of 50, so the hidden entries look more like the low counts dropout removes. Successive weighted
  draws without replacement are done at once with exponential clocks (the k smallest of Eᵢ/wᵢ,
  Eᵢ ~ Exp(1)), which gives the same distribution.
- ``mcv``: molecular cross-validation (Batson et al. 2019): every count n is split into
  train ~ Binomial(n, 1 - fraction) and test = n - train. Needs integer counts.

``mask`` returns the masked AnnData (``X`` = masked or train counts, everything else kept except what
was computed from the unmasked counts, which is recomputed or dropped, see ``_refresh``) and a
separate truth AnnData that only the EVALUATE step reads:

- truth ``X``: CSR, the hidden entries at their original values (``uniform``/``low-count``), or the
  held-out test counts (``mcv``);
- truth ``layers['held_zeros']`` (``uniform``/``low-count``): CSR of 1s at as many entries per cell as
  were hidden there, drawn uniformly among the cell's true zeros (zero before masking). The methods see
  them as zeros, exactly like the hidden entries; evaluation asks whether a method tells the two apart;
- truth ``obs['library_unmasked']``: each cell's total over these genes before masking;
  ``obs['library_masked']``: after masking (the train total for ``mcv``);
- ``uns['graphimpute']['mask']`` in both: scheme, fraction, seed and weighting; the truth's also holds
  how many entries and counts were hidden (the masked file does not, as that would tell their sum).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from graphimpute import _keys, normalise
from graphimpute.errors import GraphImputeError

log = logging.getLogger(__name__)

SCHEMES = ("uniform", "low-count", "mcv")
LOW_COUNT_SCALE = 20.0  # DANCE's exponential weighting: scipy.stats.expon(scale=20).pdf(count)

LIBRARY_UNMASKED = "library_unmasked"
HELD_ZEROS = "held_zeros"
LIBRARY_MASKED = "library_masked"

# Columns the QC step may write with scanpy's names, recomputed after masking (obs: over all QC'd genes,
# so the hidden part is subtracted; var: over all cells, so recomputed from the masked counts).
_OBS_DROP_PREFIXES = ("pct_counts_", "total_counts_", "log1p_total_counts_")
_VAR_FROM_COUNTS = ("n_cells_by_counts", "mean_counts", "log1p_mean_counts", "pct_dropout_by_counts",
                    "total_counts", "log1p_total_counts", "n_cells", "n_counts")
_VAR_HVG_STATS = ("means", "dispersions", "dispersions_norm", "variances", "variances_norm")


def mask(
    adata: AnnData,
    *,
    scheme: str = "uniform",
    fraction: float = 0.1,
    seed: int = 0,
    low_count_scale: float = LOW_COUNT_SCALE,
) -> tuple[AnnData, AnnData]:
    """Hide ``fraction`` of each cell's non-zero entries (or, for ``mcv``, of its molecules).

    Returns ``(masked, truth)``; ``adata`` is not modified. Writes, on ``masked``: ``X`` (float32 CSR),
    ``obs['size_factor']`` and ``layers['lognorm']`` recomputed from the masked counts,
    ``uns['graphimpute']['mask']``. See the module docstring for ``truth``."""
    if scheme not in SCHEMES:
        raise GraphImputeError(f"unknown mask scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if not 0 < fraction < 1:
        raise GraphImputeError(f"mask fraction must be in (0, 1), got {fraction}")
    counts = _csr(adata.X)
    rng = np.random.default_rng(seed)
    if scheme == "mcv":
        train, test = _binomial_split(counts, fraction, rng)
    else:
        weights = None if scheme == "uniform" else np.exp(-counts.data / low_count_scale)
        hidden = _choose_hidden(counts, fraction, rng, weights=weights, scale=low_count_scale)
        train, test = _split_entries(counts, hidden)

    record: dict[str, Any] = {"scheme": scheme, "fraction": float(fraction), "seed": int(seed)}
    if scheme == "uniform":
        record["selection"] = "floor(fraction * n_nonzero) entries per cell, uniformly without replacement"
    elif scheme == "low-count":
        record["selection"] = ("floor(fraction * n_nonzero) entries per cell, without replacement, "
                               "P proportional to exp(-count / low_count_scale)")
        record["low_count_scale"] = float(low_count_scale)
    else:
        record["selection"] = "train ~ Binomial(count, 1 - fraction), test = count - train"

    masked = adata.copy()
    masked.X = train
    _refresh(masked, hidden_per_cell=_row_sums(test), lost_genes_per_cell=_lost_genes(counts, train))
    masked.uns.setdefault(_keys.UNS, {})["mask"] = dict(record)

    truth = AnnData(
        X=test,
        obs=pd.DataFrame({LIBRARY_UNMASKED: _row_sums(counts), LIBRARY_MASKED: _row_sums(train)},
                         index=adata.obs_names.copy()),
        var=pd.DataFrame(index=adata.var_names.copy()),
    )
    if scheme != "mcv":
        # its own stream, so that adding the zeros left the hidden entries of every seed as they were
        truth.layers[HELD_ZEROS] = _held_zeros(counts, _lost_genes(counts, train), np.random.default_rng([seed, 1]))
    truth.uns[_keys.UNS] = {"mask": {**record, "n_hidden_entries": int(test.nnz),
                                     "hidden_count_share": float(test.sum() / max(counts.sum(), 1e-12)),
                                     "n_entries_emptied": int(counts.nnz - train.nnz)}}
    log.info("mask %s: %d entries carry hidden counts (%.1f%% of all counts)", scheme, test.nnz,
             100 * truth.uns[_keys.UNS]["mask"]["hidden_count_share"])
    return masked, truth


def _held_zeros(counts: sp.csr_matrix, per_cell: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """CSR of 1s: in each cell, ``per_cell[i]`` entries drawn uniformly without replacement among the
    cell's zeros (all of them when there are fewer)."""
    n_genes = counts.shape[1]
    rows, cols = [], []
    for i in range(counts.shape[0]):
        zeros = np.setdiff1d(np.arange(n_genes), counts.indices[counts.indptr[i]:counts.indptr[i + 1]],
                             assume_unique=True)
        k = min(int(per_cell[i]), zeros.size)
        if k:
            cols.append(np.sort(rng.choice(zeros, size=k, replace=False)))
            rows.append(np.full(k, i))
    if not rows:
        return sp.csr_matrix(counts.shape, dtype=np.float32)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=counts.shape)


def _csr(x) -> sp.csr_matrix:
    m = sp.csr_matrix(x, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _choose_hidden(counts: sp.csr_matrix, fraction: float, rng: np.random.Generator, *,
                   weights: np.ndarray | None, scale: float) -> np.ndarray:
    """Boolean over ``counts.data``: the floor(fraction * n) entries of each row with the smallest
    exponential clocks Eᵢ/wᵢ (in logs, log Eᵢ - log wᵢ, so large counts never divide by zero)."""
    keys = np.log(rng.exponential(size=counts.nnz))
    if weights is not None:
        keys = keys + counts.data / scale  # - log(exp(-count / scale))
    hidden = np.zeros(counts.nnz, dtype=bool)
    for i in range(counts.shape[0]):
        start, stop = counts.indptr[i], counts.indptr[i + 1]
        k = int(np.floor(fraction * (stop - start)))
        if k:
            hidden[start + np.argpartition(keys[start:stop], k - 1)[:k]] = True
    return hidden


def _split_entries(counts: sp.csr_matrix, hidden: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    kept = counts.copy()
    kept.data = np.where(hidden, 0, counts.data).astype(np.float32)
    kept.eliminate_zeros()
    held = counts.copy()
    held.data = np.where(hidden, counts.data, 0).astype(np.float32)
    held.eliminate_zeros()
    return kept, held


def _binomial_split(counts: sp.csr_matrix, fraction: float, rng: np.random.Generator):
    if not np.all(counts.data == np.round(counts.data)):
        raise GraphImputeError("molecular cross-validation (--scheme mcv) needs integer counts; "
                               "use --scheme uniform or low-count for non-integer data")
    train_data = rng.binomial(counts.data.astype(np.int64), 1.0 - fraction)
    train, test = counts.copy(), counts.copy()
    train.data = train_data.astype(np.float32)
    test.data = (counts.data - train_data).astype(np.float32)
    train.eliminate_zeros()
    test.eliminate_zeros()
    return train, test


def _row_sums(m: sp.csr_matrix) -> np.ndarray:
    return np.asarray(m.sum(axis=1), dtype=np.float64).ravel()


def _lost_genes(before: sp.csr_matrix, after: sp.csr_matrix) -> np.ndarray:
    return np.diff(before.indptr) - np.diff(after.indptr)


def _refresh(masked: AnnData, *, hidden_per_cell: np.ndarray, lost_genes_per_cell: np.ndarray) -> None:
    """Make every value derived from the counts a function of the masked counts only.

    obs: ``total_counts`` and ``n_genes_by_counts`` (and their log1p) lose the hidden part; other
    scanpy QC percentages, which need the genes no longer present, are dropped; ``size_factor`` =
    masked library / median masked library (the library over all QC'd genes when ``total_counts`` is
    there, else over these genes). layers: ``lognorm`` = log1p(X / size_factor); any other layer is
    dropped. var: scanpy's per-gene count metrics recomputed; highly-variable-gene statistics dropped
    (the gene selection itself was made before masking). obsm, varm, obsp, varp: dropped (PCA and graphs
    are built after masking)."""
    obs = masked.obs
    if "total_counts" in obs:
        obs["total_counts"] = (obs["total_counts"].to_numpy(np.float64) - hidden_per_cell).astype(obs["total_counts"].dtype)
        library = obs["total_counts"].to_numpy(np.float64)
    else:
        library = _row_sums(masked.X)
    if "n_genes_by_counts" in obs:
        obs["n_genes_by_counts"] = obs["n_genes_by_counts"].to_numpy() - lost_genes_per_cell
    for name in ("total_counts", "n_genes_by_counts"):
        if f"log1p_{name}" in obs:
            obs[f"log1p_{name}"] = np.log1p(obs[name].to_numpy(np.float64))
    dropped = [c for c in obs.columns if c.startswith(_OBS_DROP_PREFIXES)]
    masked.obs = obs.drop(columns=dropped)

    # NORMALISE's rule (library / median library) on the masked libraries: a one-column "count matrix"
    # whose row sums are those libraries
    factors = normalise.size_factors(library[:, None])
    if _keys.SIZE_FACTOR in masked.obs or _keys.LOGNORM in masked.layers:
        masked.obs[_keys.SIZE_FACTOR] = factors.astype(np.float32)
    stale_layers = [k for k in masked.layers if k != _keys.LOGNORM]
    for key in stale_layers:
        del masked.layers[key]
    if _keys.LOGNORM in masked.layers:
        masked.layers[_keys.LOGNORM] = normalise.lognorm(masked.X, factors)

    var = masked.var
    x = sp.csr_matrix(masked.X)
    per_gene = {
        "n_cells_by_counts": np.diff(x.tocsc().indptr), "n_cells": np.diff(x.tocsc().indptr),
        "total_counts": np.asarray(x.sum(axis=0)).ravel(), "n_counts": np.asarray(x.sum(axis=0)).ravel(),
    }
    per_gene["mean_counts"] = per_gene["total_counts"] / max(x.shape[0], 1)
    per_gene["pct_dropout_by_counts"] = 100 * (1 - per_gene["n_cells_by_counts"] / max(x.shape[0], 1))
    per_gene["log1p_mean_counts"] = np.log1p(per_gene["mean_counts"])
    per_gene["log1p_total_counts"] = np.log1p(per_gene["total_counts"])
    for name in _VAR_FROM_COUNTS:
        if name in var:
            var[name] = per_gene[name].astype(var[name].dtype)
    masked.var = var.drop(columns=[c for c in _VAR_HVG_STATS if c in var])

    gone = [f"obsm[{k!r}]" for k in masked.obsm] + [f"varm[{k!r}]" for k in masked.varm]
    gone += [f"obsp[{k!r}]" for k in masked.obsp] + [f"varp[{k!r}]" for k in masked.varp]
    gone += [f"layers[{k!r}]" for k in stale_layers] + [f"obs[{c!r}]" for c in dropped]
    for store in (masked.obsm, masked.varm, masked.obsp, masked.varp):
        for key in list(store):
            del store[key]
    for key in ("pca", "neighbors", "umap"):
        masked.uns.pop(key, None)
    graph_record = masked.uns.get(_keys.UNS, {}).pop("graph", None)
    if gone or graph_record:
        log.info("mask: dropped values computed from the unmasked counts: %s", ", ".join(gone) or "graph records")
