"""GraphSCI: the learned gene graph, the coupling of the two branches, training, determinism, limits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from anndata import AnnData

from graphimpute import graphs, methods, monitor
from graphimpute.errors import DeviceError, GraphImputeError, ResourceError
from graphimpute.methods import RunContext
from graphimpute.methods._impl import graphsci

MODULE = np.arange(8)  # genes 0-7 share one cell factor


pytestmark = pytest.mark.usefixtures("one_thread")


def simulated(n_cells: int = 150, n_genes: int = 30, seed: int = 0) -> AnnData:
    """Counts where genes 0-7 follow one shared cell factor and every other gene its own."""
    rng = np.random.default_rng(seed)
    library = rng.lognormal(0, 0.3, n_cells)
    factors = rng.lognormal(0, 1.0, (n_cells, n_genes))
    factors[:, MODULE] = rng.lognormal(0, 1.0, (n_cells, 1))
    base = rng.uniform(1, 4, n_genes)
    counts = rng.poisson(library[:, None] * base * factors).astype(np.float32)
    return AnnData(X=sp.csr_matrix(counts))


def with_graph(adata: AnnData, drop_module_pairs: list[tuple[int, int]]) -> AnnData:
    """The data with its gene Pearson graph, less the module pairs given (to see them re-learned)."""
    lognorm, _ = graphsci.scaled_log_expression(adata.X, graphsci.size_factors(adata)[0])
    graph, _ = graphsci.gene_graph(adata, lognorm, max_genes=1000)
    graph = graph.tolil()
    for i, j in drop_module_pairs:
        graph[i, j] = graph[j, i] = 0
    out = adata.copy()
    out.varp["gene_pearson"] = graph.tocsr()
    return out


def run(adata, ctx=None, **overrides):
    method = methods.get("graphsci")
    return method.impute(adata, methods.resolve_params(method, overrides), ctx or RunContext(progress=False))


def learned_adjacency(adata, **overrides) -> np.ndarray:
    """Â = sigmoid(μ μᵀ) of a model trained with ``overrides`` (max_epochs=1, lr=1e-9: at initialisation)."""
    result = run(adata, learned_graph_threshold=0.0, learned_graph_top_k=adata.n_vars, **overrides)
    return result.varp[graphsci.LEARNED_GRAPH_KEY].toarray()


def test_learned_adjacency_moves_toward_the_planted_module():
    adata = simulated()
    hidden = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 7), (1, 6)]  # module pairs taken out of the input graph
    adata = with_graph(adata, hidden)
    within = np.zeros((adata.n_vars,) * 2, bool)
    within[np.ix_(MODULE, MODULE)] = True
    np.fill_diagonal(within, False)
    across = np.zeros_like(within)
    across[np.ix_(MODULE, np.arange(MODULE.size, adata.n_vars))] = True
    rows, cols = np.array(hidden).T

    def gaps(a):
        return a[within].mean() - a[across].mean(), a[rows, cols].mean() - a[across].mean()

    before = gaps(learned_adjacency(adata, max_epochs=1, lr=1e-9))
    after = gaps(learned_adjacency(adata, max_epochs=60))
    assert after[0] > before[0] + 0.1 and after[0] > 0.2
    # module pairs missing from the input graph are inferred too (the paper's "new relations")
    assert after[1] > before[1] + 0.1 and after[1] > 0.2


def test_zinb_gradient_reaches_the_gene_graph_encoder():
    """The expression loss trains the GCN through Â = sigmoid(Z Zᵀ): the branches are coupled."""
    adata = with_graph(simulated(n_cells=40, n_genes=12), [])
    counts = adata.X.toarray()
    size_factor, _ = graphsci.size_factors(adata)
    _, x = graphsci.scaled_log_expression(adata.X, size_factor)
    data = graphsci._tensors(x, counts, size_factor, adata.varp["gene_pearson"], True, torch.device("cpu"))
    torch.manual_seed(0)
    module = graphsci.GraphSCIModule(n_cells=40, n_genes=12, hidden=16, latent=32, dropout=0.0)
    graphsci.loss(module, None, data)["zinb"].backward()
    assert module.gcn_hidden.lin.weight.grad.abs().sum() > 0
    assert module.gcn_mean.lin.weight.grad.abs().sum() > 0


def test_sampled_adjacency_loss_matches_the_dense_one_in_expectation():
    g = 40
    rng = np.random.default_rng(1)
    a = sp.random(g, g, density=0.1, random_state=2, format="csr")
    a = ((a + a.T) > 0).astype(np.float32)
    a.setdiag(0)
    a.eliminate_zeros()
    x = rng.normal(size=(5, g)).astype(np.float32)
    counts = np.ones((5, g), np.float32)
    sf = np.ones(5, np.float32)
    dense = graphsci._tensors(x, counts, sf, a, True, torch.device("cpu"))
    sampled = graphsci._tensors(x, counts, sf, a, False, torch.device("cpu"))
    torch.manual_seed(0)
    z = torch.randn(g, 4)
    logits = z @ z.T
    exact = float(graphsci.adjacency_loss(logits, dense))
    estimates = [float(graphsci.adjacency_loss(logits, sampled)) for _ in range(400)]
    assert np.mean(estimates) == pytest.approx(exact, rel=0.03)
    assert np.std(estimates) > 0  # the sampled form really samples


def test_few_epochs_lower_the_loss_and_the_learning_rate_decays_smoothly():
    result = run(simulated(), max_epochs=12, lr_decay_steps=4)
    epochs = result.history["epochs"]
    assert len(epochs) == 12
    assert epochs[-1]["train_loss"] < 0.8 * epochs[0]["train_loss"]
    assert epochs[-1]["train_zinb"] < epochs[0]["train_zinb"]
    assert epochs[5]["lr"] == pytest.approx(0.01 * 0.9 ** (5 / 4), rel=1e-5)


def test_output_contract_and_learned_graph():
    adata = simulated()
    adata.obs["size_factor"] = np.full(adata.n_obs, 2.0, np.float32)
    before = adata.X.copy()
    result = run(adata, max_epochs=3, batch_size=64)
    assert result.imputed.shape == adata.shape and result.imputed.dtype == np.float32
    assert np.isfinite(result.imputed).all() and (result.imputed >= 0).all()
    assert (adata.X != before).nnz == 0 and "gene_pearson" not in adata.varp  # input untouched
    assert result.info["size_factor"] == "obs['size_factor']" and result.info["batch_size"] == 64
    learned = result.varp[graphsci.LEARNED_GRAPH_KEY]
    assert sp.issparse(learned) and learned.shape == (adata.n_vars,) * 2
    assert learned.diagonal().sum() == 0 and (learned != learned.T).nnz == 0
    assert learned.nnz > 0 and learned.data.min() > 0.5 and learned.data.max() <= 1
    assert np.diff(learned.indptr).max() <= 2 * 20
    summary = result.info["learned_graph"]  # the learned Â off the diagonal, and at even odds under pos_weight
    assert 0 < summary["mean_on_other_pairs"] < summary["mean_on_observed_edges"] < 1
    assert 0 <= summary["share_of_pairs_above_even_odds"] <= summary["share_of_pairs_above_threshold"]


def test_same_seed_same_output_on_cpu():
    adata = simulated(n_cells=60, n_genes=15)
    a = run(adata, RunContext(seed=3, device="cpu", progress=False), max_epochs=3)
    b = run(adata, RunContext(seed=3, device="cpu", progress=False), max_epochs=3)
    c = run(adata, RunContext(seed=4, device="cpu", progress=False), max_epochs=3)
    np.testing.assert_array_equal(a.imputed, b.imputed)
    assert (a.varp[graphsci.LEARNED_GRAPH_KEY] != b.varp[graphsci.LEARNED_GRAPH_KEY]).nnz == 0
    assert not np.array_equal(a.imputed, c.imputed)


def test_sampled_adjacency_loss_trains():
    result = run(simulated(), max_epochs=8, dense_adjacency_max_genes=0)
    assert result.info["adjacency_loss"] == "sampled non-edges"
    epochs = result.history["epochs"]
    assert epochs[-1]["train_adjacency"] < epochs[0]["train_adjacency"]


def test_refuses_too_many_genes_and_unknown_activation():
    with pytest.raises(ResourceError, match="--n-top-genes"):
        run(simulated(), max_genes=20)
    # one limit: GraphSCI's is the gene graph's, so neither refuses what the other accepts
    assert methods.get("graphsci").defaults["max_genes"] == graphs.PEARSON_MAX_GENES
    with pytest.raises(GraphImputeError, match="gcn_activation"):
        run(simulated(), gcn_activation="sigmoid")


def test_memory_estimate_is_quadratic_in_genes_and_linear_in_batch():
    def estimate(genes, batch, dense=True):
        return graphsci.estimate_memory_gb(n_cells=batch, n_genes=genes, batch_size=batch, dense_adjacency=dense)

    base = estimate(0, 0)
    assert (estimate(4000, 1) - base) / (estimate(2000, 1) - base) == pytest.approx(4, rel=0.01)
    assert estimate(4000, 1, dense=False) < estimate(4000, 1)
    assert (estimate(1000, 20_000) - base) / (estimate(1000, 10_000) - base) == pytest.approx(2, rel=0.1)


def test_memory_refusal_names_a_batch_size_that_then_fits(monkeypatch):
    adata = simulated()
    full = graphsci.estimate_memory_gb(n_cells=150, n_genes=30, batch_size=150, dense_adjacency=True)
    small = graphsci.estimate_memory_gb(n_cells=150, n_genes=30, batch_size=16, dense_adjacency=True)
    assert small < full
    monkeypatch.setattr(monitor, "available_mb", lambda device=None: (small + full) / 2 * 1024)
    with pytest.raises(ResourceError, match="batch_size"):
        run(adata, max_epochs=1)
    assert run(adata, max_epochs=1, batch_size=16).imputed.shape == adata.shape


def test_cells_in_one_step_up_to_a_size_then_in_batches(monkeypatch):
    params = methods.resolve_params(methods.get("graphsci"))
    assert graphsci.cell_batch_size(10_000, params) == 10_000  # the official code's one step per epoch
    assert graphsci.cell_batch_size(100_000, params) == graphsci.AUTO_BATCH_SIZE
    assert graphsci.cell_batch_size(100_000, {**params, "batch_size": 500}) == 500
    # so the estimate at 100k cells grows with the data only, not with a 100k-cell step
    full = graphsci.estimate_memory_gb(n_cells=100_000, n_genes=2000, batch_size=100_000, dense_adjacency=True)
    auto = graphsci.estimate_memory_gb(n_cells=100_000, n_genes=2000, batch_size=graphsci.AUTO_BATCH_SIZE,
                                       dense_adjacency=True)
    assert full > 16 > auto  # the default max_memory_gb refuses the one and runs the other
    assert run(simulated(), max_epochs=2).info["training"] == "full batch"  # 150 cells
    monkeypatch.setattr(graphsci, "AUTO_BATCH_SIZE", 64)
    result = run(simulated(), max_epochs=6, full_batch_max_cells=100)  # 6 updates: 2 epochs of 3 steps
    assert result.info["training"] == ("mini-batch: 3 steps of 64 cells per epoch, 2 epochs "
                                       "(max_epochs=6 counted in optimiser steps)")
    assert result.info["steps_per_epoch"] == 3 and len(result.history["epochs"]) == 2
    assert result.info["batch_size"] == 64
    assert result.info["memory_estimate_gb"] > 0


def test_refuses_above_max_memory_gb_before_training():
    with pytest.raises(ResourceError, match="max_memory_gb"):
        run(simulated(), max_epochs=1, max_memory_gb=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_is_refused_where_there_is_none():
    with pytest.raises(DeviceError):
        run(simulated(), RunContext(device="cuda", progress=False), max_epochs=1)


def test_impute_step_writes_the_learned_graph_and_provenance(tmp_path):
    import anndata as ad

    from graphimpute import io, normalise, pipeline

    adata = normalise.normalise(simulated(), n_top_genes=None)
    source = io.write_h5ad(adata, tmp_path / "in.h5ad")
    out = pipeline.impute_step(source, tmp_path / "out.h5ad", method="graphsci", params={"max_epochs": "2"},
                               ctx=RunContext(progress=False))
    result = ad.read_h5ad(out)
    assert result.layers["imputed"].shape == adata.shape
    assert sp.issparse(result.varp[graphsci.LEARNED_GRAPH_KEY])
    prov = result.uns["graphimpute"]["impute"]
    assert prov["info"]["learned_graph"]["key"] == graphsci.LEARNED_GRAPH_KEY
    assert len(prov["history"]["epochs"]["train_zinb"]) == 2
