"""The method registry: lookup, parameter overrides, and the contract every method keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from graphimpute import methods, normalise
from graphimpute.errors import GraphImputeError
from graphimpute.methods import Method, RunContext
from graphimpute.runner import build_graph, impute_adata
from graphimpute.runner import nondefault_params as runner_nondefault


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


def test_a_run_records_what_it_changed_from_the_papers_defaults(counts):
    adata = normalise.normalise(counts, n_top_genes=None)
    entry = methods.get("scgnn")
    changed = methods.resolve_params(entry, {"max_epochs": "3", "n_neighbors": str(entry.defaults["n_neighbors"])})
    assert runner_nondefault(entry, changed) == {"max_epochs": 3}  # a default given again is no change
    _, provenance = impute_adata(adata, methods.get("gene_mean"), {}, RunContext())
    assert provenance["nondefault_params"] == {} and provenance["method"] == "gene_mean"


def test_none_returns_the_observed_counts(counts):
    result = methods.get("none").impute(counts, {}, RunContext())
    np.testing.assert_array_equal(result.imputed, counts.X.toarray())


def _numeric(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


@pytest.mark.parametrize("name", methods.names())
def test_every_numeric_parameter_has_a_range_its_default_keeps(name):
    m = methods.get(name)
    numeric = {k for k, v in m.defaults.items() if _numeric(v)}
    assert numeric == set(m.ranges), f"{name}: parameters without a range: {sorted(numeric - set(m.ranges))}"
    assert methods.resolve_params(m, {k: v for k, v in m.defaults.items() if k in numeric}) == dict(m.defaults)


@pytest.mark.parametrize("name", [n for n in methods.names() if "max_epochs" in methods.get(n).defaults])
def test_epochs_below_one_are_a_clear_parameter_error(name):
    m = methods.get(name)
    bad = ["-3"] if name == "scvi" else ["0", "-3"]  # scVI's 0 means scvi-tools' own rule
    for value in bad:
        with pytest.raises(GraphImputeError, match=rf"parameter max_epochs={value} must be >= "):
            methods.resolve_params(m, {"max_epochs": value})
    with pytest.raises(GraphImputeError, match="parameter lr=0.0 must be > 0"):
        methods.resolve_params(m, {"lr": "0"})


@pytest.mark.parametrize("key, value", [("lr", "inf"), ("lr", "nan"), ("max_epochs", str(10**30)), ("lr", float("inf")),
                                        ("max_epochs", 10**30)])
def test_values_no_range_can_catch_are_refused(key, value):
    """inf passes ``> 0``; an integer above 2**63 passes ``>= 1`` and then fails to be written to HDF5."""
    with pytest.raises(GraphImputeError, match=rf"parameter {key}=.* must be a finite number|{key}=nan.* must be"):
        methods.resolve_params(methods.get("scgnn"), {key: value})


def test_fractions_and_list_values_are_checked():
    with pytest.raises(GraphImputeError, match=r"val_fraction=1.0 must be in \(0, 1\)"):
        methods.resolve_params(methods.get("gnnimpute"), {"val_fraction": "1"})
    with pytest.raises(GraphImputeError, match=r"adp_f_cuts=\(0.1, 1.5\) must be in \(0, 1\) \(each value\)"):
        methods.resolve_params(methods.get("cnnimpute"), {"adp_f_cuts": "0.1,1.5"})
    with pytest.raises(GraphImputeError, match="must be >= 1"):
        methods.resolve_params(methods.get("dca"), {"hidden": "64,0,64"})
    assert methods.resolve_params(methods.get("scvgae"), {"min_cell_fraction": "0"})["min_cell_fraction"] == 0.0


def test_cli_refuses_zero_epochs_with_one_line_and_writes_nothing(tmp_path, bundled_path):
    from click.testing import CliRunner

    from graphimpute.cli import EXIT_USER_ERROR, main

    out = tmp_path / "o.h5ad"
    result = CliRunner().invoke(main, ["impute", str(bundled_path), "-o", str(out), "--method", "scgnn",
                                       "--param", "max_epochs=0", "--quiet"])
    assert result.exit_code == EXIT_USER_ERROR
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [
        "Error: method 'scgnn': parameter max_epochs=0 must be >= 1"]
    assert not out.exists()


def test_every_cited_method_is_in_citations_md():
    """nf-core's habit: CITATIONS.md lists every tool and method a run may use."""
    text = (Path(__file__).resolve().parents[1] / "CITATIONS.md").read_text()
    missing = [name for name, m in methods.available().items()
               if m.citation != "-" and m.citation.split(",")[0].split()[0] not in text]
    assert missing == []


@pytest.mark.parametrize("name, package, distribution", [("magic", "magic", "magic-impute"), ("alra", "halra", "halra"),
                                                         ("scvi", "scvi", "scvi-tools")])
def test_a_baselines_own_library_version_is_recorded(name, package, distribution):
    pytest.importorskip(package)
    from graphimpute.runner import software_versions

    versions = software_versions(methods.get(name))
    assert versions[distribution] not in ("", "not installed") and "scanpy" in versions
