"""graphMCV's code (the registry entry, defaults and the design: methods/graphmcv.py); imported only
when the method runs, so that listing methods and checking parameters stay cheap."""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from anndata import AnnData
from torch import Tensor, nn

from graphimpute import graphs, train
from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import no_depth, run_fingerprint, train_config
from graphimpute.monitor import require_memory

log = logging.getLogger(__name__)

NAME = "graphmcv"
LIKELIHOODS = ("nb", "poisson")
ARCHITECTURES = ("network", "knn_average")
CALIBRATION_GRID = np.linspace(0.0, 1.0, 21)
TARGET_SUM = 1e4
# a small dataset still takes this many optimiser steps per epoch (smaller batches), so that 210 cells
# are not one step per epoch
MIN_STEPS_PER_EPOCH = 10
# the early-stopping loss is computed on at most this many cells (a fixed random subset above it): on
# 100,000 cells a full validation pass would cost a third of an epoch and tell no more
VALIDATION_MAX_CELLS = 4096

# ---- the model ------------------------------------------------------------------------------------

class GraphMCV(nn.Module):
    """Shapes: s (B, G) own log1p CP10k input; m (B, hops * G) neighbour means or None → logits (B, G).

    ``log_theta`` (G,) is the gene-wise NB inverse dispersion (unused with the Poisson likelihood)."""

    def __init__(self, n_genes: int, *, hidden: int, latent: int, neighbour_inputs: int, log_profile: np.ndarray):
        super().__init__()
        self.own = nn.Linear(n_genes, hidden)
        self.neighbours = nn.Linear(n_genes * neighbour_inputs, hidden, bias=False) if neighbour_inputs else None
        self.mid = nn.Linear(hidden, latent)
        self.decoder = nn.Linear(latent, n_genes)
        self.log_theta = nn.Parameter(torch.full((n_genes,), math.log(10.0)))
        with torch.no_grad():
            self.decoder.bias.copy_(torch.as_tensor(log_profile, dtype=torch.float32))

    def forward(self, s: Tensor, m: Tensor | None) -> Tensor:
        h = self.own(s)
        if self.neighbours is not None:
            h = h + self.neighbours(m)
        z = F.relu(self.mid(F.relu(h)))
        return self.decoder(z)


class KNNAverage(nn.Module):
    """The ablation with the neighbour average as its only layer: log of (1 - w) · mean neighbour
    profile + w · mean profile, w = sigmoid(one parameter). Inputs: m (B, G) neighbour profiles."""

    def __init__(self, profile: np.ndarray):
        super().__init__()
        self.register_buffer("profile", torch.as_tensor(profile, dtype=torch.float32))
        self.mix = nn.Parameter(torch.tensor(-2.0))
        self.log_theta = nn.Parameter(torch.full((profile.size,), math.log(10.0)))

    def forward(self, s: Tensor, m: Tensor | None) -> Tensor:
        w = torch.sigmoid(self.mix)
        return torch.log((1 - w) * m + w * self.profile + 1e-10)


# ---- data ------------------------------------------------------------------------------------------

def integer_counts(adata) -> sp.csr_matrix:
    """``adata.X`` as a float32 CSR copy; refuses negative, non-finite or non-integer counts (binomial
    thinning needs molecules)."""
    x = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()
    data = x.data
    if data.size and (not np.all(np.isfinite(data)) or data.min() < 0):
        raise GraphImputeError(f"{NAME}: adata.X must hold raw non-negative counts (found negative or non-finite values)")
    if data.size and not np.all(data == np.round(data)):
        raise GraphImputeError(f"{NAME}: adata.X holds non-integer values; splitting molecules needs integer counts")
    return x


