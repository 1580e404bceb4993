"""Wall time and peak memory of GraphSCI (paper defaults) on a real dataset.

    PYTHONPATH=src python bench/graphsci_speed.py DATA.h5ad [--n-top-genes 2000] [--epochs 100]
        [--threads N] [--param key=value ...] [--history OUT.json]

Cells are kept as they are; the pipeline's normalise step (size factors over all genes, the
--n-top-genes most variable genes) and graph step (gene Pearson graph) run first and are not timed.
Prints one JSON line: shape, wall time, resident memory before and at peak, the memory estimate,
per-epoch time, final loss terms, and the machine load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import anndata as ad
import numpy as np
import scanpy as sc
import torch

from graphimpute import graphs, methods, monitor, normalise
from graphimpute.methods import RunContext
from graphimpute.methods._impl import graphsci
from graphimpute.monitor import PeakMemory


def prepared(path: str, n_top_genes: int) -> ad.AnnData:
    """The normalise and graph steps of the pipeline (no QC: every cell is kept)."""
    adata = ad.read_h5ad(path)
    sc.pp.filter_genes(adata, min_cells=1)
    adata = normalise.normalise(adata, n_top_genes=n_top_genes)
    spec = graphsci.GRAPH
    graphs.build(adata, spec.kind, spec.key, dict(spec.params))
    return adata


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history", help="write the training history (JSON) here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    adata = prepared(args.data, args.n_top_genes)
    overrides = dict(p.split("=", 1) for p in args.param)
    if args.epochs is not None:
        overrides["max_epochs"] = str(args.epochs)
    method = methods.get("graphsci")
    params = methods.resolve_params(method, overrides)
    load_before = os.getloadavg()
    rss_before = monitor.rss_mb()
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        result = method.impute(adata, params, RunContext(seed=args.seed, device="cpu", progress=False))
        wall = time.perf_counter() - t0
    epochs = result.history["epochs"]
    if args.history:
        with open(args.history, "w") as f:
            json.dump(result.history, f)
    print(json.dumps({
        "data": os.path.basename(args.data), "cells": adata.n_obs, "genes": adata.n_vars,
        "params": {k: v for k, v in params.items() if k in overrides},
        "torch_threads": torch.get_num_threads(), "wall_s": round(wall, 1),
        "train_s": round(result.history["wall_time_s"], 1),
        "median_epoch_s": round(float(np.median([e["time_s"] for e in epochs[1:] or epochs])), 3),
        "rss_before_mb": round(rss_before), "peak_rss_mb": round(memory.peak_mb),
        "estimate_mb": round(result.info["memory_estimate_gb"] * 1024, 1),
        "final": {k: round(v, 4) for k, v in epochs[-1].items() if k.startswith("train_")},
        "learned_graph": result.info["learned_graph"], "gene_graph_edges": result.info["gene_graph_edges"],
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
