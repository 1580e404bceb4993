"""SCGNN and GNNImpute: the method contract (shape, scale, determinism, devices, memory guard), the
pieces each paper specifies, and that a few epochs of training lower the loss."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from conftest import synthetic_counts
from graphimpute import methods, normalise, runner
from graphimpute.errors import DeviceError, GraphImputeError, ResourceError
from graphimpute.methods import RunContext
from graphimpute.methods import knn_average
from graphimpute.methods import scgnn as scgnn_entry
from graphimpute.methods._impl import gnnimpute, scgnn
from graphimpute.nn.gcn import gcn_adjacency

NAMES = ["scgnn", "gnnimpute"]
FAST = {"scgnn": {"max_epochs": 6}, "gnnimpute": {"max_epochs": 4, "hidden_dim": 32}}


@pytest.fixture(scope="module")
def prepared():
    """Normalised synthetic counts (each method builds its own cell graph from its masked input)."""
    return normalise.normalise(synthetic_counts(n_cells=120, n_genes=90, seed=3), n_top_genes=None)


def run(adata, name, ctx=None, **overrides):
    method = methods.get(name)
    params = methods.resolve_params(method, {**FAST[name], **overrides})
    return method.impute(adata, params, ctx or RunContext(progress=False))


@pytest.mark.parametrize("name", NAMES)
def test_contract_shape_scale_and_input_untouched(prepared, name):
    adata = prepared.copy()
    before_x, before_keys = adata.X.copy(), (set(adata.obsp), set(adata.layers), set(adata.uns))
    result = run(adata, name)
    assert result.imputed.shape == adata.shape and result.imputed.dtype == np.float32
    assert np.isfinite(result.imputed).all() and result.imputed.min() >= 0
    assert (adata.X != before_x).nnz == 0 and (set(adata.obsp), set(adata.layers), set(adata.uns)) == before_keys
    history = result.history
    assert history["n_epochs"] == FAST[name]["max_epochs"] and history["device"] == "cpu"
    assert {"train_loss", "val_loss"} <= set(history["epochs"][0])


def test_scgnn_back_transform_scales_predictions_to_each_cells_library(prepared, monkeypatch):
    # a network that predicts 1 everywhere on the median-library scale: a zero of cell i becomes its
    # size factor (library of the kept genes / their median library)
    monkeypatch.setattr(scgnn.SCGNN, "forward", lambda self, x: torch.ones_like(x) + 0 * self.decode.bias.sum())
    result = run(prepared, "scgnn")
    keep = scgnn.gene_dispersion(prepared.X) > 0.5
    counts = prepared.X.toarray()
    factors = normalise.size_factors(counts[:, keep])
    zeros = (counts == 0) & keep[None, :]
    np.testing.assert_allclose(result.imputed[zeros], np.broadcast_to(factors[:, None], counts.shape)[zeros],
                               rtol=1e-6)


def test_gnnimpute_back_transform_returns_counts_scale(prepared, monkeypatch):
    # a network that returns its (unmasked, log1p median-library) input: expm1 and the size factor
    # must give back the counts exactly
    monkeypatch.setattr(gnnimpute.GNNImpute, "forward",
                        lambda self, x, edge_index: x + 0 * self.decoder[0].bias.sum())
    result = run(prepared, "gnnimpute")
    np.testing.assert_allclose(result.imputed, prepared.X.toarray(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_few_epochs_lower_the_loss(prepared, name):
    # faster settings than the papers' so that 20 epochs on 120 cells move clearly: SCGNN's G/64
    # bottleneck is 1 unit for 90 genes; GNNImpute at its default lr (1e-3, the official code's)
    faster = {"scgnn": {"lr": 1e-2, "hidden_divisor": 8}, "gnnimpute": {}}[name]
    history = run(prepared, name, max_epochs=20, patience=1000, **faster).history
    train_loss = [row["train_loss"] for row in history["epochs"]]
    val_loss = [row["val_loss"] for row in history["epochs"]]
    assert np.mean(train_loss[-3:]) < 0.95 * np.mean(train_loss[:3])
    assert min(val_loss) < val_loss[0]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(prepared, name):
    a = run(prepared, name, ctx=RunContext(seed=5, progress=False)).imputed
    b = run(prepared, name, ctx=RunContext(seed=5, progress=False)).imputed
    c = run(prepared, name, ctx=RunContext(seed=6, progress=False)).imputed
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_refused_here(prepared, name):
    with pytest.raises(DeviceError, match="no CUDA device"):
        run(prepared, name, ctx=RunContext(device="cuda", progress=False))


@pytest.mark.parametrize("name", NAMES)
def test_memory_limit_stops_before_training(prepared, name):
    with pytest.raises(ResourceError, match=rf"{name} on 120 cells x \d+ genes needs about .* GiB, above the limit"):
        run(prepared, name, max_memory_gb=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_the_graph_is_built_from_the_masked_input_only(prepared, name, monkeypatch):
    # the matrix the graph is built from must have every entry the method hides from itself at 0
    # (they are its training / validation targets), and nothing else changed; no graph-step graph needed
    module = {"scgnn": scgnn, "gnnimpute": gnnimpute}[name]
    original, seen = module.own_knn_graph, {}

    def spy(values, **kw):
        seen["values"] = values.copy()
        seen["graph"], record = original(values, **kw)
        return seen["graph"], record

    monkeypatch.setattr(module, "own_knn_graph", spy)
    adata = prepared.copy()
    assert not adata.obsp
    result = run(adata, name)
    observed = prepared.X.toarray()
    if name == "scgnn":
        observed = observed[:, scgnn.gene_dispersion(prepared.X) > 0.5]
    newly_zero = (observed > 0) & (seen["values"] == 0)
    hidden = result.info["n_hidden_entries" if name == "scgnn" else "n_masked_entries"]
    assert hidden > 0 and newly_zero.sum() == hidden
    assert ((observed == 0) <= (seen["values"] == 0)).all()  # zeros stay zeros
    graph = seen["graph"]
    assert (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    assert result.info["graph"]["built_from"] == "the method's masked training input"
    assert result.info["graph"]["n_neighbors"] == 5 and result.info["graph"]["n_edges"] == graph.nnz
    assert 0 < result.info["memory_estimate_gb"] < 1  # the guard's estimate, for bench/scale.py to check
    assert result.info["graph"]["algorithm"] == "exact"  # small: the exact search, as before


@pytest.mark.parametrize("name", NAMES)
def test_a_cell_without_counts_gets_zeros_not_a_median_depth_prediction(prepared, name, caplog):
    adata = prepared.copy()
    x = adata.X.toarray()
    x[7] = 0
    adata.X = sp.csr_matrix(x)
    result = run(adata, name)
    assert (result.imputed[7] == 0).all()
    assert (result.imputed[np.arange(len(x)) != 7].sum(axis=1) > 0).all()  # every other cell gets values
    assert "1 cell(s) have no counts" in caplog.text


def test_neither_needs_a_graph_step_graph():
    assert [methods.get(name).graphs for name in NAMES] == [(), ()]
    assert knn_average.PCA_KNN5.params == {"n_neighbors": 5, "n_pcs": 50, "symmetrise": True}


def test_memory_estimates_grow_with_the_data():
    small = gnnimpute.estimate_memory_gb(2638, 2000, 20_000, hidden_dim=512, latent_dim=50, heads=3)
    large = gnnimpute.estimate_memory_gb(100_000, 2000, 800_000, hidden_dim=512, latent_dim=50, heads=3)
    assert small < 2 < 16 < large
    assert scgnn.estimate_memory_gb(2638, 2000, 2000, 31, 20_000) < 1 < scgnn.estimate_memory_gb(
        100_000, 2000, 2000, 31, 800_000)


# ---- SCGNN -----------------------------------------------------------------------------------------


def test_scgnn_gene_dispersion_is_variance_over_one_plus_mean():
    x = np.random.default_rng(0).poisson(2.0, (50, 7)).astype(np.float32)
    expected = x.var(axis=0, ddof=1) / (1 + x.mean(axis=0))
    np.testing.assert_allclose(scgnn.gene_dispersion(sp.csr_matrix(x)), expected, rtol=1e-6)


def test_scgnn_keeps_observed_values_and_filtered_genes():
    adata = synthetic_counts(n_cells=150, n_genes=80, seed=1)
    rng = np.random.default_rng(1)
    counts = adata.X.toarray()
    counts[:, :10] = rng.poisson(0.2, (150, 10))  # variance/(1+mean) ≈ 0.2/1.2: filtered out
    adata.X = sp.csr_matrix(counts)
    adata = normalise.normalise(adata, n_top_genes=None)
    result = run(adata, "scgnn")
    keep = scgnn.gene_dispersion(adata.X) > 0.5
    assert not keep[:10].any() and keep.sum() == result.info["genes_imputed"] < 80
    assert result.info["genes_left_observed"] == 80 - keep.sum()
    np.testing.assert_array_equal(result.imputed[:, ~keep], counts[:, ~keep])
    observed = counts > 0
    np.testing.assert_allclose(result.imputed[observed], counts[observed], rtol=1e-6)
    zeros_of_kept = (~observed) & keep[None, :]
    assert (result.imputed[zeros_of_kept] > 0).mean() > 0.5  # zeros take the prediction
    assert result.info["hidden_dim"] == max(1, int(keep.sum() / 64))
    assert run(adata, "scgnn", min_hidden=16).info["hidden_dim"] == 16  # a floor on the bottleneck
    assert result.info["hidden_fraction"] == pytest.approx(min(observed.mean(), 0.3))


@pytest.mark.parametrize("dims", [(40, 3), (3, 40)])
def test_scgnn_gcn_layer_equals_pyg_gcnconv(dims):
    from torch_geometric.nn import GCNConv

    adata = normalise.normalise(synthetic_counts(n_cells=60, n_genes=30, seed=2), n_top_genes=None)
    runner.build_graph(adata, knn_average.PCA_KNN5)
    graph = sp.csr_matrix(adata.obsp["knn5"])
    edge_index = torch.from_numpy(np.vstack(graph.nonzero())).long()
    torch.manual_seed(0)
    reference = GCNConv(*dims, cached=True)
    torch.nn.init.normal_(reference.bias)
    ours = scgnn.GCNLayer(*dims)
    ours.linear.weight.data.copy_(reference.lin.weight.data)
    ours.bias.data.copy_(reference.bias.data)
    x = torch.randn(60, dims[0], requires_grad=True)
    expected = reference(x, edge_index)
    got = ours(x, gcn_adjacency(graph, torch.device("cpu")))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the symmetric propagation's hand-written backward equals autograd through GCNConv
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    (grad_got,) = torch.autograd.grad(got.square().sum(), x)
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-5, atol=1e-5)


def test_scgnn_architecture():
    adjacency = gcn_adjacency(sp.identity(10, format="csr"), torch.device("cpu"))
    model = scgnn.SCGNN(640, 10, dropout=0.5, adjacency=adjacency)
    assert model.encode.linear.weight.shape == (10, 640) and model.decode.linear.weight.shape == (640, 10)
    assert model.dropout.p == 0.5
    assert "adjacency" not in model.state_dict()
    assert model(torch.randn(10, 640)).shape == (10, 640)


# ---- GNNImpute -------------------------------------------------------------------------------------


def test_gnnimpute_masks_ten_percent_of_each_genes_non_zeros():
    rng = np.random.default_rng(0)
    values = rng.poisson(0.8, (300, 25)).astype(np.float32)
    rows, cols = gnnimpute.mask_per_gene(values, 0.1, rng)
    assert np.all(values[rows, cols] > 0)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == rows.size
    per_gene = np.bincount(cols, minlength=25)
    np.testing.assert_array_equal(per_gene, (np.count_nonzero(values, axis=0) * 0.1).astype(int))


def test_gnnimpute_architecture():
    model = gnnimpute.GNNImpute(200, hidden_dim=512, latent_dim=50, heads=3, attention_dropout=0.6, dropout=0.5)
    for conv, out in ((model.conv1, 512), (model.conv2, 50)):
        assert conv.heads == 3 and conv.concat is False and conv.out_channels == out
        assert conv.dropout == 0.6 and conv.add_self_loops
    assert [type(m).__name__ for m in model.decoder] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "ReLU"]
    assert model.decoder[0].in_features == 50 and model.decoder[3].out_features == 200
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    model.eval()
    out = model(torch.rand(4, 200), edge_index)
    assert out.shape == (4, 200) and out.min() >= 0


def test_gnnimpute_defaults_are_the_papers_but_the_measured_lr():
    d = methods.get("gnnimpute").defaults
    # lr: the official code's 1e-3, not the paper's 1e-4 (measured: bench/results/gnnimpute_lr.md)
    assert (d["lr"], d["weight_decay"], d["max_epochs"], d["patience"]) == (1e-3, 5e-4, 3000, 200)
    assert (d["full_batch_max_cells"], d["step_cells"]) == (10_000, 4096)  # the paper's full graph below
    assert (d["train_fraction"], d["val_fraction"], d["mask_fraction"]) == (0.6, 0.2, 0.1)
    assert (d["hidden_dim"], d["latent_dim"], d["heads"]) == (512, 50, 3)


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda(prepared, name):
    result = run(prepared, name, ctx=RunContext(device="cuda", progress=False))
    assert result.history["device"].startswith("cuda")
    assert result.imputed.shape == prepared.shape and np.isfinite(result.imputed).all()
    assert result.imputed.min() >= 0


def test_scgnn_graph_log1p_builds_the_graph_from_log_values(prepared, monkeypatch):
    # the default (log1p, measured: bench/results/scgnn_gnnimpute_graphs.md) against the paper's plain values
    assert scgnn_entry.DEFAULTS["graph_log1p"] is True
    seen = []
    original = scgnn.own_knn_graph
    monkeypatch.setattr(scgnn, "own_knn_graph", lambda values, **kw: (seen.append(values.copy()), original(values, **kw))[1])
    plain = run(prepared, "scgnn", graph_log1p=False)
    logged = run(prepared, "scgnn", graph_log1p=True)
    np.testing.assert_allclose(seen[1], np.log1p(seen[0]), rtol=1e-6)  # the same masked input, logged
    assert (plain.info["graph"]["log1p"], logged.info["graph"]["log1p"]) == (False, True)


def test_gnnimpute_group_inference_is_the_full_graph_forward():
    """Mini-batch inference runs each layer group by group with the groups' in-neighbours: every
    cell's output must be the whole graph's (up to float summation order)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((300, 40), dtype=np.float32))
    graph = sp.random(300, 300, density=0.02, random_state=0, format="csr")
    graph = ((graph + graph.T) > 0).astype(np.float32)
    graph.setdiag(0)
    graph.eliminate_zeros()
    edge_index = torch.from_numpy(np.vstack(graph.nonzero()).astype(np.int64))
    module = gnnimpute.GNNImpute(40, hidden_dim=16, latent_dim=8, heads=3, attention_dropout=0.6, dropout=0.5)
    module.train()
    module(x, edge_index).sum().backward()  # some batch-norm statistics, so that eval is not the identity
    module.eval()
    parts = gnnimpute.cell_parts(rng.normal(size=(300, 5)), 7, seed=0)
    groups = gnnimpute.step_groups(parts, 2, None)
    assert sorted(np.concatenate(groups).tolist()) == list(range(300))
    # the 7th part joins the 3rd step instead of being a step alone (a single cell would stop BatchNorm)
    assert len(groups) == 3 and len(set(parts[groups[-1]])) == 3
    lone = np.r_[np.zeros(10, np.int64), np.ones(10, np.int64), [2]]
    assert [len(g) for g in gnnimpute.step_groups(lone, 2, torch.Generator().manual_seed(0))] == [21]
    with torch.no_grad():
        full = module(x, edge_index)
    np.testing.assert_allclose(module.infer_in_groups(x, edge_index, groups).numpy(), full.numpy(), rtol=1e-5, atol=1e-6)
    # a training step on one group: with its 2-hop in-neighbourhood its cells get the full graph's outputs,
    # with the edges among its own cells only (the default) they do not
    cells = torch.from_numpy(groups[0])
    with torch.no_grad():
        nodes, local, own = gnnimpute.step_subgraph(cells, edge_index, 300, 2)
        assert torch.equal(nodes[own], cells) and nodes.numel() > cells.numel()
        np.testing.assert_allclose(module(x[nodes], local)[own].numpy(), full[cells].numpy(), rtol=1e-5, atol=1e-6)
        nodes, local, own = gnnimpute.step_subgraph(cells, edge_index, 300, 0)
        assert torch.equal(nodes, cells) and own.all()
        assert not np.allclose(module(x[nodes], local).numpy(), full[cells].numpy(), atol=1e-4)


