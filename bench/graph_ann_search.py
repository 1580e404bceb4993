"""pynndescent's recall and time against how many neighbours it searches, for the GRAPH step's three k.

On a normalised h5ad (``bench/graph_scale.py``'s ``norm_<cells>.h5ad``): the sparse PCA (50), the exact
31 nearest neighbours of every cell (sklearn), then pynndescent (seed 0, one thread, after a warm-up)
for k = 5 (knn_average), 15 (the shared graph), 30 (scVGAE's fallback), searching k+1, 2(k+1) and
max(k+1, 30) neighbours and keeping the k+1 nearest. Recall: share of the exact k neighbours found.
One JSON line per (k, search) on stdout; chose graphs.ANN_OVERSEARCH / ANN_MAX_SEARCH.

    PYTHONPATH=src OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python bench/graph_ann_search.py /tmp/graph_scale/norm_100000.h5ad \\
        > bench/results/graph_ann_search_100k.jsonl
"""

from __future__ import annotations

import json
import sys
import time

import anndata as ad
import numpy as np
from pynndescent import NNDescent

from graphimpute import graphs


def main(path: str) -> int:
    a = ad.read_h5ad(path)
    graphs.pca(a, n_comps=50, sparse=True)
    pcs = np.ascontiguousarray(a.obsm["X_pca"], dtype=np.float32)
    t0 = time.perf_counter()
    exact = graphs.neighbours(pcs, 31, algorithm="exact")
    print(json.dumps({"cells": a.n_obs, "exact_31_s": round(time.perf_counter() - t0, 2)}), flush=True)
    NNDescent(pcs[:3000], n_neighbors=16, random_state=0, n_jobs=1)  # numba compiles here

    def recall(idx, k):
        return float(np.mean([len(set(r[r != i][:k]) & set(e[e != i][:k])) / k
                              for i, (r, e) in enumerate(zip(idx, exact))]))

    for k in (5, 15, 30):
        for search in sorted({k + 1, 2 * (k + 1), max(k + 1, 30)}):
            t0 = time.perf_counter()
            idx = NNDescent(pcs, n_neighbors=search, random_state=0, n_jobs=1, low_memory=True).neighbor_graph[0][:, :k + 1]
            wall = time.perf_counter() - t0
            print(json.dumps({"k": k, "search": search, "s": round(wall, 2), "recall": round(recall(idx, k), 4)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
