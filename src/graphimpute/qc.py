"""Quality control: remove poor cells and rarely seen genes, and say exactly what went and why."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from anndata import AnnData

from graphimpute import _keys
from graphimpute.errors import InputError

log = logging.getLogger(__name__)

MIN_CELLS_LEFT = 10
MIN_GENES_LEFT = 10


def run_qc(adata: AnnData, *, min_genes: int = 200, min_cells: int = 3, max_pct_mt: float | None = 20.0,
           n_mads: float | None = 5.0, mt_prefix: str | None = None, source: str = "input") -> AnnData:
    """Filter cells, then genes, and return the filtered copy (``adata`` is left untouched).

    Cells go when they have fewer than ``min_genes`` detected genes, more than ``max_pct_mt`` % of
    counts in mitochondrial genes (prefix ``MT-``/``mt-`` detected unless ``mt_prefix`` is given), or
    a log total count more than ``n_mads`` median absolute deviations from the median (either side).
    Genes go when detected in fewer than ``min_cells`` of the remaining cells. ``None`` switches a
    filter off.

    Writes ``obs['total_counts', 'n_genes_by_counts', 'pct_counts_mt']``,
    ``var['mt', 'n_cells_by_counts', 'total_counts']`` (scanpy's names) and
    ``uns['graphimpute']['qc']``: parameters and the number removed by each filter."""
    import scanpy as sc

    prefix = mt_prefix if mt_prefix is not None else detect_mt_prefix(adata.var_names)
    out = adata.copy()
    out.var["mt"] = out.var_names.str.startswith(prefix) if prefix else False
    sc.pp.calculate_qc_metrics(out, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
    n_cells0, n_genes0 = out.shape

    removed: dict[str, int] = {}
    keep = np.ones(out.n_obs, bool)
    keep = _apply(keep, out.obs["n_genes_by_counts"].to_numpy() >= min_genes, "cells_min_genes", removed)
    if max_pct_mt is not None and prefix:
        keep = _apply(keep, out.obs["pct_counts_mt"].to_numpy() <= max_pct_mt, "cells_max_pct_mt", removed)
    if n_mads is not None:
        log_total = np.log1p(out.obs["total_counts"].to_numpy())
        centre = np.median(log_total[keep]) if keep.any() else 0.0
        mad = np.median(np.abs(log_total[keep] - centre)) if keep.any() else 0.0
        inlier = np.abs(log_total - centre) <= n_mads * mad if mad > 0 else np.ones_like(keep)
        keep = _apply(keep, inlier, "cells_total_counts_mad", removed)
    out = out[keep].copy()

    detected = np.asarray((out.X > 0).sum(axis=0)).ravel()
    genes = detected >= min_cells
    removed["genes_min_cells"] = int((~genes).sum())
    out = out[:, genes].copy()
    # metrics describe the data as it leaves QC
    sc.pp.calculate_qc_metrics(out, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)

    if out.n_obs < MIN_CELLS_LEFT or out.n_vars < MIN_GENES_LEFT:
        raise InputError(source, f"only {out.n_obs} cells x {out.n_vars} genes left after QC (need at least "
                                 f"{MIN_CELLS_LEFT} of each; removed: {_describe(removed)}); loosen --min-genes, "
                                 "--min-cells, --max-pct-mt or --n-mads")
    params: dict[str, Any] = {"min_genes": min_genes, "min_cells": min_cells, "max_pct_mt": max_pct_mt,
                              "n_mads": n_mads, "mt_prefix": prefix or ""}
    out.uns.setdefault(_keys.UNS, {})["qc"] = {
        "params": {k: ("none" if v is None else v) for k, v in params.items()},
        "removed": removed,
        "cells_in": n_cells0, "genes_in": n_genes0, "cells_out": out.n_obs, "genes_out": out.n_vars,
    }
    log.info("QC: %d x %d -> %d cells x %d genes (%s)", n_cells0, n_genes0, out.n_obs, out.n_vars, _describe(removed))
    if not prefix:
        log.info("QC: no mitochondrial genes (MT-/mt-) found; the mitochondrial filter was skipped")
    return out


def detect_mt_prefix(names) -> str:
    """'MT-' (human) or 'mt-' (mouse), whichever names more genes; '' when neither does."""
    names = [str(n) for n in names]
    counts = {p: sum(n.startswith(p) for n in names) for p in ("MT-", "mt-")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ""


def _apply(keep: np.ndarray, passes: np.ndarray, name: str, removed: dict[str, int]) -> np.ndarray:
    removed[name] = int((keep & ~passes).sum())
    return keep & passes


def _describe(removed: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in removed.items())
