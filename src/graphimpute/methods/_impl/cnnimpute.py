"""The code of cnnimpute (its description, defaults and registry entry: ``methods/cnnimpute.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist
from torch import nn

from graphimpute import monitor, train
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._common import no_depth, run_fingerprint, train_config
from graphimpute.methods._cnnimpute_dropout import dropout_probability, fit_mixture, log10_cpm, valid_genes

log = logging.getLogger(__name__)

MIN_CLUSTER_CELLS = 10  # a smaller cluster cannot be split 90/10 into useful sets: left as observed
ADP_MAX_CELLS = 10_000  # density peaks are O(n²): above this they are found on a seeded subsample
TSNE_MAX_CELLS = 10_000  # above, the clustering runs on a seeded subsample (_cluster_subsample)
_EM_CHUNK = 4_000_000  # genes x cells values per EM chunk (bounds memory)
_PREDICT_CHUNK = 4096


def estimate_memory_gb(n_cells: int, n_genes: int, params: dict) -> float:
    """Peak memory of a run in GiB (2^30 bytes, the unit of ``max_memory_gb``), an upper bound that
    takes the whole input as one cluster. Held throughout: counts, log-CPM and the output (float32)
    and the missing mask (bool), 13 bytes per cell x gene. On top, the larger phase:
    - the dropout EM: log10 CPM in float64 and the probabilities (12 bytes per entry) and the EM's
      float64 temporaries, ~75 bytes per value of one gene chunk (``_EM_CHUNK``; measured);
    - the input search and one model: the cluster's log-CPM and mask copied twice, centred and
      unit-norm values (18 bytes per entry); the block's inputs, targets and mask in two copies; the
      weights with gradients, two Adam moments and the best copy (5 x 4 bytes each); and the
      prediction pass, whose first convolution's output and its ReLU hold 2 x filters x length floats
      for each of up to ``_PREDICT_CHUNK`` cells at once.
    Measured on pbmc3k (2,592 x 2,000, 4 clusters, largest 825 cells): growth of the process 0.72 GiB,
    estimate 1.21 GiB (bench/results/cnnimpute.md)."""
    n_inputs = params["n_targets"] * params["n_inputs_per_target"]
    k, filters, hidden, n_targets = params["kernel_size"], params["filters"], params["hidden"], params["n_targets"]
    conv_length = n_inputs - k + 1
    length = (conv_length // 2 - k + 1) // 2
    weights = filters * k + filters * filters * k + filters * length * hidden + hidden * n_targets + hidden + n_targets
    entries = n_cells * n_genes
    em = 12 * entries + 75 * min(entries, _EM_CHUNK)
    blocks = (18 * entries + 2 * 4 * n_cells * (n_inputs + 2 * n_targets) + 20 * weights
              + 2 * 4 * filters * conv_length * min(n_cells, _PREDICT_CHUNK))
    return (13 * entries + max(em, blocks)) / 2**30


def impute(adata, params, ctx) -> ImputeResult:
    device = train.resolve_device(ctx.device)
    need = estimate_memory_gb(adata.n_obs, adata.n_vars, params)
    monitor.require_memory(need, limit_gb=params["max_memory_gb"], device=device,
                           what=f"cnnimpute on {adata.n_obs} cells x {adata.n_vars} genes",
                           advice="use fewer genes (--n-top-genes) or cells, or raise max_memory_gb if the "
                                  "memory is there")
    train.seed_everything(ctx.seed)
    counts = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    counts = counts.astype(np.float32, copy=False)
    library = counts.sum(axis=1, dtype=np.float64)
    scale = 1e6 / np.where(library > 0, library, 1.0)
    lognorm = np.log1p(counts * scale[:, None].astype(np.float32))
    timing = {}
    fingerprint = run_fingerprint(adata, "cnnimpute", params, ctx)  # one hash for every block's checkpoint

    t0 = time.perf_counter()
    log.info("cnnImpute: clustering %d cells (PCA, 3-D t-SNE, density peaks, k-means)", counts.shape[0])
    labels, cluster_info = cluster_cells(lognorm, params=params, seed=ctx.seed)
    timing["clustering_s"] = time.perf_counter() - t0
    log.info("cnnImpute: %d clusters in %.0f s", labels.max() + 1, timing["clustering_s"])

    t0 = time.perf_counter()
    missing = np.zeros(counts.shape, dtype=bool)
    usable = np.zeros((labels.max() + 1, counts.shape[1]), dtype=bool)  # genes with a usable fit, per cluster
    for c in range(labels.max() + 1):
        cells = np.flatnonzero(labels == c)
        prob, usable[c] = cluster_dropout(counts[cells], max_iter=params["em_max_iter"], tol=params["em_tol"])
        missing[cells] = (prob > params["dropout_threshold"]) & (counts[cells] == 0)
    timing["em_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    imputed = counts.copy()
    epochs, models, skipped = [], [], []
    train_time, peak_mb = 0.0, 0.0
    progress = TrainingProgress(labels, missing, params)
    for c in range(labels.max() + 1):
        cells = np.flatnonzero(labels == c)
        if cells.size < MIN_CLUSTER_CELLS:
            skipped.append({"cluster": c, "n_cells": int(cells.size), "n_missing": int(missing[cells].sum())})
            continue
        for b, (targets, inputs) in enumerate(gene_blocks(lognorm[cells], missing[cells], usable[c], params)):
            pred, history = fit_block(lognorm[cells], missing[cells], targets, inputs, params=params, device=device,
                                      ctx=ctx, name=f"cluster{c}_block{b}", fingerprint=fingerprint)
            hole = missing[np.ix_(cells, targets)]
            rows, cols = np.nonzero(hole)  # back from log CPM to the cell's count scale
            imputed[cells[rows], targets[cols]] = np.expm1(pred[rows, cols].astype(np.float64)) / scale[cells[rows]]
            log.info("cnnImpute %s: %d cells, %d targets, %d inputs, %d epochs (best %s), %.1f s", f"cluster{c}_block{b}",
                     cells.size, targets.size, inputs.size, history.n_epochs, history.best_epoch, history.wall_time_s)
            progress.done(epoch_size(cells.size, params), history)
            epochs += [{"cluster": c, "block": b, "epoch": i + 1, **row} for i, row in enumerate(history.epochs)]
            train_time, peak_mb = train_time + history.wall_time_s, max(peak_mb, history.peak_memory_mb)
            models.append({"cluster": c, "block": b, "n_cells": int(cells.size), "n_targets": int(targets.size),
                           "n_inputs": int(inputs.size), "n_missing": int(hole.sum()),
                           "n_epochs": history.n_epochs, "best_epoch": history.best_epoch,
                           "best_val_mse": history.best_loss})
    timing["training_s"] = time.perf_counter() - t0
    imputed[no_depth(library, "cnnimpute")] = 0.0
    info = {"clusters": cluster_info, "n_missing": int(missing.sum()), "missing_fraction": float(missing.mean()),
            "memory_estimate_gb": round(need, 3),
            "models": models, "skipped_clusters": skipped, "timing": timing}
    log.info("cnnImpute: %d clusters, %d models, %d entries imputed; %s", labels.max() + 1, len(models),
             missing.sum(), ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
    return ImputeResult(imputed=np.maximum(imputed, 0).astype(np.float32),
                        history={"device": str(device), "epochs": epochs, "n_epochs": len(epochs),
                                 "n_models": len(models), "wall_time_s": train_time, "peak_memory_mb": peak_mb},
                        info=info)


class TrainingProgress:
    """Logs, after each network, how many are left and the least time they need at the rate so far:
    on a CPU a large sample's networks take hours, which the user should learn after the first one.
    The bound: every remaining network trains at least ``patience + 1`` epochs (or ``max_epochs``)."""

    def __init__(self, labels: np.ndarray, missing: np.ndarray, params: dict):
        sizes = np.bincount(labels)
        blocks = [len(target_blocks(missing[labels == c], params["n_targets"])) if sizes[c] >= MIN_CLUSTER_CELLS
                  else 0 for c in range(sizes.size)]
        self.networks = int(sum(blocks))
        self.cells_left = float(sum(epoch_size(int(sizes[c]), params) * blocks[c] for c in range(sizes.size)))
        self.least_epochs = min(params["patience"] + 1, params["max_epochs"])
        self.trained, self.seconds, self.cell_epochs = 0, 0.0, 0.0

    def done(self, n_cells: int, history) -> None:
        self.trained += 1
        self.seconds += history.wall_time_s
        self.cell_epochs += n_cells * max(history.n_epochs, 1)
        self.cells_left -= n_cells
        rest = self.seconds / self.cell_epochs * self.cells_left * self.least_epochs
        log.info("cnnImpute: %d of %d networks trained in %.0f s; the rest need at least %.0f min at this rate",
                 self.trained, self.networks, self.seconds, rest / 60)


# --- cell clusters ------------------------------------------------------------------------------

def cluster_cells(lognorm: np.ndarray, *, params, seed: int) -> tuple[np.ndarray, dict]:
    """t-SNE (3-D) of the log-CPM matrix, density peaks, k-means: one integer label per cell.

    As Rtsne: PCA to 50 components first, perplexity 30 (5 for 30 cells or fewer), theta 0.5,
    1000 iterations, learning rate 200 (sklearn counts it 4x larger: 50 here), random start."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = lognorm.shape[0]
    n_pcs = int(min(params["tsne_n_pcs"], n - 1, lognorm.shape[1]))
    pcs = PCA(n_components=n_pcs, random_state=seed).fit_transform(lognorm)
    if n > TSNE_MAX_CELLS:
        return _cluster_subsample(pcs, params=params, seed=seed)
    perplexity = params["tsne_perplexity"] if n > 30 else 5.0
    dims = params["tsne_dims"]
    embedding = TSNE(n_components=dims, perplexity=min(perplexity, (n - 1) / 3), angle=0.5,
                     max_iter=params["tsne_max_iter"], learning_rate=50.0, init="random",
                     method="barnes_hut" if dims < 4 else "exact", random_state=seed).fit_transform(pcs)
    nclust = range(params["adp_min_clusters"], params["adp_max_clusters"] + 1)
    centres, adp = density_peak_centres(embedding, nclust=nclust, f_cuts=params["adp_f_cuts"],
                                        n_bandwidths=params["adp_n_bandwidths"], seed=seed)
    kmeans = KMeans(n_clusters=len(centres), init=embedding[centres], n_init=1, random_state=seed)
    labels = kmeans.fit_predict(embedding)
    return labels, {**adp, "n_clusters": len(centres), "sizes": np.bincount(labels).tolist()}


