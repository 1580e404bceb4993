"""`graphimpute run` and the step subcommands, end to end on the bundled data."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest
from click.testing import CliRunner

from graphimpute import methods, pipeline
from graphimpute.cli import EXIT_USER_ERROR, main


def run_cli(*args):
    return CliRunner().invoke(main, [*map(str, args), "--quiet"], catch_exceptions=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, bundled_path):
    outdir = tmp_path_factory.mktemp("run") / "results"
    result = run_cli("run", "--input", bundled_path, "--outdir", outdir, "--label-key", "cell_type")
    assert result.exit_code == 0, result.output
    return outdir


def test_run_lays_out_one_folder_per_step(finished):
    for rel in ("qc/pbmc3k_small.h5ad", "normalise/pbmc3k_small.h5ad", "graph/pbmc3k_small.h5ad",
                "impute/pbmc3k_small.none.h5ad", "pipeline_info/graphimpute.log"):
        assert (finished / rel).exists(), rel
    assert "impute: none done" in (finished / "pipeline_info/graphimpute.log").read_text()


def test_run_outputs_follow_the_data_contract(finished, bundled):
    graph = ad.read_h5ad(finished / "graph/pbmc3k_small.h5ad")
    assert graph.n_vars == 2000 and "X_pca" in graph.obsm and "knn" in graph.obsp
    assert "lognorm" in graph.layers and "size_factor" in graph.obs
    for step in ("qc", "normalise", "graph"):
        assert step in graph.uns["graphimpute"]
    raw = bundled[graph.obs_names, graph.var_names].X.toarray()
    np.testing.assert_array_equal(graph.X.toarray(), raw)  # raw counts survive every step
    # scanpy's keys, so that sc.pl.pca_variance_ratio and sc.tl.umap(neighbors_key="knn") work
    assert graph.varm["PCs"].shape == (2000, 50) and len(graph.uns["pca"]["variance_ratio"]) == 50
    assert graph.uns["knn"]["connectivities_key"] == "knn"
    result = ad.read_h5ad(finished / "impute/pbmc3k_small.none.h5ad")
    assert list(result.obs_names) == list(graph.obs_names) and list(result.var_names) == list(graph.var_names)
    np.testing.assert_array_equal(result.layers["imputed"], raw)  # `none` imputes nothing
    prov = result.uns["graphimpute"]["impute"]
    assert prov["method"] == "none" and prov["seed"] == 0 and "torch" in prov["versions"]
    assert prov["wall_time_s"] >= 0 and prov["peak_memory_mb"] > 0


def test_impute_files_hold_only_what_the_step_made(finished):
    result = ad.read_h5ad(finished / "impute/pbmc3k_small.none.h5ad")
    assert result.X is None  # the counts stay in graph/, which the method read
    assert list(result.layers) == ["imputed"]
    assert len(result.obsp) == len(result.varp) == len(result.obsm) == len(result.varm) == 0
    assert "cell_type" in result.obs and "size_factor" in result.obs  # annotations travel with the layer
    assert {"qc", "normalise", "graph", "impute", "steps"} <= set(result.uns["graphimpute"])
    assert "pca" not in result.uns and "knn" not in result.uns  # records of matrices left in graph/


def test_impute_keeps_the_graphs_it_had_to_build(tmp_path, finished):
    out = tmp_path / "knn_average.h5ad"
    assert run_cli("impute", finished / "graph/pbmc3k_small.h5ad", "-o", out, "--method", "knn_average").exit_code == 0
    result = ad.read_h5ad(out)
    assert list(result.obsp) == ["knn5", "knn5_distances"] and result.uns["knn5"]["connectivities_key"] == "knn5"
    assert "X_pca" not in result.obsm  # the input had the PCA: not repeated


def test_collect_joins_methods_into_one_object(tmp_path, finished):
    graph, impute = finished / "graph/pbmc3k_small.h5ad", finished / "impute"
    other = tmp_path / "gene_mean.h5ad"
    assert run_cli("impute", graph, "-o", other, "--method", "gene_mean").exit_code == 0
    out = tmp_path / "all.h5ad"
    result = run_cli("collect", graph, impute / "pbmc3k_small.none.h5ad", other, "-o", out)
    assert result.exit_code == 0, result.output
    joined, base = ad.read_h5ad(out), ad.read_h5ad(graph)
    np.testing.assert_array_equal(joined.X.toarray(), base.X.toarray())
    assert {"imputed_none", "imputed_gene_mean", "lognorm"} <= set(joined.layers)
    np.testing.assert_array_equal(joined.layers["imputed_gene_mean"], ad.read_h5ad(other).layers["imputed"])
    assert joined.uns["graphimpute"]["layers"]["imputed_gene_mean"]["method"] == "gene_mean"
    # the same method twice, or a file from other cells, is refused and nothing is written
    again = run_cli("collect", graph, other, other, "-o", tmp_path / "twice.h5ad")
    assert again.exit_code == EXIT_USER_ERROR and "second output of method 'gene_mean'" in again.output
    assert not (tmp_path / "twice.h5ad").exists()
    wrong = run_cli("collect", finished / "qc/pbmc3k_small.h5ad", other, "-o", tmp_path / "wrong.h5ad")
    assert wrong.exit_code == EXIT_USER_ERROR and "differ" in wrong.output


def test_rerun_skips_finished_steps_and_force_redoes_them(finished, bundled_path):
    stamps = {p: p.stat().st_mtime_ns for p in finished.rglob("*.h5ad")}
    result = run_cli("run", "--input", bundled_path, "--outdir", finished, "--label-key", "cell_type")
    assert result.exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*.h5ad")} == stamps
    # another option redoes that step and everything after it, not what came before
    result = run_cli("run", "--input", bundled_path, "--outdir", finished, "--label-key", "cell_type",
                     "--n-neighbors", "10")
    assert result.exit_code == 0
    changed = {p.parent.name for p in stamps if p.stat().st_mtime_ns != stamps[p]}
    assert changed == {"graph", "impute"}
    stamps = {p: p.stat().st_mtime_ns for p in finished.rglob("*.h5ad")}
    result = run_cli("run", "--input", bundled_path, "--outdir", finished, "--label-key", "cell_type",
                     "--n-neighbors", "10", "--force")
    assert result.exit_code == 0
    assert all(p.stat().st_mtime_ns != stamps[p] for p in stamps)


def test_steps_one_by_one_match_run(tmp_path, bundled_path, finished):
    qc, norm, graph, imp = (tmp_path / f"{s}.h5ad" for s in ("qc", "norm", "graph", "imp"))
    assert run_cli("qc", bundled_path, "-o", qc, "--label-key", "cell_type").exit_code == 0
    assert run_cli("normalise", qc, "-o", norm).exit_code == 0
    assert run_cli("graph", norm, "-o", graph, "--methods", "none").exit_code == 0
    assert run_cli("impute", graph, "-o", imp, "--method", "none").exit_code == 0
    ours = ad.read_h5ad(imp)
    theirs = ad.read_h5ad(finished / "impute/pbmc3k_small.none.h5ad")
    assert list(ours.var_names) == list(theirs.var_names)
    np.testing.assert_array_equal(ours.layers["imputed"], theirs.layers["imputed"])


def test_benchmark_mask_hides_counts_from_methods(tmp_path, bundled_path):
    outdir = tmp_path / "bench"
    paths = pipeline.run(bundled_path, outdir, pipeline.RunOptions(benchmark=True, mask_scheme="uniform",
                                                                   mask_seeds=1, evaluate={"umap": False}))
    masked = ad.read_h5ad(paths["graph.seed0"])
    truth = ad.read_h5ad(paths["truth.seed0"])
    normalised = ad.read_h5ad(paths["normalise"])
    hidden = truth.X.tocoo()
    assert hidden.nnz > 0
    assert np.all(masked.X.toarray()[hidden.row, hidden.col] == 0)  # never also an input non-zero
    assert np.all(masked.layers["lognorm"].toarray()[hidden.row, hidden.col] == 0)
    np.testing.assert_array_equal((masked.X + truth.X).toarray(), normalised.X.toarray())
    result = ad.read_h5ad(paths["impute.none.seed0"])
    assert np.all(result.layers["imputed"][hidden.row, hidden.col] == 0)
    zeros = truth.layers["held_zeros"].tocoo()  # as many true zeros as hidden entries, per cell
    np.testing.assert_array_equal(np.bincount(zeros.row, minlength=truth.n_obs),
                                  np.bincount(hidden.row, minlength=truth.n_obs))
    assert np.all(normalised.X.toarray()[zeros.row, zeros.col] == 0)


def test_cuda_refused_without_a_gpu(tmp_path, bundled_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = CliRunner().invoke(main, ["run", "-i", str(bundled_path), "-o", str(tmp_path / "o"), "--device", "cuda"])
    assert result.exit_code == EXIT_USER_ERROR
    assert "no CUDA device" in result.output
    assert not (tmp_path / "o" / "qc").exists()


def test_bad_options_are_clear(tmp_path, bundled_path):
    result = CliRunner().invoke(main, ["run", "-i", str(bundled_path), "-o", str(tmp_path / "o"), "--methods", "magik"])
    assert result.exit_code == EXIT_USER_ERROR and "unknown method 'magik'" in result.output
    result = CliRunner().invoke(main, ["run", "-i", str(bundled_path), "-o", str(tmp_path / "o"), "--n-top-genes", "x"])
    assert result.exit_code != 0 and "'all'" in result.output
    result = CliRunner().invoke(main, ["impute", str(bundled_path), "-o", str(tmp_path / "i.h5ad"), "--method", "none",
                                       "--param", "lr=1"])
    assert result.exit_code == EXIT_USER_ERROR and "no parameter 'lr'" in result.output


def test_params_file_keyed_by_method(tmp_path, bundled_path):
    import json

    from graphimpute.cli import _method_params

    per_method = tmp_path / "p.json"
    per_method.write_text(json.dumps({"dca": {"max_epochs": 2}, "scgnn": {"max_epochs": 3}}))
    assert _method_params(["dca", "none"], (), per_method) == {"dca": {"max_epochs": 2}}
    per_method.write_text(json.dumps({"dca": {"max_epoch": 2}}))
    with pytest.raises(Exception, match="no parameter 'max_epoch'"):
        _method_params(["dca"], (), per_method)
    result = CliRunner().invoke(main, ["run", "-i", str(bundled_path), "-o", str(tmp_path / "o"),
                                       "--methods", "none,dca", "--param", "max_epochs=2"])
    assert result.exit_code == EXIT_USER_ERROR and "keyed by method" not in result.output
    assert "--params-file whose keys are method names" in result.output


@pytest.mark.parametrize("command", ["qc", "normalise", "mask", "graph", "impute", "evaluate", "report", "run", "methods"])
def test_every_subcommand_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_methods_name_shows_each_parameter_with_its_default_and_range():
    result = CliRunner().invoke(main, ["methods", "scgnn"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.strip().startswith("max_epochs"))
    assert line.split()[1:] == [str(methods.get("scgnn").defaults["max_epochs"]), ">=", "1"]
    as_json = json.loads(CliRunner().invoke(main, ["methods", "scgnn", "--json"]).output)
    assert as_json["scgnn"]["ranges"]["dropout"] == "in [0, 1)"
    unknown = CliRunner().invoke(main, ["methods", "magik"])
    assert unknown.exit_code == EXIT_USER_ERROR and unknown.output.count("\n") == 1


def test_methods_lists_the_registry():
    result = CliRunner().invoke(main, ["methods", "--json"])
    assert result.exit_code == 0 and '"none"' in result.output


def test_graphmcv_interval_layers_go_with_the_imputed_layer(tmp_path, finished):
    graph = finished / "graph/pbmc3k_small.h5ad"
    out = tmp_path / "graphmcv.h5ad"
    result = run_cli("impute", graph, "-o", out, "--method", "graphmcv", "--param", "interval=0.9", "--param", "max_epochs=3")
    assert result.exit_code == 0, result.output
    imputed = ad.read_h5ad(out)
    assert {"imputed", "imputed_lower", "imputed_upper"} == set(imputed.layers)
    assert (imputed.layers["imputed_lower"] <= imputed.layers["imputed_upper"]).all()
    assert imputed.uns["graphimpute"]["impute"]["info"]["interval"]["level"] == 0.9
    joined = tmp_path / "all.h5ad"
    assert run_cli("collect", graph, out, "-o", joined).exit_code == 0
    layers = ad.read_h5ad(joined).layers
    assert {"imputed_graphmcv", "imputed_graphmcv_lower", "imputed_graphmcv_upper"} <= set(layers)
    np.testing.assert_array_equal(layers["imputed_graphmcv_upper"], imputed.layers["imputed_upper"])