def thin(counts: sp.csr_matrix, fraction: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binomial thinning: (part ~ Binomial(counts, fraction), counts - part), same sparsity pattern."""
    drawn = rng.binomial(counts.data.astype(np.int64), fraction).astype(np.float32)
    part = sp.csr_matrix((drawn, counts.indices, counts.indptr), shape=counts.shape)
    rest = sp.csr_matrix((counts.data - drawn, counts.indices, counts.indptr), shape=counts.shape)
    return part, rest


def library(counts: sp.csr_matrix) -> np.ndarray:
    return np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()


def log_cp10k(counts: sp.csr_matrix) -> sp.csr_matrix:
    """log1p(10^4 · x / library), sparse (a cell with an empty library stays 0)."""
    lib = library(counts)
    scale = np.divide(TARGET_SUM, lib, out=np.zeros_like(lib), where=lib > 0)
    out = sp.diags(scale.astype(np.float32)) @ counts
    out = sp.csr_matrix(out, dtype=np.float32)
    np.log1p(out.data, out=out.data)
    return out


def profiles(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Each cell's counts divided by its library (rows sum to 1; an empty cell stays 0)."""
    lib = library(counts)
    scale = np.divide(1.0, lib, out=np.zeros_like(lib), where=lib > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts, dtype=np.float32)


def build_graph(rest: sp.csr_matrix, *, n_neighbors: int, n_pcs: int, seed: int) -> sp.csr_matrix:
    """The symmetrised kNN graph on PCA of log1p(rest / size factor): only what the method may see
    (the validation molecules never enter it). Binary CSR, cells x cells, no self-loops."""
    lib = library(rest)
    median = np.median(lib[lib > 0]) if (lib > 0).any() else 1.0
    factors = np.where(lib > 0, lib / median, 1.0)
    lognorm = sp.csr_matrix(sp.diags((1.0 / factors).astype(np.float32)) @ rest, dtype=np.float32)
    np.log1p(lognorm.data, out=lognorm.data)
    tmp = AnnData(X=sp.csr_matrix(rest.shape, dtype=np.float32))
    tmp.layers["lognorm"] = lognorm
    graphs.pca(tmp, n_comps=n_pcs, layer="lognorm", seed=seed)
    graphs.knn_graph(tmp, n_neighbors=n_neighbors, n_pcs=n_pcs, key_added="knn", seed=seed)
    return sp.csr_matrix(tmp.obsp["knn"])


def mean_operator(graph: sp.csr_matrix) -> sp.csr_matrix:
    """Row-normalised adjacency: (A x)_i = mean of x over i's neighbours (0 for a cell without any)."""
    degree = np.asarray(graph.sum(axis=1)).ravel()
    inv = np.divide(1.0, degree, out=np.zeros_like(degree, dtype=np.float64), where=degree > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ graph, dtype=np.float32)


def propagate(operator: sp.csr_matrix, values, hops: int, chunk: int = 4096) -> np.ndarray:
    """[A x, A² x, ...] (``hops`` of them) side by side, dense float32 cells x (hops · G), computed in
    row chunks so that no sparse intermediate is larger than a chunk's."""
    n, g = values.shape
    out = np.empty((n, g * hops), dtype=np.float32)
    current = values
    for hop in range(hops):
        for start in range(0, n, chunk):
            block = operator[start:start + chunk] @ current
            out[start:start + chunk, hop * g:(hop + 1) * g] = block.toarray() if sp.issparse(block) else block
        current = out[:, hop * g:(hop + 1) * g]
    return out


def estimate_memory_gb(n_cells: int, n_genes: int, nnz: int, *, hops: int, hidden: int, latent: int,
                       batch_size: int) -> float:
    """Peak memory in GiB: the dense neighbour features (hops x cells x genes float32) and the dense
    output; the sparse counts and their splits (~8 CSR copies of the non-zeros, 8 bytes each); a
    batch's dense tensors with activations and gradients (~12 x batch x genes); the weights with
    gradients, two Adam moments and a best copy; the kNN/PCA step (a dense cells x genes float32
    copy for the scaling); ~0.3 GiB of libraries."""
    dense = 4 * n_cells * n_genes * (hops + 2)
    sparse = 8 * 8 * nnz
    batch = 4 * 12 * min(batch_size, n_cells) * n_genes
    weights = 4 * 5 * (n_genes * hidden * (1 + hops) + hidden * latent + latent * n_genes)
    return (dense + sparse + batch + weights) / 2**30 + 0.3


# ---- training --------------------------------------------------------------------------------------

def _nll(likelihood: str, y: Tensor, log_rho: Tensor, lib: Tensor, log_theta: Tensor) -> Tensor:
    """Mean over entries of the Poisson or NB negative log-likelihood (without the log y! term) of
    counts ``y`` with mean mu = rho · lib, from ``log_rho`` = log_softmax of the logits.

    Poisson: since rho sums to 1 over genes, sum_g mu = lib, so the loss is (sum lib − sum y · log mu)
    / entries (the multinomial form): the same value and gradient without forming mu."""
    log_lib = torch.log(lib.clamp_min(1e-8))[:, None]
    if likelihood == "poisson":
        return (lib.sum() - (y * (log_rho + log_lib)).sum()) / y.numel()
    mu = torch.exp(log_rho + log_lib)
    theta = torch.exp(log_theta).clamp(1e-4, 1e6)
    log_theta_mu = torch.log(theta + mu + 1e-8)
    nll = (theta * (torch.log(theta + 1e-8) - log_theta_mu) + y * (log_rho + log_lib - log_theta_mu)
           + torch.lgamma(y + theta) - torch.lgamma(theta))
    return -nll.mean()


class Batches:
    """Mini-batches of cells as (own input, neighbour input, target, target library) tensors.

    ``own``: sparse log1p CP10k of what the network sees; ``neighbour``: dense features or None;
    ``target``: sparse counts to predict; rows are densified per batch only."""

    def __init__(self, own: sp.csr_matrix, neighbour: np.ndarray | None, target: sp.csr_matrix,
                 batch_size: int, device: torch.device, order: np.ndarray | None = None):
        self.own, self.neighbour, self.target = own, neighbour, target
        self.target_library = library(target).astype(np.float32)
        self.batch_size, self.device = batch_size, device
        self.order = np.arange(own.shape[0]) if order is None else order

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            rows = np.sort(self.order[start:start + self.batch_size])
            yield self.batch(rows)

    def batch(self, rows: np.ndarray):
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)  # noqa: E731
        m = to(self.neighbour[rows]) if self.neighbour is not None else None
        return to(self.own[rows].toarray()), m, to(self.target[rows].toarray()), to(self.target_library[rows])


