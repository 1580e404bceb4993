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



def neighbour_average(counts, graph: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """(dense neighbour average, degree): each cell's mean of its neighbours' counts on ``graph``, each
    divided by its size factor (library / median library, so that deep cells do not dominate), the cell
    itself left out (its masked zeros would pull the average down). A cell with no neighbour keeps its
    counts."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    library = np.asarray(counts.sum(axis=1)).ravel()
    factors = library / np.median(library[library > 0]) if (library > 0).any() else np.ones_like(library)
    graph = sp.csr_matrix(graph, dtype=np.float64)
    graph.setdiag(0)
    graph.eliminate_zeros()
    degree = np.asarray(graph.sum(axis=1)).ravel()
    average = sp.diags(np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)) @ graph
    expected = (average @ sp.diags(1.0 / np.where(factors > 0, factors, 1.0)) @ counts).toarray()
    lonely = degree == 0
    expected[lonely] = counts[lonely].toarray()
    return expected, degree


def row_profiles(expected: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (a row of zeros stays 0)."""
    totals = expected.sum(axis=1, keepdims=True)
    return np.divide(expected, totals, out=np.zeros_like(expected), where=totals > 0)


def gene_profile(counts) -> np.ndarray:
    """The cell-agnostic profile p_g: the mean over cells with a library of each cell's share of gene g
    (so deep cells do not dominate), renormalised to sum to 1; zeros when no cell has a library."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    library = np.asarray(counts.sum(axis=1)).ravel()
    expressed = library > 0
    shares = sp.diags(np.divide(1.0, library, out=np.zeros_like(library), where=expressed)) @ counts
    profile = np.asarray(shares.sum(axis=0)).ravel() / max(int(expressed.sum()), 1)
    return profile / profile.sum() if profile.sum() > 0 else profile
