"""Reading every supported format, and one clear error per kind of bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from click.testing import CliRunner

from conftest import synthetic_counts
from graphimpute import io
from graphimpute.cli import EXIT_USER_ERROR, main
from graphimpute.errors import InputError


def qc_cli(tmp_path: Path, *args: str):
    """Run `graphimpute qc` and return (result, output path)."""
    out = tmp_path / "out" / "qc.h5ad"
    result = CliRunner().invoke(main, ["qc", *map(str, args), "-o", str(out), "--quiet"])
    return result, out


def assert_refused(result, out: Path, *phrases: str) -> None:
    assert result.exit_code == EXIT_USER_ERROR, result.output
    message = result.stderr if hasattr(result, "stderr") else result.output
    lines = [line for line in message.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, message
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.glob("*.h5ad*")] if out.parent.exists() else True


# ---- formats -----------------------------------------------------------------------------------------

def write_10x_dir(folder: Path, adata: ad.AnnData, *, v3: bool = True) -> Path:
    folder.mkdir()
    opener = gzip.open if v3 else open
    suffix = ".gz" if v3 else ""
    with opener(folder / f"matrix.mtx{suffix}", "wb") as f:
        scipy.io.mmwrite(f, sp.csr_matrix(adata.X).T.astype(np.int64))
    names = "features.tsv" if v3 else "genes.tsv"
    with opener(folder / f"{names}{suffix}", "wt") as f:
        for i, g in enumerate(adata.var_names):
            f.write(f"ENSG{i:05d}\t{g}" + ("\tGene Expression\n" if v3 else "\n"))
    with opener(folder / f"barcodes.tsv{suffix}", "wt") as f:
        f.write("\n".join(adata.obs_names) + "\n")
    return folder


def write_10x_h5(path: Path, adata: ad.AnnData) -> Path:
    """CellRanger v3 HDF5 layout: /matrix with a CSC genes x cells matrix."""
    m = sp.csc_matrix(sp.csr_matrix(adata.X).T.astype(np.int32))
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = m.data, m.indices, m.indptr
        g["shape"] = np.array(m.shape, dtype=np.int32)
        g["barcodes"] = np.array(adata.obs_names, dtype="S")
        feats = g.create_group("features")
        feats["name"] = np.array(adata.var_names, dtype="S")
        feats["id"] = np.array([f"ENSG{i:05d}" for i in range(adata.n_vars)], dtype="S")
        feats["feature_type"] = np.array(["Gene Expression"] * adata.n_vars, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * adata.n_vars, dtype="S")
    return path


@pytest.fixture
def small():
    return synthetic_counts(40, 30)


def test_reads_h5ad_as_float32_csr(tmp_path, small):
    path = tmp_path / "x.h5ad"
    a = small.copy()
    a.X = a.X.toarray().astype(np.int64)  # dense integers are converted
    a.write_h5ad(path)
    got = io.read(path)
    assert sp.isspmatrix_csr(got.X) and got.X.dtype == np.float32
    np.testing.assert_array_equal(got.X.toarray(), small.X.toarray())


@pytest.mark.parametrize("v3", [True, False])
def test_reads_10x_directory(tmp_path, small, v3):
    got = io.read(write_10x_dir(tmp_path / "tenx", small, v3=v3))
    assert list(got.var_names) == list(small.var_names)
    assert list(got.obs_names) == list(small.obs_names)
    np.testing.assert_array_equal(got.X.toarray(), small.X.toarray())


@pytest.mark.parametrize("layout", ["v3", "v2", "v3, features.tsv not gzipped"])
def test_10x_layouts_scanpy_reads_go_through_scanpy_and_the_rest_read_the_same(tmp_path, small, layout, monkeypatch):
    import scanpy as sc

    folder = write_10x_dir(tmp_path / "tenx", small, v3=layout != "v2")
    if layout.endswith("not gzipped"):  # a mix scanpy refuses
        with gzip.open(folder / "features.tsv.gz", "rb") as f:
            (folder / "features.tsv").write_bytes(f.read())
        (folder / "features.tsv.gz").unlink()
    calls = []
    monkeypatch.setattr(sc, "read_10x_mtx", lambda *a, _read=sc.read_10x_mtx, **k: calls.append(a) or _read(*a, **k))
    got = io.read(folder)
    assert len(calls) == (0 if layout.endswith("not gzipped") else 1)
    assert list(got.var_names) == list(small.var_names) and list(got.obs_names) == list(small.obs_names)
    assert list(got.var["gene_ids"]) == [f"ENSG{i:05d}" for i in range(small.n_vars)]
    np.testing.assert_array_equal(got.X.toarray(), small.X.toarray())


@pytest.mark.parametrize("v3", [True, False])
def test_a_10x_directory_whose_names_disagree_with_its_matrix_is_one_input_error(tmp_path, small, v3):
    folder = write_10x_dir(tmp_path / "tenx", small, v3=v3)
    barcodes = folder / ("barcodes.tsv.gz" if v3 else "barcodes.tsv")
    with (gzip.open if v3 else open)(barcodes, "wt") as f:
        f.write("\n".join(small.obs_names[:-5]) + "\n")
    with pytest.raises(InputError, match="30 x 40 .genes x cells. but there are 30 features and 35 barcodes"):
        io.read(folder)


def test_reads_10x_h5(tmp_path, small):
    got = io.read(write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5", small))
    assert got.shape == small.shape
    np.testing.assert_array_equal(got.X.toarray(), small.X.toarray())


@pytest.mark.parametrize("sep,suffix", [(",", ".csv"), ("\t", ".tsv.gz")])
def test_reads_tables_cells_by_genes(tmp_path, small, sep, suffix):
    path = tmp_path / f"counts{suffix}"
    small.to_df().to_csv(path, sep=sep)
    got = io.read(path)
    np.testing.assert_array_equal(got.X.toarray(), small.X.toarray())


def test_transpose_reads_genes_by_cells_and_stops_when_orientation_looks_wrong(tmp_path, small):
    path = tmp_path / "genes_by_cells.csv"
    small.to_df().T.to_csv(path)
    with pytest.raises(InputError, match="rows look like genes .*run with --transpose"):
        io.read(path)
    got = io.read(path, transpose=True)
    assert got.shape == small.shape
    np.testing.assert_array_equal(got.X.toarray(), small.X.toarray())
    right = tmp_path / "cells_by_genes.csv"
    small.to_df().to_csv(right)
    with pytest.raises(InputError, match="run without --transpose"):
        io.read(right, transpose=True)


def test_counts_from_a_layer_or_raw(tmp_path, small):
    a = small.copy()
    a.layers["counts"] = a.X.copy()
    a.raw = a
    a.X = sp.csr_matrix(np.log1p(a.X.toarray()))
    path = tmp_path / "normalised.h5ad"
    a.write_h5ad(path)
    for layer in ("counts", "raw"):
        np.testing.assert_array_equal(io.read(path, layer=layer).X.toarray(), small.X.toarray())
    with pytest.raises(InputError, match="layer 'cnts' not found; layers: counts"):
        io.read(path, layer="cnts")


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path, small):
    out = io.write_h5ad(small, tmp_path / "sub" / "a.h5ad")
    assert out.exists() and os.listdir(out.parent) == ["a.h5ad"]


# ---- bad input: one line naming the file and the problem, exit code 2, nothing written ----------------

def test_missing_file(tmp_path):
    result, out = qc_cli(tmp_path, tmp_path / "nope.h5ad")
    assert_refused(result, out, "nope.h5ad", "no such file")


def test_unreadable_file(tmp_path, small, monkeypatch):
    path = tmp_path / "x.h5ad"
    small.write_h5ad(path)
    monkeypatch.setattr(io.os, "access", lambda *a: False)  # root ignores chmod, so fake the denial
    with pytest.raises(InputError, match=r"x.h5ad: cannot be read \(permission denied\)"):
        io.read(path)


def test_unknown_format(tmp_path):
    path = tmp_path / "counts.xlsx"
    path.write_text("not a matrix")
    result, out = qc_cli(tmp_path, path)
    assert_refused(result, out, "counts.xlsx", "unknown format")


@pytest.mark.parametrize("content", [b"garbage, not hdf5", None])
def test_corrupt_h5ad(tmp_path, small, content):
    path = tmp_path / "broken.h5ad"
    if content is None:  # a real h5ad cut in half
        small.write_h5ad(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    result, out = qc_cli(tmp_path, path)
    assert_refused(result, out, "broken.h5ad")
    assert "h5ad" in result.output


def test_empty_matrix(tmp_path):
    path = tmp_path / "empty.h5ad"
    ad.AnnData(X=sp.csr_matrix((5, 0), dtype=np.float32)).write_h5ad(path)
    result, out = qc_cli(tmp_path, path)
    assert_refused(result, out, "empty.h5ad", "empty matrix")


def test_all_zero_matrix(tmp_path):
    path = tmp_path / "zeros.h5ad"
    ad.AnnData(X=sp.csr_matrix((20, 20), dtype=np.float32)).write_h5ad(path)
    result, out = qc_cli(tmp_path, path)
    assert_refused(result, out, "zeros.h5ad", "every value is zero")


def test_too_few_cells_after_qc(tmp_path, small):
    path = tmp_path / "tiny.h5ad"
    small.write_h5ad(path)
    result, out = qc_cli(tmp_path, path, "--min-genes", "10000")
    assert_refused(result, out, "tiny.h5ad", "left after QC", "--min-genes")


@pytest.mark.parametrize("bad,phrase", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                        (-3.0, "negative")])
def test_nan_inf_negative(tmp_path, small, bad, phrase):
    a = small.copy()
    x = a.X.toarray()
    x[0, 0] = bad
    a.X = sp.csr_matrix(x)
    path = tmp_path / "bad.h5ad"
    a.write_h5ad(path)
    result, out = qc_cli(tmp_path, path)
    assert_refused(result, out, "bad.h5ad", phrase)


def test_non_integer_refused_then_allowed(tmp_path, small):
    a = small.copy()
    a.X = a.X * 0.5
    path = tmp_path / "lognorm.h5ad"
    a.write_h5ad(path)
    result, out = qc_cli(tmp_path, path, "--min-genes", "1")
    assert_refused(result, out, "lognorm.h5ad", "non-integer", "--allow-non-integer")
    with pytest.warns(UserWarning, match="non-integer"):
        got = io.read(path, allow_non_integer=True)
    assert got.shape == a.shape
    result, out = qc_cli(tmp_path, path, "--min-genes", "1", "--allow-non-integer")
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_duplicated_names_made_unique_with_warning(tmp_path, small):
    a = small.copy()
    a.var_names = ["dup"] * 3 + list(a.var_names[3:])
    a.obs_names = ["c"] * 2 + list(a.obs_names[2:])
    path = tmp_path / "dups.h5ad"
    a.write_h5ad(path)
    with pytest.warns(UserWarning, match="duplicated") as caught:
        got = io.read(path)
    assert {"cell", "gene"} <= {w for r in caught for w in ("cell", "gene") if w in str(r.message)}
    assert got.var_names.is_unique and got.obs_names.is_unique


def test_missing_label_key(tmp_path, small):
    path = tmp_path / "x.h5ad"
    small.write_h5ad(path)
    result, out = qc_cli(tmp_path, path, "--label-key", "celltype")
    assert_refused(result, out, "x.h5ad", "'celltype' not found", "cell_type")


def test_output_would_overwrite_input(tmp_path, small):
    path = tmp_path / "x.h5ad"
    small.write_h5ad(path)
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["qc", str(path), "-o", str(path), "--quiet", "--min-genes", "1"])
    assert result.exit_code == EXIT_USER_ERROR
    assert "never overwritten" in result.output
    assert path.read_bytes() == before


def test_input_error_names_file_and_problem():
    err = InputError("/data/x.h5ad", "empty matrix")
    assert str(err) == "/data/x.h5ad: empty matrix"


def test_a_killed_write_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    """SIGKILL (or the out-of-memory killer) skips the clean-up of ``_write_atomic``."""
    out = tmp_path / "x.txt"
    stale = tmp_path / ".x.txt.abc123.tmp"
    stale.write_text("half written")
    other = tmp_path / ".y.txt.abc123.tmp"  # another output's: not this write's business
    other.write_text("half written")
    io.write_text("done\n", out)
    assert out.read_text() == "done\n" and not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".y.txt.abc123.tmp", "x.txt"]
