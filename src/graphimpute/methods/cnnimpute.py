"""cnnImpute (Zhang et al., Sci. Rep. 2024): a 1D CNN per (cell cluster, block of 512 target genes)
predicts the entries judged missing from the target genes' most correlated genes.

Steps (paper "Methods"; details the paper leaves open follow the official code, see docs/methods.md):
1. CPM (library to 10^6) and log(x + 1): the network's scale.
2. Cell clusters: PCA 50 -> t-SNE to 3 dimensions (Rtsne's settings) -> adaptive density-peak
   clustering (ADPclust's automatic mode: bandwidth, density cut and 2..10 centres chosen by mean
   silhouette) -> k-means started at the chosen centres.
3. Per cluster, dropout probability of every entry from scImpute's gamma-normal mixture on
   log10(CPM + 1.01) (``_cnnimpute_dropout``); an entry is missing when its probability > 0.5 and its
   count is 0.
4. Per cluster, targets = genes with a missing entry, in blocks of 512; inputs = each target's 5 most
   Pearson-correlated genes outside the block that are missing in at most 50% of the cluster's cells,
   duplicates removed, zero-padded to 2,560; padded targets are masked.
5. Conv1D(16,3)-ReLU-maxpool-BatchNorm x 2, dropout 0.3, Dense 1024 ReLU, Dense 512 (ReLU, as the
   official code); MSE over observed targets; Adam 1e-4, batch 32, <= 150 epochs, early stop after 5
   epochs without validation improvement; 90/10 cell split; one model per (cluster, block). On a
   cluster above ``epoch_cells`` (4,096) cells an epoch is that many cells drawn afresh (not the paper,
   docs/methods.md): an epoch of 30,000 cells would make patience ~4,700 updates.
6. Missing entries get the prediction, back to counts: expm1(pred) x library / 10^6. Every other entry
   keeps its observed count.

Reads ``adata.X`` only; needs no graph. Returns a dense float32 cells x genes count matrix.

This module is the registry entry (defaults, their ranges, what the method needs); its code,
``methods/_impl/cnnimpute.py``, is imported only when the method runs (it needs torch), so that
listing methods and checking parameters stay cheap.
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, FRACTION, POSITIVE, RATE, UNIT, Method, Range, implemented_in


METHOD = Method(
    name="cnnimpute",
    impute=implemented_in("cnnimpute"),
    summary="dropout probability (gamma-normal EM per cell cluster) + 1D CNN per block of 512 genes",
    citation="Zhang W, Huckaby B, Talburt J, Weissman S, Yang MQ. cnnImpute: missing value recovery for "
             "single cell RNA sequencing data. Sci Rep 14, 3946 (2024). doi:10.1038/s41598-024-53998-x",
    defaults={
        # cell clusters (Rtsne dims = 3 and its defaults; ADPclust's automatic mode)
        "tsne_dims": 3, "tsne_perplexity": 30.0, "tsne_max_iter": 1000, "tsne_n_pcs": 50,
        "adp_min_clusters": 2, "adp_max_clusters": 10, "adp_f_cuts": (0.1, 0.2, 0.3), "adp_n_bandwidths": 10,
        # dropout probability (scImpute's EM)
        "em_max_iter": 100, "em_tol": 0.5, "dropout_threshold": 0.5,
        # targets and inputs
        "n_targets": 512, "n_inputs_per_target": 5, "input_gene_threshold": 0.5,
        "keep_duplicate_inputs": False,  # True: the official code's repeated inputs
        "trim_padding": False,  # True: no zero padding to 2,560 (not the paper; ~4x faster training on CPU)
        # network and training
        "filters": 16, "kernel_size": 3, "hidden": 1024, "dropout": 0.3,
        "lr": 1e-4, "batch_size": 32, "max_epochs": 150, "patience": 5, "val_fraction": 0.1,
        "epoch_cells": 4096,  # a larger cluster's epoch is this many of its cells, drawn afresh (0: all, the paper)
        "max_memory_gb": 16.0,  # GiB: refuse before any work above this estimate (this project)
    },
    ranges={
        "tsne_dims": COUNT, "tsne_perplexity": POSITIVE, "tsne_max_iter": Range(250),  # sklearn's minimum
        "tsne_n_pcs": COUNT, "adp_min_clusters": Range(2), "adp_max_clusters": Range(2), "adp_f_cuts": FRACTION,
        "adp_n_bandwidths": COUNT, "em_max_iter": COUNT, "em_tol": POSITIVE, "dropout_threshold": FRACTION,
        "n_targets": COUNT, "n_inputs_per_target": COUNT, "input_gene_threshold": UNIT, "filters": COUNT,
        "kernel_size": COUNT, "hidden": COUNT, "dropout": RATE, "lr": POSITIVE, "batch_size": COUNT,
        "max_epochs": COUNT, "patience": COUNT, "val_fraction": FRACTION, "epoch_cells": Range(0),
        "max_memory_gb": POSITIVE,
    },
    trains=True,
)
