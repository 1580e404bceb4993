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
from graphimpute.methods._common import (dense_counts, no_depth, own_knn_graph, own_pcs, run_fingerprint, split_cells,
                                         train_config)
from graphimpute.monitor import require_memory

log = logging.getLogger(__name__)

# mini-batch training (above full_batch_max_cells): steps of PARTS_PER_STEP small k-means parts of about
# step_cells / PARTS_PER_STEP cells (at least one) drawn from all over the data, so that every step is
# a sample of the whole (steps of 4 large parts, 1-2 cell types each, cost accuracy:
# bench/results/minibatch_schedule.md) while each part keeps its kNN edges
PARTS_PER_STEP = 128


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

    @torch.no_grad()
    def infer_in_groups(self, x: Tensor, edge_index: Tensor, groups: list[np.ndarray]) -> Tensor:
        """The eval-mode forward pass over the whole graph, layer by layer, for one group of cells at a
        time: each group with its in-neighbours and the edges into it, so every cell's output is
        exactly the full graph's. GATConv builds one message per edge and head (E x heads x hidden
        floats: 7 GB for a 5-NN graph of 100,000 cells), which the whole graph at once would need."""
        from torch_geometric.utils import subgraph

        n = x.shape[0]

        def layer(conv, norm, h):
            out = torch.empty(n, conv.out_channels, device=h.device)
            for group in groups:
                cells = torch.from_numpy(group).to(h.device)
                into = torch.zeros(n, dtype=torch.bool, device=h.device)
                into[cells] = True
                incoming = edge_index[:, into[edge_index[1]]]
                nodes = torch.unique(torch.cat([cells, incoming[0]]))
                local, _ = subgraph(nodes, incoming, relabel_nodes=True, num_nodes=n)
                out[cells] = F.relu(norm(conv(h[nodes], local)[torch.searchsorted(nodes, cells)]))
            return out

        z = layer(self.conv2, self.norm2, layer(self.conv1, self.norm1, x))
        return torch.cat([self.decoder(z[torch.from_numpy(g).to(z.device)]) for g in groups])[
            torch.from_numpy(np.argsort(np.concatenate(groups), kind="stable")).to(z.device)]


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


def cell_parts(pcs: np.ndarray, n_parts: int, seed: int) -> np.ndarray:
    """A part label per cell: k-means (seeded) on the principal components the cell graph is built
    from, so that many kNN edges join cells of one part (Cluster-GCN's idea; METIS is not available
    without compiled extras); one cell per part when there are as many parts as cells."""
    from sklearn.cluster import KMeans

    if n_parts >= pcs.shape[0]:
        return np.random.default_rng(seed).permutation(pcs.shape[0]).astype(np.int64)
    return KMeans(n_parts, n_init=1, random_state=seed).fit_predict(pcs).astype(np.int64)


def step_layout(n_cells: int, step_cells: int) -> tuple[int, int]:
    """(number of parts, parts per step) for steps of about ``step_cells`` cells: PARTS_PER_STEP parts
    per step, each of at least one cell."""
    part_cells = max(1, step_cells // PARTS_PER_STEP)
    return -(-n_cells // part_cells), max(1, round(step_cells / part_cells))


def step_groups(labels: np.ndarray, parts_per_step: int, generator: torch.Generator | None) -> list[np.ndarray]:
    """Cells of each step: the parts in random order (fixed order without ``generator``), taken
    ``parts_per_step`` at a time, so that a step joins parts anew each epoch (edges between the
    parts of one step are kept: Cluster-GCN's stochastic multiple partitions). The remainder joins
    the last full step when it is at most half a step: a few small parts would be a step too small
    for BatchNorm."""
    n_parts = int(labels.max()) + 1
    order = torch.randperm(n_parts, generator=generator).numpy() if generator is not None else np.arange(n_parts)
    members = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[members], np.arange(n_parts + 1))
    chunks = [order[first:first + parts_per_step] for first in range(0, n_parts, parts_per_step)]
    if len(chunks) > 1 and 2 * len(chunks[-1]) <= parts_per_step:
        remainder = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], remainder])
    return [np.sort(np.concatenate([members[bounds[p]:bounds[p + 1]] for p in chosen])) for chosen in chunks]


