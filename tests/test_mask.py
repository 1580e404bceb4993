"""MASK: what is hidden, that the truth never reaches a method, determinism."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from graphimpute import _keys
from graphimpute.errors import GraphImputeError
from graphimpute.mask import LIBRARY_MASKED, LIBRARY_UNMASKED, mask


def _counts(n_cells=40, n_genes=60, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.gamma(0.8, 3.0, size=n_genes) * rng.uniform(0.5, 2.0, size=(n_cells, 1))
    return rng.poisson(means).astype(np.float32)


def _adata(x, *, extra_genes_total=None):
    """An AnnData as NORMALISE leaves it: QC columns, size factor, lognorm layer, an HVG column."""
    x = sp.csr_matrix(x, dtype=np.float32)
    lib = np.asarray(x.sum(axis=1)).ravel() + (0 if extra_genes_total is None else extra_genes_total)
    obs = pd.DataFrame({"cell_type": ["a", "b"] * (x.shape[0] // 2), "total_counts": lib,
                        "n_genes_by_counts": np.diff(x.indptr) + 5, "pct_counts_mt": np.full(x.shape[0], 1.0)},
                       index=[f"c{i}" for i in range(x.shape[0])])
    var = pd.DataFrame({"highly_variable": True, "means": np.asarray(x.mean(axis=0)).ravel(),
                        "n_cells_by_counts": np.diff(x.tocsc().indptr)},
                       index=[f"g{j}" for j in range(x.shape[1])])
    adata = AnnData(X=x, obs=obs, var=var)
    sf = lib / np.median(lib)
    adata.obs[_keys.SIZE_FACTOR] = sf
    lognorm = x.copy()
    lognorm.data = np.log1p(lognorm.data / np.repeat(sf, np.diff(x.indptr))).astype(np.float32)
    adata.layers[_keys.LOGNORM] = lognorm
    adata.layers["counts"] = x.copy()
    adata.obsm[_keys.PCA] = np.ones((x.shape[0], 2), np.float32)
    adata.uns[_keys.UNS] = {"normalise": {"n_top_genes": "all"}}
    return adata


@pytest.mark.parametrize("scheme", ["uniform", "low-count"])
@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_hides_floor_fraction_of_each_cells_nonzeros(scheme, fraction):
    adata = _adata(_counts())
    masked, truth = mask(adata, scheme=scheme, fraction=fraction, seed=3)
    n_before = np.diff(adata.X.indptr)
    n_hidden = np.diff(truth.X.indptr)
    np.testing.assert_array_equal(n_hidden, np.floor(fraction * n_before).astype(int))
    np.testing.assert_array_equal(np.diff(masked.X.indptr), n_before - n_hidden)


@pytest.mark.parametrize("scheme", ["uniform", "low-count"])
def test_hidden_entries_are_zero_in_input_and_hold_the_original_counts(scheme):
    adata = _adata(_counts())
    original = adata.X.toarray()
    masked, truth = mask(adata, scheme=scheme, seed=1)
    x, t = masked.X.toarray(), truth.X.toarray()
    hidden = t > 0
    assert hidden.sum() > 0
    assert not np.any((x > 0) & hidden)  # a masked entry is never also an input non-zero
    np.testing.assert_array_equal(t[hidden], original[hidden])
    np.testing.assert_array_equal(x + t, original)
    np.testing.assert_allclose(truth.obs[LIBRARY_UNMASKED], original.sum(axis=1))
    np.testing.assert_allclose(truth.obs[LIBRARY_MASKED], x.sum(axis=1))


def test_mcv_train_plus_test_is_the_original_and_thins_binomially():
    x = _counts(200, 150, seed=2)
    adata = _adata(x)
    masked, truth = mask(adata, scheme="mcv", fraction=0.1, seed=0)
    train, test = masked.X.toarray(), truth.X.toarray()
    np.testing.assert_array_equal(train + test, x)
    assert np.all(train == np.round(train)) and np.all(test >= 0)
    share = test.sum() / x.sum()
    sd = np.sqrt(0.1 * 0.9 / x.sum())
    assert abs(share - 0.1) < 5 * sd
    assert truth.uns[_keys.UNS]["mask"]["scheme"] == "mcv"


def test_mcv_refuses_non_integer_counts():
    with pytest.raises(GraphImputeError, match="integer"):
        mask(_adata(_counts() + 0.5), scheme="mcv")


@pytest.mark.parametrize("scheme", ["uniform", "low-count", "mcv"])
def test_same_seed_same_mask_other_seed_other_mask(scheme):
    adata = _adata(_counts())
    a, ta = mask(adata, scheme=scheme, seed=7)
    b, tb = mask(adata, scheme=scheme, seed=7)
    c, _ = mask(adata, scheme=scheme, seed=8)
    assert (a.X != b.X).nnz == 0 and (ta.X != tb.X).nnz == 0
    assert (a.X != c.X).nnz > 0


def test_low_count_weighting_prefers_low_counts():
    # every cell: 50 entries of count 1 and 50 of count 100; P(hide) ∝ exp(-count/20) -> ratio e^(99/20) ≈ 141
    x = np.tile(np.r_[np.ones(50), np.full(50, 100.0)], (100, 1)).astype(np.float32)
    share_high = {}
    for scheme in ("low-count", "uniform"):
        _, truth = mask(_adata(x), scheme=scheme, fraction=0.1, seed=0)
        share_high[scheme] = float(np.mean(truth.X.data == 100))
    assert share_high["low-count"] < 0.03
    assert 0.35 < share_high["uniform"] < 0.65


def test_masked_file_has_no_trace_of_the_hidden_values(tmp_path):
    """Two inputs that differ only at the hidden entries must give identical masked files."""
    import anndata as ad

    x = _counts()
    adata = _adata(x, extra_genes_total=100)
    _, truth = mask(adata, scheme="uniform", seed=5)  # uniform: which entries are hidden ignores their values
    hidden = truth.X.toarray() > 0
    x_other = x.copy()
    x_other[hidden] += 17  # other hidden values
    written = []
    for i, data in enumerate((x, x_other)):
        masked, _ = mask(_adata(data, extra_genes_total=100), scheme="uniform", seed=5)
        masked.write_h5ad(tmp_path / f"m{i}.h5ad")
        written.append(ad.read_h5ad(tmp_path / f"m{i}.h5ad"))
    a, b = written
    assert (a.X != b.X).nnz == 0
    assert set(a.layers) == set(b.layers) == {_keys.LOGNORM}
    for key in a.layers:
        np.testing.assert_array_equal(a.layers[key].toarray(), b.layers[key].toarray())
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert repr(a.uns) == repr(b.uns)
    assert len(a.obsm) == 0  # the PCA of the unmasked data is gone


def test_size_factor_and_lognorm_follow_the_masked_counts():
    x = _counts()
    adata = _adata(x, extra_genes_total=100)
    masked, truth = mask(adata, scheme="low-count", seed=2)
    hidden_sum = np.asarray(truth.X.sum(axis=1)).ravel()
    library = x.sum(axis=1) + 100 - hidden_sum  # all QC'd genes, less what was hidden
    np.testing.assert_allclose(masked.obs["total_counts"], library)
    np.testing.assert_allclose(masked.obs[_keys.SIZE_FACTOR], library / np.median(library), rtol=1e-6)
    expected = np.log1p(masked.X.toarray() / masked.obs[_keys.SIZE_FACTOR].to_numpy()[:, None])
    np.testing.assert_allclose(masked.layers[_keys.LOGNORM].toarray(), expected, rtol=1e-5)
    assert "pct_counts_mt" not in masked.obs and "means" not in masked.var
    np.testing.assert_array_equal(masked.var["n_cells_by_counts"], np.diff(masked.X.tocsc().indptr))


def test_input_untouched_and_scheme_recorded():
    adata = _adata(_counts())
    before = adata.X.copy()
    masked, truth = mask(adata, scheme="low-count", fraction=0.2, seed=4)
    assert (adata.X != before).nnz == 0 and _keys.PCA in adata.obsm
    record = masked.uns[_keys.UNS]["mask"]
    assert record["scheme"] == "low-count" and record["fraction"] == 0.2 and record["seed"] == 4
    assert record["low_count_scale"] == 20.0
    assert "n_hidden_entries" not in record and truth.uns[_keys.UNS]["mask"]["n_hidden_entries"] == truth.X.nnz
    assert masked.uns[_keys.UNS]["normalise"] == {"n_top_genes": "all"}


@pytest.mark.parametrize("kwargs", [{"scheme": "random"}, {"fraction": 0.0}, {"fraction": 1.0}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(GraphImputeError):
        mask(_adata(_counts()), **kwargs)
