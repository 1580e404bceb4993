"""Benchmark mode end to end: `graphimpute run --benchmark`, and mask/evaluate/report as subcommands."""

from __future__ import annotations

import json
import math

import anndata as ad
import numpy as np
import pandas as pd
from click.testing import CliRunner

from graphimpute import pipeline, report
from graphimpute.cli import EXIT_USER_ERROR, main


def run_cli(*args):
    return CliRunner().invoke(main, [*map(str, args), "--quiet"], catch_exceptions=False)


def test_run_benchmark_masks_evaluates_and_reports(tmp_path, bundled_path):
    outdir = tmp_path / "bench"
    options = pipeline.RunOptions(methods=["none", "gene_mean"], benchmark=True, label_key="cell_type",
                                  mask_scheme="low-count", mask_seeds=2, evaluate={"umap": False, "kmeans_seeds": 1})
    paths = pipeline.run(bundled_path, outdir, options)
    for seed in (0, 1):  # one masked copy, graph and imputation per mask seed
        masked = ad.read_h5ad(paths[f"mask.seed{seed}"])
        assert masked.uns["graphimpute"]["mask"]["scheme"] == "low-count"
        assert masked.uns["graphimpute"]["mask"]["seed"] == seed
        assert paths[f"impute.gene_mean.seed{seed}"].name == f"pbmc3k_small.seed{seed}.gene_mean.h5ad"
    summary = pd.read_csv(outdir / "evaluate" / "pbmc3k_small.summary.tsv", sep="\t").set_index("method")
    # neither can tell cells apart: 0 within every gene, and a coin toss between hidden and true zeros
    assert (summary["hidden_gene_r"] == 0).all() and np.allclose(summary["hidden_zero_auc"], 0.5)
    assert (summary["n_seeds"] == 2).all() and summary.loc["none", "rmse_sd"] > 0
    assert 0 < summary.loc["none", "kmeans_ari"] <= 1 and summary.loc["none", "device"] == "cpu"
    long = pd.read_csv(outdir / "evaluate" / "pbmc3k_small.metrics.tsv", sep="\t")
    assert list(long.columns) == ["sample", "method", "seed", "metric", "value"] and set(long["seed"]) == {0, 1}
    verdict = json.loads(paths["evaluate"].read_text())["verdict"]
    assert verdict["metric"] == "hidden_gene_r" and verdict["n_seeds"] == 2
    assert (outdir / "multiqc" / "custom_content" / "graphimpute_ranking_mqc.tsv").exists()
    if report.multiqc_available():
        assert paths["report"].exists()
    # up to date: evaluate is skipped (its summary.json keeps the record), report runs again
    stamp = paths["evaluate"].stat().st_mtime_ns
    pipeline.run(bundled_path, outdir, options)
    assert paths["evaluate"].stat().st_mtime_ns == stamp
    assert json.loads(paths["evaluate"].read_text())["steps"]["evaluate"]


def test_run_ends_with_the_verdict_and_names_the_report(tmp_path, bundled_path):
    outdir = tmp_path / "bench"
    result = run_cli("run", "--input", bundled_path, "--outdir", outdir, "--methods", "none,gene_mean,knn_average",
                     "--benchmark", "--mask-seeds", "2", "--n-top-genes", "500")
    assert result.exit_code == 0, result.output
    log = (outdir / "pipeline_info" / "graphimpute.log").read_text().strip().splitlines()
    assert any("verdict: Best by mcv_poisson" in line for line in log)
    assert any("Lose to the cell-agnostic gene_mean" in line for line in log)
    assert log[-1].endswith(f"report: {outdir / 'multiqc' / 'multiqc_report.html'}") or \
        not report.multiqc_available()
    ranking = pd.read_csv(outdir / "evaluate" / "pbmc3k_small.ranking.tsv", sep="\t")
    assert set(ranking["method"]) == {"none", "gene_mean", "knn_average"} and ranking["metric"].eq("mcv_poisson").all()
    assert list(ranking["rank"]) == [1, 2, 3] and ranking.iloc[0]["vs_best"] == "best"


def test_methods_auto_picks_by_mcv_and_records_the_choice(tmp_path, bundled_path):
    outdir = tmp_path / "auto"
    result = run_cli("run", "--input", bundled_path, "--outdir", outdir, "--methods", "auto",
                     "--auto-candidates", "none,gene_mean,knn_average", "--n-top-genes", "500")
    assert result.exit_code == 0, result.output
    out = ad.read_h5ad(outdir / "impute" / "pbmc3k_small.auto.h5ad")
    record = out.uns["graphimpute"]["impute"]
    selection = record["selection"]
    ranking = pd.DataFrame({k: list(v) for k, v in selection["ranking"].items()})
    assert record["method"] == selection["winner"] == ranking.iloc[0]["method"]
    assert set(ranking["method"]) == {"none", "gene_mean", "knn_average"} and (ranking["n_seeds"] == 2).all()
    means = ranking.set_index("method")["mean"]
    assert means[selection["winner"]] == means.min()  # the lowest MCV Poisson loss wins
    again = pipeline.impute_step  # the winner's imputation is what that method gives on the whole sample
    direct = tmp_path / "direct.h5ad"
    again(outdir / "graph" / "pbmc3k_small.h5ad", direct, method=str(record["method"]))
    np.testing.assert_allclose(ad.read_h5ad(direct).layers["imputed"], out.layers["imputed"], rtol=1e-6)
    summary = json.loads((outdir / "evaluate" / "pbmc3k_small.summary.json").read_text())
    assert summary["settings"]["winner"] == record["method"] and summary["verdict"]["metric"] == "mcv_poisson"
    assert run_cli("run", "--input", bundled_path, "--outdir", outdir, "--methods", "auto,none").exit_code == \
        EXIT_USER_ERROR


def test_mask_evaluate_report_subcommands(tmp_path, bundled_path):
    qc, norm, masked, truth, imputed = (tmp_path / f"{s}.h5ad" for s in ("qc", "norm", "masked", "truth", "s1.none"))
    assert run_cli("qc", bundled_path, "-o", qc, "--label-key", "cell_type").exit_code == 0
    assert run_cli("normalise", qc, "-o", norm, "--n-top-genes", "500").exit_code == 0
    result = run_cli("mask", norm, "-o", masked, "--truth", truth, "--scheme", "mcv", "--seed", "3")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal((ad.read_h5ad(masked).X + ad.read_h5ad(truth).X).toarray(),
                                  ad.read_h5ad(norm).X.toarray())
    assert run_cli("impute", masked, "-o", imputed, "--method", "none").exit_code == 0
    result = run_cli("evaluate", imputed, "-o", tmp_path / "eval", "--truth", truth, "--label-key", "cell_type",
                     "--sample", "s1", "--no-umap", "--kmeans-seeds", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "s1.summary.json").read_text())
    assert summary["methods"]["none"]["mcv_poisson"] > 0 and summary["settings"]["mask"]["scheme"] == "mcv"
    result = run_cli("report", tmp_path / "eval", "-o", tmp_path / "report", "--no-render")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "custom_content" / "graphimpute_mcv_mqc.tsv").exists()
    assert not (tmp_path / "report" / "multiqc_report.html").exists()
    result = CliRunner().invoke(main, ["evaluate", str(truth), "-o", str(tmp_path / "e2"), "--truth", str(truth)])
    assert result.exit_code == EXIT_USER_ERROR and "not a method output" in result.output
