"""The code of graphsci (its description, defaults and registry entry: ``methods/graphsci.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from anndata import AnnData
from torch import Tensor, nn
from torch_geometric.nn import GCNConv
from torch_geometric.utils import negative_sampling

from graphimpute import _keys, graphs, monitor, normalise, train
from graphimpute.errors import GraphImputeError, ResourceError
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import no_depth, run_fingerprint, train_config
from graphimpute.methods.graphsci import GRAPH, LEARNED_GRAPH_KEY
from graphimpute.nn.losses import zinb_nll

log = logging.getLogger(__name__)


# Clamps of the official code: mean exp(.) in [1e-5, 1e6], dispersion softplus(.) in [1e-4, 1e4];
# the log-variance is clamped like PyG's VGAE clamps its log-std (at 10, i.e. 20 for log σ²).
MEAN_RANGE = (1e-5, 1e6)
DISPERSION_RANGE = (1e-4, 1e4)
MAX_LOGVAR = 20.0
# cells per step above full_batch_max_cells (batch_size 0): ~0.6 GiB of step activations at 2,000 genes
AUTO_BATCH_SIZE = 4096
ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu}


class GraphSCIModule(nn.Module):
    """The two branches. Shapes: gene features (G, n) = the cells' scaled log expression transposed;
    ``edge_index`` (2, E) the gene graph without self-loops (GCNConv adds them); cell input (b, G)."""

    def __init__(self, *, n_cells: int, n_genes: int, hidden: int, latent: int, dropout: float,
                 gcn_activation: str = "tanh"):
        super().__init__()
        self.dropout = dropout
        self.gcn_activation = ACTIVATIONS[gcn_activation]
        self.gcn_hidden = GCNConv(n_cells, hidden, bias=False, cached=True)  # eq. 3
        self.gcn_mean = GCNConv(hidden, latent, bias=False, cached=True)  # eq. 4
        self.gcn_logvar = GCNConv(hidden, latent, bias=False, cached=True)
        self.gene_weight = nn.Parameter(torch.empty(n_genes, n_genes))  # W in eq. 5
        self.gene_bias = nn.Parameter(torch.zeros(n_genes))
        nn.init.xavier_uniform_(self.gene_weight)
        self.encoder = nn.Sequential(
            nn.Linear(n_genes, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, latent), nn.BatchNorm1d(latent), nn.ReLU(),
        )
        self.mean_head = nn.Linear(latent, n_genes)  # eq. 9
        self.dispersion_head = nn.Linear(latent, n_genes)  # eq. 10
        self.dropout_head = nn.Linear(latent, n_genes)  # eq. 11

    def encode_genes(self, gene_x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance (G, latent) of each gene's Gaussian latent (eqs. 3-4)."""
        h = F.dropout(gene_x, self.dropout, self.training)
        h = self.gcn_activation(self.gcn_hidden(h, edge_index))
        h = F.dropout(h, self.dropout, self.training)
        return self.gcn_mean(h, edge_index), self.gcn_logvar(h, edge_index).clamp(max=MAX_LOGVAR)

    def gene_latent(self, mean: Tensor, logvar: Tensor) -> Tensor:
        """Reparameterised sample while training, the mean at inference."""
        if not self.training:
            return mean
        return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)

    def expression(self, x: Tensor, adjacency: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ZINB mean, dispersion and dropout logits (b, G) of cells ``x`` (b, G) given the learned
        adjacency Â (G, G) (eqs. 5-6, 9-11)."""
        h = torch.tanh(x @ (self.gene_weight * adjacency) + self.gene_bias)
        h = self.encoder(h)
        mean = torch.exp(self.mean_head(h).clamp(np.log(MEAN_RANGE[0]), np.log(MEAN_RANGE[1])))
        dispersion = F.softplus(self.dispersion_head(h)).clamp(*DISPERSION_RANGE)
        return mean, dispersion, self.dropout_head(h)


@dataclass
class _Data:
    """Tensors of one run, on the training device."""

    x: Tensor  # (n, G) scaled log1p(counts / size_factor)
    counts: Tensor  # (n, G) raw counts: the ZINB target
    size_factor: Tensor  # (n,)
    edge_index: Tensor  # (2, E) gene graph, no self-loops
    positives: Tensor  # (2, E + G) edges of A + I: the BCE's positive labels
    labels: Tensor | None  # (G, G) dense A + I, only when the BCE is computed densely
    pos_weight: float  # (G² - ΣA) / ΣA
    norm: float  # G² / (2 (G² - ΣA)), the official code's weight of the BCE


def adjacency_loss(logits: Tensor, data: _Data) -> Tensor:
    """norm · mean over all G² pairs of the BCE with ``pos_weight`` (Kipf & Welling's GAE loss).

    Dense when ``data.labels`` is given; otherwise edge by edge: every positive pair plus as many
    non-edges drawn uniformly (PyG's negative_sampling), their mean standing for all G² - |A+I| non-edges,
    so that both forms have the same expectation."""
    g = logits.shape[0]
    if data.labels is not None:
        return data.norm * F.binary_cross_entropy_with_logits(
            logits, data.labels, pos_weight=torch.tensor(data.pos_weight, device=logits.device))
    pos = logits[data.positives[0], data.positives[1]]
    negatives = negative_sampling(data.positives, num_nodes=g, num_neg_samples=data.positives.shape[1])
    neg = logits[negatives[0], negatives[1]]
    n_negative = g * g - data.positives.shape[1]
    total = data.pos_weight * F.softplus(-pos).sum() + n_negative * F.softplus(neg).mean()
    return data.norm * total / (g * g)


def gene_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(Z|A,X) || N(0, I)) per gene, averaged over genes and divided by G (the official code's and
    PyG's VGAE scaling, which keeps it commensurate with the mean BCE)."""
    per_gene = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp(), dim=1)
    return per_gene.mean() / mean.shape[0]


def loss(module: GraphSCIModule, cells: Tensor | None, data: _Data) -> dict[str, Tensor]:
    """ZINB of the raw counts of ``cells`` (all when None) + adjacency BCE + gene KL (eq. 19)."""
    mean_z, logvar = module.encode_genes(data.x.T, data.edge_index)
    z = module.gene_latent(mean_z, logvar)
    logits = z @ z.T
    x, counts, size_factor = ((data.x, data.counts, data.size_factor) if cells is None
                              else (data.x[cells], data.counts[cells], data.size_factor[cells]))
    mu, theta, pi_logits = module.expression(x, torch.sigmoid(logits))
    zinb = zinb_nll(counts, mu=mu * size_factor[:, None], theta=theta, pi_logits=pi_logits).mean()
    adjacency = adjacency_loss(logits, data)
    kl = gene_kl(mean_z, logvar)
    return {"loss": zinb + adjacency + kl, "zinb": zinb, "adjacency": adjacency, "kl": kl}


def estimate_memory_gb(*, n_cells: int, n_genes: int, batch_size: int, dense_adjacency: bool) -> float:
    """Peak memory of training in GiB (2^30 bytes, the unit of ``max_memory_gb``): genes x genes
    tensors (W with its gradient and Adam moments, ZZᵀ, Â, W ⊙ Â and their gradients; the dense BCE's
    labels and terms), cells x genes tensors of one step (layer outputs, ZINB terms and gradients) and
    the data (counts, the scaled input and the scaling's dense temporaries: 6 floats per cell x gene),
    plus 600 MB of margin. Coefficients checked against the measured growth of the process
    (bench/results/graphsci.md) and its peak at 10k/30k/100k cells (bench/results/scale.md: with 4 floats
    per cell x gene of data the estimate was 0.7 GiB under the peak less the interpreter at 100k)."""
    genes_sq = (14 + (2 if dense_adjacency else 0)) * n_genes**2
    per_step = 20 * batch_size * n_genes
    data = 6 * n_cells * n_genes
    return ((genes_sq + per_step + data) * 4 / 2**20 + 600) / 1024


def cell_batch_size(n_cells: int, params: dict) -> int:
    """Cells per optimiser step: ``batch_size`` when given; else all cells (the official code's one
    full-batch step per epoch) up to ``full_batch_max_cells``, and steps of ``AUTO_BATCH_SIZE`` above,
    where a full-batch step's cells x genes activations would grow with the sample (20 floats per
    entry: 16 GB at 100,000 x 2,000)."""
    if params["batch_size"] > 0:
        return min(params["batch_size"], n_cells)
    return n_cells if n_cells <= params["full_batch_max_cells"] else AUTO_BATCH_SIZE


def size_factors(adata: AnnData) -> tuple[np.ndarray, str]:
    """``obs['size_factor']`` when the pipeline stored it; else library / median library of X (paper),
    0 for a cell with no counts in X (its output is then 0: ``_common.no_depth``)."""
    if _keys.SIZE_FACTOR in adata.obs:
        return adata.obs[_keys.SIZE_FACTOR].to_numpy(np.float32), f"obs['{_keys.SIZE_FACTOR}']"
    factors = normalise.size_factors(adata.X).astype(np.float32)
    factors[no_depth(adata.X.sum(axis=1), "graphsci")] = 0.0
    return factors, "library / median library of X"


def scaled_log_expression(counts, size_factor: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(log1p(counts / size_factor) sparse, the same dense and scaled per gene to zero mean and unit
    variance: the network's input, eq. 1). Genes without variance become 0."""
    import scanpy as sc

    lognorm = normalise.lognorm(counts, np.where(size_factor > 0, size_factor, 1.0))
    tmp = AnnData(X=lognorm.toarray())
    sc.pp.scale(tmp, zero_center=True)
    return lognorm, np.nan_to_num(np.asarray(tmp.X, dtype=np.float32))


def gene_graph(adata: AnnData, lognorm: sp.csr_matrix, max_genes: int) -> tuple[sp.csr_matrix, str]:
    """The stored gene graph ``varp['gene_pearson']``, or the same graph built here from ``lognorm``."""
    if GRAPH.key in adata.varp:
        return sp.csr_matrix(adata.varp[GRAPH.key]), f"varp['{GRAPH.key}']"
    log.warning("graphsci: no varp['%s']; building the gene Pearson graph (|r| > %s) here",
                GRAPH.key, GRAPH.params["threshold"])
    tmp = AnnData(X=sp.csr_matrix(adata.shape, dtype=np.float32), layers={_keys.LOGNORM: lognorm})
    graphs.gene_pearson_graph(tmp, **GRAPH.params, max_genes=max_genes, key_added=GRAPH.key)
    return sp.csr_matrix(tmp.varp[GRAPH.key]), "built by graphsci from log1p(counts / size_factor)"


def learned_graph(adjacency: np.ndarray, *, threshold: float, top_k: int) -> sp.csr_matrix:
    """Sparse learned gene graph: for each gene its ``top_k`` strongest partners with Â > ``threshold``,
    symmetrised (an edge kept by either gene); weights are Â; no self-edges."""
    a = adjacency.copy()
    np.fill_diagonal(a, 0.0)
    g = a.shape[0]
    k = min(top_k, g - 1)
    if k <= 0:
        return sp.csr_matrix((g, g), dtype=np.float32)
    cols = np.argpartition(-a, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(g), k)
    values = a[rows, cols.ravel()]
    keep = values > threshold
    graph = sp.csr_matrix((values[keep], (rows[keep], cols.ravel()[keep])), shape=(g, g), dtype=np.float32)
    return graph.maximum(graph.T).tocsr()


def impute(adata: AnnData, params: dict, ctx) -> ImputeResult:
    n, g = adata.shape
    if g > params["max_genes"]:
        raise ResourceError(
            f"GraphSCI keeps genes x genes weights and adjacency: limited to {params['max_genes']} genes "
            f"({g} given), as its gene Pearson graph; keep at most {params['max_genes']} genes with --n-top-genes")
    if params["gcn_activation"] not in ACTIVATIONS:
        raise GraphImputeError(f"gcn_activation must be one of {', '.join(ACTIVATIONS)}, "
                               f"not {params['gcn_activation']!r}")
    device = train.resolve_device(ctx.device)
    batch_size = cell_batch_size(n, params)
    dense = g <= params["dense_adjacency_max_genes"]
    need = estimate_memory_gb(n_cells=n, n_genes=g, batch_size=batch_size, dense_adjacency=dense)
    monitor.require_memory(need, limit_gb=params["max_memory_gb"], device=device,
                           what=f"GraphSCI on {n} cells x {g} genes in steps of {batch_size} cells",
                           advice="lower the gene count with --n-top-genes, train on fewer cells at a time "
                                  "with --param batch_size=N, or raise max_memory_gb if the memory is there")

    train.seed_everything(ctx.seed)
    size_factor, size_factor_source = size_factors(adata)
    lognorm, x = scaled_log_expression(adata.X, size_factor)
    counts = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    counts = counts.astype(np.float32, copy=False)
    graph, graph_source = gene_graph(adata, lognorm, params["max_genes"])
    del lognorm
    data = _tensors(x, counts, size_factor, graph, dense, device)
    module = GraphSCIModule(n_cells=n, n_genes=g, hidden=params["hidden"], latent=params["latent"],
                            dropout=params["dropout"], gcn_activation=params["gcn_activation"]).to(device)
    fingerprint = run_fingerprint(adata, "graphsci", params, ctx, reads=(GRAPH.key, _keys.SIZE_FACTOR))
    steps_per_epoch = -(-n // batch_size)
    schedule = train.schedule_in_steps(steps_per_epoch, max_epochs=params["max_epochs"],
                                       lr_decay_every=params["lr_decay_steps"])
    config = train_config(
        ctx, "graphsci", fingerprint, **schedule, lr=params["lr"], weight_decay=params["weight_decay"],
        lr_decay=params["lr_decay"], lr_decay_staircase=params["lr_decay_staircase"],
        restore_best=False)  # a fixed schedule; the last epoch's weights
    history = train.fit(module, lambda m, cells: loss(m, cells, data), config=config, device=device,
                        train_data=_cell_batches(n, batch_size, ctx.seed, device))

    imputed, adjacency = _infer(module, data, batch_size)
    learned = learned_graph(adjacency, threshold=params["learned_graph_threshold"],
                            top_k=params["learned_graph_top_k"])
    info = {
        "size_factor": size_factor_source,
        "gene_graph": graph_source,
        "gene_graph_edges": int(graph.nnz),
        "adjacency_loss": "dense" if dense else "sampled non-edges",
        "batch_size": int(batch_size),
        "steps_per_epoch": int(steps_per_epoch),
        "training": "full batch" if batch_size >= n else
                    f"mini-batch: {steps_per_epoch} steps of {batch_size} cells per epoch, {schedule['max_epochs']} epochs "
                    f"(max_epochs={params['max_epochs']} counted in optimiser steps)",
        "memory_estimate_gb": round(need, 6),
        "learned_graph": {"key": LEARNED_GRAPH_KEY, "n_edges": int(learned.nnz),
                          "threshold": params["learned_graph_threshold"],
                          "top_k": params["learned_graph_top_k"],
                          "share_of_pairs_above_threshold": _share_above(adjacency,
                                                                         params["learned_graph_threshold"]),
                          "observed_edges_kept": _share_kept(graph, learned),
                          **_adjacency_summary(adjacency, graph, data.pos_weight)},
    }
    return ImputeResult(imputed=imputed, history=history.to_dict(), info=info,
                        varp={LEARNED_GRAPH_KEY: learned})


def _tensors(x, counts, size_factor, graph, dense: bool, device) -> _Data:
    g = graph.shape[0]
    edge_index = graphs.to_edge_index(graph)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    n_edges = edge_index.shape[1]
    if n_edges == 0:
        log.warning("graphsci: the gene graph has no edges; the adjacency loss only sees self-pairs")
    diag = np.arange(g)
    positives = np.hstack([edge_index, np.vstack([diag, diag])])
    labels = None
    if dense:
        labels = torch.zeros(g, g, device=device)
        labels[torch.from_numpy(positives[0]), torch.from_numpy(positives[1])] = 1.0
    edge_sum = max(n_edges, 1)
    return _Data(
        x=torch.from_numpy(x).to(device),
        counts=torch.from_numpy(counts).to(device),
        size_factor=torch.from_numpy(size_factor).to(device),
        edge_index=torch.from_numpy(edge_index).to(device),
        positives=torch.from_numpy(positives).to(device),
        labels=labels,
        pos_weight=float(g * g - n_edges) / edge_sum,
        norm=g * g / float(2 * (g * g - n_edges)),
    )


def _cell_batches(n: int, batch_size: int, seed: int, device):
    """None (one full-batch step per epoch) or a shuffled split of the cells, reproducible by seed."""
    if batch_size >= n:
        return None
    generator = torch.Generator().manual_seed(seed)

    def batches():
        return list(torch.randperm(n, generator=generator).to(device).split(batch_size))

    return batches


@torch.no_grad()
def _infer(module: GraphSCIModule, data: _Data, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected counts mean x size factor (n, G) and the learned adjacency sigmoid(μ μᵀ), in eval mode."""
    module.eval()
    mean_z, _ = module.encode_genes(data.x.T, data.edge_index)
    adjacency = torch.sigmoid(mean_z @ mean_z.T)
    chunks = []
    for cells in torch.arange(data.x.shape[0], device=data.x.device).split(max(batch_size, 1)):
        mu, _, _ = module.expression(data.x[cells], adjacency)
        chunks.append((mu * data.size_factor[cells, None]).cpu())
    return torch.cat(chunks).numpy().astype(np.float32), adjacency.cpu().numpy()


def _share_above(adjacency: np.ndarray, threshold: float) -> float:
    """Share of distinct gene pairs (no self-pairs) whose learned Â exceeds ``threshold``."""
    g = adjacency.shape[0]
    above = int(np.count_nonzero(adjacency > threshold)) - int(np.count_nonzero(np.diag(adjacency) > threshold))
    return above / max(g * (g - 1), 1)


def _adjacency_summary(adjacency: np.ndarray, observed: sp.spmatrix, pos_weight: float) -> dict:
    """What the learned Â says off the diagonal: its mean, its mean on the observed edges and on the
    other pairs, and the share of pairs above w/(1+w). Trained with pos_weight w, Â = 0.5 stands for
    a pair as likely as a random one (the base rate), not for an even chance: Â > w/(1+w) is the
    level at which the loss calls a pair more likely an edge than not (docs/methods.md, GraphSCI)."""
    g = adjacency.shape[0]
    off = ~np.eye(g, dtype=bool)
    edges = observed.toarray() > 0
    calibrated = pos_weight / (1 + pos_weight)
    return {"mean_offdiagonal": float(adjacency[off].mean()),
            "mean_on_observed_edges": float(adjacency[edges & off].mean()) if edges.any() else None,
            "mean_on_other_pairs": float(adjacency[~edges & off].mean()),
            "share_of_pairs_above_even_odds": float(np.count_nonzero((adjacency > calibrated) & off))
            / max(g * (g - 1), 1)}


def _share_kept(observed: sp.spmatrix, learned: sp.spmatrix) -> float | None:
    """Share of the observed graph's edges that the learned graph keeps."""
    if observed.nnz == 0:
        return None
    return float(observed.multiply(learned > 0).nnz) / observed.nnz
