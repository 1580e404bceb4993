"""Wall time, CPU time and peak memory of cnnImpute at the paper's defaults on one dataset, with the
time split into clustering (t-SNE + density peaks + k-means), EM and training.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/cnnimpute_timing.py DATA.h5ad --out RESULT.json \
        [--n-top-genes 2000] [--param key=value ...]

Genes: the ``--n-top-genes`` most variable (scanpy 'seurat' flavour on log1p of counts scaled to the
median library, as the normalise step), or all genes when the file has no more than that.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc

from graphimpute.methods import RunContext, get, resolve_params
from graphimpute.monitor import PeakMemory


def top_genes(adata: ad.AnnData, n_top: int) -> ad.AnnData:
    if adata.n_vars <= n_top:
        return adata
    tmp = adata.copy()
    sc.pp.normalize_total(tmp)
    sc.pp.log1p(tmp)
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top, flavor="seurat")
    return adata[:, tmp.var["highly_variable"].to_numpy()].copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[], help="key=value override")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    adata = top_genes(ad.read_h5ad(args.data), args.n_top_genes)
    method = get("cnnimpute")
    params = resolve_params(method, dict(p.split("=", 1) for p in args.param))
    load_before = os.getloadavg()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with PeakMemory() as memory:
        result = method.impute(adata, params, RunContext(seed=args.seed, progress=False))
    record = {
        "data": args.data, "shape": list(adata.shape), "params": {k: v for k, v in params.items()},
        "wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0,
        "peak_rss_mb": memory.peak_mb, "timing": result.info["timing"],
        "load_before": load_before, "load_after": os.getloadavg(),
        "threads": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count()},
        "clusters": result.info["clusters"], "n_missing": result.info["n_missing"],
        "missing_fraction": result.info["missing_fraction"], "models": result.info["models"],
        "skipped_clusters": result.info["skipped_clusters"],
        "epochs_total": int(sum(m["n_epochs"] for m in result.info["models"])),
        "output_finite_nonneg": bool(np.isfinite(result.imputed).all() and (result.imputed >= 0).all()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1, default=str))
    print(json.dumps({k: record[k] for k in ("wall_s", "cpu_s", "peak_rss_mb", "timing", "epochs_total")}, default=str))


if __name__ == "__main__":
    main()
