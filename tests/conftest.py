"""Shared fixtures: the bundled dataset, small synthetic counts, and the slow/gpu opt-ins."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "graphimpute" / "data" / "pbmc3k_small.h5ad"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    import torch

    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture
def one_thread():
    """One torch thread for small models: on a shared 2-core machine two threads can run far slower
    (spinning); use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def bundled_path() -> Path:
    return BUNDLED


@pytest.fixture
def bundled() -> ad.AnnData:
    return ad.read_h5ad(BUNDLED)


def synthetic_counts(n_cells: int = 200, n_genes: int = 100, seed: int = 0, n_groups: int = 3) -> ad.AnnData:
    """Negative-binomial counts with ``n_groups`` cell groups that differ in a block of genes each."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_cells)
    base = rng.gamma(2.0, 1.0, n_genes)
    means = np.tile(base, (n_cells, 1))
    block = n_genes // (2 * n_groups)
    for g in range(n_groups):
        means[groups == g, g * block:(g + 1) * block] *= 6
    library = rng.lognormal(0, 0.3, n_cells)[:, None]
    counts = rng.negative_binomial(2, 2 / (2 + means * library)).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type{g}" for g in groups])},
                       index=[f"cell{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"MT-{i}" if i < 2 else f"gene{i}" for i in range(n_genes)])
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)


@pytest.fixture
def counts() -> ad.AnnData:
    return synthetic_counts()
