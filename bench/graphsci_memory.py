"""Memory growth of GraphSCI against its estimate, on synthetic counts (checks the genes x genes term).

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graphsci_memory.py CELLS GENES DENSE_ADJACENCY_MAX_GENES

Poisson counts, a random symmetric gene graph of density 0.5%, 3 epochs. Prints one JSON line: the
adjacency loss used (dense or sampled), the growth of resident memory during imputation, the estimate,
and the epoch times.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from graphimpute import methods, monitor
from graphimpute.methods import RunContext
from graphimpute.monitor import PeakMemory


def main() -> None:
    n, g, dense_max = (int(v) for v in sys.argv[1:4])
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.lognormal(0, 1, (n, g)) * 0.5).astype(np.float32)
    adata = AnnData(X=sp.csr_matrix(counts))
    graph = sp.random(g, g, density=0.005, random_state=0, format="csr")
    graph = ((graph + graph.T) > 0).astype(np.float32)
    graph.setdiag(0)
    graph.eliminate_zeros()
    adata.varp["gene_pearson"] = graph
    method = methods.get("graphsci")
    params = methods.resolve_params(method, {"max_epochs": 3, "dense_adjacency_max_genes": dense_max})
    before = monitor.rss_mb()
    with PeakMemory(interval=0.01) as memory:
        result = method.impute(adata, params, RunContext(progress=False, device="cpu"))
    print(json.dumps({"cells": n, "genes": g, "adjacency_loss": result.info["adjacency_loss"],
                      "growth_mb": round(memory.peak_mb - before), "estimate_mb": round(result.info["memory_estimate_gb"] * 1024, 1),
                      "epoch_s": [round(e["time_s"], 1) for e in result.history["epochs"]]}))


if __name__ == "__main__":
    main()
