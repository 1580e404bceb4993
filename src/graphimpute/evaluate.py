"""Score every method's output for one sample (benchmark mode). The formulas are in docs/benchmark.md.

Reads each method's output (``layers['imputed']``: expected counts on the input's count scale, and
``uns['graphimpute']['impute']``: provenance) and, when the input was masked, the MASK step's truth
file. Three families of metrics, plus what each run cost:

- hidden-entry recovery (``uniform``/``low-count`` masks): at the hidden entries only, on
  ``log1p(target_sum * count / library_unmasked)``; the prediction is first rescaled so that each cell's
  output sums to its unmasked library (``rescale='library'``, the same for every method);
- molecular cross-validation (``mcv`` masks): Open Problems' MSE and the Poisson loss in its intended
  order (and in Open Problems' order, for comparison with their leaderboard);
- clustering against ``obs[label_key]``: on the PCA of the log1p-normalised output (never the
  imputation graph), k-means with k = number of labels (mean over seeds) and Leiden on the
  representation's own kNN graph, each scored by ARI, AMI, NMI, accuracy, purity and entropy; and the
  silhouette of the labels on that PCA.

Metrics a method cannot have (Pearson r and cosine of a prediction that is 0 at every hidden entry)
are NaN, never 0.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from graphimpute import _keys, verdict
from graphimpute._version import __version__
from graphimpute.errors import GraphImputeError, InputError
from graphimpute.mask import HELD_ZEROS, LIBRARY_MASKED, LIBRARY_UNMASKED
from graphimpute.metrics import METRICS, PARTITION

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """How one benchmark scores every method (the same for all of them; recorded in summary.json)."""

    target_sum: float = 1e4
    rescale: str = "library"  # library: each cell's output rescaled to its unmasked library; none: as given
    n_pcs: int = 50
    n_neighbors: int = 15
    kmeans_seeds: int = 5
    kmeans_n_init: int = 10
    leiden_resolution: float = 1.0
    umap: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.rescale not in ("library", "none"):
            raise GraphImputeError(f"rescale must be 'library' or 'none', got {self.rescale!r}")


METRIC_COLUMNS = ["sample", "method", "seed", "metric", "value"]
HISTORY_COLUMNS = ["sample", "method", "model", "epoch", "term", "value"]
EMBEDDING_COLUMNS = ["sample", "method", "cell", "umap1", "umap2", "label"]


@dataclass
class Evaluation:
    """Everything EVALUATE found for one sample; REPORT only formats it."""

    sample: str
    metrics: pd.DataFrame  # long: sample, method, seed (the mask seed; 0 unmasked), metric, value
    runs: pd.DataFrame  # sample, method, device, wall_time_s, peak_memory_mb, epochs, best_epoch, seed, mask_seed
    histories: pd.DataFrame  # long: sample, method, model (cnnImpute's (cluster, block), else ''), epoch, term, value
    embeddings: pd.DataFrame  # sample, method, cell, umap1, umap2, label
    versions: dict[str, dict[str, str]]  # method -> package -> version
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_scores(cls, sample: str, metrics: pd.DataFrame, runs: pd.DataFrame,
                    settings: dict[str, Any]) -> "Evaluation":
        """Scores computed elsewhere (``--methods auto``'s selection): no histories, embeddings or versions."""
        return cls(sample=sample, metrics=metrics[METRIC_COLUMNS], runs=runs,
                   histories=pd.DataFrame(columns=HISTORY_COLUMNS), embeddings=pd.DataFrame(columns=EMBEDDING_COLUMNS),
                   versions={}, settings=settings)

    def summary(self) -> pd.DataFrame:
        """Wide: one row per method, best first by the primary metric (verdict.PRIMARY); each metric's
        mean over mask seeds, its standard deviation in ``<metric>_sd`` (NaN with one seed),
        ``n_seeds``, and the device."""
        grouped = self.metrics.groupby(["sample", "method", "metric"], sort=False)["value"]
        stats = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1)}).reset_index()
        mean = stats.pivot_table(index=["sample", "method"], columns="metric", values="mean", aggfunc="first",
                                 dropna=False, sort=False)
        sd = stats.pivot_table(index=["sample", "method"], columns="metric", values="sd", aggfunc="first",
                               dropna=False, sort=False)
        names = [m for m in METRICS if m in mean.columns] + [m for m in mean.columns if m not in METRICS]
        columns = {}
        for name in names:
            columns[name] = mean[name]
            if name in METRICS and METRICS[name].group != "resources":
                columns[f"{name}_sd"] = sd[name]
        wide = pd.DataFrame(columns)
        wide["n_seeds"] = self.metrics.groupby(["sample", "method"], sort=False)["seed"].nunique()
        wide = wide.reset_index()
        primary = verdict.primary_metric(self.metrics)
        if primary is not None:
            order = verdict.ranking(self.metrics, primary)["method"].tolist()
            order += [m for m in wide["method"] if m not in order]
            wide = wide.set_index("method").loc[order].reset_index()[["sample", "method", *wide.columns[2:]]]
        if not self.runs.empty:
            devices = self.runs.drop_duplicates(["sample", "method"])[["sample", "method", "device"]]
            wide = wide.merge(devices, on=["sample", "method"], how="left")
        return wide

    def verdict(self) -> dict[str, Any]:
        return verdict.verdict(self.metrics)

    def write(self, outdir: str | Path, *, steps: Mapping[str, str] | None = None) -> list[Path]:
        """Writes ``<sample>.metrics.tsv`` (long), ``<sample>.summary.tsv`` (wide), ``<sample>.ranking.tsv``
        (methods on the primary metric, ties called; when one was measured),
        ``<sample>.summary.json``, ``<sample>.runs.tsv``, ``<sample>.histories.tsv``,
        ``<sample>.embeddings.tsv`` and ``<sample>.versions.json`` into ``outdir``. ``steps``: the
        pipeline's record of this step, kept in summary.json."""
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        written = []
        tables = {"metrics": self.metrics, "summary": self.summary(), "runs": self.runs,
                  "histories": self.histories, "embeddings": self.embeddings}
        primary = verdict.primary_metric(self.metrics)
        if primary is not None:
            ranking = verdict.ranking(self.metrics, primary)
            tables["ranking"] = ranking.assign(sample=self.sample, metric=primary)[["sample", "metric", *ranking.columns]]
        for name, table in tables.items():
            written.append(_atomic_write(outdir / f"{self.sample}.{name}.tsv",
                                         table.to_csv(sep="\t", index=False, na_rep="NaN")))
        summary = {**self.summary_json(), **({"steps": dict(steps)} if steps else {})}
        written.append(_atomic_write(outdir / f"{self.sample}.summary.json", json.dumps(summary, indent=2)))
        written.append(_atomic_write(outdir / f"{self.sample}.versions.json", json.dumps(self.versions, indent=2)))
        return written

    def summary_json(self) -> dict[str, Any]:
        """NaN (an undefined metric) becomes null, with the reason in ``undefined``."""
        methods = {}
        for row in self.summary().to_dict(orient="records"):
            values = {k: _json_value(v) for k, v in row.items() if k not in ("sample", "method")}
            methods[row["method"]] = values
        return {
            "sample": self.sample,
            "settings": self.settings,
            "verdict": _jsonable(self.verdict()),
            "methods": methods,
            "undefined": "null = undefined (e.g. Pearson r and cosine of a prediction that is 0 at every "
                         "hidden entry), never 0",
            "metrics": {name: asdict(m) for name, m in METRICS.items()},
        }