def test_gnnimpute_steps_sample_the_whole_data():
    """Each mini-batch step is many small k-means parts drawn from all over the data: steps of a few
    large parts held one or two cell types each and cost accuracy (bench/results/minibatch_schedule.md)."""
    assert gnnimpute.step_layout(27_608, 4096) == (863, 128)  # parts of 32 cells, 128 per step
    assert gnnimpute.step_layout(210, 64) == (210, 64)  # parts of one cell when the steps are tiny
    rng = np.random.default_rng(0)
    types = np.repeat(np.arange(3), 400)
    pcs = rng.normal(size=(1200, 5)) + 20 * types[:, None]  # three separate cell types
    n_parts, per_step = gnnimpute.step_layout(1200, 256)
    parts = gnnimpute.cell_parts(pcs, n_parts, seed=0)
    assert all(len(set(types[parts == p])) == 1 for p in range(n_parts))  # a part stays within a type
    for group in gnnimpute.step_groups(parts, per_step, torch.Generator().manual_seed(0)):
        assert np.bincount(types[group], minlength=3).min() > 0.15 * len(group)  # every step holds every type
    assert sorted(gnnimpute.cell_parts(pcs[:10], 10, seed=0).tolist()) == list(range(10))


def test_gnnimpute_trains_on_cell_groups_above_a_size(prepared):
    full = run(prepared, "gnnimpute", max_epochs=3)
    assert full.info["training"] == "full graph"
    small = run(prepared, "gnnimpute", max_epochs=7, full_batch_max_cells=0, step_cells=64)
    assert small.info["training"].startswith("mini-batch: ") and "k-means parts" in small.info["training"]
    assert small.imputed.shape == prepared.shape and np.isfinite(small.imputed).all() and (small.imputed >= 0).all()
    steps = small.info["steps_per_epoch"]
    assert steps > 1 and len(small.history["epochs"]) == -(-7 // steps)  # max_epochs counts optimiser steps
    assert small.history["epochs"][0]["val_loss"] > 0
    again = run(prepared, "gnnimpute", max_epochs=7, full_batch_max_cells=0, step_cells=64)
    np.testing.assert_array_equal(small.imputed, again.imputed)  # the same seed, the same groups and output
    halo = run(prepared, "gnnimpute", max_epochs=7, full_batch_max_cells=0, step_cells=64, step_hops=2)
    assert "in-neighbours within 2 hops" in halo.info["training"] and np.isfinite(halo.imputed).all()
    assert not np.array_equal(halo.imputed, small.imputed)
    # the estimate of a 100,000-cell run: refused on the whole graph, within the default limit in steps
    params = methods.resolve_params(methods.get("gnnimpute"))
    sizes = dict(hidden_dim=params["hidden_dim"], latent_dim=params["latent_dim"], heads=params["heads"])
    whole = gnnimpute.estimate_memory_gb(100_000, 2000, 1_000_000, **sizes)
    steps = gnnimpute.estimate_memory_gb(100_000, 2000, 1_000_000, **sizes, step_cells=2 * params["step_cells"])
    assert whole > params["max_memory_gb"] > steps
    assert gnnimpute.estimate_memory_gb(200_000, 2000, 2_000_000, **sizes, step_cells=8192) < 2.1 * steps


def test_scgnn_scores_hidden_entries_without_the_dense_output():
    rng = np.random.default_rng(0)
    graph = sp.random(50, 50, density=0.1, random_state=0, format="csr")
    graph = ((graph + graph.T) > 0).astype(np.float32)
    module = scgnn.SCGNN(30, 4, dropout=0.5, adjacency=gcn_adjacency(graph, "cpu")).eval()
    x = torch.from_numpy(rng.random((50, 30), dtype=np.float32))
    rows, cols = torch.from_numpy(rng.integers(0, 50, 200)), torch.from_numpy(rng.integers(0, 30, 200))
    with torch.no_grad():
        np.testing.assert_allclose(module.at(x, rows, cols).numpy(), module(x)[rows, cols].numpy(), rtol=1e-5, atol=1e-6)
