"""DCA-style deep count autoencoder (Eraslan et al., Nat Commun 2019), written here in PyTorch.

The authors' package needs TensorFlow 1-era pins that do not install on Python 3.11, so this is the
same model on the project's training engine. Input: log1p of size-factor-normalised counts, scaled per
gene (zero mean, unit variance). Network: dense 64 -> 32 (bottleneck) -> 64, each with batch norm and
ReLU, then three heads per gene: mean (exp, clipped to [1e-5, 1e6]), dispersion (softplus, clipped to
[1e-4, 1e4]) and dropout logit. Loss: ZINB negative log-likelihood of the raw counts with mean x size
factor (nn/losses.zinb_nll), mini-batches, Adam, early stopping on a 10% validation split of the cells.
Output: the mean head x size factor (expected counts), rescaled to each cell's input library (the
baselines' shared policy, methods/_baseline.py). Writes nothing to ``adata``.

Shapes: counts, input (cells x G); size factors (cells,); heads (cells x G).

This module is the registry entry (defaults, their ranges, what the method needs); its code,
``methods/_impl/dca.py``, is imported only when the method runs (it needs torch), so that
listing methods and checking parameters stay cheap.
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, NON_NEGATIVE, POSITIVE, RATE, Method, Range, implemented_in


METHOD = Method(
    name="dca",
    impute=implemented_in("dca"),
    summary="DCA-style ZINB autoencoder 64-32-64 on size-factor-normalised log counts",
    citation="Eraslan G, Simon LM, Mircea M, Mueller NS, Theis FJ. Single-cell RNA-seq denoising using a deep "
             "count autoencoder. Nat Commun 10:390 (2019)",
    # paper / official code defaults (dca 0.3: 300 epochs, batch 32, early stop 15, 10% validation,
    # gradient clip 5, learning rate 1e-3); Adam instead of RMSprop (docs/methods.md)
    defaults={"hidden": (64, 32, 64), "max_epochs": 300, "batch_size": 32, "lr": 1e-3, "patience": 15,
              "validation_fraction": 0.1, "grad_clip": 5.0},
    # batch norm needs two cells per batch
    ranges={"hidden": COUNT, "max_epochs": COUNT, "batch_size": Range(2), "lr": POSITIVE, "patience": COUNT,
            "validation_fraction": RATE, "grad_clip": NON_NEGATIVE},
    kind="baseline",
    trains=True,
)
