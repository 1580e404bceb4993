"""scVGAE: layer wiring against the paper's equations, training, determinism, output scale, refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.nn import GCNConv

from graphimpute import _keys, graphs, methods
from graphimpute.errors import DeviceError, GraphImputeError, ResourceError
from graphimpute.methods import RunContext
from graphimpute.methods import scvgae
from graphimpute.methods._impl.scvgae import ScVGAE, scvgae_loss, to_counts
from graphimpute.methods._impl.scvgae import estimate_memory_gb as scvgae_memory
from graphimpute.methods.scvgae import GRAPH_KEY
from graphimpute.nn.gcn import gcn_adjacency

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "graphimpute" / "data" / "pbmc3k_small.h5ad"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is faster, and far faster on a shared, loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small() -> ad.AnnData:
    """150 cells x the 300 most detected genes of the bundled pbmc3k subset, plus 5 rare genes (which
    the 5% gene filter drops) and the log-normalised layer the kNN fallback's PCA reads."""
    full = ad.read_h5ad(BUNDLED)[:150]
    detected = np.asarray((sp.csr_matrix(full.X) > 0).sum(axis=0)).ravel()
    order = np.argsort(-detected, kind="stable")
    rare = np.flatnonzero((detected > 0) & (detected <= 0.05 * 150))[:5]
    assert rare.size == 5
    adata = full[:, np.concatenate([order[:300], rare])].copy()
    x = sp.csr_matrix(adata.X)
    lib = np.asarray(x.sum(axis=1)).ravel()
    adata.layers[_keys.LOGNORM] = sp.csr_matrix(sp.diags(np.median(lib) / lib) @ x).log1p()
    return adata


def _with_graph(adata: ad.AnnData) -> ad.AnnData:
    adata = adata.copy()
    spec = scvgae.METHOD.graphs[0]
    graphs.build(adata, spec.kind, spec.key, spec.params)
    return adata


@pytest.fixture(scope="module")
def small_graph(small) -> ad.AnnData:
    return _with_graph(small)


def _params(**overrides):
    return methods.resolve_params(scvgae.METHOD, {"max_epochs": 6, **overrides})


def _ring(n: int) -> sp.csr_matrix:
    i = np.arange(n)
    return sp.csr_matrix((np.ones(2 * n, np.float32), (np.r_[i, i], np.r_[(i + 1) % n, (i + 3) % n])), shape=(n, n))


def test_registered_with_paper_defaults_and_graph():
    method = methods.get("scvgae")
    d = method.defaults
    assert (d["hidden"], d["decoder_hidden"], d["encoder_dropout"], d["decoder_dropout"]) == (128, 1024, 0.2, 0.4)
    assert (d["alpha"], d["lr"], d["max_epochs"], d["variational"]) == (0.05, 5e-4, 100, False)
    (spec,) = method.graphs
    assert (spec.key, spec.kind, spec.params["percentile"]) == (GRAPH_KEY, "percentile", 85.0)
    assert spec.params["fallback"] == {"kind": "knn", "n_neighbors": 30, "n_pcs": 50, "symmetrise": True}
    assert method.trains
    assert methods.resolve_params(method, {"variational": "true"})["variational"] is True


def test_layer_shapes_and_wiring():
    n, g = 12, 7
    torch.manual_seed(0)
    model = ScVGAE(n, g)
    assert model.encoder.weight.shape == (128, g)
    for head in (model.mean_head, model.pi_head, model.theta_head):
        assert head.weight.shape == (g, 128)
    fc1, bn, _, drop, fc2, _ = model.decoder
    assert (fc1.in_features, fc1.out_features, bn.num_features, drop.p, fc2.out_features) == (g, 1024, 1024, 0.4, g)
    assert (model.gene_norm.num_features, model.cell_norm.num_features) == (g, n)

    x = torch.rand(n, g) * 3
    graph = _ring(n)
    adj = gcn_adjacency(graph)
    model.eval()
    with torch.no_grad():
        out = model(x, ScVGAE.propagated_input(x, adj), adj)
        # the GCN layers equal PyG's GCNConv (self-loops, symmetric normalisation) with the same weights
        edge_index = torch.from_numpy(graphs.to_edge_index(graph.maximum(graph.T)))
        conv1, conv_mean = GCNConv(g, 128), GCNConv(128, g)
        conv1.lin.weight.copy_(model.encoder.weight)
        conv1.bias.copy_(model.encoder.bias)
        conv_mean.lin.weight.copy_(model.mean_head.weight)
        conv_mean.bias.copy_(model.mean_head.bias)
        z = torch.relu(model.graph_norm(conv1(x, edge_index)))  # eq. 3 (dropout is off in eval)
        mean = torch.exp(conv_mean(z, edge_index).clamp(-15, 15))  # eq. 4
        assert torch.allclose(out["mean"], mean, rtol=1e-4, atol=1e-6)
        # eq. 5: x_hat = decoder(M) + BatchNorm_genes(X) + BatchNorm_cells(X^T)^T
        expected = model.decoder(out["mean"]) + model.gene_norm(x) + model.cell_norm(x.T).T
        assert torch.allclose(out["x_hat"], expected, atol=1e-6)
    assert out["x_hat"].shape == out["mean"].shape == out["theta"].shape == out["pi_logits"].shape == (n, g)
    assert (out["mean"] > 0).all() and (out["theta"] > 0).all()


