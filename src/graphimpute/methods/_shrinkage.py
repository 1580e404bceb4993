"""Molecular splits and the own-count blend, shared by graphMCV and the shrinkage baselines (numpy
only: the baselines run without torch).

The blend mixes a prior expression profile q_i with the cell's own observed profile x_i / L_i:
x̂_i = L_i ((1 - a) q_i + a x_i / L_i). For overdispersed counts a shrinkage of the cell's own counts
towards a prior mean is close to the Bayes estimate of that cell's own rate, which is what molecular
cross-validation measures; ``a`` is chosen on a molecular split of the input alone (Batson, Royer &
Webber 2019): the held-back molecules score each weight, given the rest.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphimpute.errors import GraphImputeError

OWN_WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
# the shrinkage floors' one parameter: the share of each count's molecules held back to choose the weight
FLOOR_DEFAULTS = {"validation_fraction": 0.1}


def integer_counts(adata, name: str) -> sp.csr_matrix:
    """``adata.X`` as a float32 CSR copy; refuses negative, non-finite or non-integer counts (binomial
    thinning needs molecules)."""
    x = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()
    data = x.data
    if data.size and (not np.all(np.isfinite(data)) or data.min() < 0):
        raise GraphImputeError(f"{name}: adata.X must hold raw non-negative counts (found negative or non-finite values)")
    if data.size and not np.all(data == np.round(data)):
        raise GraphImputeError(f"{name}: adata.X holds non-integer values; splitting molecules needs integer counts")
    return x


def thin(counts: sp.csr_matrix, fraction: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binomial thinning: (part ~ Binomial(counts, fraction), counts - part), same sparsity pattern.

    The same distribution as numpy's binomial, drawn cheaper where it can be (graphMCV draws it every
    epoch): at fraction 1/2 a count c < 64 draws c fair bits (the low bits of a random 64-bit word)
    and keeps their number; at other fractions a count of 1 is a uniform below ``fraction``."""
    data = counts.data
    drawn = np.empty(data.size, dtype=np.float32)
    if fraction == 0.5:
        cheap = data < 64
        c = data[cheap].astype(np.uint64)
        words = rng.integers(0, np.iinfo(np.uint64).max, size=c.size, dtype=np.uint64, endpoint=True)
        drawn[cheap] = np.bitwise_count(words & ((np.uint64(1) << c) - np.uint64(1)))
    else:
        cheap = data == 1
        drawn[cheap] = rng.random(int(cheap.sum()), dtype=np.float32) < fraction
    more = ~cheap
    drawn[more] = rng.binomial(data[more].astype(np.int64), fraction)
    part = sp.csr_matrix((drawn, counts.indices, counts.indptr), shape=counts.shape)
    rest = sp.csr_matrix((data - drawn, counts.indices, counts.indptr), shape=counts.shape)
    return part, rest


def library(counts: sp.csr_matrix) -> np.ndarray:
    return np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()


def profiles(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Each cell's counts divided by its library (rows sum to 1; an empty cell stays 0)."""
    lib = library(counts)
    scale = np.divide(1.0, lib, out=np.zeros_like(lib), where=lib > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts, dtype=np.float32)


def choose_own_weight(prior: np.ndarray, own_profile: sp.csr_matrix, val: sp.csr_matrix,
                      grid: np.ndarray = OWN_WEIGHT_GRID, chunk: int = 2048) -> tuple[float, list[float]]:
    """The weight a of the cell's own observed profile, (1 - a) prior + a x/L, that minimises the Poisson
    loss of the held-back molecules ``val`` (expected = profile x the cell's val library), on ``grid``.
    ``prior``: cells x genes profiles (rows sum to 1), or one row shared by every cell. Returns a and
    the loss at every grid value (mean over entries).

    Computed on the non-zeros of ``val``: sum mu = lib_i ((1 - a) sum prior_i + a sum x_i/L_i) per cell,
    and y log mu is 0 where y is."""
    val = sp.csr_matrix(val)
    n, g = val.shape
    prior = np.broadcast_to(prior, (n, g)) if np.ndim(prior) == 1 or prior.shape[0] == 1 else prior
    lib = library(val)
    totals = np.zeros(grid.size)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        r = np.asarray(prior[start:stop], dtype=np.float64)
        o = own_profile[start:stop].toarray().astype(np.float64)
        block = val[start:stop]
        rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
        y = block.data.astype(np.float64)
        lb = lib[start:stop]
        r_nz, o_nz, lb_nz = r[rows, block.indices], o[rows, block.indices], lb[rows]
        r_sum, o_sum = (r.sum(axis=1) * lb).sum(), (o.sum(axis=1) * lb).sum()
        for k, a in enumerate(grid):
            mu = ((1 - a) * r_nz + a * o_nz) * lb_nz
            totals[k] += (1 - a) * r_sum + a * o_sum - float((y * np.log(mu + 1e-8)).sum())
    losses = totals / (n * g)
    return float(grid[int(np.argmin(losses))]), [float(v) for v in losses]


def blend(prior: np.ndarray, counts: sp.csr_matrix, own_weight: float, *, inplace: bool = False) -> np.ndarray:
    """L_i ((1 - a) prior_i + a x_i / L_i): dense float32 expected counts (``prior``: cells x genes or one
    shared row; the sparse own profile is added in row chunks, no dense copy of it). A cell with an
    empty library gets 0. ``inplace``: write into ``prior`` (a cells x genes float32 array), saving a
    copy of that size."""
    n, g = counts.shape
    out = prior if inplace else np.array(np.broadcast_to(prior, (n, g)), dtype=np.float32)
    out *= 1 - own_weight
    if own_weight > 0:
        own = profiles(counts)
        for start in range(0, n, 4096):
            block = own[start:start + 4096]
            rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr)) + start
            out[rows, block.indices] += own_weight * block.data
    out *= library(counts)[:, None].astype(np.float32)
    return out


def shrinkage(name: str, adata, prior_of, params, ctx):
    """A shrinkage baseline: ``prior_of(counts)`` (rows sum to 1) blended with the cell's own profile at
    the weight chosen on a molecular split of the input (``validation_fraction`` held back). Returns
    (dense expected counts, provenance)."""
    counts = integer_counts(adata, name)
    val, rest = thin(counts, params["validation_fraction"], ctx.generator(name))
    weight, losses = choose_own_weight(prior_of(rest), profiles(rest), val)
    info = {"own_weight": weight, "own_weight_grid": [float(a) for a in OWN_WEIGHT_GRID],
            "own_weight_val_poisson": losses, "validation_molecules": float(val.sum())}
    return blend(prior_of(counts), counts, weight), info