def make_loss(likelihood: str):
    def loss(module: nn.Module, batch) -> dict[str, Tensor]:
        s, m, y, lib = batch
        log_rho = torch.log_softmax(module(s, m), dim=1)
        nll = _nll(likelihood, y, log_rho, lib, module.log_theta)
        out = {"loss": nll, f"{likelihood}_nll": nll}
        if likelihood != "poisson":
            with torch.no_grad():
                out["poisson_nll"] = _nll("poisson", y, log_rho, lib, module.log_theta)
        return out
    return loss


@torch.no_grad()
def predict_profiles(module: nn.Module, own: sp.csr_matrix, neighbour: np.ndarray | None, *, batch_size: int,
                     device: torch.device) -> np.ndarray:
    """rho for every cell (dense float32 cells x genes), in batches of ``batch_size`` cells."""
    module.eval()
    n = own.shape[0]
    out = np.empty(own.shape, dtype=np.float32)
    dummy = sp.csr_matrix((n, 1), dtype=np.float32)
    batches = Batches(own, neighbour, dummy, batch_size, device)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        s, m, _, _ = batches.batch(rows)
        out[rows] = torch.softmax(module(s, m), dim=1).cpu().numpy()
    return out


def calibrate_own_weight(rho: np.ndarray, own_profile: sp.csr_matrix, val: sp.csr_matrix,
                         grid: np.ndarray = CALIBRATION_GRID, chunk: int = 2048) -> tuple[float, list[float]]:
    """The weight a of the cell's own observed profile, (1 - a) rho + a x/L, that minimises the Poisson
    loss of the held-back molecules ``val`` (expected = profile x the cell's val library), on ``grid``.
    Returns a and the loss at every grid value (mean over entries)."""
    lib = library(val)
    totals = np.zeros(grid.size)
    for start in range(0, rho.shape[0], chunk):
        r = rho[start:start + chunk].astype(np.float64)
        o = own_profile[start:start + chunk].toarray().astype(np.float64)
        y = val[start:start + chunk].toarray().astype(np.float64)
        lb = lib[start:start + chunk, None]
        for k, a in enumerate(grid):
            mu = ((1 - a) * r + a * o) * lb
            totals[k] += float((mu - y * np.log(mu + 1e-8)).sum())
    losses = totals / rho.size
    return float(grid[int(np.argmin(losses))]), [float(v) for v in losses]


def _check(params: dict) -> None:
    if params["likelihood"] not in LIKELIHOODS:
        raise GraphImputeError(f"{NAME}: likelihood must be one of {', '.join(LIKELIHOODS)}, got {params['likelihood']!r}")
    if params["architecture"] not in ARCHITECTURES:
        raise GraphImputeError(f"{NAME}: architecture must be one of {', '.join(ARCHITECTURES)}, "
                               f"got {params['architecture']!r}")
    if params["architecture"] == "knn_average" and not params["graph"]:
        raise GraphImputeError(f"{NAME}: architecture=knn_average needs the graph (graph=true)")


