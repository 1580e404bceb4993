"""The baselines (kind="baseline"): the output contract, determinism, DCA's training, optional packages."""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from conftest import synthetic_counts
from graphimpute import graphs, methods, normalise
from graphimpute.errors import DeviceError, GraphImputeError
from graphimpute.methods import RunContext
from graphimpute.methods._baseline import to_input_library

BASELINES = [name for name in methods.names() if methods.get(name).kind == "baseline"]
FEW_EPOCHS = {"max_epochs": "2"}  # the contract, not the fit, is under test here


def run(name: str, adata, *, seed: int = 0, **overrides):
    method = methods.get(name)
    for package in method.requires:
        pytest.importorskip(package)
    params = methods.resolve_params(method, {**(FEW_EPOCHS if method.trains else {}), **overrides})
    return method.impute(adata, params, RunContext(seed=seed, device="cpu", progress=False))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These models are tiny: one thread is fastest, and two threads on a busy 2-core machine spin-wait
    for each other (measured here: 0.13 s per forward pass instead of 0.6 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def adata():
    """Counts with every graph a baseline declares, as the GRAPH step leaves them."""
    data = normalise.normalise(synthetic_counts(n_cells=200, n_genes=100), n_top_genes=None)
    for name in BASELINES:
        for spec in methods.get(name).graphs:
            graphs.build(data, spec.kind, spec.key, dict(spec.params))
    return data


def test_every_baseline_is_registered():
    assert {"none", "knn_average", "magic", "alra", "dca", "scvi"} <= set(BASELINES)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_contract(name, adata):
    before = adata.copy()
    first = run(name, adata)
    imputed = first.imputed
    assert imputed.shape == adata.shape and imputed.dtype == np.float32
    assert np.all(np.isfinite(imputed)) and imputed.min() >= 0
    # the shared policy: each cell's total is its observed library
    library = np.asarray(adata.X.sum(axis=1)).ravel()
    np.testing.assert_allclose(imputed.sum(axis=1), library, rtol=1e-4)
    # the input is untouched
    assert (adata.X != before.X).nnz == 0 and adata.X.dtype == before.X.dtype
    assert list(adata.layers) == list(before.layers) and list(adata.obsm) == list(before.obsm)
    # same seed, same output
    np.testing.assert_array_equal(run(name, adata).imputed, imputed)
    if name != "none":  # an imputation method fills some of the zeros
        zeros = adata.X.toarray() == 0
        assert (imputed[zeros] > 0).mean() > 0.05


def test_rescaling_policy_keeps_empty_rows_empty():
    expected = np.array([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]])
    out = to_input_library(expected, np.array([8.0, 5.0, 0.0]))
    np.testing.assert_allclose(out, [[2.0, 6.0], [0.0, 0.0], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_knn_average_is_the_mean_of_the_neighbours_normalised_counts():
    """Three cells on a path graph 0-1-2, cell 3 alone; size factors 1, 2, 1, 2 (median library 4)."""
    counts = np.array([[2.0, 2.0], [8.0, 0.0], [0.0, 4.0], [3.0, 5.0]], dtype=np.float32)
    data = ad.AnnData(X=sp.csr_matrix(counts))
    data.obsp["knn5"] = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
                                                dtype=np.float32))
    imputed = run("knn_average", data).imputed
    # cell 0 sees cell 1 only: (4, 0) per size factor, rescaled to its library 4
    # cell 1 sees cells 0 and 2: mean of (2, 2) and (0, 4) = (1, 3), rescaled to 8; cell 2 sees cell 1
    # cell 3 has no neighbour: keeps its counts
    np.testing.assert_allclose(imputed, [[4, 0], [2, 6], [4, 0], [3, 5]], rtol=1e-6)


def test_knn_average_needs_its_graph():
    with pytest.raises(GraphImputeError, match="knn5"):
        run("knn_average", synthetic_counts(n_cells=20, n_genes=10))


def test_dca_training_lowers_the_zinb_loss(adata):
    history = run("dca", adata, max_epochs="8", patience="100").history
    losses = [epoch["train_loss"] for epoch in history["epochs"]]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert "val_zinb_nll" in history["epochs"][0] and history["best_epoch"] is not None


def test_dca_seed_changes_the_fit(adata):
    assert not np.array_equal(run("dca", adata, seed=0).imputed, run("dca", adata, seed=1).imputed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_dca_refuses_a_missing_cuda(adata):
    method = methods.get("dca")
    with pytest.raises(DeviceError):
        method.impute(adata, methods.resolve_params(method), RunContext(device="cuda", progress=False))


def test_alra_rank_can_be_given(adata):
    result = run("alra", adata, rank="3")
    assert result.info["rank"] == 3


@pytest.mark.parametrize("name, package", [("scvi", "scvi"), ("magic", "magic"), ("alra", "halra")])
def test_missing_optional_package_is_a_clear_error(name, package, adata, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # the import now fails as if it were not installed
    method = methods.get(name)
    assert package in method.missing() and not method.is_available
    with pytest.raises(GraphImputeError, match=rf"{name}.*{package}.*install"):
        method.impute(adata, methods.resolve_params(method), RunContext(progress=False))


def test_core_methods_need_no_optional_package():
    assert methods.get("none").is_available and methods.get("dca").is_available
