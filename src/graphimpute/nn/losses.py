"""Count likelihoods shared by every model: negative binomial and zero-inflated negative binomial.

Parameterisation (keyword-only, so mean, dispersion and dropout cannot be swapped):
- ``mu``: mean (> 0), on the same scale as ``x`` (multiply by the size factor first);
- ``theta``: inverse dispersion (> 0); variance = mu + mu² / theta;
- ``pi_logits``: logit of the zero-inflation probability (π = sigmoid(pi_logits)).

Everything is computed in log-space with ``softplus``/``logsumexp`` so that large counts, tiny means
and π near 0 or 1 stay finite, and no term is rounded: gradients reach mu, theta and pi.
Both return the element-wise negative log-likelihood; reduce it yourself (``.mean()``/``.sum()``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nb_log_prob(x: Tensor, *, mu: Tensor, theta: Tensor, eps: float = 1e-8) -> Tensor:
    """log NB(x; mu, theta), element-wise.

    θ·log(θ/(θ+μ)) is computed as -θ·log1p(μ/θ): the difference of two logs cancels in float32 once
    θ ≫ μ (at θ = 1e6, μ = 0.01 it returned 0 instead of -0.01). In float32 the lgamma difference
    still loses about θ·log(θ)·1e-7 nats, so values are exact to ~1e-3 for θ up to 1e4 (use float64
    nearer the Poisson limit); gradients are unaffected."""
    return (
        -theta * torch.log1p(mu / (theta + eps))
        + x * (torch.log(mu + eps) - torch.log(theta + mu + eps))
        + (torch.lgamma(x + theta) - torch.lgamma(theta))  # grouped: each alone is huge for large θ
        - torch.lgamma(x + 1)
    )


def nb_nll(x: Tensor, *, mu: Tensor, theta: Tensor, eps: float = 1e-8) -> Tensor:
    """Negative binomial negative log-likelihood, element-wise."""
    return -nb_log_prob(x, mu=mu, theta=theta, eps=eps)


def zinb_nll(x: Tensor, *, mu: Tensor, theta: Tensor, pi_logits: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero-inflated NB negative log-likelihood, element-wise.

    P(x=0) = π + (1-π)·NB(0), P(x>0) = (1-π)·NB(x), with log π = -softplus(-l) and
    log(1-π) = -softplus(l) for l = pi_logits."""
    log_nb = nb_log_prob(x, mu=mu, theta=theta, eps=eps)
    log_pi = -F.softplus(-pi_logits)
    log_one_minus_pi = -F.softplus(pi_logits)
    log_zero = torch.logaddexp(log_pi, log_one_minus_pi + log_nb)
    log_nonzero = log_one_minus_pi + log_nb
    return -torch.where(x < eps, log_zero, log_nonzero)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the entries where ``mask`` is true (0 when none is)."""
    mask = mask.to(pred.dtype)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
