"""GNNImpute (Xu et al. 2021, BMC Bioinformatics 22:582; papers/gnnimpute.txt): a graph attention
autoencoder on a PCA-kNN cell graph.

Steps ("Data preprocessing", "Build connection graph", "Architecture and training"):
1. scale each cell to the median library, log1p (the network's scale). The paper's cell and gene
   filters (< 200 genes, < 3 cells, high mitochondrial share, very high counts) are the pipeline's QC
   step, which runs before every method: they are not repeated here;
2. hide 10% of each gene's non-zeros from the input; the target is the unmasked matrix; the cell graph
   is PCA (50) → Euclidean 5-NN of this masked input, symmetrised (the paper builds it from the
   preprocessed data; the official code from the masked matrix), so it never sees the hidden entries;
3. encoder GAT(G → 512, 3 heads averaged, attention dropout 0.6), BatchNorm, ReLU, dropout 0.5;
   GAT(512 → 50, 3 heads averaged), BatchNorm, ReLU, dropout 0.5; decoder Linear(50 → 512),
   BatchNorm, ReLU, Linear(512 → G), ReLU. GATConv adds self-loops; attention is computed on the
   edges of the 5-NN graph only (PyG ``edge_index``), never as a cells x cells matrix;
4. MSE over the training cells (60/20/20 split; the 20% "test" cells only take part as graph
   neighbours), Adam, early stop after 200 epochs without validation improvement, best weights back;
5. the full reconstruction of the unmasked input in eval mode, expm1, scaled back to each cell's library.

Reads ``adata.X`` (raw counts) only (the cell graph is the method's own); writes nothing to ``adata``.
Shapes: counts N x G → imputed N x G (float32, the input's count scale).

This module is the registry entry (defaults, their ranges, what the method needs); its code,
``methods/_impl/gnnimpute.py``, is imported only when the method runs (it needs torch), so that
listing methods and checking parameters stay cheap.
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, RATE, Method, implemented_in


DEFAULTS = {
    "hidden_dim": 512,
    "latent_dim": 50,
    "heads": 3,
    "attention_dropout": 0.6,
    "dropout": 0.5,
    "mask_fraction": 0.1,  # of each gene's non-zeros, hidden from the input
    "train_fraction": 0.6,
    "val_fraction": 0.2,
    # the official code's value; the paper's 1e-4 scored worse on MCV Poisson and took 2-10x longer
    # (bench/results/gnnimpute_lr.md; docs/methods.md)
    "lr": 1e-3,
    "weight_decay": 5e-4,
    # full-graph epochs, i.e. optimiser steps; in mini-batch (above full_batch_max_cells) max_epochs
    # and patience count optimiser steps (train.schedule_in_steps)
    "max_epochs": 3000,
    "n_neighbors": 5,  # the cell graph: PCA (n_pcs) of the masked input -> Euclidean kNN, both directions
    "n_pcs": 50,
    "patience": 200,
    "max_memory_gb": 16.0,  # GiB: refuse before training above this estimate
    # this project: the paper's full-graph steps up to this many cells; above it, steps of about
    # step_cells cells (128 small k-means parts from all over the data, with the edges among them), so
    # memory grows linearly
    "full_batch_max_cells": 10_000,
    "step_cells": 4096,
    # in steps: 0 trains on the edges among the step's cells only (Cluster-GCN); 2 adds every
    # in-neighbour within 2 hops, so the step's cells see the whole graph's neighbourhoods (exact for
    # the two GAT layers; ~6x the nodes per step at 30,000 cells: bench/results/minibatch_schedule.md)
    "step_hops": 0,
}


RANGES = {
    "hidden_dim": COUNT, "latent_dim": COUNT, "heads": COUNT, "attention_dropout": RATE, "dropout": RATE,
    "mask_fraction": FRACTION, "train_fraction": FRACTION, "val_fraction": FRACTION, "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE, "max_epochs": COUNT, "patience": COUNT, "max_memory_gb": POSITIVE,
    "n_neighbors": COUNT, "n_pcs": COUNT, "full_batch_max_cells": NON_NEGATIVE, "step_cells": COUNT,
    "step_hops": NON_NEGATIVE,
}


METHOD = Method(
    name="gnnimpute",
    impute=implemented_in("gnnimpute"),
    summary="graph attention autoencoder on a PCA-kNN cell graph, trained to reconstruct masked input",
    citation="Xu C, Cai L, Gao J. An efficient scRNA-seq dropout imputation method using graph attention "
             "network. BMC Bioinformatics 22, 582 (2021)",
    defaults=DEFAULTS,
    ranges=RANGES,
    trains=True,
)
