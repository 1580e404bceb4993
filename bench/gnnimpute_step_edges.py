"""How much of GNNImpute's cell graph one mini-batch step sees (issue 15).

GNNImpute's steps (above ``full_batch_max_cells``) are groups of k-means parts with the edges among
them: edges to cells outside the group are dropped for that step, while imputation uses the whole
graph. For one input file this builds the method's own graph and parts as ``impute`` does (masked
log input, PCA 50, 5-NN; ``step_layout``'s parts and parts per step) and prints the share of
edges inside one part and inside one step (mean of 5 shuffled epochs), and how many nodes a step would
hold with the 1- and 2-hop in-neighbourhoods its cells need for an exact forward pass.

    PYTHONPATH=src python bench/gnnimpute_step_edges.py FILE.h5ad [STEP_CELLS]
"""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from graphimpute import normalise
from graphimpute.methods._common import dense_counts, own_knn_graph, own_pcs
from graphimpute.methods._impl import gnnimpute


def main(path: str, step_cells: int = 4096, seed: int = 0) -> None:
    adata = ad.read_h5ad(path)
    counts = dense_counts(adata)
    factors = normalise.size_factors(counts).astype(np.float32)
    masked = np.log1p(counts / factors[:, None])
    rows, cols = gnnimpute.mask_per_gene(masked, 0.1, np.random.default_rng(seed))
    masked[rows, cols] = 0.0
    pcs = own_pcs(masked, n_pcs=50, seed=seed)
    graph, _ = own_knn_graph(masked, n_neighbors=5, n_pcs=50, seed=seed, pcs=pcs)
    edges = sp.coo_matrix(graph)
    n_parts, parts_per_step = gnnimpute.step_layout(adata.n_obs, step_cells)
    parts = gnnimpute.cell_parts(pcs, n_parts, seed)
    generator = torch.Generator().manual_seed(seed)
    in_step = []
    for _ in range(5):
        groups = gnnimpute.step_groups(parts, parts_per_step, generator)
        step = np.empty(adata.n_obs, dtype=np.int64)
        for i, group in enumerate(groups):
            step[group] = i
        in_step.append(np.mean(step[edges.row] == step[edges.col]))
    into = sp.csr_matrix((np.ones(edges.nnz), (edges.col, edges.row)), shape=graph.shape)  # row: target
    one_hop, two_hop = [], []
    for group in groups:
        cells = np.zeros(adata.n_obs, dtype=bool)
        cells[group] = True
        first = cells | (into[cells].sum(axis=0).A1 > 0)
        second = first | (into[first].sum(axis=0).A1 > 0)
        one_hop.append(first.sum() / cells.sum())
        two_hop.append(second.sum() / cells.sum())
    print(f"{path}: {adata.n_obs} cells, {n_parts} parts of ~{adata.n_obs / n_parts:.0f} cells, {len(groups)} steps; "
          f"edges inside one part {np.mean(parts[edges.row] == parts[edges.col]):.3f}, inside one step "
          f"{np.mean(in_step):.3f}; nodes per step with the 1-hop neighbourhood x{np.mean(one_hop):.2f}, "
          f"2-hop x{np.mean(two_hop):.2f}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