# ---------------------------------------------------------------------------------------------- metrics
# Predictions within this relative distance of each other count as equal: float32 outputs of a
# cell-agnostic profile differ between cells by rounding only, and that must not rank cells.
_TIE_TOLERANCE = 1e-5


def recovery_metrics(imputed: np.ndarray, hidden: sp.spmatrix, library_unmasked: np.ndarray, *,
                     held_zeros: sp.spmatrix | None = None, target_sum: float = 1e4, rescale: str = "library",
                     min_entries: int = 5) -> dict[str, float]:
    """Scores at the hidden entries (the non-zeros of ``hidden``, at their original counts) and the
    held-back true zeros (the non-zeros of ``held_zeros``), within each gene across cells.

    Values: true = log1p(target_sum · x / L) (0 at a held-back zero), pred = log1p(target_sum · x̂' / L),
    L = the cell's unmasked library, x̂' = x̂ · L / Σ_genes x̂ (``rescale='library'``) or x̂ (``'none'``).

    - ``hidden_gene_r``: per gene, Pearson r of pred and true over the gene's hidden entries, averaged
      over genes with at least ``min_entries`` of them and a non-constant truth; a prediction constant
      within the gene (a cell-agnostic profile, or 0 everywhere like ``none``) scores 0 there.
    - ``hidden_zero_auc``: per gene, the probability that a hidden entry gets a higher pred than a
      held-back true zero (ties count half), averaged over genes with at least ``min_entries`` of each;
      0.5 for any output that cannot tell the cells apart.
    - ``rmse``: over hidden entries and held-back zeros together, pooled over genes. The cell-agnostic
      ``gene_mean`` does well on it (measured: docs/benchmark.md): shown, never ranked by."""
    hid = sp.coo_matrix(hidden)
    zer = sp.coo_matrix(held_zeros) if held_zeros is not None else sp.coo_matrix(hidden.shape)
    rows = np.concatenate([hid.row, zer.row])
    genes = np.concatenate([hid.col, zer.col])
    library = np.asarray(library_unmasked, dtype=np.float64)
    pred = np.asarray(imputed[rows, genes], dtype=np.float64)
    if rescale == "library":
        totals = np.asarray(imputed, dtype=np.float64).sum(axis=1)
        scale = np.divide(library, totals, out=np.zeros_like(library), where=totals > 0)
        pred = pred * scale[rows]
    log_pred = np.log1p(target_sum * pred / library[rows])
    log_true = np.concatenate([np.log1p(target_sum * hid.data.astype(np.float64) / library[hid.row]),
                               np.zeros(zer.nnz)])
    is_hidden = np.arange(rows.size) < hid.nnz
    diff = log_pred - log_true
    n_genes = hidden.shape[1]
    return {
        "hidden_gene_r": _mean_gene_r(genes[is_hidden], log_pred[is_hidden], log_true[is_hidden], n_genes,
                                      min_entries),
        "hidden_zero_auc": _mean_gene_auc(genes, log_pred, is_hidden, n_genes, min_entries)
        if zer.nnz else float("nan"),
        "rmse": float(np.sqrt(np.mean(diff**2))) if diff.size else float("nan"),
    }


