"""GraphSCI (Rao et al., iScience 24:102393, 2021): a variational graph autoencoder over a gene graph,
trained together with a ZINB autoencoder over cells whose first layer is weighted by the learned
gene-gene adjacency.

Paper equations implemented here (numbers from the paper's Transparent Methods):
- (1) X = log1p(counts / size_factor), then each gene scaled to zero mean and unit variance;
- (3)-(4) gene branch: H = tanh(Ã Xᵀ W₁) (the official code's tanh; eq. 3's ReLU diverges at the
  paper's learning rate on dense expression features), [μ, log σ²] = Ã H W₂ with Ã = D^-½(A+I)D^-½ of
  the gene Pearson graph (PyG's GCNConv); Z = μ + σ·ε while training, Z = μ at inference;
- (18) learned adjacency Â = sigmoid(Z Zᵀ), trained by weighted binary cross-entropy against A + I;
- (5) expression branch: tanh(X (W ⊙ Â) + b) with W a learned genes x genes matrix: the learned
  adjacency weights every gene-to-gene connection of the first layer, so the inferred gene relations
  shape the imputation during training (the paper's central claim); then the official code's
  dense layers (16, 32, batch norm, ReLU);
- (9)-(11) heads: mean = exp, dispersion = softplus, dropout = sigmoid (as logits);
- (15) imputed = mean x size factor: expected counts on the input's count scale.
Loss: ZINB negative log-likelihood of the raw counts + adjacency BCE + KL of the gene latent (eq. 19).
docs/methods.md lists every choice where paper and official code differ.

Reads ``adata.X`` (raw counts), ``adata.obs['size_factor']`` (computed from X when absent) and the gene
graph ``adata.varp['gene_pearson']`` (built here from the counts when absent). Returns the learned gene
graph as ``ImputeResult.varp['graphsci_learned']`` (sparse, weights = Â).

This module is the registry entry (defaults, their ranges, what the method needs); its code,
``methods/_impl/graphsci.py``, is imported only when the method runs (it needs torch), so that
listing methods and checking parameters stay cheap.
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, NON_NEGATIVE, POSITIVE, RATE, UNIT, GraphSpec, Method, Range, implemented_in
from graphimpute.graphs import PEARSON_MAX_GENES


GRAPH = GraphSpec(key="gene_pearson", kind="gene_pearson", params={"threshold": 0.3})


LEARNED_GRAPH_KEY = "graphsci_learned"


DEFAULTS = {
    # official code (the paper gives none): one full-batch step per epoch. In mini-batch (above
    # full_batch_max_cells) it and lr_decay_steps count optimiser steps (train.schedule_in_steps)
    "max_epochs": 100,
    "lr": 0.01,  # paper
    "lr_decay": 0.9,  # paper: lr·0.9^(step/50), TensorFlow's exponential_decay
    "lr_decay_steps": 50,  # paper; the official code feeds the epoch as the step
    "lr_decay_staircase": False,  # paper's formula (Fig. S9) and official code: smooth decay
    "hidden": 16,  # paper: hidden layers of both encoders
    "latent": 32,  # paper: D, the latent dimension
    "dropout": 0.2,  # paper; applied to the inputs of the GCN layers, as the official code does
    "gcn_activation": "tanh",  # official code; the paper's eq. 3 says relu (diverges, docs/methods.md)
    "weight_decay": 1e-3,  # paper: L2 coefficient
    # cells per step; 0 = automatic: all cells in one step (official code, its batch flag is unused) up
    # to full_batch_max_cells, above it steps of AUTO_BATCH_SIZE cells, so that memory grows linearly
    "batch_size": 0,
    "full_batch_max_cells": 10_000,  # this project
    "max_memory_gb": 16.0,  # GiB: refuse before training above this estimate (this project)
    # this project: refuse above (genes x genes weights and adjacency). The same number as the gene
    # graph's own limit, which the graph step applies: a larger value only helps with a gene graph
    # supplied in varp['gene_pearson'] by other means
    "max_genes": PEARSON_MAX_GENES,
    "dense_adjacency_max_genes": 3000,  # this project: above, the adjacency BCE uses sampled non-edges
    "learned_graph_threshold": 0.5,  # paper: edges of the learned graph have Â > 0.5
    "learned_graph_top_k": 20,  # this project: at most this many learned edges per gene are saved
}


RANGES = {
    "max_epochs": COUNT, "lr": POSITIVE, "lr_decay": Range(0, 1, low_open=True), "lr_decay_steps": COUNT,
    "hidden": COUNT, "latent": COUNT, "dropout": RATE, "weight_decay": NON_NEGATIVE,
    "batch_size": NON_NEGATIVE, "full_batch_max_cells": COUNT, "max_memory_gb": POSITIVE, "max_genes": COUNT, "dense_adjacency_max_genes": NON_NEGATIVE,
    "learned_graph_threshold": UNIT, "learned_graph_top_k": NON_NEGATIVE,
}


METHOD = Method(
    name="graphsci",
    impute=implemented_in("graphsci"),
    summary="gene-graph VAE + ZINB autoencoder whose first layer is weighted by the learned gene graph",
    citation="Rao J, Zhou X, Lu Y, Zhao H, Yang Y. Imputing single-cell RNA-seq data by combining graph "
             "convolution and autoencoder neural networks. iScience 24:102393 (2021)",
    defaults=DEFAULTS,
    ranges=RANGES,
    graphs=(GRAPH,),
    trains=True,
)
