"""How close the large-size GRAPH paths are to the exact ones, and what each costs, on the same file.

On a normalised h5ad (``bench/graph_scale.py``'s ``norm_<cells>.h5ad``), in one process, with one thread:

- PCA: the dense path (densify, ``sc.pp.scale(max_value=10)``, arpack) against the sparse one
  (``graphs.pca(sparse=True)``): wall time, |correlation| of each component, variance ratios, and the
  overlap of the exact 15-NN lists built on each (share of each cell's 15 neighbours found by both);
- kNN-15 on the dense path's 50 PCs: exact (sklearn) against pynndescent: wall time (pynndescent after a
  warm-up call, so numba's compilation is left out and reported apart), recall (share of the exact
  neighbours found, directed lists), the symmetrised graphs' edge Jaccard, and whether a second run with
  the same seed gives the same graph.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graph_ann.py /tmp/graph_scale/norm_10000.h5ad --out bench/results/graph_ann_10k.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graph_ann.py /tmp/graph_scale/norm_100000.h5ad --skip-pca --out ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from graphimpute import graphs


def lists(idx: np.ndarray) -> list[set]:
    return [set(row[row != i]) for i, row in enumerate(idx)]


def overlap(a: list[set], b: list[set]) -> float:
    return float(np.mean([len(x & y) / max(len(x), 1) for x, y in zip(a, b)]))


def sym(idx: np.ndarray) -> sp.csr_matrix:
    n = idx.shape[0]
    g = sp.csr_matrix((np.ones(idx.size, np.float32), (np.repeat(np.arange(n), idx.shape[1]), idx.ravel())), shape=(n, n))
    g.setdiag(0)
    g.eliminate_zeros()
    return (g.maximum(g.T) > 0).tocsr()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--n-pcs", type=int, default=50)
    parser.add_argument("--skip-pca", action="store_true", help="no dense-vs-sparse PCA comparison")
    parser.add_argument("--skip-exact", action="store_true", help="time pynndescent only")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    adata = ad.read_h5ad(args.path)
    out: dict = {"input": str(args.path), "cells": adata.n_obs, "genes": adata.n_vars, "k": args.k,
                 "n_pcs": args.n_pcs, "threads": os.environ.get("OMP_NUM_THREADS"), "load1": os.getloadavg()[0]}
    t0 = time.perf_counter()
    graphs.pca(adata, n_comps=args.n_pcs, sparse=False)
    out["pca_dense_s"] = round(time.perf_counter() - t0, 2)
    pcs = adata.obsm["X_pca"]
    k1 = args.k + 1
    exact = None
    if not args.skip_exact:
        t0 = time.perf_counter()
        exact = graphs.neighbours(pcs, k1, algorithm="exact")
        out["knn_exact_s"] = round(time.perf_counter() - t0, 2)
    if not args.skip_pca:
        sparse = adata.copy()
        t0 = time.perf_counter()
        graphs.pca(sparse, n_comps=args.n_pcs, sparse=True)
        out["pca_sparse_s"] = round(time.perf_counter() - t0, 2)
        spcs = sparse.obsm["X_pca"]
        corr = [abs(float(np.corrcoef(pcs[:, c], spcs[:, c])[0, 1])) for c in range(pcs.shape[1])]
        out["pca_component_abs_corr_first10"] = [round(c, 6) for c in corr[:10]]
        out["pca_component_abs_corr_min"] = round(min(corr), 6)
        out["pca_variance_ratio_max_rel_diff"] = float(np.max(np.abs(
            sparse.uns["pca"]["variance_ratio"] / adata.uns["pca"]["variance_ratio"] - 1)))
        out["pca_unclipped_genes"] = sparse.uns["graphimpute"]["graph"]["pca"]["unclipped_genes"]
        if exact is not None:
            sexact = graphs.neighbours(spcs, k1, algorithm="exact")
            out["knn_overlap_sparse_vs_dense_pca"] = round(overlap(lists(exact), lists(sexact)), 4)
    t0 = time.perf_counter()
    graphs.neighbours(pcs[:200].copy(), k1, algorithm="pynndescent")  # numba compiles (or loads its cache) here
    out["pynndescent_first_call_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    graphs.neighbours(pcs[:3000].copy(), k1, algorithm="pynndescent")  # code paths 200 cells do not reach
    out["pynndescent_second_call_3000_cells_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    ann = graphs.neighbours(pcs, k1, algorithm="pynndescent", seed=0)
    out["knn_pynndescent_s"] = round(time.perf_counter() - t0, 2)
    again = graphs.neighbours(pcs, k1, algorithm="pynndescent", seed=0)
    out["pynndescent_same_seed_identical"] = bool(np.array_equal(np.sort(ann, 1), np.sort(again, 1)))
    # compare across processes: the same seed in another run must give this digest again
    out["pynndescent_indices_sha1"] = hashlib.sha1(np.ascontiguousarray(np.sort(ann, 1), dtype=np.int64)).hexdigest()
    if exact is not None:
        out["recall"] = round(overlap(lists(exact), lists(ann)), 4)
        a, b = sym(exact), sym(ann)
        inter = a.multiply(b).nnz
        out["symmetrised_edge_jaccard"] = round(inter / (a.nnz + b.nnz - inter), 4)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
