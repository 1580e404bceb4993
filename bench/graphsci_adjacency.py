"""Why GraphSCI's learned gene adjacency sigmoid(Z Zᵀ) sits at 0.5 for most gene pairs (issue 13, item 4).

    PYTHONPATH=src python bench/graphsci_adjacency.py GRAPH.h5ad [--epochs 100] [--gene-branch-only]
        [--loss weighted|unweighted] [--no-kl] [--weight-decay 1e-3] [--no-lr-decay] [--latent 32]

GRAPH.h5ad is the graph step's output (QC, normalise to 2,000 HVG, `graphimpute graph --methods
graphsci`). Trains GraphSCI as `methods/graphsci.py` does (paper defaults, seed 0, CPU), or a variant:
`--gene-branch-only` drops the ZINB branch (the adjacency loss + KL alone, ~40x faster); `--loss
unweighted` replaces the official code's weighted BCE (pos_weight (G²−ΣA)/ΣA, norm G²/(2(G²−ΣA))) by
eq. 22's plain mean over all G² pairs. Prints one JSON line with the learned Â = sigmoid(μ μᵀ) in eval
mode: mean over off-diagonal pairs and the share above 0.5; the mean on observed Pearson edges and on
the other pairs; the AUC of observed edges against the other pairs (200,000 sampled pairs of each);
the mean off-diagonal logit next to its lower bound −mean‖μ‖²/(G−1) (Σ_{i≠j} μᵢ·μⱼ = ‖Σμ‖² − Σ‖μᵢ‖²);
and the share of pairs above w/(1+w), where the weighted BCE's 0.5 stands for the base rate: with
pos_weight w the optimum for a pair of edge probability p is wp/(wp + 1 − p), so Â > w/(1+w) means p > 0.5.
"""

from __future__ import annotations

import argparse
import json
import time

import anndata as ad
import numpy as np
import torch
import torch.nn.functional as F

from graphimpute import methods, train
from graphimpute.methods._impl import graphsci as gs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph_h5ad")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--gene-branch-only", action="store_true")
    parser.add_argument("--loss", choices=["weighted", "unweighted"], default="weighted")
    parser.add_argument("--no-kl", action="store_true")
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--no-lr-decay", action="store_true")
    parser.add_argument("--latent", type=int, default=None)
    args = parser.parse_args()

    adata = ad.read_h5ad(args.graph_h5ad)
    params = methods.resolve_params(methods.get("graphsci"), {})
    n, g = adata.shape
    train.seed_everything(0)
    size_factor, _ = gs.size_factors(adata)
    lognorm, x = gs.scaled_log_expression(adata.X, size_factor)
    counts = adata.X.toarray().astype(np.float32)
    graph, _ = gs.gene_graph(adata, lognorm, params["max_genes"])
    data = gs._tensors(x, counts, size_factor, graph, True, torch.device("cpu"))
    module = gs.GraphSCIModule(n_cells=n, n_genes=g, hidden=params["hidden"],
                               latent=args.latent or params["latent"], dropout=params["dropout"])

    def loss(m, _batch):
        mean_z, logvar = m.encode_genes(data.x.T, data.edge_index)
        z = m.gene_latent(mean_z, logvar)
        logits = z @ z.T
        adjacency = (gs.adjacency_loss(logits, data) if args.loss == "weighted"
                     else F.binary_cross_entropy_with_logits(logits, data.labels))
        kl = torch.zeros(()) if args.no_kl else gs.gene_kl(mean_z, logvar)
        terms = {"adjacency": adjacency, "kl": kl}
        if not args.gene_branch_only:
            mu, theta, pi_logits = m.expression(data.x, torch.sigmoid(logits))
            terms["zinb"] = gs.zinb_nll(data.counts, mu=mu * data.size_factor[:, None], theta=theta,
                                        pi_logits=pi_logits).mean()
        return {"loss": sum(terms.values()), **terms}

    config = train.TrainConfig(
        max_epochs=args.epochs, lr=params["lr"],
        weight_decay=params["weight_decay"] if args.weight_decay is None else args.weight_decay,
        lr_decay_every=None if args.no_lr_decay else params["lr_decay_steps"], lr_decay=params["lr_decay"],
        lr_decay_staircase=params["lr_decay_staircase"], progress=False)
    started = time.perf_counter()
    history = train.fit(module, loss, config=config, device=torch.device("cpu"))
    print(json.dumps({"args": vars(args), "cells": n, "genes": g, "observed_edges": int(graph.nnz) // 2,
                      "final": {k: round(v, 4) for k, v in history.epochs[-1].items() if k.startswith("train_")},
                      **adjacency_stats(module, data), "wall_s": round(time.perf_counter() - started)}))


@torch.no_grad()
def adjacency_stats(module: gs.GraphSCIModule, data: gs._Data) -> dict:
    module.eval()
    mean_z, _ = module.encode_genes(data.x.T, data.edge_index)
    logits = mean_z @ mean_z.T
    adjacency = torch.sigmoid(logits)
    g = adjacency.shape[0]
    off = ~torch.eye(g, dtype=torch.bool)
    edge = (data.labels > 0) & off
    pos, neg = adjacency[edge], adjacency[off & ~edge]
    gen = torch.Generator().manual_seed(0)
    auc = (pos[torch.randint(0, pos.numel(), (200_000,), generator=gen)]
           > neg[torch.randint(0, neg.numel(), (200_000,), generator=gen)]).float().mean()
    calibrated = data.pos_weight / (1 + data.pos_weight)
    norm2 = (mean_z ** 2).sum(dim=1).mean()
    above = (adjacency > calibrated) & off
    return {
        "offdiag_mean": round(float(adjacency[off].mean()), 4),
        "share_above_0.5": round(float((adjacency[off] > 0.5).float().mean()), 4),
        "observed_edge_mean": round(float(pos.mean()), 4), "other_pair_mean": round(float(neg.mean()), 4),
        "auc_observed_vs_other": round(float(auc), 4),
        "offdiag_logit_mean": round(float(logits[off].mean()), 4),
        "offdiag_logit_lower_bound": round(float(-norm2 / (g - 1)), 5), "latent_norm2_mean": round(float(norm2), 3),
        "pos_weight": round(data.pos_weight, 1),
        "share_above_calibrated_0.5": round(float(above.float().sum() / off.sum()), 5),
        "observed_share_of_those": round(float(edge[above].float().mean()), 3) if bool(above.any()) else None,
    }


if __name__ == "__main__":
    main()
