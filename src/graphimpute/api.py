"""The notebook user's door, in scanpy's style: an AnnData in, a layer and an ``uns`` record out.

``impute(adata, "scgnn")`` runs one method on the raw counts of ``adata`` (``X``, or ``layer=``);
``benchmark(adata, ["scgnn"])`` scores methods by the benchmark's own judge and returns a table. Both run
the steps ``graphimpute run`` runs (``normalise.normalise`` without gene selection, the graphs the
method declares, ``runner.impute_adata``; the benchmark ``auto.cross_validate``: mask, impute,
``evaluate.evaluate``, the verdict) on a private working copy: ``adata.X`` and the user's layers are
never modified. QC and gene selection are the user's business (scanpy's ``pp`` functions) and happen
before.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from graphimpute import _keys
from graphimpute.errors import GraphImputeError

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

log = logging.getLogger(__name__)

BARS = ("none", "gene_mean", "knn_average", "shrink_gene_mean", "shrink_knn")  # the floors (docs/benchmark.md)


def _scanpy_verbosity(func):
    """Log as scanpy does in a notebook: to stderr, at the level ``sc.settings.verbosity`` sets (0 errors,
    1 warnings, 2-3 info, 4 debug), unless the caller configured the ``graphimpute`` logger itself."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        package = logging.getLogger("graphimpute")
        if package.handlers:  # the command line's, or the user's own
            return func(*args, **kwargs)
        import scanpy as sc

        level = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.INFO}.get(
            int(sc.settings.verbosity), logging.DEBUG)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.setLevel(level)
        previous = package.level
        package.addHandler(handler)
        package.setLevel(min(level, previous) if previous else level)
        try:
            return func(*args, **kwargs)
        finally:
            package.removeHandler(handler)
            package.setLevel(previous)

    return wrapper


@_scanpy_verbosity
def impute(adata: AnnData, method: str = "gnnimpute", *, layer: str | None = None, key_added: str | None = None,
           copy: bool = False, device: str = "auto", seed: int = 0, **params) -> AnnData | None:
    """Impute the raw counts of ``adata`` with one registered method.

    Builds what the method needs on a private working copy (size factors, log-normalised values, PCA and
    graphs); ``adata.X`` and the user's layers are never modified. The same ``seed`` gives the same result
    on CPU.

    Parameters
    ----------
    adata
        Cells x genes, raw counts in ``X`` (or in ``layer``); in memory, not backed.
    method
        A registered method (``graphimpute methods`` lists them; ``graphimpute methods NAME`` its parameters).
    layer
        The layer that holds the raw counts; default ``X``.
    key_added
        The output layer; default ``f"imputed_{method}"``. It may replace only a layer graphimpute wrote.
    copy
        Return an updated copy and leave ``adata`` as it was.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    seed
        0 to 2**32 - 1.
    **params
        The method's hyper-parameters, overriding its paper defaults; unknown names and values out of
        range raise before any work.

    Returns
    -------
    The updated copy with ``copy=True``, else None. Writes ``adata.layers[key_added]`` (dense float32
    expected counts on the input's count scale), the method's extra layers beside it (graphMCV with
    ``interval=0.9``: ``layers[key_added + '_lower']`` and ``['_upper']``, the 90% interval of each
    entry's rate) and ``adata.uns['graphimpute']['layers'][key_added]``
    (method, params, seed, device, versions, time, memory, loss history). Adds, where ``adata`` has none
    under that key, what was built for the method under scanpy's keys: ``obsm['X_pca']``, ``varm['PCs']``,
    ``uns['pca']``, the method's cell graphs ``obsp[<key>]`` and ``obsp[<key>_distances]`` with
    ``uns[<key>]`` (``sc.tl.umap(adata, neighbors_key=<key>)``, leiden, paga, diffmap), gene graphs in
    ``varp``, the method's own results (GraphSCI's learned graph) and their parameters in
    ``uns['graphimpute']['graph']``.

    Raises
    ------
    GraphImputeError
        (a ``ValueError``) for an unknown method or parameter, counts that are not raw counts, a layer or
        key that cannot be used, fewer than 10 cells or genes, or a device that is not there.
    """
    from graphimpute import methods, normalise, runner, train

    _check_call("impute", adata, seed)
    entry = methods.get(method)
    resolved = methods.resolve_params(entry, params)
    if entry.missing():
        entry.import_required(entry.missing()[0])  # raises, quoting how to install it
    key = key_added or f"{_keys.IMPUTED}_{method}"
    _check_key(adata, key, layer)
    train.resolve_device(device)  # cuda where there is none: an error before any work
    work = normalise.normalise(_working_copy(adata, layer), n_top_genes=None)
    before = _matrix_keys(work)
    layers_before = set(work.layers.keys())
    imputed, provenance = runner.impute_adata(work, entry, resolved, methods.RunContext(seed=seed, device=device))
    extra = runner.extra_layers(work, layers_before)
    for suffix in extra:
        _check_key(adata, runner.extra_layer_key(key, suffix), layer, owner=key)
    target = adata.copy() if copy else adata
    provenance["counts"] = f"layers[{layer!r}]" if layer else "X"
    provenance["graphs"] = {k: v for k, v in work.uns.get(_keys.UNS, {}).get("graph", {}).items()}
    runner.store_layer(target, key, imputed, provenance)
    for suffix, value in extra.items():  # graphMCV's interval: <key>_lower, <key>_upper
        target.layers[runner.extra_layer_key(key, suffix)] = value
    _add_built(target, work, before)
    log.info("graphimpute: %s wrote adata.layers[%r] (%d cells x %d genes)", method, key, *imputed.shape)
    return target if copy else None