def step_subgraph(cells: Tensor, edge_index: Tensor, n_cells: int, hops: int) -> tuple[Tensor, Tensor, Tensor]:
    """(nodes, their edges relabelled, which nodes are the step's ``cells``) of one mini-batch step:
    the cells with the edges among them (``hops`` 0, Cluster-GCN), or with every in-neighbour within
    ``hops`` hops and the edges among all of them, which gives the step's cells the outputs of the whole
    graph (exact for ``hops`` >= the 2 GAT layers, in eval mode)."""
    from torch_geometric.utils import k_hop_subgraph, subgraph

    if hops:
        nodes, local, own, _ = k_hop_subgraph(cells, hops, edge_index, relabel_nodes=True, num_nodes=n_cells)
        return nodes, local, torch.zeros(nodes.numel(), dtype=torch.bool, device=cells.device).index_fill_(0, own, True)
    local, _ = subgraph(cells, edge_index, relabel_nodes=True, num_nodes=n_cells)
    return cells, local, torch.ones(cells.numel(), dtype=torch.bool, device=cells.device)


def estimate_memory_gb(n_cells: int, n_genes: int, n_edges: int, *, hidden_dim: int, latent_dim: int,
                       heads: int, step_cells: int | None = None) -> float:
    """Peak memory of one run in GiB (2^30 bytes, the unit of ``max_memory_gb``): ~10 dense cells x genes float32 copies (counts, log input, masked input,
    output, its gradient and ReLU mask, validation and final passes, the result); per-edge attention
    messages of both GAT layers kept for the backward pass (edges include one self-loop per cell);
    per-cell hidden activations; the weights with gradient, two Adam moments and a best-weights copy;
    and ~0.3 GiB for the libraries."""
    if step_cells is not None and step_cells < n_cells:  # mini-batches: what grows with the step
        # 4 copies of cells x genes stay (counts, target, masked input, output); the step's
        # activations and messages are those of ``step_cells`` cells, and inference adds one chunk
        edges = (n_edges / n_cells + 1) * step_cells
        dense = 4 * n_cells * n_genes + 6 * step_cells * n_genes
        messages = 4 * edges * heads * (hidden_dim + latent_dim)
        nodes = 8 * step_cells * (heads * hidden_dim + 2 * hidden_dim + heads * latent_dim) + 2 * n_cells * hidden_dim
    else:
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
    mini_batch = adata.n_obs > params["full_batch_max_cells"]
    step_cells = min(params["step_cells"], adata.n_obs) if mini_batch else None
    need = estimate_memory_gb(adata.n_obs, adata.n_vars, n_edges, hidden_dim=params["hidden_dim"],
                              latent_dim=params["latent_dim"], heads=params["heads"],
                              step_cells=2 * step_cells if mini_batch else None)  # headroom: inference adds in-neighbours
    require_memory(need, limit_gb=params["max_memory_gb"], device=device, what=f"gnnimpute on {adata.n_obs} cells x {adata.n_vars} genes",
                   advice="use fewer genes (--n-top-genes) or cells, a smaller hidden_dim, or raise max_memory_gb")

    # 1. median-library scaling and log1p; 2. 10% of each gene's non-zeros hidden from the input
    counts = dense_counts(adata)
    factors = normalise.size_factors(counts).astype(np.float32)
    target = np.log1p(counts / factors[:, None])
    rows, cols = mask_per_gene(target, params["mask_fraction"], rng)
    masked = target.copy()
    masked[rows, cols] = 0.0
    pcs = own_pcs(masked, n_pcs=params["n_pcs"], seed=ctx.seed)
    graph, graph_record = own_knn_graph(masked, n_neighbors=params["n_neighbors"], n_pcs=params["n_pcs"],
                                        seed=ctx.seed, pcs=pcs)
    train_cells, val_cells = split_cells(adata.n_obs, (params["train_fraction"], params["val_fraction"]), rng)
    if mini_batch:
        n_parts, parts_per_step = step_layout(adata.n_obs, step_cells)
        parts = cell_parts(pcs, n_parts, ctx.seed)
        fixed_groups = step_groups(parts, parts_per_step, None)
        generator = torch.Generator().manual_seed(ctx.seed)
    del pcs

    inputs = torch.from_numpy(masked).to(device)
    targets = torch.from_numpy(target).to(device)
    del masked
    cells = {"train": torch.from_numpy(train_cells).to(device), "val": torch.from_numpy(val_cells).to(device)}
    edge_index = torch.from_numpy(graphs.to_edge_index(graph)).to(device)
    module = GNNImpute(adata.n_vars, hidden_dim=params["hidden_dim"], latent_dim=params["latent_dim"],
                       heads=params["heads"], attention_dropout=params["attention_dropout"],
                       dropout=params["dropout"]).to(device)

    # 4. MSE of the reconstruction against the unmasked matrix, over one split's cells: the whole graph
    # at once, or (mini-batch) one group of parts with the edges among them per step
    def loss(module: GNNImpute, batch) -> dict[str, Tensor]:
        if isinstance(batch, str):
            index = cells[batch]
            return {"loss": F.mse_loss(module(inputs, edge_index)[index], targets[index])}
        split, group = batch
        nodes, local, own = step_subgraph(torch.from_numpy(group).to(device), edge_index, adata.n_obs,
                                          int(params["step_hops"]))
        scored = own & in_split[split][nodes]
        return {"loss": F.mse_loss(module(inputs[nodes], local)[scored], targets[nodes][scored])}

    if mini_batch:
        in_split = {split: torch.zeros(adata.n_obs, dtype=torch.bool, device=device).index_fill_(0, index, True)
                    for split, index in cells.items()}
        train_data = lambda: [("train", group) for group in step_groups(parts, parts_per_step, generator)]  # noqa: E731
        val_groups = [("val", group) for group in fixed_groups if np.isin(group, val_cells).any()]
        val_data = lambda: val_groups  # noqa: E731
    else:
        train_data, val_data = (lambda: ["train"]), (lambda: ["val"])
    fingerprint = run_fingerprint(adata, "gnnimpute", params, ctx)
    steps_per_epoch = len(fixed_groups) if mini_batch else 1
    schedule = train.schedule_in_steps(steps_per_epoch, max_epochs=params["max_epochs"], patience=params["patience"])
    config = train_config(ctx, "gnnimpute", fingerprint, **schedule, lr=params["lr"],
                          weight_decay=params["weight_decay"])
    history = train.fit(module, loss, config=config, device=device, train_data=train_data, val_data=val_data)

    # 5. the full reconstruction of the unmasked input, back to counts on each cell's library
    del inputs
    if mini_batch:
        module.eval()
        reconstructed = module.infer_in_groups(targets, edge_index, fixed_groups).cpu().numpy()
    else:
        with torch.no_grad():
            reconstructed = module(targets, edge_index).cpu().numpy()
    imputed = np.expm1(reconstructed, out=reconstructed) * factors[:, None]
    imputed[no_depth(counts.sum(axis=1), "gnnimpute")] = 0.0
    halo = f" and their in-neighbours within {params['step_hops']} hops" if params["step_hops"] else ""
    info = {
        "n_masked_entries": int(rows.size), "n_train_cells": int(train_cells.size),
        "n_val_cells": int(val_cells.size), "median_library": float(np.median(counts.sum(axis=1))),
        "graph": graph_record,
        "qc": "cell/gene filters of the paper are the pipeline's QC step (not repeated)",
        "memory_estimate_gb": round(need, 6),
        "steps_per_epoch": int(steps_per_epoch),
        "training": (f"mini-batch: {steps_per_epoch} steps per epoch of {parts_per_step} of {n_parts} k-means parts "
                     f"(~{step_cells} cells) with the edges among them"
                     f"{halo}; "
                     f"at most {schedule['max_epochs']} epochs, "
                     f"patience {schedule['patience']} (max_epochs and patience counted in optimiser steps)"
                     if mini_batch else "full graph"),
    }
    log.info("gnnimpute: best epoch %s of %d", history.best_epoch, history.n_epochs)
    return ImputeResult(imputed=imputed.astype(np.float32, copy=False), history=history.to_dict(), info=info)
