"""cnnImpute's dropout probability: scImpute's gamma-normal mixture, fitted by EM for every gene of a
cell cluster at once (arrays genes x cells; a Python loop runs only over chunks of genes).

On x = log10(CPM + 1.01) each gene follows  λ·Gamma(x; α, β) + (1−λ)·Normal(x; μ, σ)  (cnnImpute eq. 1,
β a rate); the dropout probability of an entry is the gamma component's posterior (eq. 2). The EM is
scImpute's: start at λ = share of values at the floor log10(1.01) (0.01 when none), α = 0.5, β = 1,
μ/σ = mean/sd of the values above the floor; E-step weights; M-step λ, μ, σ in closed form and α, β by
solving log α − ψ(α) = log(mean_w x) − mean_w log x (Newton, started at the Choi-Wette approximation,
α capped at 20); stop when the squared change of the log10-likelihood is at most 0.5, or after 100
iterations. Genes scImpute cannot fit (all values at the floor, fewer than two distinct values above
it, or a fit that is not finite) and genes its ``find_va_genes`` rejects get probability 0.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln, polygamma

FLOOR = float(np.log10(1.01))  # log10(0 CPM + 1.01): where every zero count lands
MAX_ALPHA = 20.0  # scImpute's cap on the gamma shape
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def log10_cpm(counts: np.ndarray) -> np.ndarray:
    """log10(CPM + 1.01) of a cells x genes count matrix (scImpute's scale), float64."""
    library = counts.sum(axis=1, keepdims=True, dtype=np.float64)
    library[library == 0] = 1.0
    return np.log10(counts * (1e6 / library) + 1.01)


def fit_mixture(x: np.ndarray, *, max_iter: int = 100, tol: float = 0.5) -> dict[str, np.ndarray]:
    """EM for the gamma-normal mixture of every row of ``x`` (genes x cells, log10(CPM + 1.01)).

    Returns arrays over genes: ``lam``, ``alpha``, ``beta``, ``mu``, ``sigma``, ``n_iter`` and ``fitted``
    (False where scImpute returns NA; the other arrays are then meaningless)."""
    x = np.asarray(x, dtype=np.float64)
    log_x = np.log(x)
    at_floor = x <= FLOOR + 1e-12
    n_above = (~at_floor).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = at_floor.mean(axis=1)
        lam[lam == 0] = 0.01
        mu = np.where(at_floor, 0.0, x).sum(axis=1) / n_above
        sigma = np.sqrt(np.where(at_floor, 0.0, (x - mu[:, None]) ** 2).sum(axis=1) / (n_above - 1))
    g = x.shape[0]
    params = {"lam": lam, "alpha": np.full(g, 0.5), "beta": np.ones(g), "mu": mu, "sigma": sigma}
    active = (n_above >= 2) & (sigma > 0)
    fitted = active.copy()
    n_iter = np.zeros(g, dtype=np.int64)
    loglik_old = np.zeros(g)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xs, lxs = x[idx], log_x[idx]
        p = {k: v[idx] for k, v in params.items()}
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            w = gamma_posterior(xs, lxs, p)
            s, t = w.sum(axis=1), (w * xs).sum(axis=1)
            rest = 1.0 - w
            p["lam"] = s / xs.shape[1]
            p["mu"] = (rest * xs).sum(axis=1) / rest.sum(axis=1)
            p["sigma"] = np.sqrt((rest * (xs - p["mu"][:, None]) ** 2).sum(axis=1) / rest.sum(axis=1))
            p["alpha"] = _solve_shape(np.log(t / s) - (w * lxs).sum(axis=1) / s)
            p["beta"] = p["alpha"] * s / t
            loglik = _log_mixture(xs, lxs, p).sum(axis=1) / np.log(10)
        for k in params:
            params[k][idx] = p[k]
        n_iter[idx] += 1
        ok = np.isfinite(loglik) & np.all([np.isfinite(v) for v in p.values()], axis=0) & (p["sigma"] > 0)
        fitted[idx[~ok]] = False
        done = ~ok | ((loglik - loglik_old[idx]) ** 2 <= tol)
        loglik_old[idx] = loglik
        active[idx[done]] = False
    return {**params, "n_iter": n_iter, "fitted": fitted}


def dropout_probability(x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Gamma posterior of every entry of ``x`` (genes x cells) under ``params`` from ``fit_mixture``;
    0 for genes that were not fitted or that scImpute's ``find_va_genes`` rejects (float32)."""
    x = np.asarray(x, dtype=np.float64)
    valid = valid_genes(params)
    out = np.zeros(x.shape, dtype=np.float32)
    if valid.any():
        p = {k: params[k][valid] for k in ("lam", "alpha", "beta", "mu", "sigma")}
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out[valid] = gamma_posterior(x[valid], np.log(x[valid]), p)
    return out


def valid_genes(params: dict[str, np.ndarray]) -> np.ndarray:
    """Genes whose fit scImpute uses: fitted, μ > log10(2.01), and not (μ ≤ 1 with the gamma density at
    μ + 1 at least the normal's), i.e. genes whose expressed values sit clearly above the floor."""
    mu, fitted = params["mu"], params["fitted"].copy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        at = mu + 1.0
        log_gamma = _gamma_logpdf(at, np.log(at), params["alpha"], params["beta"])
        log_normal = _normal_logpdf(at, mu, params["sigma"])
        rejected = (mu <= np.log10(2.01)) | ((log_gamma >= log_normal) & (mu <= 1.0))
    return fitted & ~np.nan_to_num(rejected, nan=True)


def gamma_posterior(x: np.ndarray, log_x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """P(gamma component | x) per entry, computed in log space (0 where the gamma density underflows)."""
    log_g = np.log(p["lam"])[:, None] + _gamma_logpdf(x, log_x, p["alpha"][:, None], p["beta"][:, None])
    log_n = np.log1p(-p["lam"])[:, None] + _normal_logpdf(x, p["mu"][:, None], p["sigma"][:, None])
    return np.exp(log_g - np.logaddexp(log_g, log_n))


def _log_mixture(x, log_x, p):
    log_g = np.log(p["lam"])[:, None] + _gamma_logpdf(x, log_x, p["alpha"][:, None], p["beta"][:, None])
    log_n = np.log1p(-p["lam"])[:, None] + _normal_logpdf(x, p["mu"][:, None], p["sigma"][:, None])
    return np.logaddexp(log_g, log_n)


def _gamma_logpdf(x, log_x, alpha, beta):
    return alpha * np.log(beta) - gammaln(alpha) + (alpha - 1.0) * log_x - beta * x


def _normal_logpdf(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - _LOG_SQRT_2PI


def _solve_shape(v: np.ndarray, *, n_steps: int = 50) -> np.ndarray:
    """α with log α − ψ(α) = v for every entry of v (the weighted gamma MLE); scImpute's rules: α = 20
    when v ≤ 0 or when the Choi-Wette start is already ≥ 20. f(α) is convex and decreasing, so Newton
    from the start converges; a step that leaves α > 0 is halved instead."""
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = (3.0 - v + np.sqrt((v - 3.0) ** 2 + 24.0 * v)) / (12.0 * v)
        cap = (v <= 0) | (alpha >= MAX_ALPHA)
        alpha = np.where(cap, MAX_ALPHA, alpha)
        for _ in range(n_steps):
            f = np.log(alpha) - digamma(alpha) - v
            step = f / (1.0 / alpha - polygamma(1, alpha))
            new = alpha - step
            new = np.where(new > 0, new, alpha / 2.0)
            new = np.where(cap, MAX_ALPHA, new)
            if np.all((np.abs(new - alpha) <= 1e-10 * alpha) | ~np.isfinite(new)):
                alpha = new
                break
            alpha = new
    return np.minimum(alpha, MAX_ALPHA)
