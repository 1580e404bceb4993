"""No imputation: the bar every method must clear.

Returns the observed counts unchanged. On the input's count scale that is what "library-normalised
counts, no imputation" means once evaluation normalises every method's output the same way; at a
hidden entry it predicts 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphimpute.methods._base import ImputeResult, Method


def impute(adata, params, ctx) -> ImputeResult:
    counts = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    return ImputeResult(imputed=counts.astype(np.float32, copy=True))


METHOD = Method(
    name="none",
    impute=impute,
    summary="no imputation: the observed counts",
    citation="-",
    kind="baseline",
)
