"""cnnImpute: the dropout model, the density-peak clustering, and the method end to end (small, CPU)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, homogeneity_score, silhouette_score

from graphimpute.errors import DeviceError
from graphimpute.methods import RunContext, get, resolve_params
from graphimpute.methods._cnnimpute_dropout import FLOOR, fit_mixture
from graphimpute.methods._impl.cnnimpute import (cluster_dropout, density_peak_centres, fit_block, gene_blocks,
                                           mean_silhouettes)

FAST = {"max_epochs": 4, "n_targets": 32, "hidden": 128, "tsne_max_iter": 250, "tsne_perplexity": 15.0}


def simulated_counts(*, n_per_group=50, n_groups=3, n_genes=120, dropout=0.3, seed=0):
    """Poisson counts of cell groups with their own gene means; ``dropout`` of the entries of every
    gene zeroed at random. Returns (counts, truth before dropout, group labels)."""
    rng = np.random.default_rng(seed)
    means = rng.lognormal(1.0, 1.0, size=(n_groups, n_genes))
    groups = np.repeat(np.arange(n_groups), n_per_group)
    library = rng.uniform(0.7, 1.3, size=(groups.size, 1))
    truth = rng.poisson(means[groups] * library).astype(np.float32)
    counts = np.where(rng.random(truth.shape) < dropout, 0, truth).astype(np.float32)
    return counts, truth, groups


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One BLAS/OpenMP/torch thread: on a shared 2-core machine two spinning threads run ~10x slower."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_run(one_thread):
    counts, _, _ = simulated_counts()
    adata = ad.AnnData(X=sp.csr_matrix(counts))
    method = get("cnnimpute")
    params = resolve_params(method, FAST)
    result = method.impute(adata, params, RunContext(seed=3, progress=False))
    return adata, counts, params, result


def test_em_recovers_known_mixture_parameters():
    rng = np.random.default_rng(1)
    g, n = 12, 4000
    lam, alpha, beta = rng.uniform(0.2, 0.6, g), rng.uniform(1.5, 4.0, g), rng.uniform(10, 30, g)
    mu, sigma = rng.uniform(2.0, 4.0, g), rng.uniform(0.3, 0.6, g)
    is_gamma = rng.random((g, n)) < lam[:, None]
    x = np.where(is_gamma, rng.gamma(alpha[:, None], 1 / beta[:, None], (g, n)),
                 rng.normal(mu[:, None], sigma[:, None], (g, n)))
    fit = fit_mixture(np.maximum(x, 1e-6), tol=1e-8, max_iter=500)
    assert fit["fitted"].all()
    np.testing.assert_allclose(fit["lam"], is_gamma.mean(1), atol=0.01)
    np.testing.assert_allclose(fit["mu"], mu, atol=0.05)
    np.testing.assert_allclose(fit["sigma"], sigma, rtol=0.1)
    np.testing.assert_allclose(fit["alpha"], alpha, rtol=0.2)
    np.testing.assert_allclose(fit["beta"], beta, rtol=0.2)
    # scImpute's default stop (squared change of the log10-likelihood <= 0.5) lands near the same fit
    quick = fit_mixture(np.maximum(x, 1e-6))
    assert quick["n_iter"].max() < 100
    np.testing.assert_allclose(quick["mu"], fit["mu"], atol=0.02)


def test_em_refuses_genes_scimpute_cannot_fit():
    x = np.full((3, 50), FLOOR)
    x[1, 0] = 2.5  # a single value above the floor: no normal component
    x[2, :10] = np.linspace(2, 3, 10)
    fit = fit_mixture(x)
    assert fit["fitted"].tolist() == [False, False, True]


def test_dropout_probability_separates_planted_dropouts_from_true_zeros():
    rng = np.random.default_rng(2)
    n, g = 200, 60
    group = np.repeat([0, 1], n // 2)
    means = rng.uniform(5, 40, size=g)
    expressed_in_b = np.arange(g) < 40  # genes 40..59 are markers of group 0: truly absent in group 1
    rate = np.where((group[:, None] == 1) & ~expressed_in_b[None, :], 0.0, means[None, :])
    counts = rng.poisson(rate).astype(np.float32)
    planted = (rng.random(counts.shape) < 0.25) & (rate > 0)
    counts[planted] = 0
    counts[n // 2, 55] = 3  # one stray count of a marker in group 1 (ambient RNA) changes nothing
    prob = np.zeros(counts.shape, dtype=np.float32)
    for c in (0, 1):
        prob[group == c] = cluster_dropout(counts[group == c])[0]
    true_zero = rate == 0
    assert (prob[planted] > 0.5).mean() > 0.95
    assert (prob[true_zero & (counts == 0)] < 0.5).all()
    assert (prob[counts > 0] < 0.5).mean() > 0.99  # expressed values sit in the normal component


def test_density_peaks_recover_well_separated_blobs():
    rng = np.random.default_rng(4)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
    sizes = [80, 60, 50, 40]
    points = np.concatenate([c + rng.normal(size=(s, 3)) for c, s in zip(centres, sizes)])
    truth = np.repeat(np.arange(4), sizes)
    found, info = density_peak_centres(points)
    assert len(found) == 4 and info["silhouette"] > 0.7
    labels = KMeans(n_clusters=len(found), init=points[found], n_init=1).fit_predict(points)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_mean_silhouettes_match_sklearn():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(150, 3))
    labelings = [rng.integers(0, 3, 150), (z[:, 0] > 0).astype(int), np.r_[np.zeros(149, int), 1]]
    expected = [silhouette_score(z, lab) for lab in labelings]
    np.testing.assert_allclose(mean_silhouettes(z, labelings), expected, rtol=1e-10)


def test_gene_blocks_pick_correlated_inputs_outside_the_block():
    rng = np.random.default_rng(6)
    base = rng.normal(size=(80, 1))
    lognorm = np.abs(np.concatenate([base + 0.1 * rng.normal(size=(80, 4)), rng.normal(size=(80, 6))], 1))
    missing = np.zeros(lognorm.shape, dtype=bool)
    missing[0, 0] = True  # gene 0 is the only target
    missing[:60, 9] = True  # gene 9 is missing in 75% of cells: never an input
    params = {"n_targets": 512, "n_inputs_per_target": 3, "input_gene_threshold": 0.5, "keep_duplicate_inputs": False}
    ((targets, inputs),) = list(gene_blocks(lognorm.astype(np.float32), missing, np.ones(10, bool), params))
    assert targets.tolist() == [0, 9]
    assert sorted(inputs.tolist())[:3] == [1, 2, 3] and 0 not in inputs and 9 not in inputs
    assert len(set(inputs.tolist())) == len(inputs)
    ((_, repeated),) = list(gene_blocks(lognorm.astype(np.float32), missing, np.ones(10, bool),
                                        {**params, "keep_duplicate_inputs": True}))
    assert len(repeated) == 2 * 3 and set(repeated.tolist()) == set(inputs.tolist())  # official code's form


def test_few_epochs_lower_the_loss(small_run):
    _, _, _, result = small_run
    models = {(e["cluster"], e["block"]) for e in result.history["epochs"]}
    assert models and len(models) == result.history["n_models"] == len(result.info["models"])
    for model in models:
        losses = [e["train_loss"] for e in result.history["epochs"] if (e["cluster"], e["block"]) == model]
        assert len(losses) == FAST["max_epochs"] and losses[-1] < losses[0]


def test_only_zero_entries_judged_missing_change(small_run):
    adata, counts, _, result = small_run
    changed = result.imputed != counts
    assert changed.any()
    assert (counts[changed] == 0).all()
    assert result.info["n_missing"] >= changed.sum()
    np.testing.assert_array_equal(adata.X.toarray(), counts)  # the input is untouched


def test_output_shape_dtype_and_range(small_run):
    adata, _, _, result = small_run
    assert result.imputed.shape == adata.shape and result.imputed.dtype == np.float32
    assert np.isfinite(result.imputed).all() and (result.imputed >= 0).all()
    assert set(result.info["timing"]) == {"clustering_s", "em_s", "training_s"}


def test_trimmed_padding_keeps_the_contract(small_run):
    adata, counts, params, _ = small_run
    result = get("cnnimpute").impute(adata, {**params, "trim_padding": True, "max_epochs": 2},
                                     RunContext(seed=3, progress=False))
    changed = result.imputed != counts
    assert changed.any() and (counts[changed] == 0).all() and (result.imputed >= 0).all()


def test_trimmed_input_of_few_genes_trains_with_a_last_batch_of_one():
    # 3 input genes, 9 training cells in batches of 8: the last batch holds one cell, and BatchNorm
    # needs more than one value per channel (a trimmed input must keep the pooled length >= 2)
    params = {**resolve_params(get("cnnimpute")), "trim_padding": True, "batch_size": 8, "max_epochs": 2,
              "n_targets": 4}
    rng = np.random.default_rng(0)
    lognorm = rng.random((10, 7)).astype(np.float32)
    missing = np.zeros((10, 7), dtype=bool)
    missing[:, :4] = rng.random((10, 4)) < 0.3
    pred, history = fit_block(lognorm, missing, np.arange(4), np.arange(4, 7), params=params,
                              device=torch.device("cpu"), ctx=RunContext(progress=False), name="c0_b0")
    assert pred.shape == (10, 4) and np.isfinite(pred).all()


def test_same_seed_same_output_on_cpu(small_run):
    adata, _, params, result = small_run
    again = get("cnnimpute").impute(adata, params, RunContext(seed=3, progress=False))
    np.testing.assert_array_equal(result.imputed, again.imputed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_is_refused_without_a_device():
    counts, _, _ = simulated_counts(n_per_group=10)
    method = get("cnnimpute")
    with pytest.raises(DeviceError):
        method.impute(ad.AnnData(X=counts), resolve_params(method, FAST), RunContext(device="cuda"))


def test_defaults_are_the_papers_and_overridable():
    method = get("cnnimpute")
    d = method.defaults
    assert (d["n_targets"], d["n_inputs_per_target"], d["dropout_threshold"], d["input_gene_threshold"]) == (512, 5, 0.5, 0.5)
    assert (d["lr"], d["batch_size"], d["max_epochs"], d["patience"], d["dropout"]) == (1e-4, 32, 150, 5, 0.3)
    assert resolve_params(method, {"max_epochs": "7"})["max_epochs"] == 7


def test_memory_guard_refuses_before_any_work(monkeypatch):
    from graphimpute.errors import ResourceError
    from graphimpute.methods._impl import cnnimpute

    def no_clustering(*args, **kwargs):
        raise AssertionError("clustering started although the estimate is above the limit")

    monkeypatch.setattr(cnnimpute, "cluster_cells", no_clustering)
    counts, _, _ = simulated_counts(n_per_group=10)
    method = get("cnnimpute")
    with pytest.raises(ResourceError, match=r"cnnimpute on 30 cells x 120 genes needs about .* above the limit"):
        method.impute(ad.AnnData(X=counts), resolve_params(method, {**FAST, "max_memory_gb": 1e-4}),
                      RunContext(progress=False))


def test_memory_estimate_grows_with_cells_and_input_width():
    from graphimpute.methods._impl.cnnimpute import estimate_memory_gb

    params = resolve_params(get("cnnimpute"))
    pbmc3k, cbmc, large = (estimate_memory_gb(n, 2000, params) for n in (2592, 8617, 100_000))
    assert 0.72 < pbmc3k < 2 < cbmc < large  # 0.72 GiB: the measured growth on pbmc3k (4 clusters)
    assert estimate_memory_gb(2592, 2000, {**params, "n_targets": 256}) < pbmc3k


def test_large_samples_are_clustered_on_a_subsample_then_by_nearest_cells(monkeypatch):
    from graphimpute.methods._impl import cnnimpute

    counts, _, groups = simulated_counts(n_per_group=150, n_groups=3)
    lognorm = np.log1p(counts)
    # the paper's 1000 t-SNE iterations: sklearn spends the first 250 in early exaggeration, so FAST's 250
    # leave an unfinished embedding whose clusters change with the number of OpenMP threads
    params = {**resolve_params(get("cnnimpute")), **FAST, "tsne_max_iter": 1000}
    monkeypatch.setattr(cnnimpute, "TSNE_MAX_CELLS", 225)
    sizes = []
    real = cnnimpute.cluster_cells

    def spy(values, **kwargs):
        sizes.append(values.shape[0])
        return real(values, **kwargs)

    monkeypatch.setattr(cnnimpute, "cluster_cells", spy)
    labels, info = cnnimpute.cluster_cells(lognorm, params=params, seed=0)
    assert sizes == [450, 225]  # t-SNE and density peaks ran on 225 cells only
    assert labels.shape == (450,) and info["clustered_subsample"] == 225 and sum(info["sizes"]) == 450
    # every cluster holds one group's cells: the other 225 join their own group's cluster (3-D t-SNE may
    # still split a group in two, which only changes which cells train together)
    assert homogeneity_score(groups, labels) > 0.9


def test_progress_says_how_many_networks_are_left_and_their_least_time(caplog):
    from types import SimpleNamespace

    from graphimpute.methods._impl.cnnimpute import TrainingProgress

    labels = np.r_[np.zeros(20, int), np.ones(30, int), np.full(5, 2)]  # cluster 2 is too small: no network
    missing = np.zeros((55, 6), dtype=bool)
    missing[labels == 0, :3] = True  # 3 target genes: 2 blocks of 2
    missing[labels == 1, 3:5] = True  # 2 target genes: 1 block
    missing[labels == 2, :] = True
    # a network's epoch is its cluster's 90% training split, or 90% of epoch_cells above that: 18 cells
    progress = TrainingProgress(labels, missing, {"n_targets": 2, "patience": 5, "max_epochs": 150,
                                                  "val_fraction": 0.1, "epoch_cells": 20})
    assert (progress.networks, progress.cells_left) == (3, 18 * 2 + 18)
    with caplog.at_level("INFO", logger="graphimpute.methods._impl.cnnimpute"):
        # 18 cells x 5 epochs in 90 s: 1 s per cell and epoch; 36 cells left x at least 6 epochs = 3.6 min
        progress.done(18, SimpleNamespace(wall_time_s=90.0, n_epochs=5))
    assert "1 of 3 networks trained in 90 s; the rest need at least 4 min" in caplog.text


def _block_inputs(n_cells, seed=0):
    rng = np.random.default_rng(seed)
    lognorm = rng.random((n_cells, 9)).astype(np.float32)
    missing = np.zeros((n_cells, 9), dtype=bool)
    missing[:, :4] = rng.random((n_cells, 4)) < 0.3
    return lognorm, missing


def test_a_cluster_above_epoch_cells_trains_epochs_of_that_size(monkeypatch):
    # 400 cells, epochs of 100: 90 training cells per epoch (batches 32, 32, 26), not the split's 360;
    # at or below epoch_cells (and with 0) an epoch is the whole training split, as the paper
    import graphimpute.methods._impl.cnnimpute as impl

    seen, masked_mse = [], impl.masked_mse

    def counting_loss(module, batch):
        if module.training:
            seen.append(batch[0].shape[0])
        return masked_mse(module, batch)

    monkeypatch.setattr(impl, "masked_mse", counting_loss)
    params = {**resolve_params(get("cnnimpute")), "trim_padding": True, "max_epochs": 2, "n_targets": 4,
              "hidden": 16, "epoch_cells": 100}
    lognorm, missing = _block_inputs(400)
    pred, history = fit_block(lognorm, missing, np.arange(4), np.arange(4, 9), params=params,
                              device=torch.device("cpu"), ctx=RunContext(progress=False), name="c0_b0")
    assert pred.shape == (400, 4) and history.n_epochs == 2
    assert seen == [32, 32, 26] * 2
    assert impl.epoch_size(400, params) == 90
    assert impl.epoch_size(100, params) == 90  # not above epoch_cells: the whole training split
    assert impl.epoch_size(400, {**params, "epoch_cells": 0}) == 360  # the paper's epoch
    seen.clear()
    fit_block(lognorm, missing, np.arange(4), np.arange(4, 9), params={**params, "epoch_cells": 0},
              device=torch.device("cpu"), ctx=RunContext(progress=False), name="c0_b0")
    assert sum(seen) == 2 * 360


FINGERPRINT = {"data": "test", "method": "cnnimpute", "seed": 0, "version": "test", "params": {}}


def test_a_resumed_network_draws_the_epochs_an_uninterrupted_one_does(tmp_path):
    # each epoch's cells and batch order come from a generator saved in the checkpoint
    params = {**resolve_params(get("cnnimpute")), "trim_padding": True, "n_targets": 4, "hidden": 16,
              "epoch_cells": 100, "patience": 50}
    lognorm, missing = _block_inputs(400, seed=1)

    def run(workdir, epochs, resume=False):
        ctx = RunContext(progress=False, workdir=workdir, checkpoint_every=1, resume=resume)
        return fit_block(lognorm, missing, np.arange(4), np.arange(4, 9), params={**params, "max_epochs": epochs},
                         device=torch.device("cpu"), ctx=ctx, name="c0_b0", fingerprint=FINGERPRINT)[0]

    full = run(tmp_path / "full", 4)
    run(tmp_path / "cut", 2)
    np.testing.assert_array_equal(run(tmp_path / "cut", 4, resume=True), full)
