"""Cell and gene graphs, sparse, with their parameters recorded (scanpy's ``neighbors`` habit).

Every graph is a binary CSR matrix: cell graphs in ``adata.obsp[key]``, gene graphs in
``adata.varp[key]``, parameters in ``adata.uns['graphimpute']['graph'][key]``. Normalisation (GCN's
D^-1/2 (A+I) D^-1/2) is left to the model that uses the graph.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import scipy.sparse as sp

from graphimpute import _keys
from graphimpute.errors import ResourceError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

# Largest n for which scVGAE's percentile graph is built (n x n kernel values are streamed in
# blocks, but ~15% of all pairs become edges: 5,000 cells already give 3.75 million edges).
PERCENTILE_MAX_CELLS = 5000
# GraphSCI's gene graph is computed as a dense genes x genes correlation.
PEARSON_MAX_GENES = 5000
# Above this many cells the kNN graphs are searched approximately, with pynndescent (NN-descent on a
# random-projection forest, as scanpy's and umap's neighbours): the exact search compares every pair,
# O(n²) time. At or below it the search stays sklearn's exact one, bit for bit the graphs of before.
# Measured on resampled CBMC, one thread, on a loaded 2-core machine (bench/results/graph_scale.md):
# exact kNN-15 0.6 s at 9k cells, 3.7 s at 28k, 67 s at 92k (n²); pynndescent (32 neighbours searched,
# below) 0.6 s, 3.4 s, 19 s plus a fixed ~30-60 s of numba compilation once per process (pynndescent does
# not cache it). So one kNN-15 search breaks even near 80-100k cells and the GRAPH step with every
# method's graphs (three searches: k = 15, 5, 30) near 60k; beyond, the exact search's n² takes over.
ANN_MIN_CELLS = 80_000
# pynndescent searches ANN_OVERSEARCH times the neighbours asked for, at most ANN_MAX_SEARCH (never fewer
# than asked), and keeps the nearest. At 92k cells (bench/results/graph_ann_search_100k.jsonl) recall of
# the exact neighbours / seconds: k=5 0.979 / 1.8 -> 0.995 / 3.0; k=15 0.971 / 4.2 -> 0.998 / 13.4;
# k=30 stays 0.987 / 12.4 (2x would be 0.9995 for 35 s).
ANN_OVERSEARCH = 2
ANN_MAX_SEARCH = 32
# Above this many cells PCA (and GraphSCI's gene correlation) work on the sparse log-normalised matrix
# (PCA: genes scaled and clipped in place, centring left implicit to the solver) instead of densifying
# cells x genes (float32 for PCA, float64 twice for the correlation). The sparse PCA is the same up to
# rounding (components |r| >= 0.999999, 15-NN lists 99.99% the same at 9k cells) and faster at every
# size measured (0.6 s vs 4.9 s at 9k, 22 s vs 111 s at 92k: bench/results/graph_ann_*.json); the
# threshold keeps the results at the benchmark's sizes (all datasets <= 10k cells) bit for bit.
SPARSE_MIN_CELLS = 20_000


def pca(adata: AnnData, *, n_comps: int = 50, layer: str = _keys.LOGNORM, seed: int = 0,
        sparse: bool | None = None) -> None:
    """PCA of the scaled log-normalised matrix (the scanpy tutorial's recipe), stored under scanpy's keys
    so that ``sc.pl.pca_variance_ratio``, ``sc.pl.pca_loadings`` and ``sc.pp.neighbors`` work on the result.

    Genes are centred, scaled to unit variance and clipped at 10 (``sc.pp.scale(max_value=10)``), then
    ``sc.pp.pca`` (arpack). ``sparse`` (default: above ``SPARSE_MIN_CELLS`` cells, read at call time)
    keeps a sparse layer sparse: each stored value is clipped and divided by its gene's standard deviation
    in place and the centring is left implicit to the solver (sklearn's sparse arpack), so no cells x genes
    dense matrix is made. The same PCA up to rounding, with one deviation: a zero whose centred value
    would be below -10 standard deviations (a gene whose mean is above 10 standard deviations) is not
    clipped; the record counts such genes (``unclipped_genes``).

    Writes ``adata.obsm['X_pca']`` (cells x n_comps float32), ``adata.varm['PCs']`` (genes x n_comps
    float32 loadings), ``adata.uns['pca']`` (``variance``, ``variance_ratio``, ``params``, as
    ``sc.pp.pca`` writes it) and ``adata.uns['graphimpute']['graph']['pca']``.
    """
    import scanpy as sc
    from anndata import AnnData

    possible = int(min(adata.n_obs - 1, adata.n_vars - 1))
    if n_comps > possible:
        log.warning("PCA: %d components asked, %d cells x %d genes allow %d; using %d", n_comps, adata.n_obs,
                    adata.n_vars, possible, possible)
    n_comps = int(min(n_comps, possible))
    values = adata.layers[layer] if layer else adata.X
    if sparse is None:
        sparse = adata.n_obs > SPARSE_MIN_CELLS
    sparse = bool(sparse and sp.issparse(values))
    extra: dict[str, Any] = {}
    if sparse:
        x, unclipped = _scaled_sparse(values, max_value=10)
        tmp = AnnData(X=x)
        extra = {"sparse": True, "unclipped_genes": unclipped}
    else:
        tmp = AnnData(X=(values.toarray() if sp.issparse(values) else np.array(values)).astype(np.float32))
        with np.errstate(invalid="ignore"):
            sc.pp.scale(tmp, max_value=10, zero_center=True)
        # a gene constant over cells (a cell-agnostic output has only such genes) can get a slightly negative
        # float32 variance and so NaN: it carries no information, and 0 says so
        np.nan_to_num(tmp.X, copy=False, nan=0.0)
    sc.pp.pca(tmp, n_comps=n_comps, random_state=seed, svd_solver="arpack")
    adata.obsm[_keys.PCA] = tmp.obsm["X_pca"].astype(np.float32)
    adata.varm["PCs"] = np.asarray(tmp.varm["PCs"], dtype=np.float32)
    adata.uns["pca"] = {"variance": np.asarray(tmp.uns["pca"]["variance"]),
                        "variance_ratio": np.asarray(tmp.uns["pca"]["variance_ratio"]),
                        "params": {"zero_center": True, "use_highly_variable": False, "layer": layer or "X",
                                   "scaled": True, "max_value": 10, **({"sparse": True} if sparse else {})}}
    _record(adata, "pca", {"kind": "pca", "n_comps": n_comps, "layer": layer, "scaled": True, "seed": seed,
                           **extra})


def _scaled_sparse(values, *, max_value: float) -> tuple[sp.csr_matrix, int]:
    """The stored values of a sparse cells x genes matrix clipped to mean ± ``max_value`` standard
    deviations of their gene and divided by that deviation (float32 CSR, same sparsity), so that
    centring it gives ``sc.pp.scale(max_value=...)``'s matrix; and the number of genes whose zeros that
    would clip (mean > max_value deviations), which this cannot do without densifying. Memory: one copy
    of the stored values."""
    x = sp.csr_matrix(values, dtype=np.float32, copy=True)
    n, g = x.shape
    data = x.data.astype(np.float64)
    mean = np.bincount(x.indices, weights=data, minlength=g) / n
    var = np.bincount(x.indices, weights=data * data, minlength=g) / n - mean * mean
    var = np.maximum(var, 0.0) * (n / max(n - 1, 1))  # sc.pp.scale's unbiased variance
    std = np.sqrt(var)
    mean_j, std_j = mean[x.indices], std[x.indices]
    data = np.clip(data, mean_j - max_value * std_j, mean_j + max_value * std_j)
    inverse = np.divide(1.0, std, out=np.zeros(g), where=std > 0)  # a constant gene carries nothing: 0
    x.data = (data * inverse[x.indices]).astype(np.float32)
    stored = np.bincount(x.indices, minlength=g)
    x.eliminate_zeros()
    unclipped = int(np.count_nonzero((std > 0) & (mean > max_value * std) & (stored < n)))
    return x, unclipped


def knn_graph(
    adata: AnnData,
    *,
    n_neighbors: int = 15,
    n_pcs: int = 50,
    use_rep: str = _keys.PCA,
    symmetrise: bool = True,
    self_loops: bool = False,
    key_added: str = "knn",
    seed: int = 0,
    algorithm: str = "auto",
) -> None:
    """Euclidean kNN graph of the cells on their first ``n_pcs`` principal components.

    ``algorithm``: ``"exact"`` (sklearn's NearestNeighbors), ``"pynndescent"`` (approximate: NN-descent,
    seeded with ``seed``, one thread, so the same seed gives the same graph) or ``"auto"``: exact up to
    ``ANN_MIN_CELLS`` cells (read at call time), pynndescent above. The one used is recorded in
    ``uns[key_added]['params']['algorithm']`` and in ``uns['graphimpute']['graph'][key_added]``.
    ``symmetrise`` keeps an edge when either cell lists the other (A or Aᵀ); otherwise row i holds
    cell i's ``n_neighbors`` neighbours. Writes ``adata.obsp[key_added]`` (binary CSR) and
    ``adata.uns[key_added]``, scanpy's neighbors record (``connectivities_key``, ``params``), so that
    ``sc.tl.umap(adata, neighbors_key=key_added)`` and ``sc.tl.leiden(adata, neighbors_key=key_added)``
    use this graph."""
    if use_rep == _keys.PCA and (use_rep not in adata.obsm or adata.obsm[use_rep].shape[1] < min(n_pcs, adata.n_vars - 1, adata.n_obs - 1)):
        pca(adata, n_comps=n_pcs, seed=seed)
    rep = np.asarray(adata.obsm[use_rep])[:, :n_pcs]
    if n_neighbors > adata.n_obs - 1:
        log.warning("kNN graph %r: %d neighbours asked, %d cells have %d each; using %d", key_added, n_neighbors,
                    adata.n_obs, adata.n_obs - 1, adata.n_obs - 1)
    k = min(n_neighbors, adata.n_obs - 1)
    algorithm = knn_algorithm(adata.n_obs, algorithm)
    idx = neighbours(rep, k + 1, algorithm=algorithm, seed=seed)
    rows = np.repeat(np.arange(adata.n_obs), k + 1)
    graph = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, idx.ravel())), shape=(adata.n_obs,) * 2)
    graph.setdiag(0)  # ties can put a duplicate cell first; self-loops are re-added below if asked
    graph.eliminate_zeros()
    graph = _binarise(graph.maximum(graph.T) if symmetrise else graph)
    if self_loops:
        graph = _binarise(graph + sp.identity(adata.n_obs, dtype=np.float32, format="csr"))
    adata.obsp[key_added] = graph
    distances_key = f"{key_added}_distances"
    adata.obsp[distances_key] = _edge_distances(rep, idx[:, 1:] if k else idx[:, :0])
    adata.uns[key_added] = {"connectivities_key": key_added, "distances_key": distances_key,
                            "params": {"n_neighbors": k + 1, "method": "graphimpute_knn", "metric": "euclidean",
                                       "use_rep": use_rep, "n_pcs": int(rep.shape[1]), "random_state": seed,
                                       "binary": True, "algorithm": algorithm}}
    _record(adata, key_added, {"kind": "knn", "n_neighbors": k, "n_pcs": rep.shape[1], "use_rep": use_rep,
                               "symmetrise": symmetrise, "self_loops": self_loops, "n_edges": int(graph.nnz),
                               "algorithm": algorithm})


def _edge_distances(rep: np.ndarray, neighbours_of: np.ndarray) -> sp.csr_matrix:
    """Each cell's Euclidean distances to its neighbours, as ``sc.pp.neighbors`` keeps them in
    ``obsp['distances']`` (directed, without the cell itself; what PAGA and diffmap read)."""
    n, k = neighbours_of.shape
    rows = np.repeat(np.arange(n), k)
    cols = neighbours_of.ravel()
    keep = cols != rows  # a duplicate cell can be listed before the cell itself
    rows, cols = rows[keep], cols[keep]
    dist = np.linalg.norm(rep[rows] - rep[cols], axis=1).astype(np.float32)
    out = sp.csr_matrix((dist, (rows, cols)), shape=(n, n))
    out.sum_duplicates()
    return out


KNN_ALGORITHMS = ("auto", "exact", "pynndescent")


def knn_algorithm(n_cells: int, algorithm: str = "auto") -> str:
    """The search ``knn_graph`` uses for ``n_cells`` cells: ``algorithm`` itself unless it is ``"auto"``."""
    if algorithm not in KNN_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {KNN_ALGORITHMS}, not {algorithm!r}")
    if algorithm == "auto":
        return "pynndescent" if n_cells > ANN_MIN_CELLS else "exact"
    return algorithm


def neighbours(rep: np.ndarray, n: int, *, algorithm: str, seed: int = 0) -> np.ndarray:
    """(cells, n) indices of each row's ``n`` nearest rows of ``rep`` (Euclidean), the row itself
    usually first. ``"exact"``: sklearn, every pair compared; ``"pynndescent"``: approximate (searches
    ``ANN_OVERSEARCH`` x ``n`` neighbours, at most ``ANN_MAX_SEARCH``, and keeps the ``n`` nearest), memory
    linear in the cells,
    deterministic for a seed (one numba thread)."""
    if algorithm == "exact":
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=n).fit(rep).kneighbors(rep)[1]
    if algorithm != "pynndescent":
        raise ValueError(f"unknown kNN algorithm {algorithm!r}")
    from pynndescent import NNDescent

    search = max(n, min(ANN_OVERSEARCH * n, ANN_MAX_SEARCH, rep.shape[0] - 1))
    index = NNDescent(np.ascontiguousarray(rep, dtype=np.float32), n_neighbors=search, metric="euclidean",
                      random_state=seed, n_jobs=1, low_memory=True)
    idx = index.neighbor_graph[0][:, :n]  # sorted by distance: the n nearest found
    if (idx < 0).any():  # too few cells reached: never seen on real data, but no -1 may become an edge
        raise RuntimeError("pynndescent returned fewer neighbours than asked; use algorithm='exact'")
    return idx


def percentile_graph(
    adata: AnnData,
    *,
    percentile: float = 85.0,
    target_sum: float = 1e4,
    min_gene_fraction: float = 0.0,
    min_cell_fraction: float = 0.0,
    max_cells: int | None = None,
    block_size: int = 1024,
    key_added: str = "percentile",
) -> None:
    """scVGAE's cell graph: edge (i, j) where the linear kernel sᵢⱼ = xᵢ·xⱼ of the sqrt
    library-normalised expression is above the ``percentile``-th percentile of all n² values.

    scVGAE builds its kernel after its detection filters, so only the cells and genes that pass
    ``detection_filter(min_gene_fraction, min_cell_fraction)`` enter it (library sizes over the kept
    genes); the other cells get no edges. The kernel is streamed in row blocks: never an n x n
    matrix. The threshold is exact: a first pass brackets the percentile from a sample of kernel
    values, a second counts values below the bracket and keeps those inside it. Above ``max_cells``
    kernel cells (default ``PERCENTILE_MAX_CELLS``, read at call time) it refuses with a
    ResourceError; give the GraphSpec a ``fallback`` (see ``build``) to get a kNN graph instead.
    Writes ``adata.obsp[key_added]`` (binary CSR, symmetric, self-pairs excluded)."""
    max_cells = PERCENTILE_MAX_CELLS if max_cells is None else max_cells
    cells, genes = detection_filter(adata.X, min_gene_fraction=min_gene_fraction,
                                    min_cell_fraction=min_cell_fraction)
    m = int(cells.sum())
    if m > max_cells:
        raise ResourceError(
            f"the percentile graph is limited to {max_cells} cells ({m} given): about 15% of all cell "
            "pairs become edges; use a kNN graph, or raise max_cells if memory allows")
    x = sqrt_normalised(sp.csr_matrix(adata.X)[cells][:, genes], target_sum)
    threshold = _kernel_percentile(x, percentile, block_size)
    rows, cols = [], []
    for start, block in _kernel_blocks(x, block_size):
        r, c = np.nonzero(block > threshold)
        rows.append(r + start)
        cols.append(c)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    keep = rows != cols
    index = np.flatnonzero(cells)  # kernel rows -> cells of adata
    n = adata.n_obs
    graph = sp.csr_matrix((np.ones(keep.sum(), np.float32), (index[rows[keep]], index[cols[keep]])), shape=(n, n))
    adata.obsp[key_added] = graph
    _record(adata, key_added, {"kind": "percentile", "percentile": percentile, "threshold": float(threshold),
                               "target_sum": target_sum, "transform": "sqrt",
                               "min_gene_fraction": min_gene_fraction, "min_cell_fraction": min_cell_fraction,
                               "n_kernel_cells": m, "n_kernel_genes": int(genes.sum()),
                               "n_edges": int(graph.nnz), "edge_fraction": float(graph.nnz) / max(m * m, 1)})


def gene_pearson_graph(
    adata: AnnData,
    *,
    threshold: float = 0.3,
    layer: str = _keys.LOGNORM,
    max_genes: int = PEARSON_MAX_GENES,
    key_added: str = "gene_pearson",
) -> None:
    """GraphSCI's gene graph: edge (g, h) where |Pearson r| between the genes' ``layer`` values over
    cells is above ``threshold``; no self-edges. Writes ``adata.varp[key_added]`` (binary CSR)."""
    g = adata.n_vars
    if g > max_genes:
        raise ResourceError(
            f"the gene Pearson graph is limited to {max_genes} genes ({g} given): its genes x genes "
            "correlation is dense; lower the gene count with --n-top-genes")
    values = adata.layers[layer] if layer else adata.X
    sparse = bool(sp.issparse(values) and adata.n_obs > SPARSE_MIN_CELLS)
    r = pearson_genes(values, sparse=sparse)
    np.fill_diagonal(r, 0.0)
    graph = sp.csr_matrix((np.abs(r) > threshold).astype(np.float32))
    adata.varp[key_added] = graph
    _record(adata, key_added, {"kind": "gene_pearson", "threshold": threshold, "layer": layer,
                               "n_edges": int(graph.nnz), **({"sparse": True} if sparse else {})})


def pearson_genes(values, *, sparse: bool | None = None) -> np.ndarray:
    """Genes x genes Pearson correlation of a cells x genes matrix; constant genes correlate 0.

    ``sparse`` (default: a sparse matrix above ``SPARSE_MIN_CELLS`` cells, read at call time) computes
    it from the sparse Gram matrix XᵀX − n·μμᵀ in float64, without a dense cells x genes copy (the
    dense path holds two float64 ones); equal to the dense path up to rounding (~1e-12)."""
    if sparse is None:
        sparse = values.shape[0] > SPARSE_MIN_CELLS
    if sparse and sp.issparse(values):
        x = sp.csr_matrix(values, dtype=np.float64)
        n = x.shape[0]
        mean = np.asarray(x.sum(axis=0)).ravel() / n
        second = np.asarray((x.T @ x).toarray())
        cov = second - n * np.outer(mean, mean)
        var = np.diag(cov).copy()
        # a constant gene: its variance is rounding noise of its second moment
        var[var <= 1e-10 * np.maximum(np.diag(second), np.finfo(float).tiny)] = np.inf
        norm = np.sqrt(var)
        return (cov / norm[:, None] / norm[None, :]).astype(np.float32)
    x = values.toarray() if sp.issparse(values) else np.asarray(values)
    x = x.astype(np.float64) - x.mean(axis=0)
    norm = np.linalg.norm(x, axis=0)
    norm[norm == 0] = np.inf
    x /= norm
    return (x.T @ x).astype(np.float32)


def detection_filter(counts, *, min_gene_fraction: float, min_cell_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (cells, genes) masks: genes non-zero in more than ``min_gene_fraction`` of the cells,
    then cells non-zero in more than ``min_cell_fraction`` of those genes (scVGAE's 5% filters).

    Genes first, then cells on the kept genes: counted on every gene at once (scVGAE's code), the
    cell filter refuses sparse data instead of dropping noise: at 95% zeros over 2,000 genes most
    cells detect fewer than 100 of them, and at 98.6% one cell of 4,085 passed. On the kept genes a
    cell is judged by the genes that are detected often enough to inform it."""
    nonzero = sp.csr_matrix(counts) > 0
    n = nonzero.shape[0]
    genes = np.asarray(nonzero.sum(axis=0)).ravel() > min_gene_fraction * n
    cells = np.asarray(nonzero[:, genes].sum(axis=1)).ravel() > min_cell_fraction * genes.sum()
    return cells, genes


def sqrt_normalised(counts, target_sum: float = 1e4) -> np.ndarray:
    """sqrt(counts / library * target_sum), dense float32: scVGAE's eq. 1."""
    x = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
    lib = x.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1
    return np.sqrt(x / lib * target_sum).astype(np.float32)


def to_edge_index(graph) -> np.ndarray:
    """(2, n_edges) int64 array of a sparse adjacency: PyG's edge_index."""
    coo = sp.coo_matrix(graph)
    return np.vstack([coo.row, coo.col]).astype(np.int64)


BUILDERS: dict[str, Callable[..., None]] = {
    "knn": knn_graph,
    "percentile": percentile_graph,
    "gene_pearson": gene_pearson_graph,
}


def build(adata: AnnData, kind: str, key: str, params: dict[str, Any] | None = None, seed: int = 0) -> None:
    """Build one graph by kind under ``key`` (used by the GRAPH step for each method's GraphSpec).

    ``params`` may hold a ``fallback`` dict, ``{"kind": ..., **its params}``: when the builder refuses
    with a ResourceError (a size limit), that graph is built under the same ``key`` instead, with a
    logged warning, and its record in ``uns['graphimpute']['graph'][key]`` gains ``fallback_for`` (the
    refused kind and params) and ``fallback_reason``, so the method and the provenance can tell."""
    params = dict(params or {})
    fallback = params.pop("fallback", None)
    if kind == "knn":
        params.setdefault("seed", seed)
    try:
        BUILDERS[kind](adata, key_added=key, **params)
    except ResourceError as refusal:
        if not fallback:
            raise
        fallback = dict(fallback)
        fallback_kind = fallback.pop("kind")
        log.warning("graph %r: %s; building a %s graph instead", key, refusal, fallback_kind)
        build(adata, fallback_kind, key, fallback, seed=seed)
        record = stored_params(adata, key)
        record["fallback_for"] = {"kind": kind, **{k: v for k, v in params.items() if k != "seed"}}
        record["fallback_reason"] = str(refusal)


def stored_params(adata: AnnData, key: str) -> dict[str, Any] | None:
    return adata.uns.get(_keys.UNS, {}).get("graph", {}).get(key)


def _kernel_blocks(x: np.ndarray, block_size: int):
    for start in range(0, x.shape[0], block_size):
        yield start, x[start:start + block_size] @ x.T


def _kernel_percentile(x: np.ndarray, percentile: float, block_size: int, sample: int = 200_000) -> float:
    """Exact ``percentile`` (numpy's 'linear' rule) of all n² kernel values, in O(n · block) memory."""
    n = x.shape[0]
    total = n * n
    rank = percentile / 100 * (total - 1)  # fractional rank of the wanted value in the sorted values
    lo_rank, hi_rank = int(np.floor(rank)), int(np.ceil(rank))
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, sample), rng.integers(0, n, sample)
    chunk = 4096  # sampled pairs per step: never sample x genes floats at once
    s = np.concatenate([np.einsum("ij,ij->i", x[i[k:k + chunk]], x[j[k:k + chunk]]) for k in range(0, sample, chunk)])
    margin = 0.01 + 4 * np.sqrt(percentile / 100 * (1 - percentile / 100) / sample)
    lo, hi = np.quantile(s, [max(percentile / 100 - margin, 0), min(percentile / 100 + margin, 1)])
    while True:
        below, inside = 0, []
        for _, block in _kernel_blocks(x, block_size):
            below += int(np.count_nonzero(block < lo))
            inside.append(block[(block >= lo) & (block <= hi)])
        inside = np.sort(np.concatenate(inside))
        if below <= lo_rank and below + inside.size > hi_rank:
            a, b = inside[lo_rank - below], inside[hi_rank - below]
            return float(a + (b - a) * (rank - lo_rank))
        lo, hi = -np.inf if below > lo_rank else lo, np.inf if below + inside.size <= hi_rank else hi


def _binarise(graph) -> sp.csr_matrix:
    graph = sp.csr_matrix(graph, dtype=np.float32)
    graph.data[:] = 1.0
    graph.eliminate_zeros()
    return graph


def _record(adata: AnnData, key: str, params: dict[str, Any]) -> None:
    adata.uns.setdefault(_keys.UNS, {}).setdefault("graph", {})[key] = params