def _cluster_subsample(pcs: np.ndarray, *, params, seed: int) -> tuple[np.ndarray, dict]:
    """Above ``TSNE_MAX_CELLS`` cells: the paper's clustering (t-SNE, density peaks, k-means) of a seeded
    subsample of that many cells; every other cell takes the majority label of its 15 nearest
    subsampled cells in the same principal components. Why: Barnes-Hut t-SNE in 3-D was still running
    after 7 minutes at 100,000 cells with nothing shown, and the density peaks are O(n²); the clusters
    only choose which cells train each model together."""
    from sklearn.neighbors import KNeighborsClassifier

    n = pcs.shape[0]
    sample = np.sort(np.random.default_rng(seed).choice(n, TSNE_MAX_CELLS, replace=False))
    log.info("cnnImpute: clustering a subsample of %d of %d cells (t-SNE, density peaks), then the rest by "
             "their 15 nearest subsampled cells", TSNE_MAX_CELLS, n)
    sub_labels, info = cluster_cells(pcs[sample], params={**params, "tsne_n_pcs": pcs.shape[1]}, seed=seed)
    labels = KNeighborsClassifier(n_neighbors=15).fit(pcs[sample], sub_labels).predict(pcs)
    labels[sample] = sub_labels
    return labels, {**info, "sizes": np.bincount(labels, minlength=info["n_clusters"]).tolist(),
                    "clustered_subsample": TSNE_MAX_CELLS}


