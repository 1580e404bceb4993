"""The shrinkage floor towards the neighbour average: each cell's own observed profile blended with its
``knn_average`` profile (the PCA 5-NN graph of the cell-graph methods), x̂_i = L_i ((1 - a) q_i + a x_i / L_i),
with one weight a for the dataset.

Why it is here: the neighbour average knows the cell's neighbourhood, the own profile knows the cell;
their best fixed blend is what a graph method has to beat to show that it learned more than a
neighbour average and a shrinkage of the cell's counts (issue 26; ``shrink_gene_mean`` is the same
blend towards the cell-agnostic profile). On counts with no overdispersion, where neighbours of the
same type share the cell's rate exactly, the chosen weight goes to 0 (tests/test_judge.py).

The weight a is chosen on the input alone: ``validation_fraction`` of every count's molecules is held
back (Binomial thinning, the method's own random stream), the neighbour profiles q come from the rest
on the same graph, and a is the value of a 21-point grid on [0, 1] that minimises the Poisson loss of
the held-back molecules (methods/_shrinkage.py). The output uses q and the profiles of all counts.

Reads ``adata.X`` (raw integer counts) and ``adata.obsp['knn5']``; writes nothing to ``adata``.
Provenance: ``own_weight`` and the loss at every grid value.
"""

from __future__ import annotations

from graphimpute.methods._base import FRACTION, ImputeResult, Method
from graphimpute.methods._baseline import neighbour_average, row_profiles
from graphimpute.methods._common import cell_graph
from graphimpute.methods._shrinkage import FLOOR_DEFAULTS, shrinkage
from graphimpute.methods.knn_average import PCA_KNN5

NAME = "shrink_knn"


def impute(adata, params, ctx) -> ImputeResult:
    graph = cell_graph(adata, PCA_KNN5, NAME)
    imputed, info = shrinkage(NAME, adata, lambda counts: row_profiles(neighbour_average(counts, graph)[0]),
                              params, ctx)
    return ImputeResult(imputed=imputed, info={"graph": PCA_KNN5.key, **info})


METHOD = Method(
    name=NAME,
    impute=impute,
    summary="each cell's own profile shrunk towards its neighbour average (PCA 5-NN), the weight chosen on a "
            "molecular split of the input (the floor for graph methods)",
    citation="-",
    defaults=FLOOR_DEFAULTS,
    ranges={key: FRACTION for key in FLOOR_DEFAULTS},
    graphs=(PCA_KNN5,),
    kind="baseline",
)