def test_eval_output_is_the_trained_output_without_dropout():
    # every batch is the whole matrix: BatchNorm must normalise with the pass's own statistics in eval
    # too (running averages of earlier epochs made the eval output drift from the trained one)
    n, g = 20, 9
    torch.manual_seed(0)
    model = ScVGAE(n, g, hidden=8, decoder_hidden=16, encoder_dropout=0.0, decoder_dropout=0.0)
    x = torch.poisson(torch.full((n, g), 2.0)).sqrt()
    adj = gcn_adjacency(_ring(n))
    lx = ScVGAE.propagated_input(x, adj)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        optimiser.zero_grad()
        scvgae_loss(model(x, lx, adj), x, alpha=0.05, kl_weight=0.0)["loss"].backward()
        optimiser.step()
    with torch.no_grad():
        trained = model.train()(x, lx, adj)["x_hat"]
        inferred = model.eval()(x, lx, adj)["x_hat"]
    torch.testing.assert_close(inferred, trained, rtol=0, atol=0)
    assert not any(name.endswith("running_mean") for name in model.state_dict())


def _grad(parameter) -> float:
    return 0.0 if parameter.grad is None else float(parameter.grad.abs().sum())


def test_zinb_gradient_reaches_all_three_heads_and_mse_only_the_mean_path():
    n, g = 10, 6
    torch.manual_seed(0)
    model = ScVGAE(n, g)
    x = torch.poisson(torch.full((n, g), 1.5)).sqrt()
    adj = gcn_adjacency(_ring(n))
    out = model(x, ScVGAE.propagated_input(x, adj), adj)
    scvgae_loss(out, x, alpha=0.0, kl_weight=0.0)["loss"].backward()  # ZINB only
    for head in (model.mean_head, model.pi_head, model.theta_head):
        assert _grad(head.weight) > 0
    assert _grad(model.decoder[0].weight) == 0  # the decoder is trained by the MSE term alone
    model.zero_grad(set_to_none=True)
    out = model(x, ScVGAE.propagated_input(x, adj), adj)
    scvgae_loss(out, x, alpha=1.0, kl_weight=0.0)["loss"].backward()  # MSE only
    assert _grad(model.mean_head.weight) > 0 and _grad(model.decoder[0].weight) > 0
    assert _grad(model.pi_head.weight) == 0 and _grad(model.theta_head.weight) == 0


def test_percentile_graph_with_filters_matches_brute_force(small):
    adata = small.copy()
    graphs.percentile_graph(adata, percentile=85, min_gene_fraction=0.05, min_cell_fraction=0.05, key_added="g")
    cells, genes = graphs.detection_filter(adata.X, min_gene_fraction=0.05, min_cell_fraction=0.05)
    assert genes.sum() == 300  # the 5 rare genes are out
    x = graphs.sqrt_normalised(sp.csr_matrix(adata.X)[cells][:, genes])
    s = x @ x.T
    expected = s > np.percentile(s, 85)
    np.fill_diagonal(expected, False)
    graph = adata.obsp["g"]
    assert np.array_equal(graph[cells][:, cells].toarray() > 0, expected)
    assert graph[~cells].nnz == 0


