"""The code of scvgae (its description, defaults and registry entry: ``methods/scvgae.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GraphNorm, Linear

from graphimpute import graphs, monitor, train
from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import run_fingerprint, train_config
from graphimpute.methods.scvgae import GRAPH_KEY
from graphimpute.nn.gcn import gcn_adjacency, propagate
from graphimpute.nn.losses import zinb_nll

log = logging.getLogger(__name__)


class ScVGAE(nn.Module):
    """The scVGAE network on ``n_cells`` x ``n_genes`` sqrt-normalised values.

    GCN layers are written as L·H·W + b (Kipf & Welling, with PyG's glorot weights and zero bias) and
    multiplied in the cheap order, so no message of width ``n_genes`` is ever formed per edge:
    the encoder's L·X is fixed and computed once (``propagated_input``); the three heads share one
    propagation L·Z of width ``hidden`` (eq. 4: L·Z·W = (L·Z)·W).

    Shapes: ``x`` (n_cells, n_genes); ``adj`` sparse CSR (n_cells, n_cells); forward returns
    x̂, mean, theta (n_cells, n_genes) > 0, pi_logits (n_cells, n_genes), and the latent mean and
    log-variance (n_cells, hidden) when ``variational``."""

    def __init__(self, n_cells: int, n_genes: int, *, hidden: int = 128, decoder_hidden: int = 1024,
                 encoder_dropout: float = 0.2, decoder_dropout: float = 0.4, variational: bool = False,
                 logit_clamp: float = 15.0, logvar_clamp: float = 10.0):
        super().__init__()
        self.variational = variational
        self.logit_clamp = logit_clamp
        self.logvar_clamp = logvar_clamp
        # eq. 3: Z = Dropout(ReLU(GraphNorm(L·X·W)))
        self.encoder = _gcn_linear(n_genes, hidden)
        self.graph_norm = GraphNorm(hidden)
        self.encoder_dropout = nn.Dropout(encoder_dropout)
        if variational:  # VGAE (Kipf & Welling 2016): GCN layers for the latent mean and log-variance
            self.latent_mean = _gcn_linear(hidden, hidden)
            self.latent_logvar = _gcn_linear(hidden, hidden)
        # eq. 4: three GCN heads
        self.mean_head = _gcn_linear(hidden, n_genes)
        self.pi_head = _gcn_linear(hidden, n_genes)
        self.theta_head = _gcn_linear(hidden, n_genes)
        # Every batch is the whole matrix, so BatchNorm normalises with the statistics of the pass itself,
        # in training and in eval: running averages (momentum 0.1) of past epochs' statistics would make
        # the eval output differ from the trained one, most after few epochs
        # decoder f_D of the mean M
        self.decoder = nn.Sequential(
            nn.Linear(n_genes, decoder_hidden), _batch_norm(decoder_hidden), nn.ReLU(),
            nn.Dropout(decoder_dropout), nn.Linear(decoder_hidden, n_genes), nn.ReLU())
        # eq. 5: BatchNorm over genes of X and over cells of Xᵀ
        self.gene_norm = _batch_norm(n_genes)
        self.cell_norm = _batch_norm(n_cells)

    @staticmethod
    def propagated_input(x: Tensor, adj: Tensor) -> Tensor:
        """L·X, the encoder's fixed propagated input."""
        return torch.sparse.mm(adj, x)

    def forward(self, x: Tensor, lx: Tensor, adj: Tensor) -> dict[str, Tensor]:
        z = self.encoder_dropout(F.relu(self.graph_norm(self.encoder(lx))))
        out: dict[str, Tensor] = {}
        if self.variational:
            lz = propagate(adj, z)
            mu_z = self.latent_mean(lz)
            logvar_z = self.latent_logvar(lz).clamp(-self.logvar_clamp, self.logvar_clamp)
            z = mu_z + torch.randn_like(mu_z) * torch.exp(0.5 * logvar_z) if self.training else mu_z
            out.update(latent_mean=mu_z, latent_logvar=logvar_z)
        lz = propagate(adj, z)
        c = self.logit_clamp
        mean = torch.exp(self.mean_head(lz).clamp(-c, c))
        theta = torch.exp(self.theta_head(lz).clamp(-c, c))
        pi_logits = self.pi_head(lz)
        x_hat = self.decoder(mean) + self.gene_norm(x) + self.cell_norm(x.T).T
        out.update(x_hat=x_hat, mean=mean, theta=theta, pi_logits=pi_logits)
        return out


def _batch_norm(features: int) -> nn.BatchNorm1d:
    """BatchNorm with batch statistics only (no running averages): the batch is always every cell."""
    return nn.BatchNorm1d(features, track_running_stats=False)


def _gcn_linear(in_features: int, out_features: int) -> Linear:
    return Linear(in_features, out_features, weight_initializer="glorot", bias_initializer="zeros")


def scvgae_loss(out: dict[str, Tensor], x: Tensor, *, alpha: float, kl_weight: float) -> dict[str, Tensor]:
    """α·MSE(x̂, X) + (1-α)·mean ZINB NLL of X (+ kl_weight·KL for the variational encoder)."""
    mse = F.mse_loss(out["x_hat"], x)
    zinb = zinb_nll(x, mu=out["mean"], theta=out["theta"], pi_logits=out["pi_logits"]).mean()
    terms = {"mse": mse, "zinb": zinb}
    total = alpha * mse + (1 - alpha) * zinb
    if "latent_mean" in out:
        mu, logvar = out["latent_mean"], out["latent_logvar"]
        terms["kl"] = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
        total = total + kl_weight * terms["kl"]
    return {"loss": total, **terms}


def estimate_memory_gb(n_cells: int, n_genes: int, n_edges: int, params: dict, *, output_entries: int = 0) -> float:
    """Peak memory of a run in GiB (2^30 bytes, the unit of ``max_memory_gb``), from the sizes: weights
    with their gradients, Adam moments and the best-weights copy (5 copies); ~52 live cells x genes
    float tensors (inputs, heads, decoder, the ZINB terms and their gradients, measured); decoder and
    latent activations; the graph's slice, its normalised adjacency and their construction (~80 bytes
    per stored entry, measured: 70-86 on 1.6-8.2 M entries); the dense output (``output_entries``
    floats). ``n_edges`` is the graph's ``nnz``: each undirected edge is stored once per direction,
    and counted once here."""
    h, d = params["hidden"], params["decoder_hidden"]
    weights = (4 * h + 2 * d + 8) * n_genes + (2 * h * h if params["variational"] else 0) + 2 * n_cells
    floats = 5 * weights + 52 * n_cells * n_genes + 8 * n_cells * d + 16 * n_cells * h + output_entries
    return (4 * floats + 80 * (n_edges + n_cells)) / 2**30


def to_counts(x_hat: np.ndarray, library: np.ndarray, target_sum: float) -> np.ndarray:
    """Expected counts from sqrt-normalised values, the inverse of eq. 1: max(x̂, 0)² · library / target_sum
    (x̂'s BatchNorm terms can dip below 0, which stands for no expression). float32."""
    return (np.clip(x_hat, 0, None) ** 2 * library / target_sum).astype(np.float32)


def impute(adata, params, ctx) -> ImputeResult:
    """Reads ``adata.X`` (raw counts) and ``adata.obsp['scvgae_percentile']``; never modifies ``adata``."""
    device = train.resolve_device(ctx.device)
    if GRAPH_KEY not in adata.obsp:
        raise GraphImputeError(
            f"scvgae needs the cell graph adata.obsp[{GRAPH_KEY!r}]: build it with the GRAPH step "
            f"('graphimpute graph --methods scvgae') or graphimpute.graphs.build(adata, 'percentile', "
            f"{GRAPH_KEY!r}, graphimpute.methods.get('scvgae').graphs[0].params)")
    counts = sp.csr_matrix(adata.X, dtype=np.float32)
    cells, genes = graphs.detection_filter(counts, min_gene_fraction=params["min_gene_fraction"],
                                           min_cell_fraction=params["min_cell_fraction"])
    if cells.sum() < 2 or genes.sum() < 1:
        raise GraphImputeError(f"scvgae: only {cells.sum()} cells and {genes.sum()} genes pass the detection "
                               f"filters (genes detected in > {params['min_gene_fraction']:g} of cells, then cells "
                               f"detecting > {params['min_cell_fraction']:g} of those genes): the data are too sparse "
                               "for them; lower min_gene_fraction (--param min_gene_fraction=0.01)")
    info = _graph_info(adata, params)
    graph = sp.csr_matrix(adata.obsp[GRAPH_KEY])[cells][:, cells]
    n, g = int(cells.sum()), int(genes.sum())
    need = estimate_memory_gb(n, g, graph.nnz, params, output_entries=adata.n_obs * adata.n_vars)
    monitor.require_memory(need, limit_gb=params["max_memory_gb"], device=device,
                           what=f"scvgae on {n} cells x {g} genes with {graph.nnz} edges",
                           advice="use fewer genes (--n-top-genes) or cells, or raise the limit with "
                                  "--param max_memory_gb=... if the memory is there")

    kept = counts[cells][:, genes]
    library = np.asarray(kept.sum(axis=1), dtype=np.float64)  # > 0: every kept cell has non-zero genes
    x = torch.from_numpy(graphs.sqrt_normalised(kept, params["target_sum"])).to(device)
    adj = gcn_adjacency(graph, device)
    lx = ScVGAE.propagated_input(x, adj)

    train.seed_everything(ctx.seed)
    module = ScVGAE(n, g, hidden=params["hidden"], decoder_hidden=params["decoder_hidden"],
                    encoder_dropout=params["encoder_dropout"], decoder_dropout=params["decoder_dropout"],
                    variational=params["variational"], logit_clamp=params["logit_clamp"],
                    logvar_clamp=params["logvar_clamp"]).to(device)

    def loss(model, _batch):
        return scvgae_loss(model(x, lx, adj), x, alpha=params["alpha"], kl_weight=params["kl_weight"])

    fingerprint = run_fingerprint(adata, "scvgae", params, ctx, reads=(GRAPH_KEY,))
    config = train_config(ctx, "scvgae", fingerprint, max_epochs=params["max_epochs"], lr=params["lr"],
                          restore_best=False)  # the paper trains 100 epochs and uses the last
    history = train.fit(module, loss, config=config, device=device)
    with torch.no_grad():  # fit() leaves the module in eval mode
        x_hat = module(x, lx, adj)["x_hat"].double().cpu().numpy()

    imputed = counts.toarray()
    imputed[np.ix_(cells, genes)] = to_counts(x_hat, library, params["target_sum"])
    info.update(
        output="x_hat (eq. 5), back-transformed as max(x_hat, 0)^2 * library / target_sum",
        n_cells_imputed=n, n_genes_imputed=g, n_graph_edges=int(graph.nnz),
        cells_left_observed=[str(c) for c in adata.obs_names[~cells]],
        genes_left_observed=[str(v) for v in adata.var_names[~genes]],
        memory_estimate_gb=round(need, 3))
    return ImputeResult(imputed=imputed, history=history.to_dict(), info=info)


def _graph_info(adata, params) -> dict:
    """What graph the GRAPH step built (with its fallback, if any), warning about what differs."""
    record = dict(graphs.stored_params(adata, GRAPH_KEY) or {})
    info: dict = {"graph": record}
    if "fallback_for" in record:
        info["graph_fallback"] = record.get("fallback_reason", "fallback")
        log.warning("scvgae: adata.obsp[%r] is a %s graph, not the paper's percentile graph (%s)",
                    GRAPH_KEY, record.get("kind"), info["graph_fallback"])
    elif record.get("kind") == "percentile":
        built = (record.get("min_gene_fraction"), record.get("min_cell_fraction"))
        if built != (params["min_gene_fraction"], params["min_cell_fraction"]):
            info["graph_filter_mismatch"] = f"graph built with (gene, cell) fractions {built}"
            log.warning("scvgae: the percentile graph was built with detection filters %s, the model uses %s; "
                        "the graph is restricted to the model's cells", built,
                        (params["min_gene_fraction"], params["min_cell_fraction"]))
    return info
