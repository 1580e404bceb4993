"""Hidden-entry recovery: how well each method predicts counts it never saw.

Protocol (the one the method issues ask for): QC with the defaults, 2,000 highly variable genes, 10% of
each cell's non-zero counts hidden (uniformly, seed 0), then every method imputes the masked matrix.
Scored at the hidden entries and as many held-back true zeros, within each gene, exactly as EVALUATE
scores them (docs/benchmark.md): log1p of counts per 10,000 of the cell's unmasked library, each output
first rescaled to that library. One mask seed (bench/accuracy.py runs several). Next to the methods: a
plain neighbour average (each cell's value is the mean of its 5 nearest cells, on the same PCA as the
methods' graphs, of the library-normalised masked counts, scaled back by the cell's size factor); run
`none` and `gene_mean` with the methods for the bars.

    python bench/recovery.py --data ../shared/data/pbmc3k_seurat.h5ad --methods none,scgnn \
        --outdir bench/_scratch/pbmc3k --results bench/results/recovery.tsv

Per-method overrides: --param scgnn.max_epochs=50 (repeatable). Timings come from each result's
provenance (wall time of the impute step, peak memory), so they exclude QC and graph building.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from pathlib import Path

import anndata
import numpy as np
import scipy.sparse as sp

from graphimpute import methods, pipeline
from graphimpute.evaluate import recovery_metrics
from graphimpute.mask import HELD_ZEROS, LIBRARY_UNMASKED
from graphimpute.methods import RunContext


def hidden_scores(pred: np.ndarray, truth: anndata.AnnData) -> dict[str, float]:
    """EVALUATE's hidden-entry metrics (docs/benchmark.md), so both benchmarks score alike."""
    scores = recovery_metrics(pred, truth.X, truth.obs[LIBRARY_UNMASKED].to_numpy(),
                              held_zeros=truth.layers.get(HELD_ZEROS))
    return {**scores, "n_hidden": int(sp.csr_matrix(truth.X).nnz)}


def neighbour_average(graph_h5ad: Path, k: int = 5) -> np.ndarray:
    """Mean of the k nearest cells (PCA of the masked data) of counts / size factor, times the cell's own."""
    from sklearn.neighbors import NearestNeighbors

    adata = anndata.read_h5ad(graph_h5ad)
    pcs = adata.obsm["X_pca"]
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(pcs).kneighbors(pcs)
    idx = idx[:, 1:]
    factors = adata.obs["size_factor"].to_numpy(np.float64)
    normalised = sp.diags(1 / factors) @ sp.csr_matrix(adata.X, dtype=np.float64)
    rows = np.repeat(np.arange(adata.n_obs), k)
    average = sp.csr_matrix((np.full(rows.size, 1 / k), (rows, idx.ravel())), shape=(adata.n_obs,) * 2)
    return np.asarray((average @ normalised).toarray() * factors[:, None], dtype=np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--methods", default="none")
    parser.add_argument("--outdir", type=Path, required=True, help="Scratch folder for the run's files.")
    parser.add_argument("--results", type=Path, help="TSV to append one row per method to.")
    parser.add_argument("--param", action="append", default=[], help="METHOD.KEY=VALUE")
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--min-genes", type=int, default=200, help="QC: fewest detected genes per cell.")
    parser.add_argument("--n-mads", default="5", help="QC: library outlier cut in MADs, or 'none'.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--label-key", default=None, help="Also cluster (EVALUATE writes OUTDIR/evaluate/).")
    parser.add_argument("--workdir", type=Path, help="Checkpoints of trained methods go here (long runs).")
    parser.add_argument("--checkpoint-every", type=int, help="Epochs between checkpoints (needs --workdir).")
    parser.add_argument("--resume", action="store_true", help="Continue training from --workdir's checkpoints.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    names = methods.parse_methods(args.methods)
    overrides: dict[str, dict[str, str]] = {}
    for item in args.param:
        target, value = item.split("=", 1)
        method, key = target.split(".", 1)
        overrides.setdefault(method, {})[key] = value
    qc = {"min_genes": args.min_genes, "n_mads": None if args.n_mads == "none" else float(args.n_mads)}
    options = pipeline.RunOptions(methods=names, benchmark=True, n_top_genes=args.n_top_genes, qc=qc,
                                  mask_scheme="uniform", mask_seeds=1,
                                  label_key=args.label_key,
                                  method_params=overrides,
                                  ctx=RunContext(seed=args.seed, device=args.device, progress=False,
                                                 workdir=args.workdir, checkpoint_every=args.checkpoint_every,
                                                 resume=args.resume))
    started = time.perf_counter()
    paths = pipeline.run(args.data, args.outdir, options)
    tag = f"seed{args.seed}"
    truth = anndata.read_h5ad(paths[f"truth.{tag}"])

    rows = []
    t0 = time.perf_counter()
    rows.append({"method": "neighbour_average_k5", **hidden_scores(neighbour_average(paths[f"graph.{tag}"]), truth),
                 "wall_time_s": time.perf_counter() - t0, "peak_memory_mb": float("nan"), "epochs": 0})
    for name in names:
        result = anndata.read_h5ad(paths[f"impute.{name}.{tag}"])
        prov = result.uns["graphimpute"]["impute"]
        history = prov.get("history", {})
        rows.append({"method": name, **hidden_scores(result.layers["imputed"], truth),
                     "wall_time_s": float(prov["wall_time_s"]), "peak_memory_mb": float(prov["peak_memory_mb"]),
                     "epochs": int(history.get("n_epochs", 0)) if isinstance(history, dict) else 0})
    load = os.getloadavg()[0]
    for row in rows:
        row.update({"dataset": pipeline.sample_name(args.data), "cells": truth.n_obs, "genes": truth.n_vars,
                    "load_1min": round(load, 2)})
    columns = ["dataset", "cells", "genes", "method", "hidden_gene_r", "hidden_zero_auc", "rmse", "n_hidden", "wall_time_s",
               "peak_memory_mb", "epochs", "load_1min"]
    writer = csv.DictWriter(sys.stdout, columns, delimiter="\t", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_rounded(rows))
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        new = not args.results.exists()
        with args.results.open("a", newline="") as f:
            out = csv.DictWriter(f, columns, delimiter="\t", extrasaction="ignore")
            if new:
                out.writeheader()
            out.writerows(_rounded(rows))
    logging.info("total %.1f s", time.perf_counter() - started)
    return 0


def _rounded(rows):
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


if __name__ == "__main__":
    sys.exit(main())