def test_train_lowers_loss_and_output_is_expected_counts(small_graph):
    # 30 epochs: x̂'s BatchNorm skip terms are centred, so the scale comes from the trained decoder
    # (median total ratio 0.15 at 10 epochs, 0.83 at 30, 0.95 at 100 on this input)
    result = methods.get("scvgae").impute(small_graph, _params(max_epochs=30), RunContext(progress=False))
    losses = [row["train_loss"] for row in result.history["epochs"]]
    assert len(losses) == 30 and losses[-1] < losses[0]
    assert {"train_mse", "train_zinb"} <= set(result.history["epochs"][0])
    out = result.imputed
    counts = small_graph.X.toarray()
    assert out.shape == counts.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= 0).all()
    cells, genes = graphs.detection_filter(counts, min_gene_fraction=0.05, min_cell_fraction=0.05)
    assert result.info["n_genes_imputed"] == genes.sum() == 300
    assert len(result.info["genes_left_observed"]) == 5
    assert np.array_equal(out[:, ~genes], counts[:, ~genes])  # filtered genes come back as observed
    assert np.array_equal(out[~cells], counts[~cells])
    # on the input's count scale: totals of the imputed block within a small factor of the observed ones
    ratio = out[np.ix_(cells, genes)].sum(1) / counts[np.ix_(cells, genes)].sum(1)
    assert 0.5 < np.median(ratio) < 2
    assert small_graph.X.nnz == sp.csr_matrix(counts).nnz  # input untouched


def test_back_transform_inverts_eq1():
    counts = sp.random(20, 15, density=0.4, format="csr", random_state=1, dtype=np.float32) * 9
    x = graphs.sqrt_normalised(counts)
    library = np.asarray(counts.sum(axis=1))
    assert np.allclose(to_counts(x, library, 1e4), counts.toarray(), atol=1e-3)
    assert (to_counts(-np.ones((2, 2)), np.ones((2, 1)), 1e4) == 0).all()  # negative x_hat -> 0


def test_same_seed_same_output_on_cpu(small_graph):
    ctx = RunContext(seed=3, device="cpu", progress=False)
    params = _params(max_epochs=3)
    first = methods.get("scvgae").impute(small_graph, params, ctx).imputed
    second = methods.get("scvgae").impute(small_graph, params, ctx).imputed
    other = methods.get("scvgae").impute(small_graph, params, RunContext(seed=4, device="cpu", progress=False)).imputed
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_variational_option_trains_with_kl(small_graph):
    result = methods.get("scvgae").impute(small_graph, _params(max_epochs=3, variational=True), RunContext(progress=False))
    assert all(np.isfinite(row["train_kl"]) for row in result.history["epochs"])
    assert np.isfinite(result.imputed).all() and (result.imputed >= 0).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_refused_without_gpu(small_graph):
    with pytest.raises(DeviceError):
        methods.get("scvgae").impute(small_graph, _params(), RunContext(device="cuda", progress=False))


def test_memory_estimate_refuses_before_training(small_graph):
    with pytest.raises(ResourceError, match="max_memory_gb"):
        methods.get("scvgae").impute(small_graph, _params(max_memory_gb=0.001), RunContext(progress=False))


def test_missing_graph_is_a_clear_error(small):
    with pytest.raises(GraphImputeError, match=GRAPH_KEY):
        methods.get("scvgae").impute(small, _params(), RunContext(progress=False))


def test_percentile_limit_falls_back_to_knn(small, monkeypatch, caplog):
    monkeypatch.setattr(graphs, "PERCENTILE_MAX_CELLS", 100)
    with caplog.at_level(logging.WARNING):
        adata = _with_graph(small)
    record = graphs.stored_params(adata, GRAPH_KEY)
    assert record["kind"] == "knn" and record["n_neighbors"] == 30 and record["symmetrise"]
    assert record["fallback_for"]["kind"] == "percentile" and "limited to 100 cells" in record["fallback_reason"]
    assert any("knn" in r.getMessage() for r in caplog.records)
    graph = adata.obsp[GRAPH_KEY]
    assert (graph != graph.T).nnz == 0 and (graph.sum(axis=1) >= 30).all()
    with caplog.at_level(logging.WARNING):
        result = methods.get("scvgae").impute(adata, _params(max_epochs=2), RunContext(progress=False))
    assert "limited to 100 cells" in result.info["graph_fallback"]
    assert result.info["graph"]["kind"] == "knn"
    assert any("not the paper's percentile graph" in r.getMessage() for r in caplog.records)


