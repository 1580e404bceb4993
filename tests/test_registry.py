"""The method registry: lookup, parameter overrides, and the contract every method keeps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphimpute import methods, normalise
from graphimpute.errors import GraphImputeError
from graphimpute.methods import Method, RunContext
from graphimpute.pipeline import build_graph


def test_unknown_method_lists_choices():
    with pytest.raises(GraphImputeError, match="unknown method 'magik'.*none"):
        methods.get("magik")


def test_parse_methods_all_and_duplicates():
    assert methods.parse_methods("all") == list(methods.names())
    assert methods.parse_methods("none, none") == ["none"]
    with pytest.raises(GraphImputeError):
        methods.parse_methods(" , ")


def test_resolve_params_casts_and_rejects_unknown_keys():
    m = Method(name="x", impute=lambda *a: None, summary="", citation="",
               defaults={"lr": 1e-3, "epochs": 10, "variational": False, "dims": (64, 32)})
    got = methods.resolve_params(m, {"lr": "0.5", "epochs": "3", "variational": "true", "dims": "8,4"})
    assert got == {"lr": 0.5, "epochs": 3, "variational": True, "dims": (8, 4)}
    with pytest.raises(GraphImputeError, match="no parameter 'epoch'.*epochs"):
        methods.resolve_params(m, {"epoch": 3})
    with pytest.raises(GraphImputeError, match="expected int"):
        methods.resolve_params(m, {"epochs": "many"})


def test_every_method_has_a_complete_entry():
    for name, m in methods.available().items():
        assert m.name == name and m.summary and m.citation
        assert m.kind in {"method", "baseline"}


@pytest.mark.parametrize("name", [n for n in methods.names() if not methods.get(n).trains])
def test_untrained_methods_keep_the_contract(counts, name):
    for package in methods.get(name).requires:  # optional extras (MAGIC, ALRA) may be absent
        pytest.importorskip(package)
    adata = normalise.normalise(counts, n_top_genes=None)
    for spec in methods.get(name).graphs:  # the graphs the method declares, as the pipeline builds them
        build_graph(adata, spec)
    before = adata.X.copy()
    result = methods.get(name).impute(adata, methods.resolve_params(methods.get(name)), RunContext())
    assert result.imputed.shape == adata.shape and result.imputed.dtype == np.float32
    assert np.isfinite(result.imputed).all() and result.imputed.min() >= 0
    assert (adata.X != before).nnz == 0 and sp.issparse(adata.X)


def test_none_returns_the_observed_counts(counts):
    result = methods.get("none").impute(counts, {}, RunContext())
    np.testing.assert_array_equal(result.imputed, counts.X.toarray())
