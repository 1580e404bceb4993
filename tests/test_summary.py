"""`graphimpute summarise`: each step's MultiQC custom content, read from the step's output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from graphimpute import _keys, summary
from graphimpute.cli import main
from graphimpute.runner import h5ad_safe


def _write(tmp_path: Path, name: str, uns: dict, *, obsp: dict | None = None, cells=6, genes=4) -> Path:
    adata = anndata.AnnData(X=sp.csr_matrix(np.ones((cells, genes), dtype=np.float32)))
    adata.uns[_keys.UNS] = h5ad_safe(uns)
    for key, value in (obsp or {}).items():
        adata.obsp[key] = value
    path = tmp_path / name
    adata.write_h5ad(path)
    return path


def _table(path: Path) -> tuple[list[str], list[str], list[str]]:
    lines = path.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    return header, rows[0], rows[1]


def test_qc_row_has_counts_and_every_filter(tmp_path):
    record = {"qc": {"cells_in": 10, "genes_in": 5, "cells_out": 6, "genes_out": 4,
                     "removed": {"cells_min_genes": 3, "cells_max_pct_mt": 1, "genes_min_cells": 1}}}
    row = summary.summarise(_write(tmp_path, "s.h5ad", record), step="qc", sample="s")
    assert row == {"Sample": "s", "cells": 6, "genes": 4, "nonzero_counts": 24, "cells_in": 10, "genes_in": 5, "cells_out": 6,
                   "genes_out": 4, "removed_cells_min_genes": 3, "removed_cells_max_pct_mt": 1,
                   "removed_genes_min_cells": 1}


def test_graph_row_counts_edges_per_graph(tmp_path):
    knn = sp.csr_matrix(np.eye(6, k=1) + np.eye(6, k=-1), dtype=np.float32)  # 10 stored entries
    path = _write(tmp_path, "s.h5ad", {"graph": {"knn": {"n_neighbors": 1}}}, obsp={"knn": knn})
    row = summary.summarise(path, step="graph", sample="s")
    assert row["knn_edges"] == 10 and row["knn_mean_degree"] == pytest.approx(10 / 6)


def test_impute_row_reports_training(tmp_path):
    history = {"device": "cpu", "epochs": [{"train_loss": 3.0, "val_loss": 3.5}, {"train_loss": 2.0, "val_loss": 2.5}],
               "best_epoch": 2, "n_epochs": 2}
    record = {"impute": {"method": "toy", "params": {"lr": 0.01}, "seed": 0, "device": "cpu", "wall_time_s": 1.5,
                         "peak_memory_mb": 100.0, "history": history}}
    row = summary.summarise(_write(tmp_path, "s.toy.h5ad", record), step="impute", sample="s.toy")
    assert (row["method"], row["epochs"], row["best_epoch"]) == ("toy", 2, 2)
    assert (row["final_train_loss"], row["final_val_loss"]) == (2.0, 2.5)
    assert row["params"] == '{"lr": 0.01}'


def test_a_method_without_training_has_no_losses(tmp_path):
    record = {"impute": {"method": "none", "params": {}, "seed": 0, "device": "cpu", "wall_time_s": 0.1,
                         "peak_memory_mb": 50.0, "history": {}}}
    row = summary.summarise(_write(tmp_path, "s.none.h5ad", record), step="impute", sample="s.none")
    assert (row["epochs"], row["final_train_loss"], row["params"]) == (0, "none", "")


def test_missing_step_record_is_a_clear_error(tmp_path):
    path = _write(tmp_path, "s.h5ad", {"qc": {}})
    result = CliRunner().invoke(main, ["summarise", str(path), "--step", "normalise", "-o", str(tmp_path / "x_mqc.tsv")])
    assert result.exit_code == 2
    assert "no uns['graphimpute']['normalise'] record" in result.output
    assert not (tmp_path / "x_mqc.tsv").exists()


def test_cli_writes_multiqc_custom_content(tmp_path):
    path = _write(tmp_path, "s1.h5ad", {"normalise": {"genes_in": 9, "genes_out": 4, "n_top_genes": 4}})
    out = tmp_path / "s1.normalise_mqc.tsv"
    result = CliRunner().invoke(main, ["summarise", str(path), "--step", "normalise", "-o", str(out)])
    assert result.exit_code == 0, result.output
    header, columns, values = _table(out)
    assert "# id: 'graphimpute_normalise'" in header and "# plot_type: 'table'" in header
    assert columns == ["Sample", "cells", "genes", "nonzero_counts", "genes_in", "genes_out", "n_top_genes"]
    assert values == ["s1", "6", "4", "24", "9", "4", "4"]  # sample name defaults to the file's stem


def test_multiqc_merges_one_table_per_step(tmp_path):
    """The written files really are MultiQC custom content: two samples' files make one two-row table."""
    multiqc = Path(sys.executable).with_name("multiqc")
    if not multiqc.exists():
        pytest.skip("multiqc is not installed beside this Python")

    folder = tmp_path / "mqc"
    folder.mkdir()
    for name, genes_out in (("a", 3), ("b", 4)):
        path = _write(tmp_path, f"{name}.h5ad", {"normalise": {"genes_in": 9, "genes_out": genes_out, "n_top_genes": 4}})
        summary.write_mqc(summary.summarise(path, step="normalise", sample=name), folder / f"{name}_mqc.tsv",
                          step="normalise")
    config = Path(__file__).resolve().parents[1] / "assets" / "multiqc_config.yml"
    done = subprocess.run([str(multiqc), "--force", "--config", str(config),
                           "--filename", "multiqc_report.html", "--outdir", str(tmp_path / "report"), str(folder)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "report" / "multiqc_report_data" / "multiqc_graphimpute_normalise_table.txt").read_text()
    rows = [line.split("\t") for line in table.splitlines()]
    assert [row[0] for row in rows[1:]] == ["a", "b"]
    assert [row[rows[0].index("genes_out")] for row in rows[1:]] == ["3", "4"]
