"""The code of dca (its description, defaults and registry entry: ``methods/dca.py``).

Imported only when the method runs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from graphimpute import train
from graphimpute.methods._base import ImputeResult
from graphimpute.methods._baseline import dense_counts, output_scale_info, to_input_library
from graphimpute.methods._common import run_fingerprint, train_config
from graphimpute.nn.losses import zinb_nll

MEAN_RANGE = (1e-5, 1e6)  # DCA's MeanAct clip
DISPERSION_RANGE = (1e-4, 1e4)  # DCA's DispAct clip


class ZINBAutoencoder(nn.Module):
    """Dense autoencoder with ZINB heads: ``forward(x) -> (mean, theta, pi_logits)``, mean per unit
    size factor."""

    def __init__(self, n_genes: int, *, hidden: tuple[int, ...] = (64, 32, 64)):
        super().__init__()
        layers, width = [], n_genes
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(width, n_genes)
        self.dispersion = nn.Linear(width, n_genes)
        self.dropout = nn.Linear(width, n_genes)
        for layer in self.modules():  # DCA's (Keras') initialisation: Glorot-uniform weights, zero biases
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.body(x)
        mean = torch.exp(self.mean(h).clamp(max=math.log(MEAN_RANGE[1]))).clamp(min=MEAN_RANGE[0])
        theta = F.softplus(self.dispersion(h)).clamp(*DISPERSION_RANGE)
        return mean, theta, self.dropout(h)


def zinb_loss(module: ZINBAutoencoder, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
    x, counts, size_factor = batch
    mean, theta, pi_logits = module(x)
    nll = zinb_nll(counts, mu=mean * size_factor[:, None], theta=theta, pi_logits=pi_logits).mean()
    return {"loss": nll, "zinb_nll": nll}


def preprocess(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DCA's input: size factors (library / median library) and the per-gene scaled log1p of the
    size-factor-normalised counts. A cell with an empty library gets size factor 1 (it stays 0)."""
    library = counts.sum(axis=1)
    median = np.median(library[library > 0]) if np.any(library > 0) else 1.0
    size_factor = np.where(library > 0, library / median, 1.0)
    logged = np.log1p(counts / size_factor[:, None])
    std = logged.std(axis=0)
    scaled = (logged - logged.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return scaled, size_factor


def impute(adata, params, ctx) -> ImputeResult:
    train.seed_everything(ctx.seed)
    device = train.resolve_device(ctx.device)
    counts = dense_counts(adata)
    scaled, size_factor = preprocess(counts)
    tensors = [torch.as_tensor(a, dtype=torch.float32, device=device) for a in (scaled, counts, size_factor)]

    n_cells = counts.shape[0]
    order = np.random.default_rng(ctx.seed).permutation(n_cells)
    n_val = int(round(params["validation_fraction"] * n_cells))
    n_val = n_val if n_val >= 2 else 0  # batch norm needs two cells
    val_idx, train_idx = (torch.as_tensor(i, device=device) for i in (order[:n_val], order[n_val:]))
    shuffle = torch.Generator().manual_seed(ctx.seed)

    def batches(index: Tensor, shuffled: bool):
        def epoch():
            picked = index[torch.randperm(len(index), generator=shuffle).to(device)] if shuffled else index
            for start in range(0, len(picked), params["batch_size"]):
                rows = picked[start:start + params["batch_size"]]
                if len(rows) > 1:  # batch norm needs two cells; a lone last cell waits for the next epoch
                    yield tuple(t[rows] for t in tensors)
        return epoch

    model = ZINBAutoencoder(counts.shape[1], hidden=tuple(params["hidden"])).to(device)
    config = train_config(ctx, "dca", run_fingerprint(adata, "dca", params, ctx), max_epochs=params["max_epochs"],
                          lr=params["lr"], patience=params["patience"], grad_clip=params["grad_clip"] or None)
    history = train.fit(model, zinb_loss, config=config, device=device, train_data=batches(train_idx, True),
                        val_data=batches(val_idx, False) if n_val else None)

    with torch.no_grad():
        mean, _, _ = model(tensors[0])
        expected = (mean * tensors[2][:, None]).double().cpu().numpy()
    library = counts.sum(axis=1)
    return ImputeResult(imputed=to_input_library(expected, library), history=history.to_dict(),
                        info={"transform": "scaled log1p(counts / size_factor)", "n_validation_cells": n_val,
                              **output_scale_info(expected, library)})
