"""The metrics a benchmark measures: each one's group, direction and meaning.

The vocabulary that evaluate (which computes them), verdict (which ranks on them) and report (which
shows them) share; it imports nothing of the package, so all three can read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    group: str  # recovery | mcv | clustering | resources
    higher_is_better: bool | None
    description: str


PARTITION = {  # the partition scores, each as k-means_<name> and leiden_<name>: higher is better, meaning
    "ari": (True, "adjusted Rand index"),
    "ami": (True, "adjusted mutual information"),
    "nmi": (True, "normalised mutual information (arithmetic mean)"),
    "accuracy": (True, "clustering accuracy: best one-to-one match of clusters to labels (Hungarian)"),
    "purity": (True, "share of cells in their cluster's majority label"),
    "entropy": (False, "size-weighted entropy of the labels within clusters, / log(number of labels)"),
}

METRICS: dict[str, Metric] = {
    "hidden_gene_r": Metric("recovery", True, "per-gene Pearson r of output and truth at the hidden entries, "
                                              "mean over genes (log1p CP10k); 0 for a cell-agnostic output"),
    "hidden_zero_auc": Metric("recovery", True, "per-gene AUC: a hidden entry above a held-back true zero, mean "
                                                "over genes; 0.5 for a cell-agnostic output"),
    "rmse": Metric("recovery", False, "RMSE at hidden entries and held-back zeros together (log1p CP10k); "
                                      "a cell-agnostic profile does well on it: never ranked by"),
    "mcv_mse": Metric("mcv", False, "MCV: MSE of log1p CP10k of output vs test counts (Open Problems)"),
    "mcv_poisson": Metric("mcv", False, "MCV: Poisson loss of the held-out molecules, mean(rate - test * log(rate + 1e-6)), "
                                        "rate = output rescaled to the test total (the ranking metric)"),
    "mcv_poisson_openproblems": Metric("mcv", False, "MCV: Open Problems' Poisson loss, arguments swapped"),
    **{f"kmeans_{k}": Metric("clustering", hib, f"k-means (k = number of labels, mean over seeds): {d}")
       for k, (hib, d) in PARTITION.items()},
    **{f"leiden_{k}": Metric("clustering", hib, f"Leiden: {d}") for k, (hib, d) in PARTITION.items()},
    "leiden_n_clusters": Metric("clustering", None, "number of Leiden clusters"),
    "silhouette_labels": Metric("clustering", True, "silhouette of the true labels on the evaluation PCA"),
    "wall_time_s": Metric("resources", False, "imputation wall time, seconds (from provenance)"),
    "peak_memory_mb": Metric("resources", False, "peak memory, MB (process RSS on CPU, allocator peak on CUDA)"),
    "epochs": Metric("resources", None, "training epochs run"),
    "best_epoch": Metric("resources", None, "epoch whose weights were kept"),
}
