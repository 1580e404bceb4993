"""ALRA (Linderman et al., Nat Commun 2022): zero-preserving low-rank approximation.

Runs the ``halra`` library's steps with the R implementation's defaults: log1p of counts per 10,000
(ALRA's ``normalize_data``), rank k from the spectral gap of a randomised SVD (100 values, gaps from the
80th on are noise, a gap 6 s.d. above that noise marks k; 2 power iterations), rank-k reconstruction
(10 power iterations), per-gene thresholding at the |0.1% quantile|, per-gene rescaling of the kept
values to the observed non-zeros' mean and s.d., and restoration of observed values the threshold
removed. The result is mapped back by expm1 x library / 10,000 and rescaled to each cell's input
library (the baselines' shared policy, methods/_baseline.py). All-zero genes and cells are left out of
the factorisation (halra and ALRA need it) and come back as 0. Writes nothing to ``adata``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import COUNT, NON_NEGATIVE, POSITIVE, RATE, ImputeResult, Method
from graphimpute.methods._baseline import dense_counts, output_scale_info, to_input_library

SCALE = 1e4  # ALRA's normalize_data: counts per 10,000, then natural log1p
NOISE_GAPS = 20  # R's choose_k: K = 100 singular values, noise from the 80th


def impute(adata, params, ctx) -> ImputeResult:
    halra = METHOD.import_required("halra")
    counts = dense_counts(adata)
    library = counts.sum(axis=1)
    cells, genes = library > 0, counts.sum(axis=0) > 0
    observed = sp.csr_matrix(counts[np.ix_(cells, genes)])
    lognorm = halra.log_normalize(observed, scale_factor=SCALE)

    rank, n_singular = params["rank"], min(params["n_singular_values"], min(lognorm.shape) - 1)
    if rank <= 0:
        if n_singular < NOISE_GAPS + 5:
            raise GraphImputeError(f"alra: {lognorm.shape[0]} cells x {lognorm.shape[1]} genes is too small to "
                                   "choose the rank from the spectral gap; give it with --param rank=K")
        try:
            rank = int(halra.choose_matrix_rank(lognorm, params["rank_power_iterations"], ctx.seed,
                                                n_comps=n_singular, thresh=params["rank_threshold_sd"],
                                                noise_start=n_singular - NOISE_GAPS, verbose=False))
        except ValueError:  # no gap stands out of the noise: the data carry no low-rank signal
            raise GraphImputeError("alra: no singular-value gap exceeds the noise threshold; "
                                   "give the rank with --param rank=K") from None
    imputed_log = halra.impute_matrix(lognorm, rank, params["power_iterations"], params["quantile_prob"],
                                      ctx.seed, verbose=False)

    expected = np.zeros_like(counts)
    expected[np.ix_(cells, genes)] = np.expm1(imputed_log.toarray()) * library[cells, None] / SCALE
    return ImputeResult(imputed=to_input_library(expected, library),
                        info={"rank": rank, "transform": "log1p(counts / library * 1e4)",
                              "genes_all_zero": int((~genes).sum()), "cells_all_zero": int((~cells).sum()),
                              **output_scale_info(expected, library)})


METHOD = Method(
    name="alra",
    impute=impute,
    summary="ALRA: adaptively thresholded low-rank approximation (halra library), log1p per 10k",
    citation="Linderman GC, Zhao J, Roulis M et al. Zero-preserving imputation of single-cell RNA-seq data. "
             "Nat Commun 13:192 (2022)",
    # the R implementation's defaults (alra(), choose_k()); rank 0 = choose it from the spectral gap
    defaults={"rank": 0, "n_singular_values": 100, "rank_threshold_sd": 6.0, "rank_power_iterations": 2,
              "power_iterations": 10, "quantile_prob": 0.001},
    ranges={"rank": NON_NEGATIVE, "n_singular_values": COUNT, "rank_threshold_sd": POSITIVE,
            "rank_power_iterations": NON_NEGATIVE, "power_iterations": NON_NEGATIVE, "quantile_prob": RATE},
    kind="baseline",
    requires=("halra",),
    install_hint="install the baseline extras: pip install --no-deps -r requirements-baselines.txt",
)
