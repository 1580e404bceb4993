"""graphMCV's code (the registry entry, defaults and the design: methods/graphmcv.py); imported only
when the method runs, so that listing methods and checking parameters stay cheap."""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from anndata import AnnData
from torch import Tensor, nn

from graphimpute import graphs, train
from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import no_depth, run_fingerprint, train_config
from graphimpute.methods._shrinkage import (OWN_WEIGHT_GRID, blend, choose_own_weight, integer_counts,
                                             library, prior_error, profiles, rate_interval, thin)
from graphimpute.monitor import require_memory

log = logging.getLogger(__name__)

NAME = "graphmcv"
LIKELIHOODS = ("nb", "poisson")
ARCHITECTURES = ("network", "knn_average")
TARGET_SUM = 1e4
# a small dataset still takes this many optimiser steps per epoch (smaller batches), so that 210 cells
# are not one step per epoch
MIN_STEPS_PER_EPOCH = 10
# the early-stopping loss is computed on at most this many cells (a fixed random subset above it): on
# 100,000 cells a full validation pass would cost a third of an epoch and tell no more
VALIDATION_MAX_CELLS = 4096
# power iterations of the randomised PCA (graph and input basis)
POWER_ITERATIONS = 5

# ---- the model ------------------------------------------------------------------------------------

class GraphMCV(nn.Module):
    """Shapes: s (B, D) own input; m (B, hops * D) neighbour means or None → logits (B, G). D is the
    input basis' size (``input_pcs``), or G for the unprojected log1p CP10k (``input_pcs=0``).

    ``log_theta`` (G,) is the gene-wise NB inverse dispersion (unused with the Poisson likelihood)."""

    def __init__(self, n_genes: int, *, hidden: int, latent: int, neighbour_inputs: int, log_profile: np.ndarray,
                 n_inputs: int | None = None):
        super().__init__()
        n_inputs = n_genes if n_inputs is None else n_inputs
        self.own = nn.Linear(n_inputs, hidden)
        self.neighbours = nn.Linear(n_inputs * neighbour_inputs, hidden, bias=False) if neighbour_inputs else None
        self.mid = nn.Linear(hidden, latent)
        self.decoder = nn.Linear(latent, n_genes)
        self.log_theta = nn.Parameter(torch.full((n_genes,), math.log(10.0)))
        with torch.no_grad():
            self.decoder.bias.copy_(torch.as_tensor(log_profile, dtype=torch.float32))

    def encode(self, s: Tensor, m: Tensor | None) -> Tensor:
        """The latent z (B, latent) that the decoder turns into logits."""
        h = self.own(s)
        if self.neighbours is not None:
            h = h + self.neighbours(m)
        return F.relu(self.mid(F.relu(h)))

    def forward(self, s: Tensor, m: Tensor | None) -> Tensor:
        return self.decoder(self.encode(s, m))


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

def log_cp10k(counts: sp.csr_matrix) -> sp.csr_matrix:
    """log1p(10^4 · x / library), sparse (a cell with an empty library stays 0)."""
    lib = library(counts)
    scale = np.divide(TARGET_SUM, lib, out=np.zeros_like(lib), where=lib > 0)
    out = sp.diags(scale.astype(np.float32)) @ counts
    out = sp.csr_matrix(out, dtype=np.float32)
    np.log1p(out.data, out=out.data)
    return out