def density_peak_centres(points: np.ndarray, *, nclust=range(2, 11), f_cuts=(0.1, 0.2, 0.3),
                         n_bandwidths: int = 10, seed: int = 0) -> tuple[np.ndarray, dict]:
    """ADPclust's automatic centre search (Wang & Xu 2017) on ``points`` (cells x d); returns the
    indices of the chosen centres and what was chosen.

    Columns are scaled by their standard deviation. For each bandwidth h in 10 steps from h0/3 to 3·h0
    (h0 the AMISE bandwidth (4/(d+2))^(1/(d+4)) n^(-1/(d+4))): density f_i = Σ_j exp(-d_ij²/2h²),
    δ_i = distance to the nearest denser point (the densest point gets the largest δ). For each cut
    q in ``f_cuts`` the candidates are the points with f at least its q-quantile, and the k of them
    with the largest δ are the centres, k in ``nclust``. Each point joins its nearest centre; the
    (h, q, k) with the largest mean silhouette wins. Above ADP_MAX_CELLS points all of this runs
    on a seeded subsample (k-means then labels every cell)."""
    sample = np.arange(points.shape[0])
    if sample.size > ADP_MAX_CELLS:
        sample = np.sort(np.random.default_rng(seed).choice(sample.size, ADP_MAX_CELLS, replace=False))
    z = points[sample] / points[sample].std(axis=0, ddof=1)
    n, d = z.shape
    h0 = (4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (d + 4))
    bandwidths = np.linspace(h0 / 3, 3 * h0, n_bandwidths)
    density = _chunked(z, lambda dist, rows: np.stack([np.exp(-(dist / h) ** 2 / 2).sum(1) for h in bandwidths], 1))
    candidates, seen = [], set()
    for i, h in enumerate(bandwidths):
        f = density[:, i]
        delta = _distance_to_denser(z, f)
        for q in f_cuts:
            above = f >= np.quantile(f, q)
            order = np.argsort(-np.where(above, delta, -np.inf), kind="stable")
            for k in nclust:
                if above.sum() < k:  # ADPclust stops here; a smaller k may still be tested
                    continue
                centres = order[:k]
                key = tuple(sorted(centres.tolist()))
                if key not in seen:
                    seen.add(key)
                    candidates.append({"h": float(h), "f_cut": float(q), "k": k, "centres": centres})
    labelings = [cdist(z, z[c["centres"]]).argmin(1) for c in candidates]
    scores = mean_silhouettes(z, labelings)
    best = int(np.argmax(scores))
    win = candidates[best]
    return sample[win["centres"]], {"h": win["h"], "f_cut": win["f_cut"], "silhouette": float(scores[best]),
                                    "n_tested": len(candidates), "adp_cells": int(n)}


