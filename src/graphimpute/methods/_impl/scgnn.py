"""The code of scgnn (its description, defaults and registry entry: ``methods/scgnn.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphimpute import normalise, train
from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import dense_counts, no_depth, own_knn_graph, run_fingerprint, split_cells, train_config
from graphimpute.monitor import require_memory
from graphimpute.nn.gcn import gcn_adjacency, propagate

log = logging.getLogger(__name__)


class GCNLayer(nn.Module):
    """Kipf & Welling's H' = Â H W + b (PyG's GCNConv with a fixed, pre-normalised Â).

    Â(HW) = (ÂH)W: the sparse product is taken on the narrower side (G/64 columns, never G), which
    is the same layer at a fraction of the cost of propagating G-wide messages. Glorot weights and
    zero bias, as GCNConv. Shapes: (N, in_dim) -> (N, out_dim)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.linear.weight)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        if self.linear.out_features <= self.linear.in_features:
            return propagate(adjacency, self.linear(x)) + self.bias
        return self.linear(propagate(adjacency, x)) + self.bias


class SCGNN(nn.Module):
    """GCN(G → D), ReLU, dropout, GCN(D → G), linear output (paper eq. in §2 "Bottle-necked GCN
    weights"). ``adjacency`` is the normalised Â on the module's device."""

    def __init__(self, n_genes: int, n_hidden: int, *, dropout: float, adjacency: Tensor):
        super().__init__()
        self.encode = GCNLayer(n_genes, n_hidden)
        self.decode = GCNLayer(n_hidden, n_genes)
        self.dropout = nn.Dropout(dropout)
        self.adjacency = adjacency  # fixed, not a parameter: kept out of state_dict and checkpoints

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout(torch.relu(self.encode(x, self.adjacency)))
        return self.decode(h, self.adjacency)

    def at(self, x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """``forward(x)[rows, cols]`` without the N x G output: the decoder's output at (i, g) is
        (ÂH)_i · W_g + b_g, so only the scored entries are computed. Training scores only the hidden
        entries, and the dense output (with its gradient) was most of an epoch's cost: 77 million
        floats per pass at 100,000 cells x 766 genes."""
        h = self.dropout(torch.relu(self.encode(x, self.adjacency)))
        z = propagate(self.adjacency, h)
        return (z[rows] * self.decode.linear.weight[cols]).sum(1) + self.decode.bias[cols]


def gene_dispersion(counts) -> np.ndarray:
    """variance / (1 + mean) of each gene's raw counts (sample variance, ddof = 1)."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    n = x.shape[0]
    mean = np.asarray(x.mean(axis=0)).ravel()
    mean_sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
    variance = (mean_sq - mean ** 2) * n / max(n - 1, 1)
    return variance / (1 + mean)


def estimate_memory_gb(n_cells: int, n_genes: int, n_kept: int, n_hidden: int, n_edges: int) -> float:
    """Peak memory of one run in GiB (2^30 bytes, the unit of ``max_memory_gb``): ~9 dense cells x genes float32 copies (counts, normalised and masked
    inputs, the output and its gradient, the validation pass, the imputed result), the graph, and the
    model with its Adam state and best-weights copy."""
    dense = 4 * n_cells * (2 * n_genes + 7 * n_kept)
    graph = 16 * (n_edges + n_cells) * 2
    model = 4 * 2 * n_kept * n_hidden * 5
    return (dense + graph + model) / 2**30


def impute(adata, params, ctx) -> ImputeResult:
    train.seed_everything(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    device = train.resolve_device(ctx.device)
    # 1. gene filter on raw counts; 2. median-library scaling of the kept genes
    keep = gene_dispersion(adata.X) > params["min_dispersion"]
    n_kept = int(keep.sum())
    n_hidden = max(1, int(n_kept / params["hidden_divisor"]), int(params["min_hidden"]))
    if n_kept < 2:
        raise GraphImputeError(f"scgnn: {n_kept} gene(s) pass the filter variance/(1+mean) > "
                               f"{params['min_dispersion']}; lower min_dispersion")
    n_edges = 2 * adata.n_obs * params["n_neighbors"]  # a symmetrised kNN graph has at most this many
    need = estimate_memory_gb(adata.n_obs, adata.n_vars, n_kept, n_hidden, n_edges)
    require_memory(need, limit_gb=params["max_memory_gb"], device=device, what=f"scgnn on {adata.n_obs} cells x {n_kept} genes",
                   advice="use fewer genes (--n-top-genes) or cells, or raise max_memory_gb")
    counts = dense_counts(adata)
    kept = np.ascontiguousarray(counts[:, keep])
    factors = normalise.size_factors(kept).astype(np.float32)
    scaled = kept / factors[:, None]

    # 3. hide a share of the non-zeros; the hidden entries of training / validation cells are the targets
    rows, cols = np.nonzero(scaled)
    fraction = min(np.count_nonzero(counts) / counts.size, params["max_hidden_fraction"])  # of the input
    chosen = rng.choice(rows.size, int(fraction * rows.size), replace=False)
    rows, cols = rows[chosen], cols[chosen]
    (val_cells,) = split_cells(adata.n_obs, (params["val_fraction"],), rng)
    is_val = np.zeros(adata.n_obs, bool)
    is_val[val_cells] = True
    masked = scaled.copy()
    masked[rows, cols] = 0.0
    graph, graph_record = own_knn_graph(np.log1p(masked) if params["graph_log1p"] else masked,
                                        n_neighbors=params["n_neighbors"], n_pcs=params["n_pcs"], seed=ctx.seed)
    graph_record["log1p"] = bool(params["graph_log1p"])

    def targets(select: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        return (torch.from_numpy(rows[select]).to(device), torch.from_numpy(cols[select]).to(device),
                torch.from_numpy(scaled[rows[select], cols[select]]).to(device))

    hidden = {"train": targets(~is_val[rows]), "val": targets(is_val[rows])}
    if min(len(target) for _, _, target in hidden.values()) == 0:
        raise GraphImputeError(f"scgnn: no hidden non-zero falls in the training or validation cells "
                               f"({adata.n_obs} cells, {rows.size} hidden); raise val_fraction or use more cells")
    inputs = torch.from_numpy(masked).to(device)
    del masked

    module = SCGNN(n_kept, n_hidden, dropout=params["dropout"],
                   adjacency=gcn_adjacency(graph, device)).to(device)

    def loss(module: SCGNN, split: str) -> dict[str, Tensor]:
        at_rows, at_cols, target = hidden[split]
        return {"loss": F.mse_loss(module.at(inputs, at_rows, at_cols), target)}

    fingerprint = run_fingerprint(adata, "scgnn", params, ctx)
    config = train_config(ctx, "scgnn", fingerprint, max_epochs=params["max_epochs"], lr=params["lr"],
                          weight_decay=params["weight_decay"], patience=params["patience"])
    history = train.fit(module, loss, config=config, device=device,
                        train_data=lambda: ["train"], val_data=lambda: ["val"])

    # 4. observed non-zeros kept, zeros predicted from the unmasked input, back to each cell's library
    del inputs
    with torch.no_grad():
        predicted = module(torch.from_numpy(scaled).to(device)).clamp_min(0).cpu().numpy()
    predicted[no_depth(kept.sum(axis=1), "scgnn")] = 0.0
    imputed = counts
    imputed[:, keep] = np.where(kept > 0, kept, predicted * factors[:, None])
    info = {
        "genes_imputed": n_kept, "genes_left_observed": int(adata.n_vars - n_kept),
        "gene_filter": f"variance/(1+mean) > {params['min_dispersion']} on raw counts",
        "hidden_dim": n_hidden, "hidden_fraction": float(fraction), "n_hidden_entries": int(rows.size),
        "n_val_cells": int(is_val.sum()), "median_library": float(np.median(kept.sum(axis=1))),
        "graph": graph_record, "memory_estimate_gb": round(need, 6),
    }
    log.info("scgnn: %d genes imputed, %d left as observed; best epoch %s of %d",
             n_kept, adata.n_vars - n_kept, history.best_epoch, history.n_epochs)
    return ImputeResult(imputed=imputed.astype(np.float32, copy=False), history=history.to_dict(), info=info)
