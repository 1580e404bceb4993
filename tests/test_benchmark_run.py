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
    options = pipeline.RunOptions(benchmark=True, label_key="cell_type", mask_scheme="low-count",
                                  evaluate={"umap": False, "kmeans_seeds": 1})
    paths = pipeline.run(bundled_path, outdir, options)
    masked = ad.read_h5ad(paths["mask"])
    assert masked.uns["graphimpute"]["mask"]["scheme"] == "low-count"
    summary = pd.read_csv(outdir / "evaluate" / "pbmc3k_small.summary.tsv", sep="\t").set_index("method")
    assert summary.loc["none", "rmse"] > 0 and math.isnan(summary.loc["none", "pearson_r"])
    assert 0 < summary.loc["none", "kmeans_ari"] <= 1 and summary.loc["none", "device"] == "cpu"
    long = pd.read_csv(outdir / "evaluate" / "pbmc3k_small.metrics.tsv", sep="\t")
    assert list(long.columns) == ["sample", "method", "metric", "value"]
    assert (outdir / "multiqc" / "custom_content" / "graphimpute_recovery_mqc.tsv").exists()
    if report.multiqc_available():
        assert paths["report"].exists()
    # up to date: evaluate is skipped (its summary.json keeps the record), report runs again
    stamp = paths["evaluate"].stat().st_mtime_ns
    pipeline.run(bundled_path, outdir, options)
    assert paths["evaluate"].stat().st_mtime_ns == stamp
    assert json.loads(paths["evaluate"].read_text())["steps"]["evaluate"]


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