def top_components(x, k: int, *, seed: int, mean: np.ndarray | None = None, n_iter: int = POWER_ITERATIONS,
                   oversample: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal axes of ``x`` - ``mean`` (x sparse or dense, cells x genes; the mean is
    subtracted implicitly, so a sparse x stays sparse) by a randomised range finder with ``n_iter``
    power iterations (Halko, Martinsson & Tropp 2011; LU-normalised power iterations as in scikit-learn). Returns (scores cells x k, loadings genes x k),
    float32; deterministic for a seed."""
    n, g = x.shape
    k = int(max(1, min(k, n - 1, g - 1))) if min(n, g) > 1 else 1
    width = int(min(k + oversample, n, g))
    mu = np.zeros(g, np.float32) if mean is None else np.asarray(mean, np.float32)

    def times(v):  # (x - 1 mu^T) v
        return np.asarray(x @ v, dtype=np.float32) - (mu @ v)[None, :]

    def t_times(u):  # (x - 1 mu^T)^T u
        return np.asarray(x.T @ u, dtype=np.float32) - mu[:, None] * u.sum(axis=0)[None, :]

    def normalised(y):  # the power iterations' normaliser: LU, cheaper than QR and as good here
        return scipy.linalg.lu(y, permute_l=True, check_finite=False)[0]

    rng = np.random.default_rng(seed)
    q = normalised(times(rng.standard_normal((g, width)).astype(np.float32)))
    for _ in range(n_iter):
        q = normalised(times(normalised(t_times(q))))
    q, _ = np.linalg.qr(q)
    u, sv, vt = np.linalg.svd(t_times(q).T, full_matrices=False)
    scores = (q @ u[:, :k]) * sv[:k]
    return scores.astype(np.float32), np.ascontiguousarray(vt[:k].T, dtype=np.float32)


def build_graph(rest: sp.csr_matrix, *, n_neighbors: int, n_pcs: int, seed: int) -> sp.csr_matrix:
    """The symmetrised kNN graph on PCA of log1p(rest / size factor), genes scaled to unit variance and
    clipped at 10 (graphimpute.graphs' recipe), the PCA by ``top_components``: only what the method
    may see (the validation molecules never enter it). Binary CSR, cells x cells, no self-loops."""
    import scanpy as sc

    lib = library(rest)
    median = np.median(lib[lib > 0]) if (lib > 0).any() else 1.0
    factors = np.where(lib > 0, lib / median, 1.0)
    lognorm = sp.csr_matrix(sp.diags((1.0 / factors).astype(np.float32)) @ rest, dtype=np.float32)
    np.log1p(lognorm.data, out=lognorm.data)
    tmp = AnnData(X=lognorm.toarray())
    with np.errstate(invalid="ignore"):
        sc.pp.scale(tmp, max_value=10, zero_center=True)
    np.nan_to_num(tmp.X, copy=False, nan=0.0)
    scores, _ = top_components(tmp.X, n_pcs, seed=seed)
    del tmp.X
    tmp = AnnData(X=sp.csr_matrix(rest.shape, dtype=np.float32), obsm={"X_rpca": scores})
    graphs.knn_graph(tmp, n_neighbors=n_neighbors, n_pcs=scores.shape[1], use_rep="X_rpca", key_added="knn",
                     seed=seed)
    return sp.csr_matrix(tmp.obsp["knn"])


def input_basis(own: sp.csr_matrix, k: int, *, seed: int) -> np.ndarray:
    """Loadings (genes x k, float32) of the top ``k`` principal axes of the method's own visible input
    (log1p CP10k of ``rest``), computed on the sparse matrix. Every input, own and neighbour, is
    projected onto them: the projection is linear, so the neighbour mean of projected inputs is the
    projection of the neighbour mean."""
    mean = np.asarray(own.mean(axis=0), dtype=np.float32).ravel()
    return top_components(own, k, seed=seed, mean=mean)[1]


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
                       batch_size: int, inputs: int | None = None, extra_layers: int = 0) -> float:
    """Peak memory in GiB: the dense features ((1 + hops) x cells x inputs float32; inputs = the
    basis' size, or genes unprojected), the dense output and the kNN/PCA step's dense cells x genes
    float32 copy for the scaling (and ``extra_layers`` more cells x genes outputs: the interval); the sparse counts and their splits (~8 CSR copies of the non-zeros,
    8 bytes each); a batch's dense tensors with activations and gradients (~12 x batch x genes); the
    weights with gradients, two Adam moments and a best copy; ~0.3 GiB of libraries."""
    inputs = n_genes if inputs is None else inputs
    dense = 4 * n_cells * (inputs * (hops + 1) + (2 + extra_layers) * n_genes)
    sparse = 8 * 8 * nnz
    batch = 4 * 12 * min(batch_size, n_cells) * n_genes
    weights = 4 * 5 * (inputs * hidden * (1 + hops) + hidden * latent + latent * n_genes)
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


class SparseTarget:
    """A batch's target counts as its non-zeros: ``rows``, ``cols`` (int64) and ``values`` (float32) of
    a ``shape`` (B, G) matrix."""

    def __init__(self, rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]):
        self.rows, self.cols, self.values, self.shape = rows, cols, values, shape

    def dense(self) -> Tensor:
        out = torch.zeros(self.shape, dtype=self.values.dtype, device=self.values.device)
        out[self.rows, self.cols] = self.values
        return out


class _PoissonHead(torch.autograd.Function):
    """The decoder and the Poisson (multinomial-form) loss in one step, with the sparse target:
    logits = z Wᵀ + b, log rho = logits − logsumexp, loss = (sum lib − sum_nz y (log rho + log lib))
    / (B · G). The same value and gradient as ``_nll("poisson", ...)`` after ``log_softmax``, but one
    dense B x G buffer (the softmax, reused in place for its gradient lib · rho − y) instead of
    several, and no dense target. Gradient: d loss / d logits = (lib_i rho_ig − y_ig) / (B · G)."""

    @staticmethod
    def forward(ctx, z, weight, bias, rows, cols, values, lib):
        logits = torch.addmm(bias, z, weight.t())
        picked = logits[rows, cols]
        top = logits.amax(dim=1, keepdim=True)
        rho = logits.sub_(top).exp_()
        total = rho.sum(dim=1, keepdim=True)
        rho.div_(total)
        lse = (top + torch.log(total)).squeeze(1)
        log_lib = torch.log(lib.clamp_min(1e-8))
        numel = rho.numel()
        loss = (lib.sum() - (values * (picked - lse[rows] + log_lib[rows])).sum()) / numel
        ctx.save_for_backward(z, weight, rows, cols, values, lib, rho)
        return loss

    @staticmethod
    def backward(ctx, grad):
        z, weight, rows, cols, values, lib, rho = ctx.saved_tensors
        g = rho.mul_(lib[:, None])
        g.index_put_((rows, cols), -values, accumulate=True)
        g.mul_(grad / g.numel())
        return g @ weight, g.t() @ z, g.sum(dim=0), None, None, None, None


def poisson_head(z: Tensor, weight: Tensor, bias: Tensor, target: SparseTarget, lib: Tensor) -> Tensor:
    return _PoissonHead.apply(z, weight, bias, target.rows, target.cols, target.values, lib)


def _rows(a, rows: np.ndarray) -> np.ndarray:
    return a[rows].toarray() if sp.issparse(a) else a[rows]


class Batches:
    """Mini-batches of cells as (own input, neighbour input, target, target library) tensors.

    ``own``: the own input features (dense, or sparse densified per batch); ``neighbour``: dense
    features or None; ``target``: sparse counts to predict, handed over as a ``SparseTarget``."""

    def __init__(self, own, neighbour: np.ndarray | None, target: sp.csr_matrix,
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
        to = lambda a, dtype=np.float32: torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(self.device)  # noqa: E731
        m = to(self.neighbour[rows]) if self.neighbour is not None else None
        y = self.target[rows]
        target = SparseTarget(to(np.repeat(np.arange(len(rows)), np.diff(y.indptr)), np.int64),
                              to(y.indices, np.int64), to(y.data), (len(rows), y.shape[1]))
        return to(_rows(self.own, rows)), m, target, to(self.target_library[rows])


def make_loss(likelihood: str):
    def loss(module: nn.Module, batch) -> dict[str, Tensor]:
        s, m, y, lib = batch
        if likelihood == "poisson" and isinstance(module, GraphMCV):
            nll = poisson_head(module.encode(s, m), module.decoder.weight, module.decoder.bias, y, lib)
            return {"loss": nll, "poisson_nll": nll}
        y = y.dense()
        log_rho = torch.log_softmax(module(s, m), dim=1)
        nll = _nll(likelihood, y, log_rho, lib, module.log_theta)
        out = {"loss": nll, f"{likelihood}_nll": nll}
        if likelihood != "poisson":
            with torch.no_grad():
                out["poisson_nll"] = _nll("poisson", y, log_rho, lib, module.log_theta)
        return out
    return loss


@torch.no_grad()
def predict_profiles(module: nn.Module, own, neighbour: np.ndarray | None, *, batch_size: int,
                     device: torch.device) -> np.ndarray:
    """rho for every cell (dense float32 cells x genes), in batches of ``batch_size`` cells."""
    module.eval()
    n = own.shape[0]
    out = None
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)  # noqa: E731
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        m = to(neighbour[rows]) if neighbour is not None else None
        rho = torch.softmax(module(to(_rows(own, rows)), m), dim=1).cpu().numpy()
        if out is None:
            out = np.empty((n, rho.shape[1]), dtype=np.float32)
        out[rows] = rho
    return out


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
    rng = ctx.generator(NAME)  # not default_rng(seed): the benchmark's mask draws from that one
    device = train.resolve_device(ctx.device)
    counts = integer_counts(adata, NAME)
    n, g = counts.shape
    hops = params["hops"] if params["graph"] else 0
    knn_only = params["architecture"] == "knn_average"
    n_inputs = g if knn_only or not params["input_pcs"] else min(params["input_pcs"], g)
    require_memory(estimate_memory_gb(n, g, counts.nnz, hops=max(hops, 1), hidden=params["hidden"],
                                      latent=params["latent"], batch_size=params["batch_size"], inputs=n_inputs,
                                      extra_layers=3 if params["interval"] else 0),
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

    # 3. features: the network sees log1p CP10k projected on the input basis (a fixed linear map from
    # the visible input; none with input_pcs=0); the knn_average ablation averages profiles
    own_rest = log_cp10k(rest)
    basis = None
    if not knn_only and params["input_pcs"]:
        basis = input_basis(own_rest, params["input_pcs"], seed=ctx.seed)
        n_inputs = basis.shape[1]
        info["input_pcs"] = n_inputs
    project = (lambda x: x) if basis is None else (lambda x: np.asarray(x @ basis, dtype=np.float32))  # noqa: E731

    def features(x: sp.csr_matrix):
        """(own input, neighbour input) of counts x."""
        own = project(log_cp10k(x))
        if operator is None:
            return own, None
        return own, (propagate(operator, profiles(x), 1) if knn_only else propagate(operator, own, hops))

    own_rest, neighbour_rest = features(rest)
    gene_profile = np.asarray(profiles(rest).mean(axis=0)).ravel() + 1e-8
    gene_profile /= gene_profile.sum()

    if knn_only:
        module = KNNAverage(gene_profile).to(device)
    else:
        module = GraphMCV(g, hidden=params["hidden"], latent=params["latent"], neighbour_inputs=hops,
                          log_profile=np.log(gene_profile), n_inputs=n_inputs).to(device)

    split = params["molecular_split"]
    shuffle = np.random.default_rng(rng.integers(2**63))
    batch_size = max(1, min(params["batch_size"], math.ceil(n / MIN_STEPS_PER_EPOCH)))
    info["batch_size"] = batch_size

    def train_batches():
        if split:
            inp, target = thin(rest, params["split_fraction"], rng)
            own = project(log_cp10k(inp))
        else:
            own, target = own_rest, rest
        return Batches(own, neighbour_rest, target, batch_size, device, order=shuffle.permutation(n))

    val_cells = np.sort(rng.choice(n, VALIDATION_MAX_CELLS, replace=False)) if n > VALIDATION_MAX_CELLS else None
    info["validation_cells"] = n if val_cells is None else VALIDATION_MAX_CELLS

    def val_batches():
        return Batches(own_rest, neighbour_rest, val, max(params["batch_size"], 1024), device, order=val_cells)

    fingerprint = run_fingerprint(adata, NAME, params, ctx)
    config = train_config(ctx, NAME, fingerprint, max_epochs=params["max_epochs"], lr=params["lr"],
                          weight_decay=params["weight_decay"], patience=params["patience"], fused_adam=True,
                          generators=(rng, shuffle))
    history = train.fit(module, make_loss(params["likelihood"]), config=config, device=device,
                        train_data=train_batches, val_data=val_batches)

    # 6. the weight of the cell's own counts, measured at the inference depth on the held-back molecules
    # and, for the interval, the network's error as a prior of each entry's rate, measured the same way
    own_weight, error = 0.0, None
    if params["calibrate"] or params["interval"]:
        rho_rest = predict_profiles(module, own_rest, neighbour_rest, batch_size=1024, device=device)
        if params["calibrate"]:
            own_weight, losses = choose_own_weight(rho_rest, profiles(rest), val)
            info.update(calibration_grid=[float(a) for a in OWN_WEIGHT_GRID], calibration_val_poisson=losses)
        if params["interval"]:
            spread, noise = prior_error(rho_rest, val, depth_ratio=library(val) / np.maximum(library(counts), 1.0))
            # the noise term's floor: an average over the cell and its neighbours' counts is no better
            error = spread, max(noise, 1.0 / (params["n_neighbors"] + 1))
        del rho_rest
    info["own_weight"] = own_weight
    del own_rest, neighbour_rest

    # 7. inference on all of the input
    rho = predict_profiles(module, *features(counts), batch_size=1024, device=device)
    lib = library(counts)
    layers = {}
    if error is not None:  # 8. the posterior of each entry's rate, its prior the network's profile
        lower, upper = rate_interval(rho * lib[:, None].astype(np.float32), counts, *error, params["interval"])
        layers = {"lower": lower, "upper": upper}
        info["interval"] = {"level": params["interval"], "spread_error": error[0], "noise_error": error[1]}
    rho = blend(rho, counts, own_weight, inplace=True)
    rho[no_depth(lib, NAME)] = 0.0
    if isinstance(module, KNNAverage):
        info["knn_gene_mean_weight"] = float(torch.sigmoid(module.mix).item())
    log.info("%s: best epoch %s of %d, own-count weight %.2f", NAME, history.best_epoch, history.n_epochs, own_weight)
    return ImputeResult(imputed=rho, history=history.to_dict(), info=info, layers=layers)
