"""What every baseline shares: the raw counts it reads and the one output-scale policy.

Policy (docs/methods.md, "Baselines"): every baseline's back-transformed output is rescaled so that
each cell's total equals that cell's observed library (the sum of ``adata.X`` over the input's genes).
Back-transforms alone move each cell's total (MAGIC squared back returns a fraction of the library,
ALRA several times it), so without one shared rule the baselines would differ by scale, not by what
they impute. scVI's normalised expression times the library is this rule by construction; for DCA
it is a small correction; for ``none`` it changes nothing. Cells with an empty library stay at 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphimpute.errors import GraphImputeError


def dense_counts(adata) -> np.ndarray:
    """A float64 dense copy of the raw counts ``adata.X`` (cells x genes); ``adata`` is not touched."""
    counts = adata.X.toarray() if sp.issparse(adata.X) else np.array(adata.X)
    counts = counts.astype(np.float64, copy=False)
    if not np.all(np.isfinite(counts)) or counts.min(initial=0.0) < 0:
        raise GraphImputeError("adata.X must hold raw non-negative counts (found negative or non-finite values)")
    return counts


def to_input_library(expected: np.ndarray, library: np.ndarray) -> np.ndarray:
    """Scale each row of ``expected`` (>= 0) to sum to ``library``; float32, non-negative.

    A row that sums to 0 stays 0 (nothing to distribute)."""
    expected = np.clip(np.asarray(expected, dtype=np.float64), 0.0, None)
    totals = expected.sum(axis=1)
    factor = np.divide(library, totals, out=np.zeros_like(totals), where=totals > 0)
    return (expected * factor[:, None]).astype(np.float32)


def output_scale_info(expected: np.ndarray, library: np.ndarray) -> dict[str, float]:
    """Provenance: how far the back-transform alone was from the input library (median over cells)."""
    kept = library > 0
    ratio = expected.sum(axis=1)[kept] / library[kept]
    return {"rescaled_to_input_library": True,
            "library_ratio_before_rescale_median": float(np.median(ratio)) if ratio.size else float("nan")}
