"""scVI (Lopez et al., Nat Methods 2018): a ZINB variational autoencoder, through ``scvi-tools``.

An optional extra: scvi-tools is imported only when the method runs, and the registry can tell it is
missing (``METHOD.missing()``). The model is scvi-tools' SCVI with its defaults (10 latent dimensions,
one hidden layer of 128, ZINB likelihood, gene-wise dispersion, observed library size) trained on a
private copy of the raw counts. Output: scVI's normalised expression (each cell's expression
frequencies, averaged over ``n_samples`` posterior draws) times the cell's observed library, i.e.
expected counts already at the input library (the baselines' shared policy, methods/_baseline.py).
Writes nothing to ``adata``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphimpute.methods._base import COUNT, NON_NEGATIVE, POSITIVE, RATE, ImputeResult, Method, Range
from graphimpute.methods._baseline import dense_counts, output_scale_info, to_input_library


def impute(adata, params, ctx) -> ImputeResult:
    import anndata as ad

    from graphimpute import train

    scvi = METHOD.import_required("scvi")
    device = train.resolve_device(ctx.device)
    train.seed_everything(ctx.seed)
    scvi.settings.seed = ctx.seed
    counts = dense_counts(adata)
    library = counts.sum(axis=1)
    work = ad.AnnData(X=sp.csr_matrix(counts.astype(np.float32)))  # never hand the caller's object over

    scvi.model.SCVI.setup_anndata(work)
    model = scvi.model.SCVI(work, n_hidden=params["n_hidden"], n_latent=params["n_latent"],
                            n_layers=params["n_layers"], dropout_rate=params["dropout_rate"],
                            gene_likelihood=params["gene_likelihood"])
    model.train(max_epochs=params["max_epochs"] or None, batch_size=params["batch_size"],
                early_stopping=params["early_stopping"], plan_kwargs={"lr": params["lr"]},
                accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                enable_progress_bar=ctx.progress)
    scvi.settings.seed = ctx.seed  # the posterior draws below, independent of how training ended
    frequencies = model.get_normalized_expression(library_size=1.0, n_samples=params["n_samples"],
                                                  return_mean=True, return_numpy=True)
    expected = np.asarray(frequencies, dtype=np.float64) * library[:, None]
    return ImputeResult(imputed=to_input_library(expected, library), history=_history(model, device),
                        info={"transform": "none (raw counts into scVI)", "scvi_tools": scvi.__version__,
                              **output_scale_info(expected, library)})


def _history(model, device) -> dict:
    """scvi-tools' per-epoch logs (``elbo_train``, ``train_loss_epoch``, ``elbo_validation``, ...) as the
    project's training history (``train_elbo``, ``train_loss``, ``val_elbo``, ...)."""
    from graphimpute import train

    history = train.History(device=str(device))
    logged = {_history_name(name): frame.iloc[:, 0].to_numpy() for name, frame in model.history.items()}
    n_epochs = max((len(v) for v in logged.values()), default=0)
    for epoch in range(n_epochs):
        history.epochs.append({k: float(v[epoch]) for k, v in logged.items() if len(v) == n_epochs})
    return history.to_dict()


def _history_name(name: str) -> str:
    name = name.removesuffix("_epoch")
    for split, short in (("train", "train"), ("validation", "val")):
        if name.startswith(f"{split}_"):
            return f"{short}_{name.removeprefix(f'{split}_')}"
        if name.endswith(f"_{split}"):
            return f"{short}_{name.removesuffix(f'_{split}')}"
    return name


METHOD = Method(
    name="scvi",
    impute=impute,
    summary="scVI: ZINB variational autoencoder (scvi-tools), normalised expression x library",
    citation="Lopez R, Regier J, Cole MB, Jordan MI, Yosef N. Deep generative modeling for single-cell "
             "transcriptomics. Nat Methods 15:1053-1058 (2018)",
    # scvi-tools 1.4.2 defaults; max_epochs 0 = scvi-tools' rule min(400, round(400 x 20000 / n_cells))
    defaults={"n_hidden": 128, "n_latent": 10, "n_layers": 1, "dropout_rate": 0.1, "gene_likelihood": "zinb",
              "max_epochs": 0, "batch_size": 128, "lr": 1e-3, "early_stopping": False, "n_samples": 25},
    ranges={"n_hidden": COUNT, "n_latent": COUNT, "n_layers": COUNT, "dropout_rate": RATE,
            "max_epochs": NON_NEGATIVE, "batch_size": Range(2), "lr": POSITIVE, "n_samples": COUNT},
    kind="baseline",
    trains=True,
    requires=("scvi",),
    install_hint="install the scVI extra: pip install 'scvi-tools==1.4.2' (keeps torch 2.13.0)",
)
