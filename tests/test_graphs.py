"""Graphs: symmetry, degree, self-loops, and equality with dense references on small data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphimpute import graphs, normalise
from graphimpute.errors import ResourceError


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


def test_edge_index_round_trip():
    g = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=np.float32))
    ei = graphs.to_edge_index(g)
    assert ei.dtype == np.int64 and ei.shape == (2, 3)
    assert set(map(tuple, ei.T)) == {(0, 1), (1, 0), (1, 2)}
