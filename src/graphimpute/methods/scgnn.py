"""SCGNN (Huang, Xiao, Glass & Sun 2020; papers/scgnn.txt): a bottlenecked two-layer GCN on a
PCA-kNN cell graph, trained to recover non-zeros it has hidden from itself.

Steps (paper §2-3.1, with METHODS.md where the paper is silent):
1. keep genes with variance/(1 + mean) > 0.5 on the raw counts; the others are returned as observed;
2. scale each cell to the median library of the kept genes (no log);
3. hide a share p = min(non-zero fraction of the input, 0.3) of the non-zeros; train
   X̃ = Â·ReLU(Â X̂ W₁ + b₁)·W₂ + b₂ (dropout 0.5 on the hidden layer, W₁: G x G/64, W₂: G/64 x G,
   Â = D^-½(A + I)D^-½ of the symmetrised 5-NN graph on PCA (50) of the masked, scaled input, as the
   paper builds it: the graph never sees the hidden entries) by MSE on the hidden entries of the
   training cells; stop early on those of the validation cells;
4. impute from the unmasked input in eval mode: observed non-zeros stay, zeros take the prediction,
   and every cell is scaled back from the median library to its own.

Reads ``adata.X`` (raw counts) only (the cell graph is the method's own); writes nothing to ``adata``.
Shapes: counts N x G → imputed N x G (float32, the input's count scale).

This module is the registry entry (defaults, their ranges, what the method needs); its code,
``methods/_impl/scgnn.py``, is imported only when the method runs (it needs torch), so that
listing methods and checking parameters stay cheap.
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, RATE, Method, implemented_in


DEFAULTS = {
    "min_dispersion": 0.5,  # keep genes with variance / (1 + mean) above this (raw counts)
    "hidden_divisor": 64,  # bottleneck D = G / 64
    "min_hidden": 0,  # a floor on D (0: none, the paper's G / 64)
    "n_neighbors": 5,  # the cell graph: PCA (n_pcs) of the masked input -> Euclidean kNN, both directions
    "n_pcs": 50,
    "graph_log1p": True,  # PCA of log1p(masked input); False: of the masked input itself (the paper), see docs
    "dropout": 0.5,
    "max_hidden_fraction": 0.3,  # p = min(non-zero fraction, this)
    "val_fraction": 0.05,  # validation cells for early stopping (official code: 90/5/5)
    "lr": 3e-3,
    "weight_decay": 5e-4,
    "max_epochs": 1000,
    "patience": 100,  # epochs without validation improvement (not in the paper; see docs/methods.md)
    "max_memory_gb": 16.0,  # GiB: refuse before training above this estimate
}


RANGES = {
    "min_dispersion": NON_NEGATIVE, "hidden_divisor": COUNT, "min_hidden": NON_NEGATIVE, "n_neighbors": COUNT,
    "n_pcs": COUNT, "dropout": RATE, "max_hidden_fraction": FRACTION,
    "val_fraction": FRACTION, "lr": POSITIVE, "weight_decay": NON_NEGATIVE, "max_epochs": COUNT, "patience": COUNT,
    "max_memory_gb": POSITIVE,
}


METHOD = Method(
    name="scgnn",
    impute=implemented_in("scgnn"),
    summary="bottlenecked two-layer GCN on a PCA-kNN cell graph, trained on hidden non-zeros",
    citation="Huang K, Xiao C, Glass L, Sun J. SCGNN: scRNA-seq Dropout Imputation via Induced "
             "Hierarchical Cell Similarity Graph. arXiv:2008.03322 (2020)",
    defaults=DEFAULTS,
    ranges=RANGES,
    trains=True,
)
