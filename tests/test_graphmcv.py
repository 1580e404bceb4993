"""graphMCV (methods/graphmcv.py), the project's own method: its contract, its molecular split, its graph,
its batching, its ablation switches and its parameter checks. Tiny epochs on small data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphimpute import methods
from graphimpute.errors import GraphImputeError
from graphimpute.methods import RunContext
from graphimpute.methods._impl import graphmcv

from conftest import synthetic_counts

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"max_epochs": 3, "hidden": 16, "latent": 8, "n_pcs": 10}


def run(adata, seed=0, **overrides):
    method = methods.get("graphmcv")
    return method.impute(adata, methods.resolve_params(method, {**FAST, **overrides}), RunContext(seed=seed, progress=False))


@pytest.fixture(scope="module")
def small():
    return synthetic_counts(n_cells=150, n_genes=60, seed=3)


def test_output_is_expected_counts_on_the_input_scale(small):
    before = small.X.copy()
    result = run(small)
    out = result.imputed
    assert out.shape == small.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0
    library = np.asarray(small.X.sum(axis=1)).ravel()
    np.testing.assert_allclose(out.sum(axis=1), library, rtol=1e-4)  # rho sums to 1, times the library
    assert (small.X != before).nnz == 0  # raw counts untouched
    assert result.history["n_epochs"] == 3
    assert 0.0 <= result.info["own_weight"] <= 1.0


def test_same_seed_same_result_other_seed_differs(small):
    a, b, c = run(small, seed=1), run(small, seed=1), run(small, seed=2)
    np.testing.assert_array_equal(a.imputed, b.imputed)
    assert not np.array_equal(a.imputed, c.imputed)


def test_empty_cell_gets_zero(small):
    x = small.X.toarray()
    x[5] = 0
    adata = small.copy()
    adata.X = sp.csr_matrix(x)
    out = run(adata).imputed
    assert np.all(out[5] == 0)


def test_thinning_splits_molecules_exactly():
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(3.0, (50, 40)).astype(np.float32))
    part, rest = graphmcv.thin(counts, 0.3, rng)
    assert (part + rest != counts).nnz == 0
    assert part.data.min() >= 0 and rest.data.min() >= 0
    assert abs(part.sum() / counts.sum() - 0.3) < 0.03


def test_graph_is_built_from_the_non_held_back_molecules_only(small, monkeypatch):
    """The graph builder gets ``rest`` (= X minus the held-back molecules), never X itself."""
    seen = {}
    real_thin, real_build = graphmcv.thin, graphmcv.build_graph

    def spy_thin(counts, fraction, rng):
        part, rest = real_thin(counts, fraction, rng)
        seen.setdefault("val", part)  # the first call draws the validation split
        seen.setdefault("rest", rest)
        return part, rest

    def spy_build(rest, **kwargs):
        seen["graph_input"] = rest
        return real_build(rest, **kwargs)

    monkeypatch.setattr(graphmcv, "thin", spy_thin)
    monkeypatch.setattr(graphmcv, "build_graph", spy_build)
    run(small)
    assert seen["val"].sum() > 0
    assert (seen["graph_input"] != seen["rest"]).nnz == 0
    assert (seen["graph_input"] + seen["val"] != sp.csr_matrix(small.X)).nnz == 0


def test_neighbour_features_are_the_mean_over_graph_neighbours():
    graph = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=np.float32))
    values = sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]], dtype=np.float32))
    one = graphmcv.propagate(graphmcv.mean_operator(graph), values, 1)
    np.testing.assert_allclose(one, [[4.0, 3.0], [1.0, 0.0], [1.0, 0.0]])
    two = graphmcv.propagate(graphmcv.mean_operator(graph), values, 2, chunk=2)  # chunks: same answer
    np.testing.assert_allclose(two[:, 2:], [[1.0, 0.0], [4.0, 3.0], [4.0, 3.0]])


def test_batched_and_full_batch_predictions_agree(small):
    counts = graphmcv.integer_counts(small, "graphmcv")
    graph = graphmcv.build_graph(counts, n_neighbors=5, n_pcs=10, seed=0)
    own = graphmcv.log_cp10k(counts)
    neighbour = graphmcv.propagate(graphmcv.mean_operator(graph), own, 1)
    torch.manual_seed(0)
    module = graphmcv.GraphMCV(small.n_vars, hidden=16, latent=8, neighbour_inputs=1,
                               log_profile=np.full(small.n_vars, -np.log(small.n_vars)))
    device = torch.device("cpu")
    full = graphmcv.predict_profiles(module, own, neighbour, batch_size=small.n_obs, device=device)
    batched = graphmcv.predict_profiles(module, own, neighbour, batch_size=7, device=device)
    np.testing.assert_allclose(batched, full, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, rtol=1e-5)


def test_ablation_switches_change_the_model(small, monkeypatch):
    built = []
    real = graphmcv.build_graph
    monkeypatch.setattr(graphmcv, "build_graph", lambda rest, **kw: built.append(1) or real(rest, **kw))
    no_graph = run(small, graph=False)
    assert not built and "graph_edges" not in no_graph.info
    knn = run(small, architecture="knn_average")
    assert built and 0 < knn.info["knn_gene_mean_weight"] < 1
    reproduce = run(small, molecular_split=False, calibrate=False)
    assert reproduce.info["own_weight"] == 0.0
    default = run(small)
    for other in (no_graph, knn, reproduce):
        assert not np.allclose(other.imputed, default.imputed)
    two_hops = run(small, hops=2)
    assert two_hops.info["hops"] == 2 and not np.allclose(two_hops.imputed, default.imputed)


def test_calibration_picks_the_weight_that_predicts_the_held_back_molecules():
    rng = np.random.default_rng(0)
    truth = rng.gamma(1.0, 1.0, (80, 30))
    truth /= truth.sum(axis=1, keepdims=True)
    observed = sp.csr_matrix(rng.poisson(truth * 2000).astype(np.float32))
    val = sp.csr_matrix(rng.poisson(truth * 200).astype(np.float32))
    flat = np.full(truth.shape, 1 / 30, np.float32)
    weight, losses = graphmcv.choose_own_weight(flat, graphmcv.profiles(observed), val)
    assert weight >= 0.8  # the observed profile is far better than a flat one here
    weight, _ = graphmcv.choose_own_weight(truth.astype(np.float32), graphmcv.profiles(observed), val)
    assert weight <= 0.2  # and adds little to the truth
    assert len(losses) == graphmcv.OWN_WEIGHT_GRID.size


@pytest.mark.parametrize("override, message", [
    ({"likelihood": "zinb"}, "likelihood must be one of"),
    ({"architecture": "gat"}, "architecture must be one of"),
    ({"architecture": "knn_average", "graph": False}, "needs the graph"),
])
def test_bad_string_params_are_refused(small, override, message):
    with pytest.raises(GraphImputeError, match=message):
        run(small, **override)


@pytest.mark.parametrize("override", [{"hops": 3}, {"split_fraction": 1.0}, {"validation_fraction": 0.0},
                                      {"max_epochs": 0}, {"hidden": 0}])
def test_bad_numeric_params_are_refused(override):
    with pytest.raises(GraphImputeError, match="must be"):
        methods.resolve_params(methods.get("graphmcv"), override)


def test_non_integer_counts_are_refused(small):
    adata = small.copy()
    adata.X = adata.X * 0.5
    with pytest.raises(GraphImputeError, match="non-integer"):
        run(adata)


def test_memory_guard_refuses_before_work(small):
    with pytest.raises(GraphImputeError, match="max_memory_gb"):
        run(small, max_memory_gb=0.01)


def test_thinning_at_one_half_splits_molecules_exactly():
    """Fraction 1/2 draws bits for counts below 64 and numpy's binomial above: both exact splits."""
    rng = np.random.default_rng(1)
    counts = sp.csr_matrix(rng.poisson(rng.gamma(0.5, 6.0, (200, 30))).astype(np.float32))
    counts.data[:3] = [64.0, 100.0, 1000.0]
    draws = np.stack([graphmcv.thin(counts, 0.5, rng)[0].data for _ in range(300)])
    part, rest = graphmcv.thin(counts, 0.5, rng)
    assert (part + rest != counts).nnz == 0 and part.data.min() >= 0 and rest.data.min() >= 0
    big = counts.data >= 20
    np.testing.assert_allclose(draws.mean(axis=0)[big] / counts.data[big], 0.5, atol=0.05)
    # Binomial(c, 1/2) variance c/4, pooled over entries of one count value
    ones, fives = counts.data == 1, counts.data == 5
    assert abs(draws[:, ones].var() - 0.25) < 0.01 and abs(draws[:, fives].var() - 1.25) < 0.1


