"""Small pieces the neural methods share: reading a declared graph, splitting cells, a training
configuration from the run context. Not a method (not in the registry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from graphimpute.errors import GraphImputeError
from graphimpute.methods._base import GraphSpec, RunContext
from graphimpute.train import TrainConfig


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


def train_config(ctx: RunContext, name: str, **settings) -> TrainConfig:
    """A TrainConfig carrying the run's checkpoint, resume and progress settings; checkpoints go to
    ``<workdir>/<method name>`` so that methods sharing a workdir do not overwrite each other."""
    checkpoint_dir = Path(ctx.workdir) / name if ctx.workdir is not None else None
    return TrainConfig(checkpoint_every=ctx.checkpoint_every, checkpoint_dir=checkpoint_dir, resume=ctx.resume,
                       progress=ctx.progress, desc=name, **settings)
