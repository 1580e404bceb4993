"""The code of scvgae (its description, defaults and registry entry: ``methods/scvgae.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import logging
import math

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
    log-variance (n_cells, hidden) when ``variational``.

    Mini-batch steps (``rows``): the encoder runs on every cell (its output is n_cells x hidden, cheap;
    GraphNorm keeps its statistics over the whole graph) and everything of width n_genes only on
    ``rows``, so a step's memory grows with its cells. The model is the same: BatchNorm of the genes
    uses the statistics of all cells (fixed, as X is: ``set_input_statistics``), BatchNorm of each
    cell's own genes is row-wise; only the decoder's BatchNorm sees the step's cells in training, and
    all cells' statistics at inference (``decoder_statistics``)."""

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
        self.register_buffer("gene_mean", torch.zeros(n_genes))
        self.register_buffer("gene_var", torch.ones(n_genes))

    @torch.no_grad()
    def set_input_statistics(self, x: Tensor) -> None:
        """Each gene's mean and (biased) variance over all cells of X, what BatchNorm of the genes
        computes in a full-batch pass; used by steps over some of the cells."""
        self.gene_mean.copy_(x.mean(dim=0))
        self.gene_var.copy_(x.var(dim=0, unbiased=False))

    @staticmethod
    def propagated_input(x: Tensor, adj: Tensor) -> Tensor:
        """L·X, the encoder's fixed propagated input."""
        return torch.sparse.mm(adj, x)

    def encode(self, lx: Tensor, adj: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """L·Z for every cell (n_cells, hidden), and the latent mean and log-variance when variational."""
        z = self.encoder_dropout(F.relu(self.graph_norm(self.encoder(lx))))
        latent: dict[str, Tensor] = {}
        if self.variational:
            lz = propagate(adj, z)
            mu_z = self.latent_mean(lz)
            logvar_z = self.latent_logvar(lz).clamp(-self.logvar_clamp, self.logvar_clamp)
            z = mu_z + torch.randn_like(mu_z) * torch.exp(0.5 * logvar_z) if self.training else mu_z
            latent.update(latent_mean=mu_z, latent_logvar=logvar_z)
        return propagate(adj, z), latent

    def zinb_mean(self, lz: Tensor) -> Tensor:
        c = self.logit_clamp
        return torch.exp(self.mean_head(lz).clamp(-c, c))

    def forward(self, x: Tensor, lx: Tensor, adj: Tensor, rows: Tensor | None = None,
                decoder_statistics: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """The whole matrix, or (``rows``) the outputs of those cells: ``x``'s rows ``rows``."""
        lz, out = self.encode(lx, adj)
        if rows is not None:
            lz, x = lz[rows], x[rows]
            out = {key: value[rows] for key, value in out.items()}
        c = self.logit_clamp
        mean = self.zinb_mean(lz)
        theta = torch.exp(self.theta_head(lz).clamp(-c, c))
        pi_logits = self.pi_head(lz)
        if rows is None and decoder_statistics is None:
            x_hat = self.decoder(mean) + self.gene_norm(x) + self.cell_norm(x.T).T
        else:
            x_hat = self.decode(mean, decoder_statistics) + self.norms(x, rows)
        out.update(x_hat=x_hat, mean=mean, theta=theta, pi_logits=pi_logits)
        return out

    def decode(self, mean: Tensor, statistics: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """The decoder f_D, its BatchNorm with the given (mean, variance) instead of the batch's."""
        fc1, norm, relu, dropout, fc2, out = self.decoder
        hidden = fc1(mean)
        if statistics is None:
            hidden = norm(hidden)
        else:
            hidden = F.batch_norm(hidden, statistics[0], statistics[1], norm.weight, norm.bias, False, 0.0, norm.eps)
        return out(fc2(dropout(relu(hidden))))

    def norms(self, x: Tensor, rows: Tensor | None) -> Tensor:
        """BatchNorm_genes(X) + BatchNorm_cells(Xᵀ)ᵀ on ``x`` = X's rows ``rows`` (None: all), with all
        cells' gene statistics: the full-batch values of those rows."""
        genes, cells = self.gene_norm, self.cell_norm
        by_gene = F.batch_norm(x, self.gene_mean, self.gene_var, genes.weight, genes.bias, False, 0.0, genes.eps)
        weight, bias = (cells.weight, cells.bias) if rows is None else (cells.weight[rows], cells.bias[rows])
        by_cell = F.batch_norm(x.T, None, None, weight, bias, True, 0.0, cells.eps).T
        return by_gene + by_cell

    @torch.no_grad()
    def decoder_statistics(self, lx: Tensor, adj: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
        """The mean and (biased) variance over all cells of the decoder's first layer: what its
        BatchNorm computes in a full-batch pass, accumulated ``chunk`` cells at a time."""
        lz, _ = self.encode(lx, adj)
        fc1 = self.decoder[0]
        total = torch.zeros(fc1.out_features, dtype=torch.float64, device=lz.device)
        squares = torch.zeros_like(total)
        for start in range(0, lz.shape[0], chunk):
            hidden = fc1(self.zinb_mean(lz[start:start + chunk])).double()
            total += hidden.sum(dim=0)
            squares += (hidden * hidden).sum(dim=0)
        n = lz.shape[0]
        mean = total / n
        return mean.float(), (squares / n - mean * mean).clamp_min(0.0).float()


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


def estimate_memory_gb(n_cells: int, n_genes: int, n_edges: int, params: dict, *, output_entries: int = 0,
                       step_cells: int | None = None, input_nnz: int = 0) -> float:
    """Peak memory of a run in GiB (2^30 bytes, the unit of ``max_memory_gb``), from the sizes: weights
    with their gradients, Adam moments and the best-weights copy (5 copies); ~52 live cells x genes
    float tensors (inputs, heads, decoder, the ZINB terms and their gradients, measured); decoder and
    latent activations; the graph's slice, its normalised adjacency and their construction (~80 bytes
    per stored entry, measured: 70-86 on 1.6-8.2 M entries); the dense output (``output_entries``
    floats); the filtered counts' sparse copy (``input_nnz`` entries, 8 bytes each). ``n_edges`` is the graph's ``nnz``: each undirected edge is stored once per direction,
    and counted once here. In steps of ``step_cells`` cells, the cells x genes tensors are the step's,
    plus X and L·X for every cell; the encoder's ~12 cells x hidden tensors are every cell's. Against the
    method's own share of the measured peak (peak RSS minus the RSS when it began) at 27,608 and 92,167
    cells in steps (CBMC resampled) and 29,988 dense cells: bench/results/scale_scvgae_steps.md,
    scale_scvgae_dense.md."""
    h, d = params["hidden"], params["decoder_hidden"]
    weights = (4 * h + 2 * d + 8) * n_genes + (2 * h * h if params["variational"] else 0) + 2 * n_cells
    rows = n_cells if step_cells is None else step_cells
    fixed = 0 if step_cells is None else 2 * n_cells * n_genes
    floats = 5 * weights + 52 * rows * n_genes + fixed + 8 * rows * d + 12 * n_cells * h + output_entries
    return (4 * floats + 80 * (n_edges + n_cells) + 8 * input_nnz) / 2**30


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
    mini_batch = n > params["full_batch_max_cells"]
    step_cells = min(params["step_cells"], n) if mini_batch else None
    kept = counts[cells][:, genes]
    need = estimate_memory_gb(n, g, graph.nnz, params, output_entries=adata.n_obs * adata.n_vars, step_cells=step_cells,
                              input_nnz=kept.nnz)
    monitor.require_memory(need, limit_gb=params["max_memory_gb"], device=device,
                           what=f"scvgae on {n} cells x {g} genes with {graph.nnz} edges",
                           advice="use fewer genes (--n-top-genes) or cells, or raise the limit with "
                                  "--param max_memory_gb=... if the memory is there")

    library = np.asarray(kept.sum(axis=1), dtype=np.float64)  # > 0: every kept cell has non-zero genes
    x = torch.from_numpy(graphs.sqrt_normalised(kept, params["target_sum"])).to(device)
    adj = gcn_adjacency(graph, device)
    lx = ScVGAE.propagated_input(x, adj)

    train.seed_everything(ctx.seed)
    module = ScVGAE(n, g, hidden=params["hidden"], decoder_hidden=params["decoder_hidden"],
                    encoder_dropout=params["encoder_dropout"], decoder_dropout=params["decoder_dropout"],
                    variational=params["variational"], logit_clamp=params["logit_clamp"],
                    logvar_clamp=params["logvar_clamp"]).to(device)
    module.set_input_statistics(x)

    def loss(model, rows):  # rows: a step's cells, or None (every cell: the paper's full batch)
        out = model(x, lx, adj, rows=rows)
        return scvgae_loss(out, x if rows is None else x[rows], alpha=params["alpha"], kl_weight=params["kl_weight"])

    steps_per_epoch, train_data = 1, None
    generators = ()
    if mini_batch:  # every epoch a fresh random split of the cells into steps of ~step_cells
        order = ctx.generator("scvgae")
        steps_per_epoch = math.ceil(n / step_cells)
        train_data = lambda: [torch.from_numpy(np.sort(rows)).to(device)  # noqa: E731
                              for rows in np.array_split(order.permutation(n), steps_per_epoch)]
        generators = (order,)
    schedule = train.schedule_in_steps(steps_per_epoch, max_epochs=params["max_epochs"])
    fingerprint = run_fingerprint(adata, "scvgae", params, ctx, reads=(GRAPH_KEY,))
    config = train_config(ctx, "scvgae", fingerprint, max_epochs=schedule["max_epochs"], lr=params["lr"],
                          restore_best=False, generators=generators)  # the paper trains 100 epochs and uses the last
    history = train.fit(module, loss, config=config, device=device, train_data=train_data)

    imputed = counts.toarray()
    cell_index, gene_index = np.flatnonzero(cells), np.flatnonzero(genes)
    chunk = step_cells or n
    with torch.no_grad():  # fit() leaves the module in eval mode
        statistics = module.decoder_statistics(lx, adj, chunk) if mini_batch else None
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(start + chunk, n), device=device)
            x_hat = module(x, lx, adj, rows=rows if mini_batch else None, decoder_statistics=statistics)["x_hat"]
            imputed[np.ix_(cell_index[start:start + chunk], gene_index)] = to_counts(
                x_hat.double().cpu().numpy(), library[start:start + chunk], params["target_sum"])
    info.update(
        output="x_hat (eq. 5), back-transformed as max(x_hat, 0)^2 * library / target_sum",
        n_cells_imputed=n, n_genes_imputed=g, n_graph_edges=int(graph.nnz), steps_per_epoch=steps_per_epoch,
        training=(f"mini-batch: {steps_per_epoch} steps per epoch of ~{math.ceil(n / steps_per_epoch)} random cells, "
                  f"{schedule['max_epochs']} epochs ({params['max_epochs']} updates, counted in optimiser steps); the "
                  "decoder's BatchNorm normalises over the step's cells in training, over all cells at inference"
                  if mini_batch else "full batch (every cell in every step, the paper's)"),
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
