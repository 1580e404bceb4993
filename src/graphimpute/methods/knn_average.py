"""The neighbour average: each cell's expression as the mean of its nearest cells' on a PCA-kNN
graph of the recipe the cell-graph methods use (scgnn, gnnimpute: PCA 50, k = 5, symmetrised; they
build theirs from their own masked input, this one comes from the graph step).

Why it is here: a graph neural network that imputes from a cell graph has to beat plain averaging
over that same graph to be worth its training time. This is that bar, as a baseline in every benchmark.

Each neighbour's counts are divided by its size factor (library / median library) before averaging, so
that deep cells do not dominate; the cell itself is left out (its masked zeros would pull the average
down). The average is then rescaled to the cell's own library (the baselines' shared policy,
methods/_baseline.py). A cell with no neighbour keeps its counts.

Reads ``adata.X`` (raw counts) and ``adata.obsp['knn5']``; writes nothing to ``adata``.
"""

from __future__ import annotations

import numpy as np

from graphimpute.methods._base import GraphSpec, ImputeResult, Method
from graphimpute.methods._baseline import dense_counts, neighbour_average, output_scale_info, to_input_library
from graphimpute.methods._common import cell_graph

# the cell-graph papers' recipe (SCGNN §2, GNNImpute's "Build connection graph"): PCA (50) -> Euclidean
# kNN, K = 5, both directions
PCA_KNN5 = GraphSpec(key="knn5", kind="knn", params={"n_neighbors": 5, "n_pcs": 50, "symmetrise": True})


def impute(adata, params, ctx) -> ImputeResult:
    counts = dense_counts(adata)
    library = counts.sum(axis=1)
    expected, degree = neighbour_average(counts, cell_graph(adata, PCA_KNN5, "knn_average"))
    return ImputeResult(imputed=to_input_library(expected, library),
                        info={"graph": PCA_KNN5.key, "median_neighbours": float(np.median(degree)),
                              "cells_without_neighbours": int((degree == 0).sum()),
                              **output_scale_info(expected, library)})


METHOD = Method(
    name="knn_average",
    impute=impute,
    summary="mean of each cell's nearest cells on the PCA 5-NN graph (the bar for the cell-graph GNNs)",
    citation="-",
    graphs=(PCA_KNN5,),
    kind="baseline",
)
