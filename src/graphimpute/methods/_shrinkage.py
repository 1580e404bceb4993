"""Molecular splits and the own-count blend, shared by graphMCV and the shrinkage baselines (numpy
only: the baselines run without torch).

The blend mixes a prior expression profile q_i with the cell's own observed profile x_i / L_i:
x̂_i = L_i ((1 - a) q_i + a x_i / L_i). For overdispersed counts a shrinkage of the cell's own counts
towards a prior mean is close to the Bayes estimate of that cell's own rate, which is what molecular
cross-validation measures; ``a`` is chosen on a molecular split of the input alone (Batson, Royer &
Webber 2019): the held-back molecules score each weight, given the rest.
"""

from __future__ import annotations

import functools

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


def prior_error(prior: np.ndarray, val: sp.csr_matrix, *, depth_ratio: np.ndarray, chunk: int = 2048,
                ) -> tuple[float, float]:
    """How far the profile ``prior`` (rows sum to 1, from the input without ``val``) is from each entry's
    own rate, measured on the held-back molecules ``val`` (which it never saw): a squared relative error
    per entry of c0 + c / μ (μ = prior x the cell's library at the depth it is used at; c0 the spread
    of the rates around the prior, c / μ the noise of an estimate from μ molecules). Returns (c0, c).

    With m = prior x the cell's val library and val ~ Poisson(λ_val), e = (val - m)² - val has mean
    (λ_val - m)², so E[e] = c0 m² + c r m (r = ``depth_ratio``: the cell's val library / the library the
    prior is used at). Weighted least squares over every entry (weights 1 / Var(e) under Poisson,
    1 / (m + 2m²)), both terms ≥ 0. Pooled over genes because it has to be: at 10% of the molecules
    one gene's error is far below its Poisson noise (per-gene fits were mostly 0 on simulations)."""
    val = sp.csr_matrix(val)
    n = val.shape[0]
    lib = library(val)
    xtx, xte = np.zeros((2, 2)), np.zeros(2)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = np.asarray(prior[start:stop], dtype=np.float64) * lib[start:stop, None]
        y = val[start:stop].toarray()
        e = (y - m) ** 2 - y
        w = 1.0 / (m + 2 * m**2 + 1e-12)
        features = (m**2, m * depth_ratio[start:stop, None])
        for a, fa in enumerate(features):
            xte[a] += (w * fa * e).sum()
            for b, fb in enumerate(features):
                xtx[a, b] += (w * fa * fb).sum()
    return _non_negative_two(xtx, xte)


def _non_negative_two(xtx: np.ndarray, xte: np.ndarray) -> tuple[float, float]:
    """argmin ||X c - e||² over c ≥ 0 for two coefficients, from the normal equations: the free
    solution if both are ≥ 0, else the best fit with one of them at 0."""
    free = np.linalg.lstsq(xtx, xte, rcond=None)[0]
    if (free >= 0).all():
        return float(free[0]), float(free[1])
    candidates = [(max(xte[0] / xtx[0, 0], 0.0), 0.0) if xtx[0, 0] > 0 else (0.0, 0.0),
                  (0.0, max(xte[1] / xtx[1, 1], 0.0)) if xtx[1, 1] > 0 else (0.0, 0.0)]
    def residual(c):  # ||X c - e||² up to a constant
        c = np.asarray(c)
        return float(c @ xtx @ c - 2 * c @ xte)
    best = min(candidates, key=residual)
    return float(best[0]), float(best[1])


# the smallest prior shape ``rate_interval`` uses: below ~0.3 a Gamma prior puts nearly all of its mass
# within a sliver of its mean above 0, and the noise term c / μ of a low-count entry drove k there; with
# the floor the coverage in the lowest rate quintile went from 0.51 to 0.94 at θ = 1 and 0.27 to 0.78 with
# dropout (bench/results/graphmcv_interval.md)
MIN_PRIOR_SHAPE = 0.3
# log10 of the Gamma(s, 1) shapes at which ``gamma_quantile`` tabulates the quantiles
_SHAPES = np.linspace(-8.0, 8.0, 1601)


@functools.lru_cache(maxsize=8)
def _log_quantiles(tail: float) -> np.ndarray:
    """log of the exact ``tail`` quantiles of Gamma(10**_SHAPES, 1): computed once per tail, not per chunk."""
    from scipy.special import gammaincinv

    return np.log(np.maximum(gammaincinv(10.0**_SHAPES, tail), 1e-300))


def gamma_quantile(shape: np.ndarray, tail: float) -> np.ndarray:
    """The ``tail`` quantile of Gamma(shape, 1), interpolated (log shape, log quantile) in a table of
    exact values: the same to ~1e-4 relative, at the cost of an interpolation per entry instead of an
    inverse incomplete gamma function (20M of them at 10,000 cells x 2,000 genes)."""
    table = _log_quantiles(float(tail))
    log_shape = np.log10(np.clip(shape, 10.0**_SHAPES[0], 10.0**_SHAPES[-1]))
    return np.exp(np.interp(log_shape, _SHAPES, table)).astype(np.float32)


def rate_interval(prior_mean: np.ndarray, counts: sp.csr_matrix, spread_error: float, noise_error: float,
                  level: float, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` interval of each entry's rate: its posterior given the count x and a Gamma
    prior of mean μ (``prior_mean``, dense cells x genes expected counts) and squared relative error
    v = c0 + c / μ (``prior_error``), i.e. shape k = 1/v (at least ``MIN_PRIOR_SHAPE``) and rate k/μ;
    the posterior is Gamma(k + x, rate k/μ + 1). Dense float32 (lower, upper); an entry with μ = 0 gets [0, 0]."""
    counts = sp.csr_matrix(counts)
    n, g = counts.shape
    lower, upper = np.empty((n, g), np.float32), np.empty((n, g), np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        mu = np.maximum(np.asarray(prior_mean[start:stop], dtype=np.float64), 1e-12)
        k = np.maximum(1.0 / (spread_error + noise_error / mu + 1e-12), MIN_PRIOR_SHAPE)
        rate = k / mu + 1.0
        shape = k + counts[start:stop].toarray()
        for out, tail in ((lower, (1 - level) / 2), (upper, (1 + level) / 2)):
            out[start:stop] = gamma_quantile(shape, tail) / rate
    lower[prior_mean <= 0] = 0.0
    upper[prior_mean <= 0] = 0.0
    return lower, upper
