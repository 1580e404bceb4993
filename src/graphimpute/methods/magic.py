"""MAGIC (van Dijk et al., Cell 2018): diffusion of expression over a cell kNN affinity graph.

Runs the authors' library (``magic-impute``) with its defaults on the transform its authors recommend:
counts normalised to the median library, then square root. The smoothed values are squared back,
divided by the normalisation factor, and rescaled to each cell's input library (the baselines'
shared policy, methods/_baseline.py). The graph is MAGIC's own (built inside the library from PCA
of the input), so no graph step is needed. Writes nothing to ``adata``.
"""

from __future__ import annotations

import numpy as np

from graphimpute.methods._base import COUNT, NON_NEGATIVE, POSITIVE, ImputeResult, Method
from graphimpute.methods._baseline import dense_counts, output_scale_info, to_input_library


def impute(adata, params, ctx) -> ImputeResult:
    magic = METHOD.import_required("magic")
    counts = dense_counts(adata)
    library = counts.sum(axis=1)
    median = float(np.median(library[library > 0])) if np.any(library > 0) else 1.0
    to_median = np.divide(median, library, out=np.zeros_like(library), where=library > 0)
    sqrt_normalised = np.sqrt(counts * to_median[:, None])

    operator = magic.MAGIC(knn=params["knn"], knn_max=params["knn_max"] or None, decay=params["decay"],
                           t=params["t"], n_pca=params["n_pca"] or None, solver=params["solver"],
                           random_state=ctx.seed, n_jobs=1, verbose=0)
    smoothed = np.asarray(operator.fit_transform(sqrt_normalised), dtype=np.float64)

    back = np.square(np.clip(smoothed, 0.0, None))
    expected = np.divide(back, to_median[:, None], out=np.zeros_like(back), where=to_median[:, None] > 0)
    return ImputeResult(imputed=to_input_library(expected, library),
                        info={"transform": "sqrt(counts / library * median library)", "median_library": median,
                              **output_scale_info(expected, library)})


METHOD = Method(
    name="magic",
    impute=impute,
    summary="MAGIC: diffusion over a cell kNN graph (magic-impute library), sqrt transform",
    citation="van Dijk D et al. Recovering gene interactions from single-cell data using data diffusion. "
             "Cell 174:716-729 (2018)",
    # magic-impute 3.0.0 defaults; knn_max 0 = the library's 3 x knn; n_pca 0 = no PCA.
    defaults={"knn": 5, "knn_max": 0, "decay": 1.0, "t": 3, "n_pca": 100, "solver": "exact"},
    ranges={"knn": COUNT, "knn_max": NON_NEGATIVE, "decay": POSITIVE, "t": COUNT, "n_pca": NON_NEGATIVE},
    kind="baseline",
    requires=("magic", "scprep", "graphtools"),
    install_hint="install the baseline extras: pip install --no-deps -r requirements-baselines.txt",
)
