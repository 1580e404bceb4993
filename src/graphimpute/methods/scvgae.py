"""scVGAE: ZINB graph autoencoder on a cell graph (Inoue, papers/scvgae.txt; equation numbers below).

Working scale: genes non-zero in more than 5% of the cells and cells non-zero in more than 5% of the
genes are kept (both counted on the input); each kept cell is library-normalised to 1e4 over the kept
genes and square-rooted (eq. 1). Model (eqs. 3-5): a GCN encoder with GraphNorm, three GCN heads for
the ZINB mean, dropout and dispersion, a two-layer decoder of the mean, and the output
x̂ = decoder(M) + BatchNorm_genes(X) + BatchNorm_cells(Xᵀ)ᵀ. Loss α·MSE(x̂, X) + (1-α)·ZINB(X; M, Θ, Π).

Output (the paper's imputed matrix is x̂): expected counts max(x̂, 0)² · library / 1e4 for the kept
cells and genes, the exact inverse of eq. 1; every other entry is the observed count.

Graph: ``adata.obsp['scvgae_percentile']`` from the GRAPH step — the 85th-percentile linear-kernel
graph (eq. 2) on the same filtered, sqrt-normalised matrix, or, above graphs.PERCENTILE_MAX_CELLS
cells, the kNN fallback (k=30 on 50 PCs, symmetrised) recorded in ``uns['graphimpute']['graph']``.

This module is the registry entry (defaults, their ranges, what the method needs); its code,
``methods/_impl/scvgae.py``, is imported only when the method runs (it needs torch), so that
listing methods and checking parameters stay cheap.
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, NON_NEGATIVE, POSITIVE, RATE, UNIT, GraphSpec, Method, implemented_in


GRAPH_KEY = "scvgae_percentile"


DEFAULTS = {
    "min_gene_fraction": 0.05,  # keep genes non-zero in more than 5% of cells
    "min_cell_fraction": 0.05,  # keep cells non-zero in more than 5% of genes
    "target_sum": 1e4,  # eq. 1 library size
    "hidden": 128,
    "decoder_hidden": 1024,
    "encoder_dropout": 0.2,
    "decoder_dropout": 0.4,
    "alpha": 0.05,  # weight of the MSE; 1 - alpha on the ZINB NLL
    "lr": 5e-4,  # paper (official code: 1e-4)
    "max_epochs": 100,
    "logit_clamp": 15.0,  # mean and dispersion logits clamped before exp (official code)
    "variational": False,  # equations are deterministic; the title says variational
    "kl_weight": 1e-4,
    "logvar_clamp": 10.0,
    "max_memory_gb": 8.0,  # GiB: refuse before training above this estimate
    # above this many cells (after the detection filters) training runs in steps of step_cells random
    # cells, max_epochs counted in optimiser steps (this project's; the paper trains the full matrix)
    "full_batch_max_cells": 10_000,
    "step_cells": 4096,
}


RANGES = {
    "min_gene_fraction": RATE, "min_cell_fraction": RATE, "target_sum": POSITIVE, "hidden": COUNT,
    "decoder_hidden": COUNT, "encoder_dropout": RATE, "decoder_dropout": RATE, "alpha": UNIT, "lr": POSITIVE,
    "max_epochs": COUNT, "logit_clamp": POSITIVE, "kl_weight": NON_NEGATIVE, "logvar_clamp": POSITIVE,
    "max_memory_gb": POSITIVE, "full_batch_max_cells": COUNT, "step_cells": COUNT,
}


METHOD = Method(
    name="scvgae",
    impute=implemented_in("scvgae"),
    summary="ZINB graph autoencoder on a linear-kernel cell graph (GCN encoder, ZINB heads, BatchNorm skip)",
    citation="Inoue Y. scVGAE: A Novel Approach using ZINB-Based Variational Graph Autoencoder for "
             "Single-Cell RNA-Seq Imputation (2024); code: github.com/inoue0426/scVGAE",
    defaults=DEFAULTS,
    ranges=RANGES,
    graphs=(GraphSpec(key=GRAPH_KEY, kind="percentile", params={
        "percentile": 85.0, "target_sum": DEFAULTS["target_sum"],
        "min_gene_fraction": DEFAULTS["min_gene_fraction"], "min_cell_fraction": DEFAULTS["min_cell_fraction"],
        "fallback": {"kind": "knn", "n_neighbors": 30, "n_pcs": 50, "symmetrise": True}}),),
    trains=True,
)
