"""The cell-agnostic profile: every cell gets the same gene-wise mean expression profile, scaled to its
own library.

Why it is here: it knows each gene's average level and each cell's depth, and nothing about the cell.
A metric on which this baseline scores well cannot see what imputation is for (telling cells apart);
a method that does not beat it on a metric has shown nothing that metric can measure. It is the floor
of every benchmark table and of ``--methods auto``.

Profile: p_g = mean over cells of x_cg / L_c (each cell's share of gene g, so deep cells do not
dominate), renormalised to sum to 1; output x̂_cg = p_g · L_c with L_c the cell's observed library.
Cells with an empty library stay at 0. Sparse input stays sparse until the dense output is written.

Reads ``adata.X`` (raw counts); writes nothing to ``adata``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import ImputeResult, Method
from graphimpute.methods._baseline import gene_profile


def impute(adata, params, ctx) -> ImputeResult:
    counts = sp.csr_matrix(adata.X, dtype=np.float64)
    if counts.nnz and (not np.all(np.isfinite(counts.data)) or counts.data.min() < 0):
        raise GraphImputeError("adata.X must hold raw non-negative counts (found negative or non-finite values)")
    library = np.asarray(counts.sum(axis=1)).ravel()
    expressed = library > 0
    if not expressed.any():
        raise GraphImputeError("every cell has an empty library: there is no profile to spread")
    profile = gene_profile(counts)
    imputed = (library[:, None] * profile[None, :]).astype(np.float32)
    return ImputeResult(imputed=imputed, info={"cells_in_profile": int(expressed.sum()),
                                               "genes_with_zero_profile": int((profile == 0).sum())})


METHOD = Method(
    name="gene_mean",
    impute=impute,
    summary="cell-agnostic: each cell gets the mean gene profile times its library (the floor every method must beat)",
    citation="-",
    kind="baseline",
)
