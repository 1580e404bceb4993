"""GCN propagation on a fixed cell graph, shared by scVGAE and SCGNN (Kipf & Welling 2017).

Both methods train on one graph that never changes, so the normalised adjacency
Â = D̃^-½ (A + I) D̃^-½ (PyG's ``gcn_norm``: self-loops, symmetric normalisation) is computed once per run
and kept as a torch sparse CSR matrix: PyG's ``cached=True`` without re-reading ``edge_index`` in
every layer. A layer is then Â·H·W + b, and each method multiplies in the cheaper order.

Shapes: ``gcn_adjacency`` (n, n) scipy graph → (n, n) sparse CSR tensor; ``propagate(adj, h)``
(n, n) x (n, d) → (n, d).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


class _SymmetricPropagate(torch.autograd.Function):
    """Â·H for a symmetric sparse Â. Its gradient with respect to H is Âᵀ·grad = Â·grad, so autograd
    never transposes (and re-sorts) the CSR matrix; torch's own backward of ``sparse.mm`` does, which
    costs ~10x the forward."""

    @staticmethod
    def forward(ctx, adj: Tensor, h: Tensor) -> Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, h)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, torch.sparse.mm(ctx.adj, grad)


def propagate(adj: Tensor, h: Tensor) -> Tensor:
    """Â·H with Â from ``gcn_adjacency`` (symmetric: the cheap backward above is exact)."""
    return _SymmetricPropagate.apply(adj, h)


def gcn_adjacency(graph: sp.spmatrix, device: torch.device | str | None = None) -> Tensor:
    """Â = D̃^-½ (A + I) D̃^-½ of a cell graph as a sparse CSR tensor (float32) on ``device``.

    The graph is made binary and symmetric first (an edge in either direction counts once), which is
    what makes ``propagate``'s backward exact. Rows aggregate their sources (row = target)."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    graph = sp.coo_matrix(graph)
    graph = sp.coo_matrix(((graph + graph.T) > 0).astype(np.float32))
    edge_index = torch.from_numpy(np.vstack([graph.row, graph.col]).astype(np.int64))
    edge_index, weight = gcn_norm(edge_index, None, graph.shape[0], add_self_loops=True)
    target, source = edge_index[1].numpy(), edge_index[0].numpy()
    norm = sp.csr_matrix((weight.numpy(), (target, source)), shape=graph.shape)
    norm.sort_indices()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        adj = torch.sparse_csr_tensor(torch.from_numpy(norm.indptr.astype(np.int64)),
                                      torch.from_numpy(norm.indices.astype(np.int64)),
                                      torch.from_numpy(norm.data), size=norm.shape, check_invariants=True)
    return adj if device is None else adj.to(device)
