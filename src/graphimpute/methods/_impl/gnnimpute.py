"""The code of gnnimpute (its description, defaults and registry entry: ``methods/gnnimpute.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphimpute import graphs, normalise, train
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import dense_counts, no_depth, own_knn_graph, run_fingerprint, split_cells, train_config
from graphimpute.monitor import require_memory

log = logging.getLogger(__name__)


class GNNImpute(nn.Module):
    """The paper's Fig. 4a. Shapes: x (N, G), edge_index (2, E) → (N, G), non-negative."""

    def __init__(self, n_genes: int, *, hidden_dim: int, latent_dim: int, heads: int,
                 attention_dropout: float, dropout: float):
        from torch_geometric.nn import GATConv

        super().__init__()
        self.conv1 = GATConv(n_genes, hidden_dim, heads=heads, concat=False, dropout=attention_dropout)
        self.norm1 = nn.BatchNorm1d(hidden_dim)
        self.conv2 = GATConv(hidden_dim, latent_dim, heads=heads, concat=False, dropout=attention_dropout)
        self.norm2 = nn.BatchNorm1d(latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, n_genes), nn.ReLU())
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.dropout(F.relu(self.norm1(self.conv1(x, edge_index))))
        z = self.dropout(F.relu(self.norm2(self.conv2(h, edge_index))))
        return self.decoder(z)


def mask_per_gene(values: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of floor(fraction x n) of each gene's n non-zeros, chosen uniformly."""
    csc = sp.csc_matrix(values)
    rows, cols = [], []
    for gene in range(csc.shape[1]):
        start, stop = csc.indptr[gene], csc.indptr[gene + 1]
        k = int(fraction * (stop - start))
        if k:
            rows.append(csc.indices[start + rng.choice(stop - start, k, replace=False)])
            cols.append(np.full(k, gene))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def estimate_memory_gb(n_cells: int, n_genes: int, n_edges: int, *, hidden_dim: int, latent_dim: int,
                       heads: int) -> float:
    """Peak memory of one run in GiB (2^30 bytes, the unit of ``max_memory_gb``): ~10 dense cells x genes float32 copies (counts, log input, masked input,
    output, its gradient and ReLU mask, validation and final passes, the result); per-edge attention
    messages of both GAT layers kept for the backward pass (edges include one self-loop per cell);
    per-cell hidden activations; the weights with gradient, two Adam moments and a best-weights copy;
    and ~0.3 GiB for the libraries."""
    edges = n_edges + n_cells
    dense = 10 * n_cells * n_genes
    messages = 4 * edges * heads * (hidden_dim + latent_dim)
    nodes = 8 * n_cells * (heads * hidden_dim + 2 * hidden_dim + heads * latent_dim)
    weights = 5 * (n_genes * heads * hidden_dim + hidden_dim * heads * latent_dim + hidden_dim * n_genes
                   + latent_dim * hidden_dim)
    return 4 * (dense + messages + nodes + weights) / 2**30 + 0.3


def impute(adata, params, ctx) -> ImputeResult:
    train.seed_everything(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    device = train.resolve_device(ctx.device)
    n_edges = 2 * adata.n_obs * params["n_neighbors"]  # a symmetrised kNN graph has at most this many
    need = estimate_memory_gb(adata.n_obs, adata.n_vars, n_edges, hidden_dim=params["hidden_dim"],
                              latent_dim=params["latent_dim"], heads=params["heads"])
    require_memory(need, limit_gb=params["max_memory_gb"], device=device, what=f"gnnimpute on {adata.n_obs} cells x {adata.n_vars} genes",
                   advice="use fewer genes (--n-top-genes) or cells, a smaller hidden_dim, or raise max_memory_gb")

    # 1. median-library scaling and log1p; 2. 10% of each gene's non-zeros hidden from the input
    counts = dense_counts(adata)
    factors = normalise.size_factors(counts).astype(np.float32)
    target = np.log1p(counts / factors[:, None])
    rows, cols = mask_per_gene(target, params["mask_fraction"], rng)
    masked = target.copy()
    masked[rows, cols] = 0.0
    graph, graph_record = own_knn_graph(masked, n_neighbors=params["n_neighbors"], n_pcs=params["n_pcs"],
                                        seed=ctx.seed)
    train_cells, val_cells = split_cells(adata.n_obs, (params["train_fraction"], params["val_fraction"]), rng)

    inputs = torch.from_numpy(masked).to(device)
    targets = torch.from_numpy(target).to(device)
    del masked
    cells = {"train": torch.from_numpy(train_cells).to(device), "val": torch.from_numpy(val_cells).to(device)}
    edge_index = torch.from_numpy(graphs.to_edge_index(graph)).to(device)
    module = GNNImpute(adata.n_vars, hidden_dim=params["hidden_dim"], latent_dim=params["latent_dim"],
                       heads=params["heads"], attention_dropout=params["attention_dropout"],
                       dropout=params["dropout"]).to(device)

    # 4. MSE of the reconstruction against the unmasked matrix, over one split's cells
    def loss(module: GNNImpute, split: str) -> dict[str, Tensor]:
        index = cells[split]
        return {"loss": F.mse_loss(module(inputs, edge_index)[index], targets[index])}

    fingerprint = run_fingerprint(adata, "gnnimpute", params, ctx)
    config = train_config(ctx, "gnnimpute", fingerprint, max_epochs=params["max_epochs"], lr=params["lr"],
                          weight_decay=params["weight_decay"], patience=params["patience"])
    history = train.fit(module, loss, config=config, device=device,
                        train_data=lambda: ["train"], val_data=lambda: ["val"])

    # 5. the full reconstruction of the unmasked input, back to counts on each cell's library
    del inputs
    with torch.no_grad():
        reconstructed = module(targets, edge_index).cpu().numpy()
    imputed = np.expm1(reconstructed, out=reconstructed) * factors[:, None]
    imputed[no_depth(counts.sum(axis=1), "gnnimpute")] = 0.0
    info = {
        "n_masked_entries": int(rows.size), "n_train_cells": int(train_cells.size),
        "n_val_cells": int(val_cells.size), "median_library": float(np.median(counts.sum(axis=1))),
        "graph": graph_record,
        "qc": "cell/gene filters of the paper are the pipeline's QC step (not repeated)",
        "memory_estimate_gb": round(need, 6),
    }
    log.info("gnnimpute: best epoch %s of %d", history.best_epoch, history.n_epochs)
    return ImputeResult(imputed=imputed.astype(np.float32, copy=False), history=history.to_dict(), info=info)
