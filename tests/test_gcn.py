"""nn/gcn.py, the GCN propagation scVGAE and SCGNN share: Â by the formula, and its cheap backward."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from graphimpute.nn.gcn import gcn_adjacency, propagate


def test_adjacency_is_the_symmetric_normalisation_with_self_loops():
    directed = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], np.float32))
    a = directed.toarray()
    a = ((a + a.T) > 0).astype(np.float64) + np.eye(4)  # both directions, self-loops
    d = 1 / np.sqrt(a.sum(axis=1))
    expected = d[:, None] * a * d[None, :]
    np.testing.assert_allclose(gcn_adjacency(directed).to_dense().numpy(), expected, rtol=1e-6)


def test_propagation_gradient_equals_the_dense_products():
    rng = np.random.default_rng(0)
    graph = sp.random(30, 30, density=0.15, random_state=1, format="csr")
    adj = gcn_adjacency(graph)
    dense = adj.to_dense()
    h = torch.tensor(rng.normal(size=(30, 5)), dtype=torch.float32, requires_grad=True)
    h_dense = h.detach().clone().requires_grad_(True)
    weight = torch.tensor(rng.normal(size=(30, 5)), dtype=torch.float32)
    (propagate(adj, h) * weight).sum().backward()
    (dense @ h_dense * weight).sum().backward()
    torch.testing.assert_close(h.grad, h_dense.grad)