def _mean_gene_r(genes, pred, true, n_genes: int, min_entries: int) -> float:
    """Mean over genes of Pearson r(pred, true) within the gene (two-pass, centred sums)."""
    n = np.bincount(genes, minlength=n_genes).astype(np.float64)
    size = np.maximum(n, 1)
    dp = pred - (np.bincount(genes, pred, n_genes) / size)[genes]
    dt = true - (np.bincount(genes, true, n_genes) / size)[genes]
    spp, stt, spt = (np.bincount(genes, w, n_genes) for w in (dp * dp, dt * dt, dp * dt))
    scale_p = np.bincount(genes, np.abs(pred), n_genes) / size
    flat = np.sqrt(spp / size) <= _TIE_TOLERANCE * np.maximum(scale_p, 1e-12)
    scored = (n >= min_entries) & (stt > 0)
    if not scored.any():
        return float("nan")
    r = np.divide(spt, np.sqrt(spp * stt), out=np.zeros(n_genes), where=~flat & (spp * stt > 0))
    return float(np.mean(r[scored]))


def _mean_gene_auc(genes, pred, positive, n_genes: int, min_each: int) -> float:
    """Mean over genes of the Mann-Whitney AUC of ``pred`` for ``positive`` against the rest of the
    gene's entries; average ranks for ties (values within _TIE_TOLERANCE, relatively, are tied)."""
    order = np.lexsort((pred, genes))
    g, p, pos = genes[order], pred[order], positive[order]
    idx = np.arange(g.size)
    new_gene = np.r_[True, g[1:] != g[:-1]]
    step = np.abs(np.diff(p)) > _TIE_TOLERANCE * np.maximum(np.abs(p[1:]), 1e-12)
    new_run = new_gene | np.r_[True, step]
    run_id = np.cumsum(new_run) - 1
    starts = idx[new_run]
    ends = np.r_[starts[1:], g.size] - 1
    gene_start = np.maximum.accumulate(np.where(new_gene, idx, 0))
    rank = (starts[run_id] + ends[run_id]) / 2 - gene_start + 1
    n_pos = np.bincount(g, pos, n_genes)
    n_neg = np.bincount(g, ~pos, n_genes)
    u = np.bincount(g, rank * pos, n_genes) - n_pos * (n_pos + 1) / 2
    scored = (n_pos >= min_each) & (n_neg >= min_each)
    if not scored.any():
        return float("nan")
    return float(np.mean(u[scored] / (n_pos[scored] * n_neg[scored])))


