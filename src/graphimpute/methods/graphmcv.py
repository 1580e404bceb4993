"""graphMCV: graphimpute's own method. A cell-graph network trained to predict molecules it has not
seen (molecular cross-validation as the training objective; Batson, Royer & Webber 2019, Noise2Self).

Why: the papers' graph methods learn to reproduce the counts they see (or a few masked non-zeros), so
on the benchmark that scores unseen molecules (MCV Poisson) they mostly lose to the neighbour average.
Splitting each cell's molecules binomially gives two halves whose noise is independent (for Poisson
sampling), so "predict one half from the other" is an unbiased self-supervised proxy of exactly the
error the benchmark measures. Design and measurements: docs/methods.md ("graphMCV").

Steps (counts X, cells x genes, raw integers; sparse stays sparse, the dense inputs are cells x
``input_pcs``):
1. hold back ``validation_fraction`` of every count's molecules once: val ~ Binomial(X, f),
   rest = X - val. val is only ever a target: for early stopping and for the calibration in 6;
2. the cell graph, from what the method may see: PCA (``n_pcs``) of the scaled log1p(rest / size
   factor) (graphimpute.graphs' recipe, a randomised PCA computed here) and a symmetrised
   ``n_neighbors``-NN graph (graphimpute.graphs.knn_graph), row-normalised to a mean over neighbours;
3. features of cell i: log1p CP10k projected on a fixed input basis P, the top ``input_pcs``
   principal axes of log1p CP10k(rest) (computed once, on the sparse matrix; ``input_pcs=0``: no
   projection, all genes). Own input s_i = P^T log1p CP10k(input_i); neighbour input m_i = the mean
   over i's neighbours of P^T log1p CP10k(rest_j), for ``hops`` = 2 also the mean of the neighbours'
   m_j. Projection and neighbour mean are linear, so they commute and are computed once on the sparse
   matrices (SIGN/SGC-style precomputed propagation); every cell is then an independent sample:
   mini-batches need no neighbour sampling, memory is linear in cells, and a batch gives the same
   output as the full graph;
4. network (GraphSAGE with the aggregation before the first weight): h = ReLU(W_s s + W_n m + b),
   z = ReLU(W_z h + b_z), logits = W_d z + b_d (b_d starts at the log gene means), rho = softmax over
   genes (the cell's expression profile);
5. each epoch, ``rest`` is split afresh into an input part Binomial(rest, ``split_fraction``) and the
   target (the remainder); the expected target is rho_i * (the target's library of cell i); negative
   binomial (gene-wise dispersion) or Poisson likelihood (the Poisson one with decoder and loss in
   one step on the target's non-zeros). Early stopping on the likelihood of ``val`` given all of
   ``rest`` as input (the inference setting), best weights kept; ``max_epochs`` is a cap the early
   stop reaches first (41-151 epochs on the shared datasets);
6. calibration: the trained profile is mixed with the cell's own observed profile,
   rho' = (1 - a) rho + a x_i / L_i, with the scalar a in [0, 1] that minimises the Poisson loss of
   ``val`` given ``rest`` (grid of 21 values, computed on val's non-zeros). The network sees its input
   at a depth ``split_fraction`` of the one it imputes from, so its own reliance on the observed
   counts is set at the wrong depth; a measures it at the right one. Measured (mask seed 0): 0.15-0.3 on
   the 10x UMI datasets and the RNA mixture, 0.4-0.6 on klein2015 and the CEL-seq2/Drop-seq cell
   mixtures, 1.0 on camp2015's read counts, 0.7 on simulated NB counts and 0 on pure Poisson ones. For overdispersed counts the cell's
   own counts carry its own rate, which MCV scores; with a the output is a shrinkage of them towards
   the network's profile, and it beats the same shrinkage towards gene_mean's profile or the neighbour
   average (the ``shrink_*`` floors) on 6 of 8 datasets (``bench/results/shrinkage_floor_summary.md``);
7. inference on all of X (same basis P): output = rho'_i * L_i (L_i = the cell's library), dense
   float32 expected counts on the input's count scale; a cell with an empty library gets 0;
8. with ``interval`` = a level in (0, 1) (0: off, the default): the central interval of each entry's
   own rate at that level, as layers ``imputed_lower`` and ``imputed_upper``. The error of the blend
   as an estimate of the rate is measured on ``val`` like the calibration (moments of val minus its
   expectation given rest, the Poisson part removed: a squared relative error 1/θ_g per gene), and the
   interval is that of λ ~ Gamma(shape θ_g, mean = the output). Its coverage of the simulated rates:
   ``bench/results/graphmcv_interval.md``.

Ablations (registered parameters, docs/methods.md): ``graph=false`` (no neighbour input: an
MCV-trained autoencoder), ``molecular_split=false`` (target = the input itself: trained to reproduce
its input), ``architecture=knn_average`` (the neighbour average as its only layer: rho = (1 - w) x the
mean neighbour profile + w x the mean profile, w learned by the same loss).

Reads ``adata.X`` only; writes nothing to ``adata`` (the runner writes ``layers['imputed']`` and, with
``interval``, ``layers['imputed_lower']``/``['imputed_upper']``).

This module is the registry entry (defaults, their ranges); its code, ``methods/_impl/graphmcv.py``,
is imported only when the method runs (it needs torch).
"""

from __future__ import annotations

from graphimpute.methods._base import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, RATE, Method, Range, implemented_in

NAME = "graphmcv"

DEFAULTS = {
    "hidden": 128,
    "latent": 32,
    "n_neighbors": 15,
    "n_pcs": 50,
    "input_pcs": 100,
    "hops": 1,
    "graph": True,
    "molecular_split": True,
    "architecture": "network",
    "calibrate": True,
    "likelihood": "poisson",
    "split_fraction": 0.5,
    "validation_fraction": 0.1,
    "batch_size": 512,
    "lr": 2e-3,
    "weight_decay": 0.0,
    "max_epochs": 300,
    "patience": 5,
    "max_memory_gb": 64.0,
    "interval": 0.0,
}

RANGES = {
    "hidden": COUNT, "latent": COUNT, "n_neighbors": COUNT, "n_pcs": Range(2), "input_pcs": NON_NEGATIVE, "hops": Range(1, 2),
    "split_fraction": FRACTION, "validation_fraction": FRACTION, "batch_size": COUNT, "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE, "max_epochs": COUNT, "patience": COUNT, "max_memory_gb": POSITIVE,
    "interval": RATE,
}



METHOD = Method(
    name=NAME,
    impute=implemented_in("graphmcv"),
    summary="graphimpute's own: cell-graph network trained by molecular cross-validation (predicts held-out molecules)",
    citation="graphimpute (this project); training objective after Batson J, Royer L, Webber J. Molecular "
             "cross-validation for single-cell RNA-seq. bioRxiv 786269 (2019)",
    defaults=DEFAULTS,
    ranges=RANGES,
    trains=True,
)
