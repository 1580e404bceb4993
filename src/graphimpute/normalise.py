"""Size factors, log-normalised values and highly variable genes."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from graphimpute import _keys

log = logging.getLogger(__name__)


def size_factors(counts) -> np.ndarray:
    """Library / median library: a cell of median depth gets 1.

    A cell with an empty library (no counts in these genes) gets 1, only so that every division by
    the factor stays finite: its normalised values are 0 whatever the factor. Its depth is 0, so a
    method that scales a prediction back to counts with factors of the same genes returns 0 for that
    cell (``methods._common.no_depth``), the same rule as the baselines' rescaling to the library."""
    library = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)
    median = np.median(library[library > 0]) if np.any(library > 0) else 1.0
    factors = library / median
    factors[factors == 0] = 1.0
    return factors


def lognorm(counts, factors: np.ndarray) -> sp.csr_matrix:
    """log1p(counts / size factor), sparse."""
    scaled = sp.diags(1.0 / factors) @ sp.csr_matrix(counts, dtype=np.float64)
    scaled = sp.csr_matrix(scaled)
    scaled.data = np.log1p(scaled.data)
    return scaled.astype(np.float32)


def normalise(adata: AnnData, *, n_top_genes: int | None = 2000) -> AnnData:
    """Return a copy with size factors, log-normalised values and the highly variable genes.

    Size factors use every gene that passed QC; the result is then subset to the ``n_top_genes``
    most variable genes (scanpy's 'seurat' dispersion ranking on the log-normalised values), or kept
    whole when ``n_top_genes`` is None. ``X`` stays raw counts.

    Writes ``obs['size_factor']``, ``layers['lognorm']``, ``var['highly_variable', 'means',
    'dispersions', 'dispersions_norm']`` and ``uns['graphimpute']['normalise']``."""
    import scanpy as sc

    out = adata.copy()
    factors = size_factors(out.X)
    out.obs[_keys.SIZE_FACTOR] = factors.astype(np.float32)
    out.layers[_keys.LOGNORM] = lognorm(out.X, factors)
    n_genes_in = out.n_vars
    if n_top_genes is not None and n_top_genes >= out.n_vars:
        log.warning("normalise: %d highly variable genes asked for, only %d passed QC; keeping all",
                    n_top_genes, out.n_vars)
        n_top_genes = None
    if n_top_genes is None:
        out.var[_keys.HVG] = True
    else:
        sc.pp.highly_variable_genes(out, layer=_keys.LOGNORM, n_top_genes=n_top_genes, flavor="seurat")
        out = out[:, out.var[_keys.HVG].to_numpy()].copy()
    out.uns.setdefault(_keys.UNS, {})["normalise"] = {
        "size_factor": "library / median library over all QC'd genes",
        "lognorm": "log1p(counts / size_factor)",
        "n_top_genes": "all" if n_top_genes is None else int(n_top_genes),
        "hvg_flavor": "seurat", "genes_in": n_genes_in, "genes_out": out.n_vars,
    }
    log.info("normalise: kept %d of %d genes", out.n_vars, n_genes_in)
    return out
