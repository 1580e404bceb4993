"""Where a trained method's time and memory went, from the provenance of its impute output.

    python bench/training_summary.py bench/_scratch/pbmc3k_gnn/impute/pbmc3k_seurat.gnnimpute.h5ad

Prints one TSV row per file: epochs run and best, median seconds per epoch, training and step wall
time, peak memory, the method's own memory estimate (scgnn, gnnimpute), and the time the paper's full
schedule would take at the measured pace (max_epochs x median epoch time), for runs cut short.
"""

from __future__ import annotations

import argparse
import csv
import sys

import anndata
import numpy as np

from graphimpute import methods
from graphimpute.methods._impl import gnnimpute, scgnn


def summary(path: str) -> dict:
    adata = anndata.read_h5ad(path, backed="r")
    prov = adata.uns["graphimpute"]["impute"]
    history, params, info = prov["history"], prov["params"], prov.get("info", {})
    epoch_s = np.asarray(history["epochs"]["time_s"], dtype=float)
    name = str(prov["method"])
    n_edges = int(info.get("graph", {}).get("n_edges", 0)) if isinstance(info.get("graph"), dict) else 0
    if name == "gnnimpute":
        estimate = gnnimpute.estimate_memory_gb(adata.n_obs, adata.n_vars, n_edges, hidden_dim=int(params["hidden_dim"]),
                                                latent_dim=int(params["latent_dim"]), heads=int(params["heads"]))
    elif name == "scgnn":
        estimate = scgnn.estimate_memory_gb(adata.n_obs, adata.n_vars, int(info["genes_imputed"]),
                                            int(info["hidden_dim"]), n_edges)
    else:
        estimate = float("nan")
    paper_epochs = int(methods.get(name).defaults.get("max_epochs", 0))
    return {
        "file": path, "method": name, "cells": adata.n_obs, "genes": adata.n_vars,
        "epochs": int(history["n_epochs"]), "best_epoch": int(history["best_epoch"]),
        "stopped_early": bool(history["stopped_early"]), "median_epoch_s": round(float(np.median(epoch_s)), 4),
        "train_s": round(float(history["wall_time_s"]), 1), "step_s": round(float(prov["wall_time_s"]), 1),
        "peak_mb": round(float(prov["peak_memory_mb"]), 0), "estimate_gb": round(estimate, 3),
        "paper_schedule_min": round(paper_epochs * float(np.median(epoch_s)) / 60, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    rows = [summary(f) for f in parser.parse_args(argv).files]
    writer = csv.DictWriter(sys.stdout, list(rows[0]), delimiter="\t")
    writer.writeheader()
    writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
