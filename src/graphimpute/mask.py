"""Hiding counts for benchmarking: the methods see the masked matrix, only evaluation sees the truth."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from graphimpute import _keys
from graphimpute.normalise import lognorm


def mask_counts(adata: AnnData, *, fraction: float = 0.1, seed: int = 0) -> tuple[AnnData, AnnData]:
    """Hide ``fraction`` of each cell's non-zero counts, chosen uniformly (at least one per cell
    with two or more non-zeros).

    Returns ``(masked, truth)``. ``masked`` is a copy whose ``X`` has the hidden entries set to 0 and
    whose size factors and ``layers['lognorm']`` are recomputed from the masked counts, so no trace of
    the hidden values reaches a method. ``truth.X`` holds the hidden counts (sparse, same shape) and
    ``truth.obs['library_unmasked']`` each cell's total before masking."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    hide = np.zeros(x.nnz, bool)
    for i in range(x.shape[0]):
        start, stop = x.indptr[i], x.indptr[i + 1]
        n = stop - start
        k = int(round(fraction * n)) if n >= 2 else 0
        if n >= 2:
            k = max(k, 1)
        if k:
            hide[start + rng.choice(n, k, replace=False)] = True
    truth_x = x.copy()
    truth_x.data = np.where(hide, truth_x.data, 0).astype(np.float32)
    truth_x.eliminate_zeros()
    library = np.asarray(x.sum(axis=1)).ravel()
    x.data[hide] = 0
    x.eliminate_zeros()

    masked = adata.copy()
    masked.X = x
    _renormalise(masked, library_fraction=np.asarray(x.sum(axis=1)).ravel() / np.maximum(library, 1))
    masked.uns.setdefault(_keys.UNS, {})["mask"] = {"scheme": "uniform", "fraction": fraction, "seed": seed,
                                                    "n_hidden": int(hide.sum())}
    truth = AnnData(X=truth_x, obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    truth.obs["library_unmasked"] = library.astype(np.float32)
    truth.uns[_keys.UNS] = {"mask": dict(masked.uns[_keys.UNS]["mask"])}
    return masked, truth


def _renormalise(adata: AnnData, *, library_fraction: np.ndarray) -> None:
    """Scale size factors by what is left of each library and recompute lognorm from the masked X."""
    if _keys.SIZE_FACTOR in adata.obs:
        factors = adata.obs[_keys.SIZE_FACTOR].to_numpy(np.float64) * np.maximum(library_fraction, 1e-6)
        adata.obs[_keys.SIZE_FACTOR] = factors.astype(np.float32)
        adata.layers[_keys.LOGNORM] = lognorm(adata.X, factors)
    for column in ("total_counts", "n_genes_by_counts"):
        if column in adata.obs:
            adata.obs[column] = (np.asarray(adata.X.sum(axis=1)).ravel() if column == "total_counts"
                                 else np.diff(adata.X.indptr)).astype(adata.obs[column].dtype)
