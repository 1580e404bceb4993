"""CPU cost of one training epoch of a method, measured so that machine load does not distort it.

On a shared machine wall time depends on how many other processes run; the CPU time a process uses
for the same work does not (much). After a one-epoch warm-up, this runs the method twice on a graph-step
output, with ``--short`` and ``--long`` epochs (early stopping off), and reports the CPU seconds and wall seconds per extra
epoch, the peak memory, and what the paper's full schedule costs at that rate:

    OMP_WAIT_POLICY=PASSIVE python bench/epoch_cost.py \
        bench/_scratch/pbmc3k_gnn/graph/pbmc3k_seurat.h5ad --method gnnimpute --short 3 --long 13

On an otherwise idle 2-core machine a run's wall time lies between CPU time / 2 (both cores busy)
and CPU time (one core).
"""

from __future__ import annotations

import argparse
import os
import time

import anndata
import numpy as np

from graphimpute import methods, runner
from graphimpute.methods import RunContext
from graphimpute.monitor import PeakMemory


def timed(adata, name: str, epochs: int, seed: int) -> tuple[float, float, float]:
    method = methods.get(name)
    params = methods.resolve_params(method, {"max_epochs": epochs, "patience": epochs + 1})
    cpu, wall = time.process_time(), time.perf_counter()
    with PeakMemory() as memory:
        result = method.impute(adata, params, RunContext(seed=seed, progress=False))
    assert result.history["n_epochs"] == epochs
    return time.process_time() - cpu, time.perf_counter() - wall, memory.peak_mb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("graph_h5ad", help="A graph-step output (has the method's graph, or it is built).")
    parser.add_argument("--method", required=True)
    parser.add_argument("--short", type=int, default=3)
    parser.add_argument("--long", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="Also print torch's per-operator table of one "
                        "--short run (CPU time by operator: where an epoch's time goes).")
    args = parser.parse_args(argv)

    adata = anndata.read_h5ad(args.graph_h5ad)
    for spec in methods.get(args.method).graphs:
        if spec.key not in adata.obsp:
            runner.build_graph(adata, spec, seed=args.seed)
    load_before = os.getloadavg()[0]
    timed(adata, args.method, 1, args.seed)  # warm-up: lazy imports and first-call costs stay out of both runs
    cpu_short, wall_short, _ = timed(adata, args.method, args.short, args.seed)
    cpu_long, wall_long, peak = timed(adata, args.method, args.long, args.seed)
    extra = args.long - args.short
    cpu_epoch, wall_epoch = (cpu_long - cpu_short) / extra, (wall_long - wall_short) / extra
    paper_epochs = int(methods.get(args.method).defaults["max_epochs"])
    if args.profile:
        import torch

        with torch.profiler.profile() as prof:
            timed(adata, args.method, args.short, args.seed)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print("\t".join(["method", "cells", "genes", "cpu_s_per_epoch", "wall_s_per_epoch", "setup_cpu_s", "peak_mb",
                     "paper_max_epochs", "paper_schedule_cpu_min", "load_1min_before", "load_1min_after"]))
    print("\t".join(map(str, [args.method, adata.n_obs, adata.n_vars, round(cpu_epoch, 3), round(wall_epoch, 3),
                              round(cpu_short - args.short * cpu_epoch, 1), round(peak), paper_epochs,
                              round(paper_epochs * cpu_epoch / 60, 1), round(load_before, 1),
                              round(os.getloadavg()[0], 1)])))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