def mcv_metrics(imputed: np.ndarray, test: sp.spmatrix, train_total: float, *,
                target_sum: float = 1e4, chunk: int = 4096) -> dict[str, float]:
    """Molecular cross-validation losses of an output computed from the train counts (every entry
    counts, zeros included).

    ``mcv_mse``: mean over all entries of (log1p(CP10k(x̂)) - log1p(CP10k(test)))², each matrix normalised
    by its own cell totals (Open Problems' ``mse``). ``mcv_poisson``: mean(r - test · log(r + 1e-6)) with
    r = x̂ · Σtest / Σtrain, the Poisson negative log-likelihood of the held-out molecules (without the
    log(test!) constant) as Batson et al. intended it. ``mcv_poisson_openproblems``:
    mean(test - r · log(test + 1e-6)), the same call with the arguments swapped, as Open Problems'
    ``poisson`` computes it. Computed in blocks of ``chunk`` cells: the test counts stay sparse."""
    test = sp.csr_matrix(test, dtype=np.float64)
    n_cells, n_genes = test.shape
    factor = test.sum() / train_total
    sums = dict(sq=0.0, rate=0.0, rate_log_test=0.0, test_log_rate=0.0)
    for start in range(0, n_cells, chunk):
        out = np.asarray(imputed[start:start + chunk], dtype=np.float64)
        block = test[start:start + chunk]
        coo = block.tocoo()
        rate = out * factor
        sums["rate"] += rate.sum()
        rate_nz = rate[coo.row, coo.col]
        sums["test_log_rate"] += float(coo.data @ np.log(rate_nz + 1e-6))
        # Σ_all r·log(test + 1e-6) = log(1e-6)·(Σ r - Σ_nz r) + Σ_nz r·log(test + 1e-6)
        sums["rate_log_test"] += math.log(1e-6) * (rate.sum() - rate_nz.sum()) + float(rate_nz @ np.log(coo.data + 1e-6))
        a = _log_cp(out, target_sum)
        totals = np.asarray(block.sum(axis=1)).ravel()
        b = np.log1p(target_sum * coo.data / totals[coo.row])  # log1p CP10k of the test counts, non-zeros
        sums["sq"] += float((a * a).sum() - 2 * (a[coo.row, coo.col] @ b) + b @ b)
    n = n_cells * n_genes
    return {
        "mcv_mse": sums["sq"] / n,
        "mcv_poisson": (sums["rate"] - sums["test_log_rate"]) / n,
        "mcv_poisson_openproblems": (test.sum() - sums["rate_log_test"]) / n,
    }