def test_top_components_span_the_leading_principal_axes():
    rng = np.random.default_rng(0)
    x = sp.random(300, 80, density=0.2, random_state=1, dtype=np.float32, format="csr")
    x = x + sp.csr_matrix(np.outer(rng.gamma(1, 1, 300), rng.gamma(1, 1, 80)).astype(np.float32))
    mean = np.asarray(x.mean(axis=0)).ravel()
    dense = x.toarray() - mean
    _, s, vt = np.linalg.svd(dense, full_matrices=False)
    scores, loadings = graphmcv.top_components(sp.csr_matrix(x), 10, seed=0, mean=mean)
    assert loadings.shape == (80, 10) and scores.shape == (300, 10)
    np.testing.assert_allclose(loadings.T @ loadings, np.eye(10), atol=1e-4)
    captured = ((dense @ loadings) ** 2).sum() / (s[:10] ** 2).sum()
    assert captured > 0.99
    assert np.abs(scores - dense @ loadings).max() < 0.05 * np.abs(scores).max()  # scores: x's coordinates
    again = graphmcv.top_components(sp.csr_matrix(x), 10, seed=0, mean=mean)[1]
    np.testing.assert_array_equal(again, loadings)  # deterministic for a seed


def test_fused_poisson_head_matches_the_plain_loss_and_gradient():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    y = sp.csr_matrix(rng.poisson(0.7, (9, 13)).astype(np.float32))
    y[3] = 0  # a cell without target molecules
    y = sp.csr_matrix(y)
    rows = np.repeat(np.arange(9), np.diff(y.indptr))
    target = graphmcv.SparseTarget(torch.as_tensor(rows), torch.as_tensor(y.indices, dtype=torch.int64),
                                   torch.as_tensor(y.data, dtype=torch.float64), (9, 13))
    lib = torch.as_tensor(graphmcv.library(y))
    z = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(13, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(13, dtype=torch.float64, requires_grad=True)
    fused = graphmcv.poisson_head(z, w, b, target, lib)
    plain = graphmcv._nll("poisson", target.dense(), torch.log_softmax(z @ w.T + b, dim=1), lib, None)
    torch.testing.assert_close(fused, plain)
    grads = torch.autograd.grad(fused, (z, w, b))
    expected = torch.autograd.grad(plain, (z, w, b))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_sparse_calibration_equals_the_dense_loss():
    rng = np.random.default_rng(2)
    rho = rng.dirichlet(np.ones(25), 40).astype(np.float32)
    observed = sp.csr_matrix(rng.poisson(3.0, (40, 25)).astype(np.float32))
    val = sp.csr_matrix(rng.poisson(0.5, (40, 25)).astype(np.float32))
    _, losses = graphmcv.choose_own_weight(rho, graphmcv.profiles(observed), val, chunk=16)
    o, y = graphmcv.profiles(observed).toarray().astype(np.float64), val.toarray().astype(np.float64)
    lib = y.sum(axis=1, keepdims=True)
    for a, got in zip(graphmcv.OWN_WEIGHT_GRID, losses):
        mu = ((1 - a) * rho + a * o) * lib
        assert got == pytest.approx(float((mu - y * np.log(mu + 1e-8)).mean()), rel=1e-9)


def test_input_basis_switch(small):
    """input_pcs=0: the unprojected log1p CP10k input (G wide first layer); both run and differ."""
    projected, full = run(small), run(small, input_pcs=0)
    assert projected.info["input_pcs"] == min(100, small.n_vars - 1) and "input_pcs" not in full.info
    assert np.isfinite(full.imputed).all() and not np.allclose(full.imputed, projected.imputed)


def test_a_resumed_run_draws_the_splits_an_uninterrupted_run_draws(small, tmp_path):
    """The molecular splits and the batch order come from graphMCV's own generators: their states are in
    the checkpoint, so a run resumed at epoch 2 ends with the uninterrupted run's output (before, a resumed
    run replayed epoch 1's splits)."""
    method = methods.get("graphmcv")

    def fit(max_epochs, workdir, resume=False):
        params = methods.resolve_params(method, {**FAST, "max_epochs": max_epochs, "patience": 10})
        ctx = RunContext(seed=5, progress=False, workdir=workdir, checkpoint_every=1, resume=resume)
        return method.impute(small, params, ctx).imputed

    full = fit(4, tmp_path / "full")
    fit(2, tmp_path / "cut")
    resumed = fit(4, tmp_path / "cut", resume=True)
    np.testing.assert_array_equal(resumed, full)


def test_its_generator_is_not_the_masks():
    """The benchmark masks with default_rng(seed); a method drawing from the same integer would split
    the molecules with the same random numbers."""
    ctx = RunContext(seed=7)
    assert ctx.generator("graphmcv").random(4).tolist() != np.random.default_rng(7).random(4).tolist()
    assert ctx.generator("graphmcv").random(4).tolist() == RunContext(seed=7).generator("graphmcv").random(4).tolist()
    assert ctx.generator("graphmcv").random(4).tolist() != ctx.generator("shrink_knn").random(4).tolist()


def test_calibration_only_mixes_the_cells_own_counts_into_the_network_output(small):
    """The same training either way (calibration comes after it): the default output is exactly
    (1 - a) x the uncalibrated output + a x the observed counts, and calibrate=false keeps a = 0."""
    default, plain = run(small), run(small, calibrate=False)
    assert plain.info["own_weight"] == 0.0 and "calibration_val_poisson" not in plain.info
    a = default.info["own_weight"]
    assert len(default.info["calibration_val_poisson"]) == graphmcv.OWN_WEIGHT_GRID.size
    expected = (1 - a) * plain.imputed + a * small.X.toarray()
    np.testing.assert_allclose(default.imputed, expected, rtol=1e-4, atol=1e-4)


def test_the_interval_covers_the_simulated_rates_at_its_level():
    """On NB counts (θ = 5) with known rates, the 90% interval holds ~90% of the entries' own rates, at
    zeros and non-zeros alike; without ``interval`` there is no layer (the default)."""
    from graphimpute.simulate import CELL_RATE, simulate

    adata = simulate(n_cells=600, n_genes=150, theta=5.0, dropout_midpoint=float("-inf"), seed=2)
    method = methods.get("graphmcv")
    result = method.impute(adata, methods.resolve_params(method, {"interval": 0.9}), RunContext(seed=0, progress=False))
    lower, upper, rate = result.layers["lower"], result.layers["upper"], adata.layers[CELL_RATE]
    assert lower.shape == upper.shape == adata.shape and (lower <= upper).all() and lower.min() >= 0
    inside = (rate >= lower) & (rate <= upper)
    zero = adata.X.toarray() == 0
    assert 0.85 <= inside.mean() <= 0.95
    assert inside[zero].mean() > 0.8 and inside[~zero].mean() > 0.8
    narrower = method.impute(adata, methods.resolve_params(method, {"interval": 0.5}), RunContext(seed=0, progress=False))
    half = (rate >= narrower.layers["lower"]) & (rate <= narrower.layers["upper"])
    assert 0.4 <= half.mean() <= 0.6  # the level sets the coverage, not only the width
    assert run(adata).layers == {}


def test_the_rate_interval_is_the_gamma_posterior():
    from scipy import stats

    from graphimpute.methods._shrinkage import gamma_quantile, rate_interval

    shapes = np.array([1e-3, 0.05, 0.7, 3.0, 41.5, 2e4])
    np.testing.assert_allclose(gamma_quantile(shapes, 0.95), stats.gamma.ppf(0.95, shapes), rtol=2e-4)
    prior = np.array([[2.0, 0.5]], np.float32)
    counts = sp.csr_matrix(np.array([[5.0, 0.0]], np.float32))
    lower, upper = rate_interval(prior, counts, 0.25, 0.5, 0.9)
    k = 1 / (0.25 + 0.5 / prior[0])  # prior shape; posterior Gamma(k + x, rate k / μ + 1)
    posterior = stats.gamma(k + np.array([5.0, 0.0]), scale=1 / (k / prior[0] + 1))
    np.testing.assert_allclose(lower[0], posterior.ppf(0.05), rtol=1e-3)
    np.testing.assert_allclose(upper[0], posterior.ppf(0.95), rtol=1e-3)
