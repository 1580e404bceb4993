"""QC and normalisation: known answers on small matrices, dense and sparse alike."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import synthetic_counts
from graphimpute import _keys, normalise, qc


@pytest.mark.parametrize("to_sparse", [False, True])
def test_size_factors_and_lognorm_by_hand(to_sparse):
    counts = np.array([[1.0, 3.0], [2.0, 2.0], [0.0, 8.0]])  # libraries 4, 4, 8; median 4
    x = sp.csr_matrix(counts) if to_sparse else counts
    factors = normalise.size_factors(x)
    np.testing.assert_allclose(factors, [1.0, 1.0, 2.0])
    np.testing.assert_allclose(normalise.lognorm(x, factors).toarray(), np.log1p([[1, 3], [2, 2], [0, 4]]), rtol=1e-6)


def test_normalise_keeps_counts_and_subsets_to_hvg(counts):
    out = normalise.normalise(counts, n_top_genes=20)
    assert out.n_vars == 20 and out.var[_keys.HVG].all()
    np.testing.assert_array_equal(out.X.toarray(), counts[:, out.var_names].X.toarray())
    # size factors use every gene, not only the highly variable ones
    library = np.asarray(counts.X.sum(1)).ravel()
    np.testing.assert_allclose(out.obs[_keys.SIZE_FACTOR], library / np.median(library), rtol=1e-5)
    assert out.uns["graphimpute"]["normalise"]["genes_out"] == 20


def test_normalise_all_genes(counts):
    out = normalise.normalise(counts, n_top_genes=None)
    assert out.n_vars == counts.n_vars and out.uns["graphimpute"]["normalise"]["n_top_genes"] == "all"


def test_qc_records_what_it_removed(counts):
    a = counts.copy()
    x = a.X.toarray()
    x[:3, :] = 0
    x[:3, :5] = 1  # three cells with only 5 genes
    x[3, :2] = 10_000  # one cell dominated by the two MT- genes
    x[:, -1] = 0  # a gene seen nowhere
    a.X = sp.csr_matrix(x)
    out = qc.run_qc(a, min_genes=20, min_cells=1, max_pct_mt=50, n_mads=None)
    record = out.uns["graphimpute"]["qc"]
    assert record["removed"]["cells_min_genes"] == 3
    assert record["removed"]["cells_max_pct_mt"] == 1
    assert record["removed"]["genes_min_cells"] >= 1
    assert record["cells_out"] == a.n_obs - 4 == out.n_obs
    assert record["params"]["mt_prefix"] == "MT-"
    for key in ("total_counts", "n_genes_by_counts", "pct_counts_mt"):
        assert key in out.obs
    np.testing.assert_array_equal(a.X.toarray(), x)  # the input is untouched


def test_qc_mad_outliers_and_mouse_prefix():
    a = synthetic_counts(200, 60, seed=1)
    a.var_names = [n.replace("MT-", "mt-") for n in a.var_names]
    x = a.X.toarray()
    x[0] *= 60  # one cell with ~60x the usual depth
    a.X = sp.csr_matrix(x)
    out = qc.run_qc(a, min_genes=1, min_cells=1, max_pct_mt=None, n_mads=5)
    assert "cell0" not in out.obs_names
    assert out.uns["graphimpute"]["qc"]["removed"]["cells_total_counts_mad"] >= 1
    assert qc.detect_mt_prefix(a.var_names) == "mt-"
    assert qc.detect_mt_prefix(["A", "B"]) == ""


@pytest.mark.parametrize("to_sparse", [False, True])
def test_qc_dense_and_sparse_agree(counts, to_sparse):
    a = counts.copy()
    if not to_sparse:
        a.X = a.X.toarray()
    out = qc.run_qc(a, min_genes=10, min_cells=3)
    ref = qc.run_qc(counts, min_genes=10, min_cells=3)
    assert out.shape == ref.shape
    pd.testing.assert_series_equal(out.obs["total_counts"], ref.obs["total_counts"], check_dtype=False)
