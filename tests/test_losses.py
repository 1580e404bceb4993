"""NB / ZINB likelihoods against scipy, their gradients against finite differences, and their
behaviour at the extremes a model reaches in training (zeros, huge counts, tiny means, π near 0 or 1)."""

import itertools

import mpmath
import numpy as np
import pytest
import torch
from scipy import special, stats

from graphimpute.nn.losses import masked_mse, nb_nll, zinb_nll

COUNTS = [0, 1, 3, 10, 100, 10_000]
MEANS = [1e-4, 0.01, 0.5, 1.0, 10.0, 1e3, 1e5]
THETAS = [1e-3, 0.1, 1.0, 10.0, 1e4]
PI_LOGITS = [-30.0, -5.0, 0.0, 5.0, 30.0]  # π from 1e-13 to 1 - 1e-13


def grid(*axes):
    return [np.array(a, dtype=np.float64) for a in zip(*itertools.product(*axes))]


def scipy_nb_nll(x, mu, theta):
    return -stats.nbinom.logpmf(x, theta, theta / (theta + mu))


def scipy_zinb_nll(x, mu, theta, logits):
    """The ZINB mixture written out by hand: P(0) = π + (1-π)·NB(0), P(x>0) = (1-π)·NB(x)."""
    log_pi, log_one_minus_pi = special.log_expit(logits), special.log_expit(-logits)
    log_nb = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    return -np.where(x == 0, np.logaddexp(log_pi, log_one_minus_pi + log_nb), log_one_minus_pi + log_nb)


def t(a, dtype=torch.float64, grad=False):
    return torch.tensor(a, dtype=dtype, requires_grad=grad)


def rel_err(value, ref):
    return np.abs(value - ref) / np.maximum(1.0, np.abs(ref))


def test_nb_matches_scipy_over_grid():
    x, mu, theta = grid(COUNTS, MEANS, THETAS)
    ours = nb_nll(t(x), mu=t(mu), theta=t(theta)).numpy()
    assert rel_err(ours, scipy_nb_nll(x, mu, theta)).max() < 1e-4  # eps=1e-8 inside the logs


def mp_nb_nll(x, mu, theta):
    """50-digit reference: scipy's own rounding of p = θ/(θ+μ) dominates when μ ≪ θ."""
    mpmath.mp.dps = 50
    out = []
    for xi, mi, ti in zip(x, mu, theta):
        xi, mi, ti = mpmath.mpf(float(xi)), mpmath.mpf(float(mi)), mpmath.mpf(float(ti))
        out.append(-(mpmath.loggamma(xi + ti) - mpmath.loggamma(ti) - mpmath.loggamma(xi + 1)
                     + ti * mpmath.log(ti / (ti + mi)) + xi * mpmath.log(mi / (ti + mi))))
    return np.array(out, dtype=np.float64)


def test_nb_tiny_means_exact_without_eps():
    x, mu, theta = grid(COUNTS, [1e-10, 1e-8, 1e-6], THETAS)
    ours = nb_nll(t(x), mu=t(mu), theta=t(theta), eps=0.0).numpy()
    assert rel_err(ours, mp_nb_nll(x, mu, theta)).max() < 1e-9


def test_nb_float32_accurate_where_models_live():
    x, mu, theta = grid(COUNTS, MEANS, THETAS)
    f32 = lambda a: t(a, torch.float32)  # noqa: E731
    ours = nb_nll(f32(x), mu=f32(mu), theta=f32(theta)).double().numpy()
    assert rel_err(ours, scipy_nb_nll(x, mu, theta)).max() < 2e-3


def test_nb_float32_no_cancellation_for_large_theta():
    # θ·log(θ/(θ+μ)) written as a difference of logs returned 0 here; the NLL of a zero is μ for θ → ∞
    value = nb_nll(t([0.0], torch.float32), mu=t([0.01], torch.float32), theta=t([1e6], torch.float32))
    assert value.item() == pytest.approx(0.01, rel=1e-4)