def mean_silhouettes(z: np.ndarray, labelings: list[np.ndarray]) -> np.ndarray:
    """Mean silhouette (Euclidean) of each labelling of the same points, from one pass over the
    distances in row chunks; a point alone in its cluster scores 0 (as R's cluster::silhouette)."""
    n = z.shape[0]
    sizes = [np.bincount(lab) for lab in labelings]
    offsets = np.cumsum([0] + [s.size for s in sizes])
    onehot = sp.csr_matrix((np.ones(n * len(labelings)),
                            (np.tile(np.arange(n), len(labelings)),
                             np.concatenate([lab + o for lab, o in zip(labelings, offsets)]))),
                           shape=(n, offsets[-1])).toarray()
    sums = _chunked(z, lambda dist, rows: dist @ onehot)
    scores = np.empty(len(labelings))
    for i, (lab, size) in enumerate(zip(labelings, sizes)):
        own = sums[:, offsets[i]:offsets[i + 1]]
        a = own[np.arange(n), lab] / np.maximum(size[lab] - 1, 1)
        mean_other = np.divide(own, size, out=np.full_like(own, np.inf), where=size > 0)  # empty: never nearest
        mean_other[np.arange(n), lab] = np.inf
        b = mean_other.min(1)
        b = np.where(np.isfinite(b), b, a)  # no other cluster: silhouette 0
        s = np.where(size[lab] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
        scores[i] = s.mean()
    return scores


def _distance_to_denser(z: np.ndarray, f: np.ndarray) -> np.ndarray:
    """δ_i = min distance to a point ranked denser (ties: the earlier point is denser, as R's order)."""
    rank = np.empty(f.size, dtype=np.int64)
    rank[np.argsort(-f, kind="stable")] = np.arange(f.size)

    def nearest_denser(dist, rows):
        return np.where(rank[None, :] < rank[rows, None], dist, np.inf).min(1)

    delta = _chunked(z, nearest_denser)
    top = np.argmin(rank)
    delta[top] = np.max(np.delete(delta, top)) if f.size > 1 else 0.0
    return delta


def _chunked(z: np.ndarray, fn, chunk: int = 1024) -> np.ndarray:
    """fn(distances of a row chunk to all points, row indices), stacked over chunks (never n x n)."""
    return np.concatenate([fn(cdist(z[i:i + chunk], z), np.arange(i, min(i + chunk, len(z))))
                           for i in range(0, len(z), chunk)])


# --- dropout probability ------------------------------------------------------------------------

def cluster_dropout(counts: np.ndarray, *, max_iter: int = 100, tol: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Dropout probability (cells x genes) of one cluster's counts and the genes with a usable fit,
    the EM run on chunks of genes so that memory stays bounded."""
    x = log10_cpm(counts).T  # genes x cells
    prob = np.zeros(x.shape, dtype=np.float32)
    usable = np.zeros(x.shape[0], dtype=bool)
    step = max(1, _EM_CHUNK // max(x.shape[1], 1))
    for g in range(0, x.shape[0], step):
        fit = fit_mixture(x[g:g + step], max_iter=max_iter, tol=tol)
        prob[g:g + step] = dropout_probability(x[g:g + step], fit)
        usable[g:g + step] = valid_genes(fit)
    return prob.T, usable


# --- targets, inputs, network -------------------------------------------------------------------

def target_blocks(missing: np.ndarray, n_targets: int) -> list[np.ndarray]:
    """Genes with a missing entry in one cluster (cells x genes), in blocks of ``n_targets`` in gene
    order: one network each."""
    targets = np.flatnonzero(missing.any(axis=0))
    return [targets[start:start + n_targets] for start in range(0, targets.size, n_targets)]


def gene_blocks(lognorm: np.ndarray, missing: np.ndarray, usable: np.ndarray, params):
    """Yield (targets, inputs) gene indices for each block of one cluster (cells x genes arrays).

    Targets: genes with a missing entry, in blocks of ``n_targets`` in gene order. Inputs: for each
    target in turn, its ``n_inputs_per_target`` most Pearson-correlated candidate genes (usable fit,
    missing in at most ``input_gene_threshold`` of the cells, outside the block), first occurrence kept
    (every occurrence with ``keep_duplicate_inputs``)."""
    candidates = np.flatnonzero(usable & (missing.mean(axis=0) <= params["input_gene_threshold"]))
    centred = lognorm - lognorm.mean(axis=0)
    norm = np.sqrt((centred.astype(np.float64) ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = (centred / norm).astype(np.float32)  # constant genes become NaN: never chosen
    top = params["n_inputs_per_target"]
    for block in target_blocks(missing, params["n_targets"]):
        pool = np.setdiff1d(candidates, block)
        if pool.size == 0:
            yield block, pool
            continue
        corr = np.nan_to_num(unit[:, block].T @ unit[:, pool], nan=-np.inf)  # targets x pool
        k = min(top, pool.size)
        best = np.argpartition(-corr, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(best, np.argsort(-np.take_along_axis(corr, best, 1), 1, kind="stable"), 1)
        chosen = pool[best[np.isfinite(np.take_along_axis(corr, best, 1))]]  # row-major: target by target
        if params["keep_duplicate_inputs"]:  # the official code: 5 inputs per target, repeats kept
            yield block, chosen
            continue
        _, first = np.unique(chosen, return_index=True)
        yield block, chosen[np.sort(first)]


class CnnImputeNet(nn.Module):
    """Fig. 1B. (batch, n_inputs) log-CPM of the input genes -> (batch, n_targets) of the targets.

    Keras defaults of the official code where the paper is silent: BatchNorm momentum 0.99 (torch
    0.01) and eps 1e-3, Glorot-uniform convolutions, Glorot-normal dense layers, zero biases."""

    def __init__(self, *, n_inputs: int, n_targets: int, filters: int = 16, kernel_size: int = 3,
                 hidden: int = 1024, dropout: float = 0.3):
        super().__init__()
        length = ((n_inputs - kernel_size + 1) // 2 - kernel_size + 1) // 2
        self.net = nn.Sequential(
            nn.Conv1d(1, filters, kernel_size), nn.ReLU(), nn.MaxPool1d(2),
            nn.BatchNorm1d(filters, eps=1e-3, momentum=0.01),
            nn.Conv1d(filters, filters, kernel_size), nn.ReLU(), nn.MaxPool1d(2),
            nn.BatchNorm1d(filters, eps=1e-3, momentum=0.01),
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(filters * length, hidden), nn.ReLU(),
            nn.Linear(hidden, n_targets), nn.ReLU(),
        )
        for layer in self.net:
            if isinstance(layer, (nn.Conv1d, nn.Linear)):
                (nn.init.xavier_uniform_ if isinstance(layer, nn.Conv1d) else nn.init.xavier_normal_)(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


def masked_mse(module: nn.Module, batch) -> dict[str, torch.Tensor]:
    """MSE over the observed targets only (missing entries and padding are masked)."""
    x, y, observed = batch
    err = (module(x) - y) ** 2 * observed
    return {"loss": err.sum() / observed.sum().clamp(min=1.0)}


def epoch_size(n_cells: int, params) -> int:
    """Training cells in one epoch of a network on a cluster of ``n_cells``: all of its training split
    (the paper), or ``(1 - val_fraction) x epoch_cells`` when the cluster is larger than ``epoch_cells``.
    Why: early stopping counts epochs, so on a cluster of 30,000 cells the paper's patience of 5 epochs
    is ~4,700 updates without improvement, and 16 networks of such epochs need hours on a CPU; epochs of
    a fixed size keep patience and ``max_epochs`` to the updates they mean at the paper's sizes, while
    each epoch draws its cells afresh from the whole training split."""
    fit = n_cells - max(1, int(round(params["val_fraction"] * n_cells)))
    if not params["epoch_cells"] or n_cells <= params["epoch_cells"]:
        return fit
    return min(fit, max(1, int(round((1 - params["val_fraction"]) * params["epoch_cells"]))))


def fit_block(lognorm, missing, targets, inputs, *, params, device, ctx, name, fingerprint=None):
    """Train one model for one (cluster, block) and predict the block for every cell of the cluster."""
    n_targets, n_inputs = params["n_targets"], params["n_targets"] * params["n_inputs_per_target"]
    if params["trim_padding"]:  # input as long as the genes chosen, but long enough that the pooled
        # length stays >= 2: BatchNorm needs two values per channel even in a last batch of one cell
        n_inputs = max(inputs.size, 3 * params["kernel_size"] + 5)
    n = lognorm.shape[0]
    x = np.zeros((n, n_inputs), dtype=np.float32)
    x[:, :inputs.size] = lognorm[:, inputs]
    y = np.zeros((n, n_targets), dtype=np.float32)
    y[:, :targets.size] = lognorm[:, targets]
    observed = np.zeros((n, n_targets), dtype=np.float32)
    observed[:, :targets.size] = ~missing[:, targets]
    seed = int(np.random.SeedSequence([ctx.seed, *map(ord, name)]).generate_state(1)[0])
    rng = np.random.default_rng(seed)  # the split, then each epoch's cells and batches (in every checkpoint)
    order = rng.permutation(n)
    n_val = max(1, int(round(params["val_fraction"] * n)))
    val, fit = order[:n_val], order[n_val:]
    per_epoch = epoch_size(n, params)
    if per_epoch < fit.size:  # an epoch of a large cluster: per_epoch of its training cells, validated on a
        val = val[:max(1, int(round(params["val_fraction"] * params["epoch_cells"])))]  # fixed share of its own
    tensors = [torch.from_numpy(a).to(device) for a in (x, y, observed)]
    train_set = [t[torch.from_numpy(fit).to(device)] for t in tensors]
    val_set = [t[torch.from_numpy(val).to(device)] for t in tensors]
    torch.manual_seed(seed)
    module = CnnImputeNet(n_inputs=n_inputs, n_targets=n_targets, filters=params["filters"],
                          kernel_size=params["kernel_size"], hidden=params["hidden"],
                          dropout=params["dropout"]).to(device)
    batch = params["batch_size"]

    def train_batches():  # every training cell once per epoch, or per_epoch of them drawn afresh
        perm = torch.from_numpy(rng.permutation(fit.size)[:per_epoch]).to(device)
        for i in range(0, per_epoch, batch):
            yield [t[perm[i:i + batch]] for t in train_set]

    config = train_config(ctx, "cnnimpute", fingerprint, part=name, max_epochs=params["max_epochs"], lr=params["lr"],
                          patience=params["patience"], fused_adam=True, generators=(rng,),
                          restore_best=False)  # Keras EarlyStopping without restore_best_weights: the last epoch's
    history = train.fit(module, masked_mse, config=config, device=device, train_data=train_batches,
                        val_data=lambda: [val_set])
    with torch.no_grad():
        pred = torch.cat([module(tensors[0][i:i + _PREDICT_CHUNK]) for i in range(0, n, _PREDICT_CHUNK)])
    return pred[:, :targets.size].cpu().numpy(), history
