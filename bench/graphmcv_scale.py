"""graphMCV's wall time and peak memory against MAGIC's, measured in one process on the same input.

The input: ``--cells`` cells resampled with replacement from a real dataset (default
scdcc_cbmc_citeseq_top2000, 8,617 cells x 2,000 genes) with fresh Poisson noise on every resampled
cell (counts ~ Poisson(observed counts)), so that no two cells are copies. Each method runs once on it,
one after the other in the same process, after a warm-up on 500 cells (imports and first-call costs
are left out). ``--methods graphmcv`` alone for the 100,000-cell completion run.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graphmcv_scale.py --cells 10000 --out bench/results/graphmcv_scale_10k.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graphmcv_scale.py --cells 10000 --repeats 3 \\
        --out bench/results/graphmcv_scale_10k_repeats.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graphmcv_scale.py --cells 100000 --methods graphmcv \\
        --out bench/results/graphmcv_scale_100k.json

Writes a JSON record: machine, load, threads, and per method wall time (s), peak RSS (MB; sampled by
graphimpute.monitor.PeakMemory, so numpy and scipy are included) and graphMCV's epochs. With
``--repeats R`` the methods run R times, alternating (MAGIC, graphMCV, MAGIC, ...), so that both see
the same spells of machine load; the record then holds every run's wall time, each method's median
(``wall_time_s``, with the other fields from its median run) and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from graphimpute import methods
from graphimpute.methods import RunContext
from graphimpute.monitor import PeakMemory

REPO = Path(__file__).resolve().parents[1]


def resample(source: ad.AnnData, n_cells: int, seed: int) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(source.X, dtype=np.float32)
    picked = rng.integers(0, x.shape[0], n_cells)
    counts = x[picked]
    counts.data = rng.poisson(counts.data).astype(np.float32)
    counts.eliminate_zeros()
    out = ad.AnnData(X=counts)
    out.obs_names = [f"cell{i}" for i in range(n_cells)]
    out.var_names = list(source.var_names)
    return out


def run(name: str, adata: ad.AnnData, seed: int, overrides: dict | None = None) -> dict:
    method = methods.get(name)
    params = methods.resolve_params(method, overrides)
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        result = method.impute(adata, params, RunContext(seed=seed, device="cpu", progress=False))
        wall = time.perf_counter() - t0
    record = {"wall_time_s": round(wall, 2), "peak_rss_mb": round(memory.peak_mb, 1),
              "output_shape": list(result.imputed.shape), "output_finite": bool(np.isfinite(result.imputed).all())}
    if result.history:
        record.update(epochs=result.history["n_epochs"], best_epoch=result.history["best_epoch"])
    if "own_weight" in result.info:
        record["own_weight"] = result.info["own_weight"]
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scdcc_cbmc_citeseq_top2000.h5ad")
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--methods", default="magic,graphmcv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--param", action="append", default=[], help="graphmcv KEY=VALUE (repeatable; recorded)")
    parser.add_argument("--repeats", type=int, default=1, help="run the methods this many times, alternating")
    args = parser.parse_args(argv)
    names = methods.parse_methods(args.methods)
    source = ad.read_h5ad(args.data)
    adata = resample(source, args.cells, args.seed)
    warm = resample(source, 500, args.seed + 1)
    for name in names:  # imports and first-call costs out of the timing
        methods.get(name).impute(warm, methods.resolve_params(methods.get(name), {"max_epochs": 1} if name == "graphmcv" else {}),
                                 RunContext(seed=args.seed, device="cpu", progress=False))
    record = {"data": args.data.name, "cells": args.cells, "genes": adata.n_vars, "nnz": int(adata.X.nnz),
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "date": time.strftime("%Y-%m-%d %H:%M"),
              "load_before": os.getloadavg(), "methods": {}}
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            overrides = dict(p.split("=", 1) for p in args.param) if name == "graphmcv" else {}
            runs[name].append(run(name, adata, args.seed, overrides))
            if overrides:
                runs[name][-1]["params"] = overrides
            print(name, runs[name][-1], flush=True)
    for name in names:
        ordered = sorted(runs[name], key=lambda r: r["wall_time_s"])
        record["methods"][name] = dict(ordered[(len(ordered) - 1) // 2])  # the median (lower middle) run
        if args.repeats > 1:
            record["methods"][name]["wall_times_s"] = [r["wall_time_s"] for r in runs[name]]
    record["load_after"] = os.getloadavg()
    if "magic" in record["methods"] and "graphmcv" in record["methods"]:
        record["graphmcv_over_magic"] = round(record["methods"]["graphmcv"]["wall_time_s"]
                                              / record["methods"]["magic"]["wall_time_s"], 2)
        if args.repeats > 1:  # each pair of runs back to back
            record["graphmcv_over_magic_per_repeat"] = [round(g["wall_time_s"] / m["wall_time_s"], 2)
                                                        for m, g in zip(runs["magic"], runs["graphmcv"])]
    text = json.dumps(record, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