def test_zinb_matches_hand_mixture_over_grid():
    x, mu, theta, logits = grid([0, 1, 7, 1000], [1e-3, 0.5, 10.0, 1e4], [0.01, 1.0, 100.0], PI_LOGITS)
    ours = zinb_nll(t(x), mu=t(mu), theta=t(theta), pi_logits=t(logits)).numpy()
    assert rel_err(ours, scipy_zinb_nll(x, mu, theta, logits)).max() < 1e-4


def test_zinb_limits():
    x, mu, theta = grid([0, 2, 50], [0.1, 5.0], [0.5, 20.0])
    # π → 0: ZINB is NB; π → 1: a zero costs nothing and a non-zero is (almost) impossible
    nb = nb_nll(t(x), mu=t(mu), theta=t(theta))
    no_inflation = zinb_nll(t(x), mu=t(mu), theta=t(theta), pi_logits=t(np.full_like(x, -40.0)))
    torch.testing.assert_close(no_inflation, nb, rtol=1e-12, atol=1e-12)
    full = zinb_nll(t(x), mu=t(mu), theta=t(theta), pi_logits=t(np.full_like(x, 40.0))).numpy()
    assert np.all(np.abs(full[x == 0]) < 1e-12)
    assert np.all(full[x > 0] > 39.0)


def test_keyword_only_parameters_cannot_be_swapped():
    x = t([1.0])
    with pytest.raises(TypeError):
        nb_nll(x, t([1.0]), t([2.0]))
    with pytest.raises(TypeError):
        zinb_nll(x, t([1.0]), t([2.0]), t([0.0]))


@pytest.mark.parametrize("counts", [[0.0, 0.0, 0.0], [1.0, 4.0, 9.0], [250.0, 3000.0, 0.0]])
def test_nb_gradients_match_finite_differences(counts):
    x = t(counts)
    mu = t([0.05, 2.0, 40.0], grad=True)
    theta = t([0.2, 3.0, 500.0], grad=True)
    assert torch.autograd.gradcheck(lambda m, th: nb_nll(x, mu=m, theta=th), (mu, theta))


@pytest.mark.parametrize("counts", [[0.0, 0.0, 0.0, 0.0], [0.0, 2.0, 15.0, 800.0]])
def test_zinb_gradients_match_finite_differences(counts):
    x = t(counts)
    mu = t([0.01, 1.5, 12.0, 300.0], grad=True)
    theta = t([0.05, 1.0, 8.0, 1e3], grad=True)
    logits = t([-12.0, -1.0, 2.0, 12.0], grad=True)  # π near 0, in between, near 1
    fn = lambda m, th, pl: zinb_nll(x, mu=m, theta=th, pi_logits=pl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (mu, theta, logits))


def test_zinb_gradient_reaches_every_parameter():
    # the scVGAE bug: a rounded ZINB term gave zero gradient; every argument must receive signal
    x = t([0.0, 3.0])
    mu, theta, logits = t([1.0, 1.0], grad=True), t([2.0, 2.0], grad=True), t([0.0, 0.0], grad=True)
    zinb_nll(x, mu=mu, theta=theta, pi_logits=logits).sum().backward()
    for p in (mu, theta, logits):
        assert torch.all(p.grad != 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients_at_extremes(dtype):
    x, mu, theta, logits = grid([0, 1, 1e5], [0.0, 1e-12, 1e8], [1e-8, 1e8], [-100.0, 100.0])
    mu, theta, logits = t(mu, dtype, True), t(theta, dtype, True), t(logits, dtype, True)
    nb = nb_nll(t(x, dtype), mu=mu, theta=theta)
    zinb = zinb_nll(t(x, dtype), mu=mu, theta=theta, pi_logits=logits)
    assert torch.isfinite(nb).all() and torch.isfinite(zinb).all()
    (nb.sum() + zinb.sum()).backward()
    for p in (mu, theta, logits):
        assert torch.isfinite(p.grad).all()


def test_masked_mse():
    pred, target = t([1.0, 2.0, 3.0, 4.0]), t([0.0, 0.0, 5.0, 4.0])
    mask = torch.tensor([True, False, True, False])
    assert masked_mse(pred, target, mask).item() == pytest.approx((1 + 4) / 2)
    assert masked_mse(pred, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0
