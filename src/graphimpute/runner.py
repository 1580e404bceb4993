"""One method on one AnnData: the graphs it declares, its call, the method contract checked on what it
returns, and the provenance record that goes with the result.

The IMPUTE step (``pipeline``), the API (``api``) and the selection of ``--methods auto`` (``auto``) all
run a method through ``impute_adata``, so they cannot differ in what a run does or records.
"""

from __future__ import annotations

import logging
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from graphimpute import _keys, graphs, methods
from graphimpute.errors import GraphImputeError
from graphimpute.methods import RunContext
from graphimpute.methods._base import MAX_SEED
from graphimpute.monitor import PeakMemory

log = logging.getLogger(__name__)

_VERSIONED = ("graphimpute", "torch", "torch-geometric", "scanpy", "anndata", "numpy", "scipy", "scikit-learn")


def mask_seeds(first: int, count: int, *, option: str = "--mask-seeds") -> range:
    """The mask seeds of a benchmark (``first``, ``first`` + 1, ...), refused before any work when the
    last would pass the largest seed numpy takes (it failed at the mask step after QC, normalise and
    graph had run)."""
    if count < 1:
        raise GraphImputeError(f"{option} must be at least 1, got {count}")
    if first + count - 1 > MAX_SEED:
        raise GraphImputeError(f"--seed {first} with {option} {count} draws masks up to seed {first + count - 1}, "
                               f"above 2**32 - 1; give a --seed of at most {MAX_SEED - count + 1}")
    return range(first, first + count)


def impute_adata(adata, entry: methods.Method, params: Mapping[str, Any], ctx: RunContext):
    """Run ``entry`` on ``adata`` (building the graphs it declares when they are missing; writes them
    and the method's extra results, ``varp``/``obsm`` and its extra layers as
    ``layers['imputed_<suffix>']`` (``extra_layer_key``), into ``adata``). Returns the imputed float32
    matrix, checked against the method contract, and its provenance record."""
    for spec in entry.graphs:
        if _missing(adata, spec):
            log.info("impute: %s needs graph %r, not in its input: building it", entry.name, spec.key)
            build_graph(adata, spec, seed=ctx.seed)
    log.info("impute: %s on %d cells x %d genes", entry.name, adata.n_obs, adata.n_vars)
    with PeakMemory() as usage:
        result = entry.impute(adata, dict(params), ctx)
    imputed = np.asarray(result.imputed, dtype=np.float32)
    if imputed.shape != adata.shape:
        raise RuntimeError(f"{entry.name} returned shape {imputed.shape} for input {adata.shape}")
    if not np.all(np.isfinite(imputed)) or imputed.min() < 0:
        raise RuntimeError(f"{entry.name} returned negative or non-finite values")
    for key, value in result.varp.items():
        adata.varp[key] = value
    for key, value in result.obsm.items():
        adata.obsm[key] = value
    for suffix, value in result.layers.items():
        value = np.asarray(value, dtype=np.float32)
        if value.shape != adata.shape or not np.all(np.isfinite(value)) or value.min() < 0:
            raise RuntimeError(f"{entry.name} returned a layer {suffix!r} that is not non-negative finite cells x genes")
        adata.layers[extra_layer_key(_keys.IMPUTED, suffix)] = value
    history = result.history or {}
    provenance = {
        "method": entry.name, "params": dict(params), "seed": ctx.seed,
        "device": history.get("device", "cpu"), "versions": software_versions(entry),
        "wall_time_s": usage.wall_s, "peak_memory_mb": max(usage.peak_mb, history.get("peak_memory_mb", 0.0)),
        "memory_before_mb": usage.start_mb,
        "history": history, "info": result.info, "nondefault_params": nondefault_params(entry, params),
    }
    return imputed, provenance


def extra_layer_key(imputed_key: str, suffix: str) -> str:
    """Where a method's extra layer goes beside its imputed layer: ``<imputed_key>_<suffix>``
    (graphMCV's interval: ``imputed_lower``; in a collected file ``imputed_graphmcv_lower``)."""
    return f"{imputed_key}_{suffix}"


def extra_layers(adata, given: set, imputed_key: str = _keys.IMPUTED) -> dict[str, Any]:
    """The extra layers (by suffix) that a run wrote into ``adata``: ``<imputed_key>_<suffix>`` keys
    not in ``given`` (the layers it had before)."""
    prefix = extra_layer_key(imputed_key, "")
    return {key[len(prefix):]: value for key, value in adata.layers.items()
            if key.startswith(prefix) and key not in given}


def nondefault_params(entry: methods.Method, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a run changed from the method's registered (paper) defaults."""
    defaults = entry.defaults
    return {k: v for k, v in params.items() if k in defaults and _plain(v) != _plain(defaults[k])}


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def store_layer(adata, key: str, imputed, provenance: Mapping[str, Any]) -> None:
    """One method's result as a named layer of a shared AnnData (``graphimpute.impute``, ``collect``).

    Writes ``adata.layers[key]`` (expected counts on the input's count scale) and its provenance in
    ``adata.uns['graphimpute']['layers'][key]`` (method, params, seed, device, versions, time, memory,
    history), so several methods' layers sit side by side, each with its own record."""
    adata.layers[key] = np.asarray(imputed, dtype=np.float32)
    record = adata.uns.setdefault(_keys.UNS, {})
    record.setdefault("layers", {})[key] = h5ad_safe(provenance)


def build_graph(adata, spec: methods.GraphSpec, *, seed: int = 0) -> None:
    graphs.build(adata, spec.kind, spec.key, dict(spec.params), seed=seed)


def _missing(adata, spec: methods.GraphSpec) -> bool:
    return spec.key not in adata.obsp and spec.key not in adata.varp


def software_versions(entry: methods.Method | None = None) -> dict[str, str]:
    """The versions of Python, the core libraries and the optional packages ``entry`` runs on (MAGIC's
    magic-impute, ALRA's halra, scVI's scvi-tools)."""
    from importlib.metadata import packages_distributions

    found = {"python": platform.python_version()}
    extra = [d for package in (entry.requires if entry else ()) for d in packages_distributions().get(package, [])]
    for name in (*_VERSIONED, *extra):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def h5ad_safe(value: Any) -> Any:
    """Make provenance writable to h5ad: None -> 'none', lists of dicts -> dicts of arrays (columns)."""
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return {str(k): h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            return {k: np.array([np.nan if v.get(k) is None else v.get(k) for v in value], dtype=float)
                    for k in keys}
        if all(isinstance(v, (int, float, np.number, bool)) for v in value):
            return np.asarray(value)
        return [str(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
