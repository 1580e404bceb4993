"""scVGAE benchmarks: clustering ARI (the paper's protocol) and scale (time, memory, kNN fallback).
Accuracy on masked counts goes through bench/accuracy.py, as for every method.

    python bench/scvgae.py clustering [--data pbmc3k_seurat.h5ad] [--seeds 0]
    python bench/scvgae.py scale      [--data scdcc_cbmc_citeseq_top2000.h5ad]

Common options: --threads N (torch threads), --param KEY=VALUE (scVGAE parameters, default the
paper's), --tag NAME. Each writes bench/results/scvgae_<task>[_<tag>].json (numbers, timings, peak
memory, load average).
Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from graphimpute import _keys, graphs, methods
from graphimpute.methods import RunContext
from graphimpute.monitor import PeakMemory

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GRAPHIMPUTE_DATA", HERE.parent.parent / "shared" / "data"))  # the datasets beside the project
RESULTS = HERE / "results"


def lognorm_layer(adata: ad.AnnData) -> None:
    """layers['lognorm'] = log1p(X / size factor), size factor = library / median library (the
    project's NORMALISE contract), for the GRAPH step's PCA."""
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    lib = np.asarray(x.sum(axis=1)).ravel()
    adata.layers[_keys.LOGNORM] = sp.csr_matrix(sp.diags(np.median(lib) / np.maximum(lib, 1)) @ x).log1p()


def run_scvgae(adata: ad.AnnData, *, seed: int, overrides: dict) -> dict:
    """GRAPH step then IMPUTE, each timed with its peak RSS."""
    method = methods.get("scvgae")
    spec = method.graphs[0]
    adata = adata.copy()
    with PeakMemory() as graph_mem:
        graphs.build(adata, spec.kind, spec.key, spec.params, seed=seed)
    params = methods.resolve_params(method, overrides)
    with PeakMemory() as impute_mem:
        result = method.impute(adata, params, RunContext(seed=seed, device="cpu", progress=False))
    epochs_run = result.history["epochs"]
    return {
        "result": result,
        "params": params, "graph": result.info["graph"],
        "graph_wall_s": graph_mem.wall_s, "graph_peak_rss_mb": graph_mem.peak_mb,
        "impute_wall_s": impute_mem.wall_s, "impute_peak_rss_mb": impute_mem.peak_mb,
        "train_wall_s": result.history["wall_time_s"], "epochs": len(epochs_run),
        "median_epoch_s": float(np.median([e["time_s"] for e in epochs_run])),
        "loss_first_last": [epochs_run[0]["train_loss"], epochs_run[-1]["train_loss"]],
        "memory_estimate_gb": result.info["memory_estimate_gb"],
        "n_cells_imputed": result.info["n_cells_imputed"], "n_genes_imputed": result.info["n_genes_imputed"],
    }


def best_clustering_ari(rep: np.ndarray, labels: np.ndarray, seed: int = 42) -> dict:
    """The paper's protocol: k = number of labels; k-means and spectral clustering with cosine,
    linear and polynomial affinities on ``rep``; the best ARI (and each one)."""
    from sklearn.cluster import KMeans, SpectralClustering
    from sklearn.metrics import adjusted_rand_score

    k = len(np.unique(labels))
    scores = {"kmeans": adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=seed).fit_predict(rep))}
    for affinity in ("cosine", "linear", "poly"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = SpectralClustering(k, affinity=affinity, random_state=seed).fit_predict(rep)
            scores[f"spectral_{affinity}"] = adjusted_rand_score(labels, pred)
        except Exception as err:  # the paper scores a failed clustering as 0
            scores[f"spectral_{affinity}"] = f"failed: {err}"
    numeric = [v for v in scores.values() if isinstance(v, float)]
    return {"best": max(numeric), **scores}


def clustering(args) -> dict:
    """ARI of scVGAE vs unimputed on the whole pbmc3k matrix (the paper's input), over the cells and
    genes scVGAE keeps. Representation for both: eq. 1 of the matrix with the observed library,
    sqrt(M / library x 1e4) — for scVGAE that is max(x_hat, 0), the paper's output."""
    adata = ad.read_h5ad(DATA / args.data)
    lognorm_layer(adata)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    counts = sp.csr_matrix(adata.X, dtype=np.float32)
    cells, genes = graphs.detection_filter(counts, min_gene_fraction=0.05, min_cell_fraction=0.05)
    kept = counts[cells][:, genes]
    library = np.asarray(kept.sum(axis=1))
    out = {"data": args.data, "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars),
           "kept_cells": int(cells.sum()), "kept_genes": int(genes.sum())}
    out["unimputed_eq1"] = best_clustering_ari(graphs.sqrt_normalised(kept), labels[cells])
    # the paper's notebooks feed log1p counts to library normalisation and sqrt
    logged = kept.copy()
    logged.data = np.log1p(logged.data)
    out["unimputed_paper_notebook"] = best_clustering_ari(graphs.sqrt_normalised(logged), labels[cells])
    out["scvgae"] = []
    for seed in args.seeds:
        run = run_scvgae(adata, seed=seed, overrides=args.overrides)
        imputed = run.pop("result").imputed[np.ix_(cells, genes)]
        rep = np.sqrt(imputed / library * 1e4)
        out["scvgae"].append({"seed": seed, **run, "ari": best_clustering_ari(rep, labels[cells])})
    return out


def scale(args) -> dict:
    """Wall time and peak memory with the paper's defaults on a dataset above the percentile limit."""
    adata = ad.read_h5ad(DATA / args.data)
    lognorm_layer(adata)
    run = run_scvgae(adata, seed=0, overrides=args.overrides)
    run.pop("result")
    return {"data": args.data, "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars),
            "percentile_max_cells": graphs.PERCENTILE_MAX_CELLS, **run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["clustering", "scale"])
    parser.add_argument("--data", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--param", action="append", default=[], help="scVGAE parameter KEY=VALUE (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    args.overrides = dict(item.split("=", 1) for item in args.param)
    args.data = args.data or ("scdcc_cbmc_citeseq_top2000.h5ad" if args.task == "scale" else "pbmc3k_seurat.h5ad")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    out = {"clustering": clustering, "scale": scale}[args.task](args)
    out["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                      "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                      "total_wall_s": time.perf_counter() - started}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"scvgae_{args.task}{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