def partition_scores(labels, clusters) -> dict[str, float]:
    """ARI, AMI, NMI, accuracy, purity and entropy of ``clusters`` against ``labels``."""
    from sklearn import metrics

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    return {
        "ari": float(metrics.adjusted_rand_score(labels, clusters)),
        "ami": float(metrics.adjusted_mutual_info_score(labels, clusters)),
        "nmi": float(metrics.normalized_mutual_info_score(labels, clusters)),
        "accuracy": clustering_accuracy(labels, clusters),
        "purity": purity(labels, clusters),
        "entropy": cluster_entropy(labels, clusters),
    }


def clustering_accuracy(labels, clusters) -> float:
    """Share of cells whose cluster is matched to their label by the best one-to-one assignment of
    clusters to labels (Hungarian algorithm); clusters or labels left unmatched count as wrong."""
    from scipy.optimize import linear_sum_assignment

    table = _contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(labels, clusters) -> float:
    """(1/N) Σ_clusters max_label n(cluster, label)."""
    table = _contingency(labels, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def cluster_entropy(labels, clusters) -> float:
    """-(1 / (N log l)) Σ_clusters Σ_labels n_kj log(n_kj / n_k), l = number of labels (cnnImpute's
    definition, from IntNMF): 0 when every cluster holds one label; 1 at most."""
    table = _contingency(labels, clusters)
    n_labels = table.shape[0]
    if n_labels < 2:
        return 0.0
    sizes = table.sum(axis=0, keepdims=True)
    share = np.divide(table, sizes, out=np.zeros_like(table, dtype=float), where=sizes > 0)
    terms = np.where(table > 0, table * np.log(np.where(share > 0, share, 1.0)), 0.0)
    return float(-terms.sum() / (table.sum() * np.log(n_labels)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (undefined, not 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; NaN when either side is all zero (undefined, not 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def clustering_metrics(imputed: np.ndarray, labels: np.ndarray, *, settings: Settings,
                       cell_names: Iterable[str] | None = None) -> tuple[dict[str, float], pd.DataFrame | None]:
    """Cluster the output's own representation and score it against ``labels``.

    Representation: log1p(target_sum · x̂ / Σ_genes x̂), genes scaled (clipped at 10), PCA (``n_pcs``,
    graphs.pca). k-means on the PCA with k = number of labels, ``kmeans_seeds`` seeds, scores averaged;
    Leiden (igraph, ``leiden_resolution``) on the binary symmetric kNN graph of that PCA
    (graphs.knn_graph, ``n_neighbors``); silhouette of the labels on the PCA. Returns the scores and,
    with ``settings.umap``, scanpy's UMAP of the PCA (its own neighbours graph, same ``n_neighbors``)."""
    import scanpy as sc
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    from graphimpute import graphs

    labels = np.asarray(labels).astype(str)
    rep = AnnData(X=_log_cp(np.asarray(imputed, np.float64), settings.target_sum).astype(np.float32))
    if cell_names is not None:
        rep.obs_names = list(cell_names)
    graphs.pca(rep, n_comps=settings.n_pcs, layer=None, seed=settings.seed)
    pcs = rep.obsm[_keys.PCA]
    k = len(np.unique(labels))
    scores: dict[str, float] = {}
    per_seed = []
    for offset in range(settings.kmeans_seeds):
        km = KMeans(n_clusters=k, n_init=settings.kmeans_n_init, random_state=settings.seed + offset).fit(pcs)
        per_seed.append(partition_scores(labels, km.labels_))
    for name in PARTITION:
        scores[f"kmeans_{name}"] = float(np.mean([s[name] for s in per_seed]))
    graphs.knn_graph(rep, n_neighbors=settings.n_neighbors, n_pcs=pcs.shape[1], key_added="eval_knn",
                     seed=settings.seed)
    sc.tl.leiden(rep, adjacency=rep.obsp["eval_knn"], resolution=settings.leiden_resolution, flavor="igraph",
                 n_iterations=2, directed=False, random_state=settings.seed, key_added="leiden")
    leiden = rep.obs["leiden"].to_numpy()
    scores.update({f"leiden_{name}": v for name, v in partition_scores(labels, leiden).items()})
    scores["leiden_n_clusters"] = float(len(np.unique(leiden)))
    scores["silhouette_labels"] = float(silhouette_score(pcs, labels)) if 1 < k < len(labels) else float("nan")
    embedding = None
    if settings.umap:
        sc.pp.neighbors(rep, n_neighbors=settings.n_neighbors, use_rep=_keys.PCA, random_state=settings.seed)
        sc.tl.umap(rep, random_state=settings.seed)
        embedding = pd.DataFrame({"cell": rep.obs_names, "umap1": rep.obsm["X_umap"][:, 0],
                                  "umap2": rep.obsm["X_umap"][:, 1], "label": labels})
    return scores, embedding


# ------------------------------------------------------------------------------------------- evaluate
def evaluate(
    outputs: Iterable[AnnData | str | Path],
    *,
    truth: AnnData | str | Path | Iterable[AnnData | str | Path] | None = None,
    label_key: str | None = None,
    sample: str = "sample",
    settings: Settings | None = None,
) -> Evaluation:
    """Score each output (an AnnData or an h5ad path; files are read one at a time).

    ``truth``: the MASK step's truth file, or one per mask seed; each output is scored against the
    truth of the seed its masked input was drawn with (``uns['graphimpute']['mask']['seed']``, which
    IMPUTE carries over), so one method has one row per seed and the summary gives mean ± sd.
    Hidden-entry recovery or MCV needs ``truth``; clustering needs ``label_key``. Without either, only
    the resources are reported. UMAP coordinates and loss histories come from the first seed only."""
    settings = settings or Settings()
    truths = _truths(truth)
    schemes = {t.uns[_keys.UNS]["mask"]["scheme"] for t in truths.values()}
    if len(schemes) > 1:
        raise GraphImputeError(f"the truth files mix mask schemes ({', '.join(sorted(schemes))}); evaluate one "
                               "scheme at a time")
    scheme = schemes.pop() if schemes else None
    rows, runs, histories, embeddings, versions = [], [], [], [], {}
    seen: set[tuple[str, int]] = set()
    first_seed = min(truths) if truths else 0
    unimputed_needed = True
    first = None
    for item in outputs:
        out = _read(item) if isinstance(item, (str, Path)) else item
        prov = dict(out.uns.get(_keys.UNS, {}).get("impute", {}))
        method = str(prov.get("method") or (Path(item).stem.split(".")[-1] if isinstance(item, (str, Path)) else "output"))
        seed, matched = _match_truth(out, truths, method)
        if (method, seed) in seen:
            raise GraphImputeError(f"method {method!r} appears twice among the outputs of sample {sample!r}"
                                   + (f" for mask seed {seed}" if truths else ""))
        seen.add((method, seed))
        imputed = _imputed(out, method)
        scores: dict[str, float] = {}
        if matched is not None:
            _check_same_shape(out, matched, method)
            if scheme == "mcv":
                train_total = float(matched.obs[LIBRARY_MASKED].sum())
                scores.update(mcv_metrics(imputed, matched.X, train_total, target_sum=settings.target_sum))
            else:
                scores.update(recovery_metrics(imputed, matched.X, matched.obs[LIBRARY_UNMASKED].to_numpy(),
                                               held_zeros=matched.layers.get(HELD_ZEROS),
                                               target_sum=settings.target_sum, rescale=settings.rescale))
        shown = seed == first_seed
        if label_key:
            labels, keep = _labels(out, label_key)
            clus, emb = clustering_metrics(imputed[keep], labels, settings=replace(settings, umap=settings.umap and shown),
                                           cell_names=out.obs_names[keep])
            scores.update(clus)
            if emb is not None:
                embeddings.append(emb.assign(sample=sample, method=method))
            if method == "none":
                unimputed_needed = False
            if first is None and out.X is not None:  # IMPUTE files hold no X; objects made in memory may
                first = (sp.csr_matrix(out.X)[keep], labels, out.obs_names[keep])
        run, history = _run_record(prov, method, sample)
        run["mask_seed"] = seed
        scores.update({k: run[k] for k in ("wall_time_s", "peak_memory_mb", "epochs", "best_epoch")})
        runs.append(run)
        if shown:
            histories.extend(history)
            versions[method] = {str(k): str(v) for k, v in (prov.get("versions") or {}).items()}
        rows.extend({"sample": sample, "method": method, "seed": seed, "metric": k, "value": _float(v)}
                    for k, v in scores.items())
        log.info("evaluated %s / %s%s", sample, method, f" (mask seed {seed})" if truths else "")
        del out, imputed
    if not seen:
        raise GraphImputeError(f"no method outputs given for sample {sample!r}")
    if label_key and settings.umap and unimputed_needed:
        if first is None:
            log.info("no UMAP of the unimputed counts: IMPUTE files hold no X; the `none` baseline's output is "
                     "that panel")
        else:
            counts, labels, names = first
            _, emb = clustering_metrics(counts.toarray(), labels, settings=settings, cell_names=names)
            embeddings.append(emb.assign(sample=sample, method="unimputed"))

    records = [t.uns[_keys.UNS]["mask"] for _, t in sorted(truths.items())]
    recorded = {**asdict(settings), "mask": ({**records[0], "seeds": sorted(truths)} if records else None),
                "label_key": label_key}
    recorded["versions"] = {"graphimpute": __version__, "scanpy": _pkg_version("scanpy"),
                            "scikit-learn": _pkg_version("scikit-learn"), "anndata": _pkg_version("anndata")}
    return Evaluation(
        sample=sample,
        metrics=pd.DataFrame(rows, columns=METRIC_COLUMNS),
        runs=pd.DataFrame(runs),
        histories=pd.DataFrame(histories, columns=HISTORY_COLUMNS),
        embeddings=pd.concat(embeddings)[EMBEDDING_COLUMNS] if embeddings else pd.DataFrame(columns=EMBEDDING_COLUMNS),
        versions=versions,
        settings=_jsonable(recorded),
    )


def _truths(truth) -> dict[int, AnnData]:
    """The truth files by mask seed."""
    if truth is None:
        return {}
    items = [truth] if isinstance(truth, (AnnData, str, Path)) else list(truth)
    found: dict[int, AnnData] = {}
    for item in items:
        t = _read(item) if isinstance(item, (str, Path)) else item
        record = t.uns.get(_keys.UNS, {}).get("mask", {})
        if "scheme" not in record:
            raise GraphImputeError(f"{item if isinstance(item, (str, Path)) else 'a truth'}: no "
                                   "uns['graphimpute']['mask'] record: is it the MASK step's --truth output?")
        seed = int(record.get("seed", 0))
        if seed in found:
            raise GraphImputeError(f"two truth files for mask seed {seed}")
        found[seed] = t
    return found


def _match_truth(out: AnnData, truths: dict[int, AnnData], method: str) -> tuple[int, AnnData | None]:
    """(mask seed, its truth) for one output; the seed is 0 when nothing was masked."""
    record = out.uns.get(_keys.UNS, {}).get("mask")
    if not truths:
        return (int(record["seed"]) if record and "seed" in record else 0), None
    if record is None or "seed" not in record:
        if len(truths) == 1:
            return next(iter(truths.items()))
        raise GraphImputeError(f"output of {method!r} has no mask record: which of the {len(truths)} truth files "
                               "belongs to it cannot be told")
    seed = int(record["seed"])
    if seed not in truths:
        raise GraphImputeError(f"output of {method!r} was made from mask seed {seed}; no truth file for that seed "
                               f"was given (seeds: {', '.join(map(str, sorted(truths)))})")
    return seed, truths[seed]


# -------------------------------------------------------------------------------------------- helpers
def _log_cp(x: np.ndarray, target_sum: float) -> np.ndarray:
    """log1p(target_sum · x / cell total); cells with total 0 stay 0."""
    totals = x.sum(axis=1, keepdims=True)
    return np.log1p(np.divide(x * target_sum, totals, out=np.zeros_like(x), where=totals > 0))


def _contingency(labels, clusters) -> np.ndarray:
    from sklearn.metrics.cluster import contingency_matrix

    return contingency_matrix(np.asarray(labels), np.asarray(clusters)).astype(np.float64)  # labels x clusters


def _read(path) -> AnnData:
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        return ad.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a damaged file
        raise InputError(path, f"not a readable h5ad file ({exc})") from None


def _imputed(out: AnnData, method: str) -> np.ndarray:
    if _keys.IMPUTED not in out.layers:
        raise GraphImputeError(f"output of {method!r} has no layers['{_keys.IMPUTED}']: is it an IMPUTE output?")
    x = out.layers[_keys.IMPUTED]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    if not np.all(np.isfinite(x)) or (x < 0).any():
        raise GraphImputeError(f"output of {method!r} breaks the method contract: imputed values must be "
                               "finite and non-negative")
    return x


def _check_same_shape(out: AnnData, truth: AnnData, method: str) -> None:
    if not (out.obs_names.equals(truth.obs_names) and out.var_names.equals(truth.var_names)):
        raise GraphImputeError(f"output of {method!r} does not have the truth file's cells and genes in the "
                               "same order: were both made from the same masked input?")


def _labels(out: AnnData, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if label_key not in out.obs:
        raise GraphImputeError(f"--label-key {label_key!r} is not an obs column; obs has: {', '.join(out.obs.columns)}")
    values = out.obs[label_key]
    keep = values.notna().to_numpy()
    labels = values[keep].astype(str).to_numpy()
    if len(np.unique(labels)) < 2:
        raise GraphImputeError(f"obs[{label_key!r}] has fewer than two labels: nothing to cluster against")
    return labels, keep


# history columns that are loss terms; others (lr, time_s, cnnImpute's cluster/block, scVI's kl_weight) are not
LOSS_PREFIXES = ("train_", "val_")


def _run_record(prov: Mapping[str, Any], method: str, sample: str) -> tuple[dict[str, Any], list[dict]]:
    """Resources from the provenance, and the loss terms of the history as long rows (row i is the
    i-th epoch trained, counted across cnnImpute's models). The IMPUTE step stores the epochs as
    columns (term -> array, see runner.h5ad_safe); a list of per-epoch dicts is read too."""
    history = dict(prov.get("history") or {})
    epochs = history.get("epochs")
    if isinstance(epochs, Mapping):
        columns = {k: np.asarray(v, dtype=float).ravel() for k, v in epochs.items()}
        n = max((len(v) for v in columns.values()), default=0)
        epochs = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(n)]
    epochs = list(epochs or [])
    wall = prov.get("wall_time_s", history.get("wall_time_s"))
    peak = prov.get("peak_memory_mb", history.get("peak_memory_mb"))
    run = {
        "sample": sample, "method": method,
        "device": str(prov.get("device") or history.get("device") or "NA"),
        "wall_time_s": _float(wall), "peak_memory_mb": _float(peak),
        "epochs": _float(history.get("n_epochs", len(epochs))) if epochs or "n_epochs" in history else float("nan"),
        "best_epoch": _float(history.get("best_epoch")),
        "seed": prov.get("seed"),
        "nondefault_params": json.dumps(_jsonable(prov.get("nondefault_params") or {}), sort_keys=True, default=str),
    }
    rows = []
    for i, row in enumerate(epochs):
        row = dict(row)
        model, epoch = "", i + 1
        if "cluster" in row and "block" in row:  # cnnImpute: one model per (cluster, block), epochs per model
            model = f"cluster {int(row['cluster'])} block {int(row['block'])}"
            epoch = int(row.get("epoch", epoch))
        rows.extend({"sample": sample, "method": method, "model": model, "epoch": epoch, "term": term,
                     "value": _float(value)} for term, value in row.items() if term.startswith(LOSS_PREFIXES))
    return run, rows


def _float(value) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _json_value(v):
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _jsonable(obj):
    """uns records come back from h5ad as numpy scalars and arrays; make them plain JSON."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic, float)):
        return _json_value(obj.item() if isinstance(obj, np.generic) else obj)
    return obj


def _pkg_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _atomic_write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