@_scanpy_verbosity
def benchmark(adata: AnnData, methods: Iterable[str] = (), *, label_key: str | None = None, mask_seeds: int = 3,
              scheme: str = "mcv", fraction: float = 0.1, layer: str | None = None, n_top_genes: int | None = None,
              baselines: bool = True, params: Mapping[str, Mapping[str, Any]] | None = None,
              device: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Score ``methods`` on ``adata``'s own counts by the benchmark of ``graphimpute run --benchmark``,
    in memory (nothing is written; ``adata`` is not modified).

    Per mask seed (``seed``, ``seed`` + 1, ...) the normalised counts are split, every method imputes the
    input part and is scored against the held-out part (and, with ``label_key``, by clustering); a
    progress bar counts the methods x mask seeds.

    Parameters
    ----------
    adata
        Cells x genes, raw counts in ``X`` (or in ``layer``); in memory, not backed.
    methods
        Registered method names (a string for one).
    label_key
        An ``obs`` column of cell types: adds the clustering scores.
    mask_seeds
        How many splits (at least 1); the spread over them decides ties.
    scheme
        ``"mcv"`` (molecular cross-validation: ``fraction`` of each count's molecules held out),
        ``"uniform"`` or ``"low-count"`` (hidden entries).
    fraction
        Share held out, in (0, 1).
    layer
        The layer that holds the raw counts; default ``X``.
    n_top_genes
        Keep the most variable genes first; None: all.
    baselines
        Add the floors every method is shown against: ``none``, ``gene_mean``, ``knn_average``,
        ``shrink_gene_mean``, ``shrink_knn`` (the best of them is the verdict's bar).
    params
        Hyper-parameters by method name, each a dict: ``{"scgnn": {"max_epochs": 50}}``.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    seed
        The first mask seed and every method's seed, 0 to 2**32 - 1.

    Returns
    -------
    The summary table of ``evaluate/<sample>.summary.tsv``: one row per method, best first by the ranking
    metric, each metric's mean over mask seeds and its sd in ``<metric>_sd``; the verdict's lines (winner,
    ties, margins against the bars) in ``table.attrs['verdict']`` and the log.

    Raises
    ------
    GraphImputeError
        (a ``ValueError``) for unknown methods or parameters, parameters for a method not benchmarked,
        a missing ``label_key``, counts that are not raw counts, or fewer than 10 cells or genes.
    """
    from graphimpute import auto, evaluate, normalise, runner, train
    from graphimpute import methods as registry

    _check_call("benchmark", adata, seed)
    for name, given in (params or {}).items():
        if not isinstance(given, Mapping):
            raise GraphImputeError(f"benchmark: params[{name!r}] is {type(given).__name__} {given!r}; give each "
                                   f"method a dict of its parameters, e.g. params={{{name!r}: {{'max_epochs': 10}}}}")
    names = list(dict.fromkeys([*([methods] if isinstance(methods, str) else methods), *(BARS if baselines else ())]))
    if not names:
        raise GraphImputeError("benchmark: no method given")
    runner.mask_seeds(seed, mask_seeds, option="mask_seeds")
    unknown = set(params or {}) - set(names)
    if unknown:
        raise GraphImputeError(f"benchmark: parameters given for {', '.join(sorted(unknown))}, not among the methods "
                               f"{', '.join(names)}")
    resolved = {}
    for name in names:
        entry = registry.get(name)
        resolved[name] = registry.resolve_params(entry, (params or {}).get(name))
        if entry.missing():
            entry.import_required(entry.missing()[0])
    if label_key is not None and label_key not in adata.obs.columns:
        raise GraphImputeError(f"benchmark: no adata.obs[{label_key!r}]; columns: "
                               f"{', '.join(map(str, adata.obs.columns)) or 'none'}")
    train.resolve_device(device)
    work = _working_copy(adata, layer, obs_columns=[label_key] if label_key else [])
    work = normalise.normalise(work, n_top_genes=n_top_genes)
    evaluation = auto.cross_validate(work, names, resolved, registry.RunContext(seed=seed, device=device),
                                     scheme=scheme, fraction=fraction, mask_seeds=mask_seeds, label_key=label_key,
                                     sample="adata", settings=evaluate.Settings(umap=False, seed=seed))
    verdict = evaluation.verdict()
    for line in verdict["lines"]:
        log.info("benchmark: %s", line)
    table = evaluation.summary().drop(columns="sample")
    table.attrs["verdict"] = list(verdict["lines"])
    return table


def _methods_notes() -> str:
    """The Notes section of ``impute``'s docstring: every registered method with its parameters, as
    ``graphimpute methods NAME`` prints them, so that ``help(gi.impute)`` shows what ``**params`` takes."""
    import textwrap

    from graphimpute import methods

    entries = [textwrap.indent(entry.describe(), "    ") for entry in methods.available().values()]
    return ("\n    Notes\n    -----\n    The registered methods and their parameters (defaults are the papers'):\n\n"
            + "\n\n".join(entries) + "\n")


impute.__doc__ = (impute.__doc__ or "") + _methods_notes()


# ---- helpers ----------------------------------------------------------------------------------------------

def _check_call(function: str, adata, seed) -> None:
    """What the CLI's parser and QC would refuse, refused here before any work."""
    from anndata import AnnData

    from graphimpute.methods._base import MAX_SEED
    from graphimpute.qc import MIN_CELLS_LEFT, MIN_GENES_LEFT

    if not isinstance(adata, AnnData):
        raise GraphImputeError(f"{function}: adata is a {type(adata).__module__}.{type(adata).__name__}, not an "
                               "AnnData; wrap a cells x genes count matrix as anndata.AnnData(counts)")
    if adata.isbacked:
        raise GraphImputeError(f"{function}: adata is backed (read with backed='r'); load it into memory first "
                               "(adata = adata.to_memory())")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise GraphImputeError(f"{function}: seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    if adata.n_obs < MIN_CELLS_LEFT or adata.n_vars < MIN_GENES_LEFT:
        raise GraphImputeError(f"{function}: adata has {adata.n_obs} cells x {adata.n_vars} genes; need at least "
                               f"{MIN_CELLS_LEFT} of each, as the command line after QC")


def _working_copy(adata: AnnData, layer: str | None, obs_columns: Iterable[str] = ()) -> AnnData:
    """A private AnnData with a float32 CSR copy of the raw counts in X and the names (and ``obs_columns``)
    of ``adata``; checks that the counts are raw counts."""
    import pandas as pd
    from anndata import AnnData

    where = f"adata.layers[{layer!r}]" if layer else "adata.X"
    if layer is not None and layer not in adata.layers:
        raise GraphImputeError(f"{where}: no such layer; layers: {', '.join(adata.layers) or 'none'}")
    counts = adata.layers[layer] if layer else adata.X
    if counts is None:
        raise GraphImputeError(f"{where} is empty; name the layer with the raw counts (layer='counts')")
    x = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    values = x.data
    if x.shape[0] < 2 or x.shape[1] < 2 or not np.any(values):
        raise GraphImputeError(f"{where}: {x.shape[0]} cells x {x.shape[1]} genes with {x.nnz} non-zeros: nothing to impute")
    if not np.all(np.isfinite(values)) or values.min() < 0 or np.any(values != np.round(values)):
        hint = "" if layer else "; if another layer holds them, give it as layer='counts'"
        raise GraphImputeError(f"{where} does not hold raw counts (negative, non-finite or non-integer values); "
                               f"graphimpute imputes raw counts{hint}")
    for axis, names in (("obs", adata.obs_names), ("var", adata.var_names)):
        if names.has_duplicates:
            raise GraphImputeError(f"adata.{axis}_names has duplicates; make them unique first "
                                   f"(adata.{axis}_names_make_unique())")
    x.eliminate_zeros()
    obs = pd.DataFrame({c: adata.obs[c].to_numpy() for c in obs_columns}, index=adata.obs_names.astype(str))
    return AnnData(X=x, obs=obs, var=pd.DataFrame(index=adata.var_names.astype(str)))


def _check_key(adata: AnnData, key: str, layer: str | None, owner: str | None = None) -> None:
    """The output layer may replace only a layer graphimpute wrote, never the user's own (an extra layer,
    ``<owner>_<suffix>``, counts as graphimpute's when its ``owner`` layer is)."""
    ours = adata.uns.get(_keys.UNS, {}).get("layers", {}) if isinstance(adata.uns.get(_keys.UNS), Mapping) else {}
    if key == layer or (key in adata.layers and (owner or key) not in ours):
        raise GraphImputeError(f"adata.layers[{key!r}] already exists and was not written by graphimpute; "
                               "choose another key_added")


def _matrix_keys(adata: AnnData) -> dict[str, set]:
    return {store: set(getattr(adata, store).keys()) for store in ("obsm", "obsp", "varp", "varm")}


def _add_built(target: AnnData, work: AnnData, before: dict[str, set]) -> None:
    """Copy what the run built on ``work`` into ``target`` where ``target`` has nothing under that key
    (a key the user has keeps the user's value: logged), with scanpy's records of it."""
    records = target.uns.setdefault(_keys.UNS, {}).setdefault("graph", {})
    built = work.uns.get(_keys.UNS, {}).get("graph", {})
    for store in ("obsm", "varm", "obsp", "varp"):
        mine, theirs = getattr(work, store), getattr(target, store)
        for key in mine.keys():
            if key in before[store]:
                continue
            if key in theirs:
                log.info("graphimpute: adata.%s[%r] exists; kept as it is", store, key)
                continue
            theirs[key] = mine[key]
            uns_key = {"X_pca": "pca", "PCs": None}.get(key, key)
            if uns_key is not None and uns_key in work.uns and uns_key not in target.uns:
                target.uns[uns_key] = work.uns[uns_key]  # scanpy's record: uns['pca'], uns[<graph key>]
            if (uns_key or "pca") in built:
                records[uns_key or "pca"] = built[uns_key or "pca"]