def test_detection_filter_counts_cells_on_the_kept_genes():
    # genes 0-1 are detected in 3 of 4 cells, genes 2-9 in one cell each (the 30% gene filter drops
    # them); cell 3 detects only dropped genes. Counted on all 10 genes, cells 0-2 detect 2 of 10 (not
    # > 30%) and every cell would go; on the 2 kept genes they detect 100%, and cell 3 0%.
    x = np.zeros((4, 10), np.float32)
    x[:3, :2] = 1
    for i, gene in enumerate(range(2, 10)):
        x[i % 4, gene] = 1
    cells, genes = graphs.detection_filter(sp.csr_matrix(x), min_gene_fraction=0.3, min_cell_fraction=0.3)
    assert genes.tolist() == [True, True] + [False] * 8
    assert cells.tolist() == [True, True, True, False]


def test_sparse_data_is_imputed_not_refused():
    # the bundled pbmc3k cells thinned to ~2% of their molecules (about 98% zeros, like the sparse
    # dataset of issue 13): counted on every gene at once, scVGAE's 5% cell filter kept almost none
    rng = np.random.default_rng(0)
    adata = ad.read_h5ad(BUNDLED)[:200].copy()
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    x.data = rng.binomial(x.data.astype(np.int64), 0.02).astype(np.float32)
    x.eliminate_zeros()
    adata.X = x
    assert 1 - x.nnz / np.prod(x.shape) > 0.98
    nonzero = x > 0
    assert (np.asarray(nonzero.sum(axis=1)).ravel() > 0.05 * x.shape[1]).mean() < 0.05  # the old reading
    adata = _with_graph(adata)
    result = methods.get("scvgae").impute(adata, _params(max_epochs=2), RunContext(progress=False))
    assert result.info["n_cells_imputed"] >= 0.8 * adata.n_obs
    assert result.info["n_genes_imputed"] >= 10
    assert np.isfinite(result.imputed).all() and (result.imputed >= 0).all()


@pytest.mark.parametrize("variational", [False, True])
def test_steps_compute_the_full_batch_model_and_chunked_inference_equals_it(variational):
    """In eval, the outputs of any rows with all cells' decoder statistics are the full-batch pass's
    rows: the step path changes which cells a step scores, not the model."""
    n, g = 40, 9
    torch.manual_seed(0)
    model = ScVGAE(n, g, hidden=8, decoder_hidden=16, variational=variational)
    x = torch.poisson(torch.full((n, g), 2.0)).sqrt()
    adj = gcn_adjacency(_ring(n))
    lx = ScVGAE.propagated_input(x, adj)
    model.set_input_statistics(x)
    with torch.no_grad():
        for parameter in model.parameters():  # BatchNorm affine away from 1 and 0, so per-cell indexing matters
            parameter.add_(0.1 * torch.randn_like(parameter))
        model.eval()
        full = model(x, lx, adj)
        statistics = model.decoder_statistics(lx, adj, chunk=7)
        rows = torch.tensor([3, 17, 18, 39])
        part = model(x, lx, adj, rows=rows, decoder_statistics=statistics)
    for key in ("x_hat", "mean", "theta", "pi_logits"):
        torch.testing.assert_close(part[key], full[key][rows], rtol=1e-5, atol=1e-5)


def test_above_full_batch_max_cells_it_trains_in_steps_with_the_papers_updates(small_graph):
    params = _params(max_epochs=6, full_batch_max_cells=100, step_cells=64)
    result = methods.get("scvgae").impute(small_graph, params, RunContext(progress=False))
    n = result.info["n_cells_imputed"]
    steps = -(-n // 64)
    assert result.info["training"].startswith(f"mini-batch: {steps} steps per epoch")
    assert result.history["n_epochs"] == -(-6 // steps)  # 6 updates, counted in steps
    assert np.isfinite(result.imputed).all() and (result.imputed >= 0).all()
    again = methods.get("scvgae").impute(small_graph, params, RunContext(progress=False)).imputed
    assert np.array_equal(result.imputed, again)
    # the estimate in steps counts the step's cells x genes tensors, not every cell's
    full = scvgae_memory(30_000, 2000, 1_500_000, params)
    stepped = scvgae_memory(30_000, 2000, 1_500_000, params, step_cells=4096)
    assert stepped < 8 < full
