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
    """Three methods on two mask seeds: scgnn clearly ahead, gene_mean ahead of none on MCV."""
    methods = ["none", "gene_mean", "scgnn", "cnnimpute"]
    poisson = {"none": [0.30, 0.31], "gene_mean": [0.25, 0.26], "scgnn": [0.20, 0.205], "cnnimpute": [0.26, 0.24]}
    metrics = pd.DataFrame([{"sample": sample, "method": m, "seed": seed, "metric": metric, "value": v}
                            for m in methods for seed in (0, 1)
                            for metric, v in (("mcv_poisson", poisson[m][seed]), ("kmeans_ari", 0.5 + 0.1 * seed),
                                              ("wall_time_s", 12.0 if m == "scgnn" else 0.1))])
    runs = pd.DataFrame([{"sample": sample, "method": m, "device": "cpu", "wall_time_s": 12.0 if m == "scgnn" else 0.1,
                          "peak_memory_mb": 100.0, "epochs": 3.0 if m == "scgnn" else float("nan"),
                          "best_epoch": 2.0 if m == "scgnn" else float("nan"), "seed": 0, "mask_seed": seed,
                          "nondefault_params": '{"max_epochs": 3}' if m == "scgnn" else "{}"}
                         for m in methods for seed in (0, 1)])
    histories = pd.DataFrame([{"sample": sample, "method": "scgnn", "model": "", "epoch": e, "term": t, "value": v / e}
                              for e in (1, 2, 3) for t, v in (("train_loss", 1e-5), ("val_loss", 2.0), ("train_mse", 0.5))]
                             + [{"sample": sample, "method": "cnnimpute", "model": f"cluster {c} block 0", "epoch": e,
                                 "term": "val_loss", "value": c + 1.0 / e} for c in (0, 1) for e in (1, 2)])
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
    assert names == {"graphimpute_ranking_mqc.tsv", "graphimpute_bars_s1_mqc.png", "graphimpute_bars_s2_mqc.png",
                     "graphimpute_mcv_mqc.tsv", "graphimpute_clustering_mqc.tsv",
                     "graphimpute_resources_mqc.tsv", "graphimpute_loss_scgnn_mqc.yaml",
                     "graphimpute_loss_cnnimpute_mqc.yaml", "graphimpute_umap_s1_mqc.png", "graphimpute_umap_s2_mqc.png",
                     "graphimpute_mqc_versions.yml", "multiqc_config.yaml", "graphimpute_report.css"}
    _, ranking = _read_mqc_tsv(out / "graphimpute_ranking_mqc.tsv")
    s1 = ranking.loc[[r for r in ranking.index if r.startswith("s1")]]
    assert list(s1.index) == ["s1 · scgnn", "s1 · cnnimpute", "s1 · gene_mean", "s1 · none"]  # best first
    assert s1.loc["s1 · cnnimpute", "vs_gene_mean"] == "tie"  # 0.26/0.24 against 0.25/0.26: within the spread
    assert s1.loc["s1 · scgnn", "vs_none"] == "better" and s1.loc["s1 · none", "vs_gene_mean"] == "worse"
    header, table = _read_mqc_tsv(out / "graphimpute_mcv_mqc.tsv")
    assert header["plot_type"] == "table" and header["headers"]["mcv_poisson"]["scale"] == "RdYlGn-rev"
    assert table.loc["s2 · scgnn", "mcv_poisson"] == pytest.approx(0.2025)  # the mean over seeds
    assert table.loc["s2 · scgnn", "mcv_poisson_sd"] == pytest.approx(np.std([0.2, 0.205], ddof=1), rel=1e-5)
    _, resources = _read_mqc_tsv(out / "graphimpute_resources_mqc.tsv")
    _, clustering = _read_mqc_tsv(out / "graphimpute_clustering_mqc.tsv")
    for rows in (table.index, resources.index, clustering.index):  # every table in the ranking's order
        assert list(rows) == list(ranking.index), list(rows)
    assert resources.loc["s1 · scgnn", "wall_time_s"] == 12.0 and resources.loc["s1 · scgnn", "device"] == "cpu"
    for png in ("graphimpute_umap_s1_mqc.png", "graphimpute_bars_s1_mqc.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    versions = (out / "graphimpute_mqc_versions.yml").read_text()
    assert versions.count("graphimpute:") == 1 and '  "torch": "2.13.0"' in versions
    assert versions.count('"torch"') == 1  # once, not once per method
    assert resources.loc["s1 · scgnn", "nondefault_params"] == "max_epochs=3"
    assert resources.loc["s1 · none", "nondefault_params"] == "defaults"


def test_intro_gives_the_verdict_and_flags_changed_epochs(evaluated, tmp_path):
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "content"
    report.write_custom_content(report.load([evaluated]), out)
    config = yaml.safe_load((out / "multiqc_config.yaml").read_text())
    intro = config["intro_text"]
    assert "Not the methods' default settings" in intro and "scgnn (s1) ran with max_epochs=3" in intro
    assert "Best by mcv_poisson" in intro and "scgnn" in intro
    order = config["report_section_order"]
    assert order["graphimpute_ranking"]["order"] > order["graphimpute_bars_s1"]["order"] > order["graphimpute_mcv"]["order"]


def test_yaml_files_parse_with_numbers_as_numbers(evaluated, tmp_path):
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "content"
    report.write_custom_content(report.load([evaluated]), out)
    loss = yaml.safe_load((out / "graphimpute_loss_scgnn_mqc.yaml").read_text())
    assert loss["plot_type"] == "linegraph"
    assert [d["name"] for d in loss["pconfig"]["data_labels"]] == ["loss", "mse"]
    curve = loss["data"][0]["s1 · train"]
    assert curve[3] == pytest.approx(1e-5 / 3) and isinstance(curve[3], float)  # not the string '3.3e-06'
    assert loss["data"][0]["s2 · validation"][2] == pytest.approx(1.0)
    cnn = yaml.safe_load((out / "graphimpute_loss_cnnimpute_mqc.yaml").read_text())
    assert set(cnn["data"][0]) == {f"{s} · cluster {c} block 0 · validation" for s in ("s1", "s2")
                                   for c in (0, 1)}  # one per model
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
    for section in ("graphimpute_ranking", "graphimpute_mcv", "graphimpute_bars_s1", "graphimpute_resources",
                    "graphimpute_loss_scgnn", "graphimpute_umap_s1", "software_versions"):
        assert f'id="{section}' in text or f'id="multiqc_{section}' in text, section
    assert "#mqc_welcome { display: none !important; }" in text  # MultiQC's welcome box, hidden
