"""Graphs: symmetry, degree, self-loops, and equality with dense references on small data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphimpute import graphs, normalise
from graphimpute.errors import ResourceError

from conftest import synthetic_counts


@pytest.fixture
def prepared(counts):
    return normalise.normalise(counts, n_top_genes=None)


def test_knn_symmetric_without_self_loops(prepared):
    graphs.knn_graph(prepared, n_neighbors=5, n_pcs=10)
    g = prepared.obsp["knn"]
    assert sp.issparse(g) and g.shape == (prepared.n_obs,) * 2
    assert (g != g.T).nnz == 0
    assert g.diagonal().sum() == 0
    assert np.asarray(g.sum(1)).min() >= 5
    assert prepared.uns["graphimpute"]["graph"]["knn"]["n_neighbors"] == 5


def test_knn_directed_with_self_loops_matches_brute_force(prepared):
    graphs.knn_graph(prepared, n_neighbors=4, n_pcs=10, symmetrise=False, self_loops=True, key_added="k4")
    g = prepared.obsp["k4"].toarray()
    assert np.all(np.diag(g) == 1)
    assert np.all(g.sum(1) == 5)
    pcs = prepared.obsm["X_pca"][:, :10]
    dist = ((pcs[:, None] - pcs[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1)[:, :4]
    for i in range(0, prepared.n_obs, 17):
        assert set(np.flatnonzero(g[i])) - {i} == set(nearest[i])


def test_knn_small_sizes_stay_exact(prepared):
    """At or below ANN_MIN_CELLS the default search is sklearn's exact one, the graph of before."""
    assert prepared.n_obs <= graphs.ANN_MIN_CELLS and prepared.n_obs <= graphs.SPARSE_MIN_CELLS
    graphs.knn_graph(prepared, n_neighbors=5, n_pcs=10)
    assert "sparse" not in prepared.uns["pca"]["params"]
    from sklearn.neighbors import NearestNeighbors

    pcs = prepared.obsm["X_pca"][:, :10]
    idx = NearestNeighbors(n_neighbors=6).fit(pcs).kneighbors(pcs)[1]
    ref = sp.csr_matrix((np.ones(idx.size), (np.repeat(np.arange(prepared.n_obs), 6), idx.ravel())),
                        shape=(prepared.n_obs,) * 2)
    ref.setdiag(0)
    ref.eliminate_zeros()
    ref = (ref + ref.T) > 0
    assert (prepared.obsp["knn"].astype(bool) != ref).nnz == 0
    assert prepared.uns["knn"]["params"]["algorithm"] == "exact"
    assert prepared.uns["graphimpute"]["graph"]["knn"]["algorithm"] == "exact"


@pytest.fixture
def larger():
    return normalise.normalise(synthetic_counts(n_cells=1200, n_genes=200, seed=3), n_top_genes=None)


def _neighbour_sets(graph) -> list[set]:
    graph = sp.csr_matrix(graph)
    return [set(graph.indices[graph.indptr[i]:graph.indptr[i + 1]]) for i in range(graph.shape[0])]


def test_knn_above_threshold_is_approximate_close_and_deterministic(larger, monkeypatch):
    monkeypatch.setattr(graphs, "ANN_MIN_CELLS", 1000)
    graphs.pca(larger, n_comps=20)
    graphs.knn_graph(larger, n_neighbors=10, n_pcs=20, symmetrise=False, key_added="exact", algorithm="exact")
    graphs.knn_graph(larger, n_neighbors=10, n_pcs=20, symmetrise=False, key_added="ann")
    assert larger.uns["ann"]["params"]["algorithm"] == "pynndescent"
    assert larger.uns["graphimpute"]["graph"]["ann"]["algorithm"] == "pynndescent"
    exact, ann = _neighbour_sets(larger.obsp["exact"]), _neighbour_sets(larger.obsp["ann"])
    assert all(len(a) == 10 for a in ann)
    recall = np.mean([len(a & e) / len(e) for a, e in zip(ann, exact)])
    assert recall >= 0.95
    graphs.knn_graph(larger, n_neighbors=10, n_pcs=20, key_added="sym")
    graphs.knn_graph(larger, n_neighbors=10, n_pcs=20, key_added="again")
    sym = larger.obsp["sym"]
    assert (sym != sym.T).nnz == 0 and sym.diagonal().sum() == 0
    assert np.all(sym.data == 1) and sym.dtype == np.float32
    assert (sym != larger.obsp["again"]).nnz == 0  # same seed, same graph
    graphs.knn_graph(larger, n_neighbors=10, n_pcs=20, key_added="other", seed=1)
    assert larger.uns["other"]["params"]["algorithm"] == "pynndescent"


def test_knn_algorithm_checked():
    assert graphs.knn_algorithm(10, "exact") == "exact"
    with pytest.raises(ValueError, match="algorithm"):
        graphs.knn_algorithm(10, "annoy")


