"""CPU time (one thread) of cnnImpute's phases on one dataset, measured apart so that machine load
does not count: clustering (PCA + t-SNE, density peaks, k-means), EM, and one training step of the
paper's network (batch 32), from which training time = steps x step time.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/cnnimpute_phases.py DATA.h5ad [--n-top-genes 2000]
"""

from __future__ import annotations

import argparse
import json
import time

import anndata as ad
import numpy as np
import torch

from bench.cnnimpute_timing import top_genes
from graphimpute.methods import get, resolve_params
from graphimpute.methods._impl.cnnimpute import (CnnImputeNet, cluster_cells, cluster_dropout, density_peak_centres,
                                           masked_mse)


def cpu(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--n-top-genes", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    adata = top_genes(ad.read_h5ad(args.data), args.n_top_genes)
    counts = adata.X.toarray().astype(np.float32)
    lognorm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e6)
    params = resolve_params(get("cnnimpute"))
    (labels, info), clus_cpu, clus_wall = cpu(lambda: cluster_cells(lognorm, params=params, seed=0))
    _, em_cpu, em_wall = cpu(lambda: [cluster_dropout(counts[labels == c]) for c in range(labels.max() + 1)])
    model = CnnImputeNet(n_inputs=2560, n_targets=512)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    batch = (torch.rand(32, 2560), torch.rand(32, 512), torch.ones(32, 512))

    def steps(n=20):
        for _ in range(n):
            loss = masked_mse(model, batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    steps(2)
    _, step_cpu, step_wall = cpu(steps)
    print(json.dumps({"shape": list(adata.shape), "clusters": info, "clustering_cpu_s": clus_cpu,
                      "clustering_wall_s": clus_wall, "em_cpu_s": em_cpu, "em_wall_s": em_wall,
                      "train_step_cpu_s": step_cpu / 20, "train_step_wall_s": step_wall / 20}, indent=1))


if __name__ == "__main__":
    main()
