"""Small pieces the neural methods share: reading a declared graph, splitting cells, a training
configuration from the run context (where checkpoints go and what they must match). Not a method
(not in the registry)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import GraphSpec, RunContext

if TYPE_CHECKING:  # torch: imported by the functions that train, not by the registry
    from graphimpute import train

log = logging.getLogger(__name__)


def dense_counts(adata) -> np.ndarray:
    """``adata.X`` as a dense float32 cells x genes array (a copy: the input is never touched)."""
    x = adata.X.toarray() if sp.issparse(adata.X) else np.array(adata.X)
    return x.astype(np.float32, copy=False)


def cell_graph(adata, spec: GraphSpec, method: str) -> sp.csr_matrix:
    """The cell graph ``adata.obsp[spec.key]`` the method declared; a clear error when it is absent."""
    if spec.key not in adata.obsp:
        raise GraphImputeError(
            f"{method} needs the cell graph adata.obsp[{spec.key!r}] ({spec.kind}, {dict(spec.params)}); "
            f"run the graph step with this method (graphimpute graph --methods {method}) or "
            f"graphimpute.graphs.build(adata, {spec.kind!r}, {spec.key!r}, {dict(spec.params)})")
    graph = sp.csr_matrix(adata.obsp[spec.key])
    if graph.shape != (adata.n_obs, adata.n_obs):
        raise GraphImputeError(f"adata.obsp[{spec.key!r}] is {graph.shape}, not cells x cells")
    return graph


def own_pcs(values: np.ndarray, *, n_pcs: int, seed: int) -> np.ndarray:
    """The first ``n_pcs`` principal components (float32) of ``values``: centred, not scaled per gene
    (sklearn's PCA, as SCGNN's and GNNImpute's official codes)."""
    from sklearn.decomposition import PCA

    n_comps = int(min(n_pcs, values.shape[0] - 1, values.shape[1] - 1))
    return PCA(n_components=n_comps, svd_solver="randomized", random_state=seed).fit_transform(values).astype(np.float32)


def own_knn_graph(values: np.ndarray, *, n_neighbors: int, n_pcs: int, seed: int,
                  pcs: np.ndarray | None = None) -> tuple[sp.csr_matrix, dict]:
    """A symmetrised Euclidean kNN cell graph on the first ``n_pcs`` principal components of
    ``values``, and its parameters for the provenance.

    For methods whose papers build their graph from their own masked training input (SCGNN,
    GNNImpute): the graph then carries nothing of the entries the method hides from itself, so early
    stopping on them stays honest. PCA is centred, not scaled per gene (sklearn's PCA, as both
    official codes); the kNN search is graphs.knn_graph's (exact up to graphs.ANN_MIN_CELLS cells,
    pynndescent above; ``algorithm`` in the record). ``pcs``: ``own_pcs(values)`` when the caller
    already has them."""
    from anndata import AnnData

    from graphimpute import graphs

    pcs = own_pcs(values, n_pcs=n_pcs, seed=seed) if pcs is None else pcs
    n_comps = pcs.shape[1]
    holder = AnnData(obsm={"X_own": pcs}, shape=(values.shape[0], 0))
    graphs.knn_graph(holder, n_neighbors=n_neighbors, n_pcs=n_comps, use_rep="X_own", symmetrise=True,
                     key_added="own", seed=seed)
    record = {"built_from": "the method's masked training input", "kind": "knn", "n_pcs": n_comps,
              "n_neighbors": n_neighbors, "symmetrise": True, "n_edges": int(holder.obsp["own"].nnz),
              "algorithm": holder.uns["own"]["params"]["algorithm"]}
    return sp.csr_matrix(holder.obsp["own"]), record


def no_depth(library, method: str) -> np.ndarray:
    """Cells whose library over the genes a method's size factors use is empty (logged).

    ``normalise.size_factors`` gives them 1 so that divisions stay finite; their depth is 0, so the
    method returns 0 for them instead of scaling a prediction by that 1 (which would invent a cell of
    median depth)."""
    empty = np.asarray(library).ravel() <= 0
    if empty.any():
        log.warning("%s: %d cell(s) have no counts in the genes used: their output is 0 (no depth to scale "
                    "a prediction to)", method, int(empty.sum()))
    return empty


def split_cells(n_cells: int, fractions: tuple[float, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint random cell index sets of the given fractions (the last takes the rounding); each is
    sorted so that indexing stays cache-friendly."""
    if any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise GraphImputeError(f"cell fractions must be positive and sum to at most 1, got {fractions}")
    order = rng.permutation(n_cells)
    sizes = [int(round(f * n_cells)) for f in fractions]
    if min(sizes) < 1:
        raise GraphImputeError(f"{n_cells} cells are too few to split into fractions {fractions}")
    bounds = np.cumsum([0, *sizes])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def run_fingerprint(adata, method: str, params: dict, ctx: RunContext, *, reads: tuple[str, ...] = ()) -> dict | None:
    """What this run trains on, for its checkpoints (``train.run_fingerprint``): the hash of
    ``adata.X``, the cell and gene names and the inputs named in ``reads`` (keys of ``obsp``, ``varp``
    or ``obs`` the method uses: its graphs, size factors), plus method, parameters and seed.

    None when the run neither writes nor resumes checkpoints, so that the hash costs nothing then."""
    if ctx.workdir is None or not (ctx.checkpoint_every or ctx.resume):
        return None
    extra = {}
    for key in reads:
        for store in (adata.obsp, adata.varp):
            if key in store:
                extra[key] = store[key]
        if key in adata.obs:
            extra[key] = adata.obs[key].to_numpy()
    from graphimpute import train

    data = train.input_fingerprint(adata.X, adata.obs_names, adata.var_names, extra)
    return train.run_fingerprint(data=data, method=method, params=params, seed=ctx.seed)


def checkpoint_dir(ctx: RunContext, method: str, part: str | None = None) -> Path | None:
    """The one place that decides where a method's checkpoints go: ``<workdir>/<method>[/<part>]``
    (``part``: one of several models of one run, e.g. cnnImpute's ``cluster0_block1``), so that
    methods sharing a workdir never read or overwrite each other's checkpoint."""
    if ctx.workdir is None:
        return None
    path = Path(ctx.workdir) / method
    return path / part if part else path


def train_config(ctx: RunContext, name: str, fingerprint: dict | None, *, part: str | None = None,
                 **settings) -> train.TrainConfig:
    """A TrainConfig carrying the run's checkpoint, resume and progress settings: checkpoints under
    ``checkpoint_dir(ctx, name, part)``, stamped with ``fingerprint`` (``run_fingerprint``), which a
    resume must match. Every method that trains builds its TrainConfig here."""
    from graphimpute import train

    desc = settings.pop("desc", f"{name} {part}" if part else name)
    return train.TrainConfig(checkpoint_every=ctx.checkpoint_every, checkpoint_dir=checkpoint_dir(ctx, name, part),
                             resume=ctx.resume, progress=ctx.progress, desc=desc, fingerprint=fingerprint,
                             **settings)