def test_sparse_pca_close_to_dense(larger, monkeypatch):
    dense = larger.copy()
    graphs.pca(dense, n_comps=10)
    monkeypatch.setattr(graphs, "SPARSE_MIN_CELLS", 1000)
    layer = larger.layers["lognorm"]
    graphs.pca(larger, n_comps=10)
    assert larger.layers["lognorm"] is layer and sp.issparse(layer)  # the layer is left as it was
    assert larger.uns["pca"]["params"]["sparse"] is True
    assert larger.uns["graphimpute"]["graph"]["pca"]["sparse"] is True
    a, b = dense.obsm["X_pca"], larger.obsm["X_pca"]
    for c in range(5):  # the leading components agree up to sign
        assert abs(np.corrcoef(a[:, c], b[:, c])[0, 1]) > 0.999
    np.testing.assert_allclose(dense.uns["pca"]["variance_ratio"][:5], larger.uns["pca"]["variance_ratio"][:5],
                               rtol=1e-3)
    graphs.knn_graph(dense, n_neighbors=10, n_pcs=10, symmetrise=False)
    graphs.knn_graph(larger, n_neighbors=10, n_pcs=10, symmetrise=False)
    overlap = np.mean([len(x & y) / 10 for x, y in zip(_neighbour_sets(dense.obsp["knn"]),
                                                        _neighbour_sets(larger.obsp["knn"]))])
    assert overlap >= 0.95


def test_scaled_sparse_matches_scanpy_scale():
    import scanpy as sc
    from anndata import AnnData

    rng = np.random.default_rng(0)
    x = sp.random(300, 40, density=0.2, random_state=0, format="csr", dtype=np.float32)
    x.data = rng.exponential(1.0, x.nnz).astype(np.float32)
    x = x.tolil()
    x[:3, 5] = 50.0  # values clipped at 10 standard deviations
    x = sp.csr_matrix(x)
    scaled, unclipped = graphs._scaled_sparse(x, max_value=10)
    ref = AnnData(X=x.toarray())
    sc.pp.scale(ref, max_value=10, zero_center=True)
    centred = scaled.toarray() - scaled.toarray().mean(axis=0)
    ref_centred = ref.X - ref.X.mean(axis=0)  # the clipped matrix's own centring, as PCA does
    np.testing.assert_allclose(centred, ref_centred, atol=2e-4)
    assert unclipped == 0 and ref.X.max() == pytest.approx(10)


def test_percentile_graph_equals_dense_reference(prepared):
    graphs.percentile_graph(prepared, percentile=85, block_size=37)  # odd block size: exercises the edges
    x = graphs.sqrt_normalised(prepared.X)
    s = x @ x.T
    threshold = np.percentile(s, 85)
    dense = s > threshold
    np.fill_diagonal(dense, False)
    got = prepared.obsp["percentile"]
    np.testing.assert_array_equal(got.toarray().astype(bool), dense)
    assert prepared.uns["graphimpute"]["graph"]["percentile"]["threshold"] == pytest.approx(threshold, rel=1e-6)
    assert 0.13 < got.nnz / prepared.n_obs ** 2 < 0.16  # keeps ~15% of pairs
    assert (got != got.T).nnz == 0


def test_percentile_graph_refused_above_limit(prepared):
    with pytest.raises(ResourceError, match="limited to 100 cells"):
        graphs.percentile_graph(prepared, max_cells=100)


def test_gene_pearson_graph_equals_dense_reference(prepared):
    graphs.gene_pearson_graph(prepared, threshold=0.3)
    r = np.corrcoef(prepared.layers["lognorm"].toarray().T)
    r = np.nan_to_num(r)
    np.fill_diagonal(r, 0)
    np.testing.assert_array_equal(prepared.varp["gene_pearson"].toarray().astype(bool), np.abs(r) > 0.3)
    with pytest.raises(ResourceError, match="--n-top-genes"):
        graphs.gene_pearson_graph(prepared, max_genes=10)


def test_gene_pearson_sparse_path_equals_dense(prepared, monkeypatch):
    values = prepared.layers["lognorm"].tolil()
    values[:, 7] = 2.5  # a constant gene correlates 0 on both paths
    values = sp.csr_matrix(values)
    dense, sparse = graphs.pearson_genes(values, sparse=False), graphs.pearson_genes(values, sparse=True)
    np.testing.assert_allclose(sparse, dense, atol=1e-6)
    assert np.all(sparse[7] == 0) and np.all(sparse[:, 7] == 0)
    graphs.gene_pearson_graph(prepared, threshold=0.3, key_added="dense")
    monkeypatch.setattr(graphs, "SPARSE_MIN_CELLS", 10)
    graphs.gene_pearson_graph(prepared, threshold=0.3, key_added="sparse")
    assert prepared.uns["graphimpute"]["graph"]["sparse"]["sparse"] is True
    assert (prepared.varp["dense"] != prepared.varp["sparse"]).nnz == 0


def test_edge_index_round_trip():
    g = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=np.float32))
    ei = graphs.to_edge_index(g)
    assert ei.dtype == np.int64 and ei.shape == (2, 3)
    assert set(map(tuple, ei.T)) == {(0, 1), (1, 0), (1, 2)}


def test_components_and_neighbours_beyond_the_data_are_warned_about(caplog):
    """Clamped, as scanpy does, but not silently (the CLI's --n-pcs/--n-neighbors and the methods' own)."""
    small = normalise.normalise(synthetic_counts(n_cells=12, n_genes=30), n_top_genes=None)
    with caplog.at_level("WARNING", logger="graphimpute.graphs"):
        graphs.knn_graph(small, n_neighbors=20, n_pcs=50)
    assert "50 components asked, 12 cells x 30 genes allow 11; using 11" in caplog.text
    assert "20 neighbours asked, 12 cells have 11 each; using 11" in caplog.text
    assert small.obsm["X_pca"].shape[1] == 11 and small.uns["knn"]["params"]["n_neighbors"] == 12