def impute(adata, params, ctx) -> ImputeResult:
    _check(params)
    train.seed_everything(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    device = train.resolve_device(ctx.device)
    counts = integer_counts(adata)
    n, g = counts.shape
    hops = params["hops"] if params["graph"] else 0
    require_memory(estimate_memory_gb(n, g, counts.nnz, hops=max(hops, 1), hidden=params["hidden"],
                                      latent=params["latent"], batch_size=params["batch_size"]),
                   limit_gb=params["max_memory_gb"], device=device, what=f"{NAME} on {n} cells x {g} genes",
                   advice="use fewer genes (--n-top-genes) or cells, or raise max_memory_gb")

    # 1. the held-back molecules; 2. the graph from the rest
    val, rest = thin(counts, params["validation_fraction"], rng)
    info: dict = {"validation_molecules": float(val.sum()), "hops": hops}
    operator = None
    if params["graph"]:
        graph = build_graph(rest, n_neighbors=params["n_neighbors"], n_pcs=params["n_pcs"], seed=ctx.seed)
        operator = mean_operator(graph)
        info.update(graph_edges=int(graph.nnz), cells_without_neighbours=int((graph.getnnz(axis=1) == 0).sum()))

    # 3. features: the network sees log1p CP10k; the knn_average ablation averages profiles
    knn_only = params["architecture"] == "knn_average"
    neighbour_of = ((lambda x: propagate(operator, profiles(x), 1)) if knn_only
                    else (lambda x: propagate(operator, log_cp10k(x), hops))) if operator is not None else (lambda x: None)
    neighbour_rest = neighbour_of(rest)
    gene_profile = np.asarray(profiles(rest).mean(axis=0)).ravel() + 1e-8
    gene_profile /= gene_profile.sum()

    if knn_only:
        module = KNNAverage(gene_profile).to(device)
    else:
        module = GraphMCV(g, hidden=params["hidden"], latent=params["latent"], neighbour_inputs=hops,
                          log_profile=np.log(gene_profile)).to(device)

    own_rest = log_cp10k(rest)
    split = params["molecular_split"]
    shuffle = np.random.default_rng(rng.integers(2**63))
    batch_size = max(1, min(params["batch_size"], math.ceil(n / MIN_STEPS_PER_EPOCH)))
    info["batch_size"] = batch_size

    def train_batches():
        if split:
            inp, target = thin(rest, params["split_fraction"], rng)
            own = log_cp10k(inp)
        else:
            own, target = own_rest, rest
        return Batches(own, neighbour_rest, target, batch_size, device, order=shuffle.permutation(n))

    val_cells = np.sort(rng.choice(n, VALIDATION_MAX_CELLS, replace=False)) if n > VALIDATION_MAX_CELLS else None
    info["validation_cells"] = n if val_cells is None else VALIDATION_MAX_CELLS

    def val_batches():
        return Batches(own_rest, neighbour_rest, val, max(params["batch_size"], 1024), device, order=val_cells)

    fingerprint = run_fingerprint(adata, NAME, params, ctx)
    config = train_config(ctx, NAME, fingerprint, max_epochs=params["max_epochs"], lr=params["lr"],
                          weight_decay=params["weight_decay"], patience=params["patience"], fused_adam=True)
    history = train.fit(module, make_loss(params["likelihood"]), config=config, device=device,
                        train_data=train_batches, val_data=val_batches)

    # 6. the weight of the cell's own counts, measured at the inference depth on the held-back molecules
    own_weight = 0.0
    if params["calibrate"]:
        rho_rest = predict_profiles(module, own_rest, neighbour_rest, batch_size=1024, device=device)
        own_weight, losses = calibrate_own_weight(rho_rest, profiles(rest), val)
        info.update(calibration_grid=[float(a) for a in CALIBRATION_GRID], calibration_val_poisson=losses)
        del rho_rest
    info["own_weight"] = own_weight
    del own_rest, neighbour_rest

    # 7. inference on all of the input
    own_all = log_cp10k(counts)
    rho = predict_profiles(module, own_all, neighbour_of(counts), batch_size=1024, device=device)
    lib = library(counts)
    if own_weight > 0:
        rho *= (1 - own_weight)
        rho += own_weight * profiles(counts).toarray()
    rho *= lib[:, None].astype(np.float32)
    rho[no_depth(lib, NAME)] = 0.0
    if isinstance(module, KNNAverage):
        info["knn_gene_mean_weight"] = float(torch.sigmoid(module.mix).item())
    log.info("%s: best epoch %s of %d, own-count weight %.2f", NAME, history.best_epoch, history.n_epochs, own_weight)
    return ImputeResult(imputed=rho, history=history.to_dict(), info=info)
