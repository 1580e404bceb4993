"""REPORT: the MultiQC custom content files it writes, and the HTML render when MultiQC is installed."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from graphimpute import report
from graphimpute.errors import GraphImputeError
from graphimpute.evaluate import Evaluation


def _evaluation(sample: str) -> Evaluation:
    methods = ["none", "scgnn"]
    values = {"none": {"rmse": 2.5, "pearson_r": float("nan"), "kmeans_ari": 0.5, "wall_time_s": 0.1},
              "scgnn": {"rmse": 1.25, "pearson_r": 0.75, "kmeans_ari": 0.625, "wall_time_s": 12.0}}
    metrics = pd.DataFrame([{"sample": sample, "method": m, "metric": k, "value": v}
                            for m in methods for k, v in values[m].items()])
    runs = pd.DataFrame([{"sample": sample, "method": m, "device": "cpu", "wall_time_s": values[m]["wall_time_s"],
                          "peak_memory_mb": 100.0, "epochs": 3.0 if m == "scgnn" else float("nan"),
                          "best_epoch": 2.0 if m == "scgnn" else float("nan"), "seed": 0} for m in methods])
    histories = pd.DataFrame([{"sample": sample, "method": "scgnn", "epoch": e, "term": t, "value": v / e}
                              for e in (1, 2, 3) for t, v in (("train_loss", 1e-5), ("val_loss", 2.0), ("train_mse", 0.5))])
    rng = np.random.default_rng(0)
    embeddings = pd.DataFrame([{"sample": sample, "method": m, "cell": f"c{i}", "umap1": rng.normal(),
                                "umap2": rng.normal(), "label": "ab"[i % 2]} for m in methods for i in range(20)])
    return Evaluation(sample=sample, metrics=metrics, runs=runs, histories=histories, embeddings=embeddings,
                      versions={"scgnn": {"torch": "2.13.0"}, "none": {}}, settings={"rescale": "library"})


@pytest.fixture()
def evaluated(tmp_path):
    for sample in ("s1", "s2"):
        _evaluation(sample).write(tmp_path / "evaluate")
    return tmp_path / "evaluate"


def _read_mqc_tsv(path):
    lines = path.read_text().splitlines()
    header = {line[2:].split(":", 1)[0]: json.loads(line[2:].split(":", 1)[1]) for line in lines if line.startswith("#")}
    body = pd.read_csv(path, sep="\t", comment="#", index_col=0)
    return header, body


def test_custom_content_files(evaluated, tmp_path):
    out = tmp_path / "content"
    written = report.write_custom_content(report.load([evaluated]), out)
    names = {p.name for p in written}
    assert names == {"graphimpute_recovery_mqc.tsv", "graphimpute_recovery_bars_mqc.yaml",
                     "graphimpute_clustering_mqc.tsv", "graphimpute_clustering_bars_mqc.yaml",
                     "graphimpute_resources_mqc.tsv", "graphimpute_loss_scgnn_mqc.yaml",
                     "graphimpute_umap_s1_mqc.png", "graphimpute_umap_s2_mqc.png",
                     "graphimpute_mqc_versions.yml", "multiqc_config.yaml"}
    header, table = _read_mqc_tsv(out / "graphimpute_recovery_mqc.tsv")
    assert header["plot_type"] == "table"
    assert header["headers"]["rmse"]["scale"] == "RdYlGn-rev" and header["headers"]["pearson_r"]["scale"] == "RdYlGn"
    assert table.loc["s2 · scgnn", "rmse"] == 1.25 and math.isnan(table.loc["s1 · none", "pearson_r"])
    assert list(table.index) == ["s1 · none", "s1 · scgnn", "s2 · none", "s2 · scgnn"]
    _, resources = _read_mqc_tsv(out / "graphimpute_resources_mqc.tsv")
    assert resources.loc["s1 · scgnn", "wall_time_s"] == 12.0 and resources.loc["s1 · scgnn", "device"] == "cpu"
    assert (out / "graphimpute_umap_s1_mqc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    versions = (out / "graphimpute_mqc_versions.yml").read_text()
    assert '"scgnn":\n  "torch": "2.13.0"' in versions and "graphimpute:" in versions


def test_yaml_files_parse_with_numbers_as_numbers(evaluated, tmp_path):
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "content"
    report.write_custom_content(report.load([evaluated]), out)
    loss = yaml.safe_load((out / "graphimpute_loss_scgnn_mqc.yaml").read_text())
    assert loss["plot_type"] == "linegraph"
    assert [d["name"] for d in loss["pconfig"]["data_labels"]] == ["loss", "mse"]
    curve = loss["data"][0]["s1 train"]
    assert curve[3] == pytest.approx(1e-5 / 3) and isinstance(curve[3], float)  # not the string '3.3e-06'
    assert loss["data"][0]["s2 val"][2] == pytest.approx(1.0)
    bars = yaml.safe_load((out / "graphimpute_recovery_bars_mqc.yaml").read_text())
    rmse, pearson = bars["data"]
    assert rmse["s1 · none"]["rmse"] == 2.5
    assert "s1 · none" not in pearson  # an undefined value draws no bar (rather than a bar at 0)
    config = yaml.safe_load((out / "multiqc_config.yaml").read_text())
    assert config["no_version_check"] is True


def test_report_needs_metrics(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphImputeError, match="no EVALUATE metrics"):
        report.report([tmp_path / "empty"], tmp_path / "out", render_html=False)


@pytest.mark.skipif(not report.multiqc_available(), reason="MultiQC is not installed")
def test_multiqc_renders_one_html_report(evaluated, tmp_path):
    written = report.report([evaluated], tmp_path / "multiqc")
    html = tmp_path / "multiqc" / "multiqc_report.html"
    assert html in written
    text = html.read_text()
    for section in ("graphimpute_recovery", "graphimpute_clustering_bars", "graphimpute_resources",
                    "graphimpute_loss_scgnn", "graphimpute_umap_s1", "software_versions"):
        assert f'id="{section}' in text or f'id="multiqc_{section}' in text, section
