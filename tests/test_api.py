"""The Python API (graphimpute.impute / graphimpute.benchmark) on the bundled data, and docs/api.md's
worked example run exactly as written."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import graphimpute as gi
from graphimpute.errors import GraphImputeError

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
pytestmark = pytest.mark.usefixtures("one_thread")


def checksum(adata, layers=None) -> str:
    """X, the layers (default: every one) and the names, byte for byte."""
    digest = hashlib.sha256()
    for name, x in [("X", adata.X), *((k, adata.layers[k]) for k in sorted(layers or adata.layers))]:
        x = sp.csr_matrix(x)
        digest.update(name.encode())
        for part in (x.data, x.indices, x.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
    digest.update("".join(adata.obs_names).encode() + "".join(adata.var_names).encode())
    return digest.hexdigest()


@pytest.fixture
def small(bundled):
    """The bundled data with its counts also in a layer (X and a user layer to keep intact)."""
    adata = bundled[:, np.asarray((bundled.X > 0).sum(axis=0)).ravel() >= 10].copy()
    adata.layers["counts"] = adata.X.copy()
    return adata


def test_docs_example_runs_as_written(monkeypatch, capsys):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/api.md should hold one worked example"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    adata, table = namespace["adata"], namespace["table"]
    assert {"imputed_scgnn", "imputed_knn_average"} <= set(adata.layers)
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2)
    assert set(table["method"]) == {"scgnn", "none", "gene_mean", "knn_average", "shrink_gene_mean", "shrink_knn"}
    assert "scgnn 10 0" in capsys.readouterr().out


def test_impute_scgnn_writes_a_layer_and_provenance_and_keeps_the_counts(small):
    before = checksum(small)
    assert gi.impute(small, "scgnn", max_epochs=2) is None
    assert checksum(small, ["counts"]) == before  # X and the user's layer unchanged
    out = small.layers["imputed_scgnn"]
    assert out.shape == small.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0
    observed = small.X.toarray()
    assert np.all(out[observed > 0] == observed[observed > 0])  # SCGNN keeps observed non-zeros
    assert (out[observed == 0] > 0).any()  # and fills some zeros
    record = small.uns["graphimpute"]["layers"]["imputed_scgnn"]
    assert record["method"] == "scgnn" and record["params"]["max_epochs"] == 2 and record["seed"] == 0
    assert record["counts"] == "X" and "torch" in record["versions"] and len(record["history"]["epochs"]) >= 1
    assert record["info"]["graph"]["n_neighbors"] == 5  # SCGNN's own graph, built from its masked input


def test_the_graph_a_method_reads_is_added_under_scanpys_keys(small):
    gi.impute(small, "knn_average")
    assert small.obsm["X_pca"].shape == (small.n_obs, 50) and small.varm["PCs"].shape == (small.n_vars, 50)
    ratio = np.asarray(small.uns["pca"]["variance_ratio"])
    assert ratio.shape == (50,) and np.all(np.diff(ratio) <= 1e-7)
    assert small.obsp["knn5"].shape == (small.n_obs, small.n_obs)
    assert small.uns["knn5"]["connectivities_key"] == "knn5"


def test_impute_is_reproducible_and_reads_the_named_layer(small):
    again = small.copy()
    again.X = sp.csr_matrix(np.log1p(again.X.toarray()))  # a normalised X: the counts are in the layer
    gi.impute(small, "knn_average")
    gi.impute(again, "knn_average", layer="counts")
    np.testing.assert_array_equal(small.layers["imputed_knn_average"], again.layers["imputed_knn_average"])
    assert again.uns["graphimpute"]["layers"]["imputed_knn_average"]["counts"] == "layers['counts']"


def test_copy_returns_a_new_object_and_leaves_adata_untouched(small):
    before = checksum(small)
    keys = (set(small.layers), set(small.obsm), set(small.obsp), set(small.uns))
    result = gi.impute(small, "knn_average", copy=True, key_added="knn_avg")
    assert isinstance(result, ad.AnnData) and result is not small
    assert checksum(small) == before
    assert (set(small.layers), set(small.obsm), set(small.obsp), set(small.uns)) == keys
    assert "knn_avg" in result.layers and "knn_avg" in result.uns["graphimpute"]["layers"]
    np.testing.assert_array_equal(result.X.toarray(), small.X.toarray())


def test_several_methods_side_by_side_on_one_object(small):
    gi.impute(small, "gene_mean")
    gi.impute(small, "none")
    assert {"imputed_gene_mean", "imputed_none"} <= set(small.layers)
    assert set(small.uns["graphimpute"]["layers"]) == {"imputed_gene_mean", "imputed_none"}
    np.testing.assert_array_equal(small.layers["imputed_none"], small.X.toarray())
    gi.impute(small, "none")  # its own layer again: replaced, not refused
    assert set(small.uns["graphimpute"]["layers"]) == {"imputed_gene_mean", "imputed_none"}


def test_a_users_pca_is_kept(small):
    small.obsm["X_pca"] = np.zeros((small.n_obs, 5), np.float32)
    gi.impute(small, "knn_average")
    assert small.obsm["X_pca"].shape == (small.n_obs, 5) and not small.obsm["X_pca"].any()
    assert "knn5" in small.obsp


@pytest.mark.parametrize("call, message", [
    (lambda a: gi.impute(a, "magik"), "unknown method 'magik'"),
    (lambda a: gi.impute(a, "scgnn", max_epochs=0), r"max_epochs=0 must be >= 1"),
    (lambda a: gi.impute(a, "scgnn", epochs=5), "has no parameter 'epochs'"),
    (lambda a: gi.impute(a, "none", layer="raw"), r"adata.layers\['raw'\]: no such layer"),
    (lambda a: gi.impute(a, "none", key_added="counts"), r"layers\['counts'\] already exists"),
    (lambda a: gi.benchmark(a, ["magik"]), "unknown method 'magik'"),
    (lambda a: gi.benchmark(a, ["none"], params={"scgnn": {"max_epochs": 2}}), "not among the methods"),
    (lambda a: gi.benchmark(a, ["none"], label_key="celltype"), r"no adata.obs\['celltype'\]"),
    (lambda a: gi.impute(a, "none", seed="abc"), r"seed must be an integer from 0 to 2\*\*32 - 1, got 'abc'"),
    (lambda a: gi.impute(a, "none", seed=-1), "seed must be an integer"),
    (lambda a: gi.benchmark(a, ["none"], seed=2**32), "seed must be an integer"),
    (lambda a: gi.benchmark(a, ["none"], seed=2**32 - 2, mask_seeds=3), "up to seed 4294967296"),
    (lambda a: gi.impute(a.X.toarray(), "none"), "numpy.ndarray, not an AnnData"),
    (lambda a: gi.impute(a[:3].copy(), "none"), "3 cells x .* need at least 10"),
    (lambda a: gi.benchmark(a, ["scgnn"], params={"scgnn": 5}), r"params\['scgnn'\] is int 5"),
])
def test_bad_calls_raise_a_clear_error_before_any_work(small, call, message):
    before = checksum(small)
    with pytest.raises(GraphImputeError, match=message):
        call(small)
    assert checksum(small) == before and "graphimpute" not in small.uns


def test_a_backed_anndata_is_refused(small, tmp_path):
    small.write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    with pytest.raises(GraphImputeError, match=r"backed.*to_memory\(\)"):
        gi.impute(backed, "none")


def test_normalised_counts_are_refused_with_a_hint(small):
    small.X = sp.csr_matrix(np.log1p(small.X.toarray()))
    with pytest.raises(GraphImputeError, match=r"adata.X does not hold raw counts.*layer='counts'"):
        gi.impute(small, "none")


def test_benchmark_returns_a_table_with_the_baselines(small):
    before = checksum(small)
    table = gi.benchmark(small, ["scgnn"], label_key="cell_type", mask_seeds=2, params={"scgnn": {"max_epochs": 2}})
    assert isinstance(table, pd.DataFrame)
    assert set(table["method"]) == {"scgnn", "none", "gene_mean", "knn_average", "shrink_gene_mean", "shrink_knn"}
    assert {"mcv_poisson", "mcv_poisson_sd", "kmeans_ari", "wall_time_s", "n_seeds"} <= set(table.columns)
    assert any(line.startswith("The bar, the best of the floors") for line in table.attrs["verdict"])
    assert any(line.strip().startswith("scgnn: ") for line in table.attrs["verdict"])  # scgnn against the bar
    assert (table["n_seeds"] == 2).all() and table["mcv_poisson"].notna().all()
    assert table["mcv_poisson"].iloc[0] == table["mcv_poisson"].min()  # best first
    assert table.attrs["verdict"][0].startswith("Best by mcv_poisson")
    assert checksum(small) == before and "graphimpute" not in small.uns


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, graphimpute as gi; assert 'torch' not in sys.modules; gi.impute; print('anndata' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(Path(gi.__file__).parents[1]), "PATH": ""}, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    assert "impute" in dir(gi) and "benchmark" in gi.__all__


def test_errors_are_value_errors_as_in_scanpy(small):
    with pytest.raises(ValueError, match="unknown method"):
        gi.impute(small, "magik")


def test_a_scanpy_notebook_runs_on_the_graph_impute_leaves(small):
    """Issue 28's notebook: umap, leiden, paga and diffmap read the kNN record gi.impute writes
    (``distances_key`` must name a real matrix: PAGA crashed on it)."""
    sc = pytest.importorskip("scanpy")
    gi.impute(small, "knn_average")
    record = small.uns["knn5"]
    assert record["distances_key"] in small.obsp and record["connectivities_key"] in small.obsp
    distances = small.obsp[record["distances_key"]]
    assert distances.nnz == small.n_obs * 5 and (distances.data > 0).all()
    sc.tl.umap(small, neighbors_key="knn5", random_state=0)
    sc.tl.leiden(small, neighbors_key="knn5", flavor="igraph", n_iterations=2, directed=False)
    sc.tl.paga(small, groups="leiden", neighbors_key="knn5")
    sc.tl.diffmap(small, neighbors_key="knn5")
    n_groups = small.obs["leiden"].nunique()
    assert small.obsm["X_umap"].shape == (small.n_obs, 2) and small.uns["paga"]["connectivities"].shape == (n_groups,) * 2
    assert np.isfinite(small.obsm["X_diffmap"]).all()


@pytest.mark.parametrize("verbosity, shown", [(0, False), (2, True)])
def test_messages_follow_scanpys_verbosity(small, capsys, verbosity, shown):
    sc = pytest.importorskip("scanpy")
    before = sc.settings.verbosity
    sc.settings.verbosity = verbosity
    try:
        gi.impute(small, "none")
    finally:
        sc.settings.verbosity = before
    assert ("wrote adata.layers['imputed_none']" in capsys.readouterr().err) is shown


@pytest.mark.parametrize("function", [gi.impute, gi.benchmark])
def test_numpydoc_documents_every_argument(function):
    import inspect

    doc = inspect.getdoc(function)
    assert "Parameters\n----------" in doc and "Returns\n-------" in doc
    documented = {line.strip().lstrip("*") for line in doc.split("Parameters\n----------")[1].split("Returns")[0]
                  .splitlines() if line and not line.startswith(" ")}
    assert documented == {name for name in inspect.signature(function).parameters}


def test_help_of_impute_lists_every_method_with_its_parameters():
    import inspect

    from graphimpute import methods

    notes = inspect.getdoc(gi.impute).split("Notes\n-----", 1)[1]
    for name, entry in methods.available().items():
        assert f"\n{name} (" in notes, name
        for key, value in entry.defaults.items():
            assert re.search(rf"\n  {key}\s+{re.escape(str(value))}", notes) or isinstance(value, (list, tuple)), (name, key)


def test_graphmcv_interval_layers_sit_beside_the_imputed_layer(small):
    gi.impute(small, "graphmcv", key_added="mcv", interval=0.8, max_epochs=2)
    assert {"mcv", "mcv_lower", "mcv_upper"} <= set(small.layers)
    assert (small.layers["mcv_lower"] <= small.layers["mcv_upper"]).all()
    gi.impute(small, "graphmcv", key_added="mcv", interval=0.8, max_epochs=2)  # its own layers: replaced
    small.layers["mine_lower"] = small.layers["mcv_lower"].copy()
    with pytest.raises(GraphImputeError, match="mine_lower"):
        gi.impute(small, "graphmcv", key_added="mine", interval=0.8, max_epochs=2)
