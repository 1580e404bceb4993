"""The bad-input catalogue (issue #14): every case stops with exit code 2 and one line naming the problem,
leaves nothing behind (no output, no log file, no results folder, an existing folder unchanged) and never
touches its input. The CLI runs in-process (click's CliRunner): no subprocess imports torch again.

A few cases are the other side of the same contract: what used to be refused or silently wrong and now
works (``--allow-non-integer`` through ``run``, NaN labels, 10x antibody rows, Cell Ranger sample names,
the umask, reuse by content)."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from click.testing import CliRunner

from graphimpute import io, pipeline
from graphimpute.cli import EXIT_USER_ERROR, main

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ("--n-top-genes", "300", "--methods", "none")  # a whole `run` in a few seconds


# ---- helpers -----------------------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(main, [*map(str, args), "--quiet"])


def tree(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` with a hash of its content and its mode: equal before and
    after means nothing was written, removed, changed or re-permissioned."""
    found = {}
    for root in roots:
        for path in sorted([root, *root.rglob("*")]):
            mode = stat.S_IMODE(path.lstat().st_mode)
            found[str(path)] = (f"dir {mode:o}" if path.is_dir() else
                                f"{hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()} {mode:o}")
    return found


def assert_refused(result, *phrases: str, code: int = EXIT_USER_ERROR) -> str:
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def refused(roots, args, *phrases: str) -> str:
    """Run ``args``; assert the refusal and that nothing under ``roots`` (the inputs and the work
    folder) changed: no output, no log, no folder."""
    before = tree(*roots)
    line = assert_refused(invoke(*args), *phrases)
    assert tree(*roots) == before, "the refused command wrote, removed or changed files"
    return line


# ---- inputs, built once from the bundled data ----------------------------------------------------------

@pytest.fixture(scope="module")
def inp(tmp_path_factory, bundled_path) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    raw = ad.read_h5ad(bundled_path)
    shutil.copy(bundled_path, folder / "raw.h5ad")
    (folder / "link.h5ad").symlink_to(folder / "raw.h5ad")
    ad.AnnData(obs=raw.obs[[]], var=raw.var[[]], layers={"counts": raw.X}).write_h5ad(folder / "no_x.h5ad")
    pipeline.qc_step(folder / "raw.h5ad", folder / "qc.h5ad", label_key="cell_type")
    pipeline.normalise_step(folder / "qc.h5ad", folder / "norm.h5ad", n_top_genes=300)
    pipeline.impute_step(folder / "norm.h5ad", folder / "a.none.h5ad", method="none")
    other = raw[:200].copy()  # another sample: other cells
    other.write_h5ad(folder / "other.h5ad")
    pipeline.qc_step(folder / "other.h5ad", folder / "other_qc.h5ad")
    pipeline.normalise_step(folder / "other_qc.h5ad", folder / "other_norm.h5ad", n_top_genes=300)
    pipeline.impute_step(folder / "other_norm.h5ad", folder / "b.none.h5ad", method="none")

    genes = list(dict.fromkeys([g for g in raw.var_names if g.startswith(("MT-", "RPL", "RPS"))][:20]
                               + list(raw.var_names[:280])))
    table = raw[:60, genes].to_df().astype(int)
    table.to_csv(folder / "cells_by_genes.csv")
    table.T.to_csv(folder / "genes_by_cells.csv")
    barcoded = table.copy()  # gene names not recognisable, but the header holds barcodes
    barcoded.index = [f"GENE{i}" for i in range(len(barcoded))]
    rng = np.random.default_rng(0)
    barcoded.columns = ["".join(rng.choice(list("ACGT"), 14)) + "-1" for _ in barcoded.columns]
    barcoded.to_csv(folder / "barcode_header.csv")
    dup = table.copy()
    dup.columns = ["DUPGENE", "DUPGENE", *dup.columns[2:]]
    dup.to_csv(folder / "dup_columns.csv")
    (folder / "empty.csv").write_text("cell\n")
    (folder / "text.csv").write_text("cell,A,B\nc1,x,y\nc2,z,w\n")
    nan = table.astype(float)
    nan.iloc[0, 0] = np.nan
    nan.to_csv(folder / "nan.csv")
    neg = table.copy()
    neg.iloc[0, 0] = -3
    neg.to_csv(folder / "negative.csv")
    (folder / "unknown.xyz").write_text("1,2\n")
    (folder / "corrupt.h5ad").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)

    processed = raw.copy()
    processed.layers["counts"] = processed.X.copy()
    processed.X = sp.csr_matrix(np.log1p(processed.X.toarray() / 3))
    processed.write_h5ad(folder / "processed.h5ad")
    halves = raw.copy()
    halves.X = halves.X * 0.5
    halves.write_h5ad(folder / "halves.h5ad")
    unlabelled = raw.copy()
    unlabelled.obs["cell_type"] = pd.Categorical([np.nan] * raw.n_obs, categories=["B"])
    unlabelled.write_h5ad(folder / "no_labels.h5ad")
    zeros = raw[:, :50].copy()
    zeros.X = sp.csr_matrix(zeros.shape, dtype=np.float32)
    zeros.write_h5ad(folder / "zeros.h5ad")
    (folder / "list.json").write_text("[1, 2]")
    (folder / "nested.json").write_text('{"max_epochs": [3]}')
    (folder / "broken.json").write_text("{max_epochs: 3")
    (folder / "sheet.csv").write_text("sample,input\n../bad,raw.h5ad\n")
    (folder / "long_sheet.csv").write_text(f"sample,input\n{'s' * 150},raw.h5ad\n")
    (folder / "by_method.json").write_text('{"none": {}, "scgnn": {"max_epochs": 2}}')
    return folder


# ---- the catalogue: (command line, phrases of the one error line) -----------------------------------------
# {i}: the inputs folder, {t}: the test's own work folder (outputs go there)

CASES = {
    # reading
    "missing input": (["qc", "{i}/nope.h5ad", "-o", "{t}/q.h5ad"], ["nope.h5ad", "no such file"]),
    "run missing input": (["run", "-i", "{i}/nope.h5ad", "-o", "{t}/out"], ["nope.h5ad", "no such file"]),
    "unknown format": (["qc", "{i}/unknown.xyz", "-o", "{t}/q.h5ad"], ["unknown.xyz", "unknown format"]),
    "corrupt h5ad": (["qc", "{i}/corrupt.h5ad", "-o", "{t}/q.h5ad"], ["corrupt.h5ad"]),
    "empty table": (["qc", "{i}/empty.csv", "-o", "{t}/q.h5ad"], ["empty.csv", "empty matrix"]),
    "text in a table": (["qc", "{i}/text.csv", "-o", "{t}/q.h5ad"], ["text.csv", "non-numeric"]),
    "NaN in a table": (["qc", "{i}/nan.csv", "-o", "{t}/q.h5ad"], ["nan.csv", "NaN"]),
    "negative counts": (["qc", "{i}/negative.csv", "-o", "{t}/q.h5ad"], ["negative.csv", "negative"]),
    "all zeros": (["qc", "{i}/zeros.h5ad", "-o", "{t}/q.h5ad"], ["zeros.h5ad", "every value is zero"]),
    "genes x cells table": (["qc", "{i}/genes_by_cells.csv", "-o", "{t}/q.h5ad"],
                            ["genes_by_cells.csv", "rows look like genes", "run with --transpose"]),
    "genes x cells in run": (["run", "-i", "{i}/genes_by_cells.csv", "-o", "{t}/out"],
                             ["genes_by_cells.csv", "--transpose"]),
    "barcodes in the header": (["qc", "{i}/barcode_header.csv", "-o", "{t}/q.h5ad"],
                               ["barcode_header.csv", "columns look like cell barcodes", "with --transpose"]),
    "needless --transpose": (["qc", "{i}/cells_by_genes.csv", "-o", "{t}/q.h5ad", "--transpose"],
                             ["cells_by_genes.csv", "run without --transpose"]),
    "processed h5ad": (["qc", "{i}/processed.h5ad", "-o", "{t}/q.h5ad"],
                       ["processed.h5ad", "non-integer", "use --layer counts"]),
    "non-integer": (["qc", "{i}/halves.h5ad", "-o", "{t}/q.h5ad"], ["halves.h5ad", "--allow-non-integer"]),
    "missing layer": (["qc", "{i}/raw.h5ad", "-o", "{t}/q.h5ad", "--layer", "counts"], ["raw.h5ad", "'counts' not found"]),
    "missing label column": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--label-key", "celltype"],
                             ["raw.h5ad", "'celltype' not found"]),
    "no labelled cells": (["qc", "{i}/no_labels.h5ad", "-o", "{t}/q.h5ad", "--label-key", "cell_type"],
                          ["no_labels.h5ad", "labelled class"]),
    "too few cells after QC": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--min-genes", "100000"],
                               ["raw.h5ad", "left after QC"]),
    # outputs
    "output is the input": (["qc", "{i}/raw.h5ad", "-o", "{i}/raw.h5ad"], ["never overwritten"]),
    "output is a folder": (["qc", "{i}/raw.h5ad", "-o", "{t}"], ["is a directory"]),
    "input inside outdir": (["run", "-i", "{i}/raw.h5ad", "-o", "{i}"], ["inside --outdir"]),
    "mask --truth is -o": (["mask", "{i}/norm.h5ad", "-o", "{t}/m.h5ad", "--truth", "{t}/m.h5ad"],
                           ["m.h5ad", "--truth is the same file as -o"]),
    "long --sample": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--sample", "s" * 300], ["--sample", "300 characters"]),
    "--sample leaves outdir": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--sample", "../../x"],
                               ["--sample '../../x'", "letters, digits"]),
    "--sample with a space": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--sample", "my sample"], ["--sample"]),
    # steps out of order
    "graph before normalise": (["graph", "{i}/raw.h5ad", "-o", "{t}/g.h5ad"],
                               ["raw.h5ad", "layers['lognorm']", "graphimpute normalise"]),
    "graph on QC output": (["graph", "{i}/qc.h5ad", "-o", "{t}/g.h5ad"], ["qc.h5ad", "graphimpute normalise"]),
    "impute before normalise": (["impute", "{i}/raw.h5ad", "-o", "{t}/i.h5ad", "--method", "scgnn"],
                                ["raw.h5ad", "graphimpute normalise"]),
    # options
    "graph --n-pcs 0": (["graph", "{i}/norm.h5ad", "-o", "{t}/g.h5ad", "--n-pcs", "0"], ["--n-pcs"]),
    "graph --n-neighbors 0": (["graph", "{i}/norm.h5ad", "-o", "{t}/g.h5ad", "--n-neighbors", "0"], ["--n-neighbors"]),
    "run --n-neighbors 0": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--n-neighbors", "0"], ["--n-neighbors"]),
    "evaluate --kmeans-seeds 0": (["evaluate", "{i}/a.none.h5ad", "-o", "{t}/ev", "--kmeans-seeds", "0"], ["--kmeans-seeds"]),
    "params file holds a list": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca",
                                  "--params-file", "{i}/list.json"], ["list.json", "JSON object", "list"]),
    "params file value of a wrong type": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca",
                                           "--params-file", "{i}/nested.json"], ["max_epochs=[3]", "expected int"]),
    "params file not JSON": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca",
                              "--params-file", "{i}/broken.json"], ["broken.json", "JSON"]),
    "run params file holds a list": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--methods", "dca",
                                      "--params-file", "{i}/list.json"], ["list.json", "JSON object"]),
    "--param lr=-1": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca", "--param", "lr=-1"],
                      ["lr=-1", "must be > 0"]),
    "--param out of range in run": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--methods", "dca", "--param",
                                     "lr=-1"], ["lr=-1", "must be > 0"]),
    "--param unknown": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "none", "--param", "lr=1"],
                        ["no parameter 'lr'"]),
    "--param without =": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca", "--param", "lr"],
                          ["KEY=VALUE"]),
    "--param not a number": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca", "--param",
                              "max_epochs=many"], ["max_epochs='many'", "expected int"]),
    "--param lr=inf": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca", "--param", "lr=inf"],
                       ["lr=inf", "finite number"]),
    "--param too large to store": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca", "--param",
                                    f"max_epochs={10**30}"], ["max_epochs=1000000", "below 2**63"]),
    "--param for several methods": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--methods", "none,dca",
                                     "--param", "max_epochs=2"], ["--params-file whose keys are method names"]),
    "unknown method": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--methods", "magik"], ["unknown method 'magik'"]),
    "auto with others": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--methods", "auto,none"], ["'auto'"]),
    "impute --resume without --workdir": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca",
                                           "--resume"], ["--resume needs --workdir"]),
    "run --resume without --workdir": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--resume"],
                                       ["--resume needs --workdir"]),
    # evaluate
    "evaluate two samples": (["evaluate", "{i}/a.none.h5ad", "{i}/b.none.h5ad", "-o", "{t}/ev"],
                             ["b.none.h5ad", "same sample"]),
    "evaluate the truth as an output": (["evaluate", "{i}/a.none.h5ad", "-o", "{t}/ev", "--truth", "{i}/a.none.h5ad"],
                                        ["a.none.h5ad", "not a method output"]),
    "evaluate a missing file": (["evaluate", "{i}/nope.h5ad", "-o", "{t}/ev"], ["nope.h5ad", "no such file"]),
    "evaluate --sample leaves outdir": (["evaluate", "{i}/a.none.h5ad", "-o", "{t}/ev", "--sample", "../x"],
                                        ["--sample '../x'"]),
    "samplesheet with a long name": (["check-samplesheet", "{i}/long_sheet.csv", "-o", "{t}/checked.csv"],
                                     ["long_sheet.csv"]),  # the problems follow, one per line
    "samplesheet with a bad name": (["check-samplesheet", "{i}/sheet.csv", "-o", "{t}/checked.csv"], ["sheet.csv"]),
    "h5ad without X": (["qc", "{i}/no_x.h5ad", "-o", "{t}/q.h5ad"], ["X is empty", "--layer NAME", "layers: counts"]),
    "impute with a params file for other methods": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca",
                                                     "--params-file", "{i}/by_method.json"],
                                                    ["by_method.json", "parameters by method name (none, scgnn)",
                                                     "none for 'dca'"]),
    "an h5ad output named .csv": (["qc", "{i}/raw.h5ad", "-o", "{t}/x.csv"], ["written as .h5ad", "x.h5ad"]),
    # the log may not be written into an input or an output (it appended to the input before)
    "log file is the input": (["qc", "{i}/raw.h5ad", "-o", "{t}/q.h5ad", "--log-file", "{i}/raw.h5ad"],
                              ["--log-file", "that is the command's input"]),
    "log file links to the input": (["qc", "{i}/raw.h5ad", "-o", "{t}/q.h5ad", "--log-file", "{i}/link.h5ad"],
                                    ["that is the command's input"]),
    "log file is the output": (["normalise", "{i}/qc.h5ad", "-o", "{t}/n.h5ad", "--log-file", "{t}/n.h5ad"],
                               ["that is the command's output"]),
    # option errors: before any work, one line (click's own are three)
    "--seed negative": (["qc", "{i}/raw.h5ad", "-o", "{t}/q.h5ad", "--seed", "-1"], ["--seed", "0<=x<=4294967295"]),
    "--seed above 2**32 - 1": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--seed", "4294967296"],
                               ["--seed", "4294967296"]),
    "--seed + --mask-seeds past 2**32 - 1": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--benchmark", "--seed",
                                              "4294967294", "--mask-seeds", "3"],
                                             ["up to seed 4294967296", "--seed of at most 4294967293"]),
    "--seed + --auto-seeds past 2**32 - 1": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--methods", "auto",
                                              "--seed", "4294967295"], ["--auto-seeds 2", "at most 4294967294"]),
    "--mask-fraction nan": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--benchmark", "--mask-fraction", "nan"],
                            ["--mask-fraction", "not a finite number"]),
    "--mask-fraction 0": (["run", "-i", "{i}/raw.h5ad", "-o", "{t}/out", "--benchmark", "--mask-fraction", "0"],
                          ["--mask-fraction", "0<x<1"]),
    "--fraction 1.5": (["mask", "{i}/norm.h5ad", "-o", "{t}/m.h5ad", "--truth", "{t}/t.h5ad", "--fraction", "1.5"],
                       ["--fraction", "0<x<1"]),
    "--max-pct-mt 150": (["qc", "{i}/raw.h5ad", "-o", "{t}/q.h5ad", "--max-pct-mt", "150"], ["--max-pct-mt", "0<=x<=100"]),
    "--checkpoint-every 0": (["impute", "{i}/norm.h5ad", "-o", "{t}/i.h5ad", "--method", "dca", "--checkpoint-every",
                              "0"], ["--checkpoint-every", "x>=1"]),
    "an unknown option": (["qc", "{i}/raw.h5ad", "-o", "{t}/q.h5ad", "--sed", "1"],
                          ["No such option '--sed'", "graphimpute qc --help"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_and_leaves_nothing(case, inp, tmp_path):
    args, phrases = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    args = [a.format(i=inp, t=work) for a in args]
    refused([inp, work], args, *phrases)


@pytest.mark.parametrize("args", [["qc", "--sed", "1"], ["impute", "x.h5ad", "-o", "y.h5ad"], ["nonsense"]])
def test_option_errors_are_one_line_in_all(args):
    result = invoke(*args)
    assert result.exit_code == EXIT_USER_ERROR
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: "), result.output


def test_a_params_file_by_method_gives_impute_its_methods_part_and_run_warns_of_the_rest(inp, tmp_path):
    result = invoke("impute", inp / "norm.h5ad", "-o", tmp_path / "i.h5ad", "--method", "none",
                    "--params-file", inp / "by_method.json")
    assert result.exit_code == 0, result.output
    run = invoke("run", "-i", inp / "raw.h5ad", "-o", tmp_path / "out", *FAST, "--params-file", inp / "by_method.json")
    assert run.exit_code == 0, run.output
    assert "parameters for scgnn, which this run does not run" in (tmp_path / "out/pipeline_info/graphimpute.log").read_text()


def test_samplesheet_names_the_long_sample(inp, tmp_path):
    result = invoke("check-samplesheet", inp / "long_sheet.csv", "-o", tmp_path / "checked.csv")
    assert result.exit_code == EXIT_USER_ERROR and "line 2: sample name sssss" in result.output
    assert "150 characters; at most 100" in result.output


def test_refused_run_leaves_an_existing_results_folder_as_it_was(inp, tmp_path):
    outdir = tmp_path / "out"
    (outdir / "pipeline_info").mkdir(parents=True)
    (outdir / "pipeline_info" / "graphimpute.log").write_text("an earlier run\n")
    (outdir / "notes.txt").write_text("mine\n")
    refused([inp, tmp_path], ["run", "-i", inp / "raw.h5ad", "-o", outdir, "--min-genes", "100000"], "left after QC")


def test_run_failing_after_qc_keeps_an_existing_folder_as_it_was(inp, tmp_path, monkeypatch):
    """QC's output was written, then the disk filled: the new qc/ file goes, the user's files and the
    earlier log stay as they were."""
    outdir = tmp_path / "out"
    (outdir / "pipeline_info").mkdir(parents=True)
    (outdir / "pipeline_info" / "graphimpute.log").write_text("an earlier run\n")
    (outdir / "mine").mkdir()
    (outdir / "mine" / "notes.txt").write_text("mine\n")
    real, calls = ad.AnnData.write_h5ad, []

    def write(self, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return real(self, filename, *args, **kwargs)

    monkeypatch.setattr(ad.AnnData, "write_h5ad", write)
    refused([inp, tmp_path], ["run", "-i", inp / "raw.h5ad", "-o", outdir, *FAST], "no space left")
    assert len(calls) == 2


def test_an_explicit_log_file_stays(inp, tmp_path):
    log = tmp_path / "logs" / "mine.log"
    assert_refused(invoke("graph", inp / "raw.h5ad", "-o", tmp_path / "g.h5ad", "--log-file", log), "normalise")
    assert log.exists() and not (tmp_path / "g.h5ad").exists() and not (tmp_path / "g.log").exists()


# ---- what can only be known up front, or only by the machine ------------------------------------------------

def test_read_only_outdir_fails_before_any_work(inp, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: refuse as a read-only file system would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: (
            False if Path(p).absolute().is_relative_to(locked) else real(p, mode, *a, **k)))
    else:
        locked.chmod(0o555)
    calls = []
    monkeypatch.setattr(pipeline, "qc_step", lambda *a, **k: calls.append(a))
    refused([inp, tmp_path], ["run", "-i", inp / "raw.h5ad", "-o", locked / "out"], "locked", "not writable")
    assert calls == []  # no step ran


def test_full_disk_estimate_fails_before_any_work(inp, tmp_path, monkeypatch):
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000))
    line = refused([inp, tmp_path], ["run", "-i", inp / "raw.h5ad", "-o", tmp_path / "out"], "free", "writes about")
    assert str(tmp_path / "out") in line


@pytest.mark.parametrize("fail_at", [1, 3])
def test_disk_full_during_a_run_is_one_line_and_removes_what_the_run_wrote(inp, tmp_path, monkeypatch, fail_at):
    """ENOSPC at the first write, or after QC and normalise were written: exit 2, and out/qc/*.h5ad
    and the rest are gone again (a real full disk, through HDF5: the next test)."""
    real = ad.AnnData.write_h5ad
    calls = []

    def write(self, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == fail_at:
            Path(filename).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return real(self, filename, *args, **kwargs)

    monkeypatch.setattr(ad.AnnData, "write_h5ad", write)
    line = refused([inp, tmp_path], ["run", "-i", inp / "raw.h5ad", "-o", tmp_path / "out", *FAST], "no space left")
    assert len(calls) == fail_at and "out" in line


def test_a_real_full_disk_is_one_line_and_exit_2_not_a_crash(tmp_path, bundled_path):
    """On a 3 MB file system, past the free-space estimate (switched off): HDF5's write fails for
    want of space; the process used to crash on exit (139)."""
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs a small file system of its own (root and tmpfs)")
    try:
        script = ("import sys; from graphimpute import io, cli; io.check_free_space = lambda *a: None; "
                  "sys.argv = ['graphimpute', *sys.argv[1:]]; cli.main()")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", script, "run", "-i", str(bundled_path), "-o", str(disk / "out"),
                               "--methods", "none", "--quiet"], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == EXIT_USER_ERROR, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1].endswith("free some space or choose another --outdir")
        assert "Traceback" not in done.stderr and done.stderr.count("Error:") == 1, done.stderr[-2000:]
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_missing_optional_package_fails_before_any_work(inp, tmp_path, monkeypatch):
    from graphimpute.methods import _base

    monkeypatch.setattr(_base, "_installed", lambda package: package != "scvi")
    refused([inp, tmp_path], ["run", "-i", inp / "raw.h5ad", "-o", tmp_path / "out", "--methods", "none,scvi"],
            "'scvi'", "not installed")
    refused([inp, tmp_path], ["impute", inp / "norm.h5ad", "-o", tmp_path / "i.h5ad", "--method", "scvi"],
            "'scvi'", "not installed")


def test_os_errors_while_writing_are_one_line(tmp_path):
    assert io.disk_problem(OSError(errno.ENOSPC, "No space left on device")).startswith("no space left")
    assert io.disk_problem(OSError("file write failed: errno = 28, error message = ...")).startswith("no space")
    assert io.disk_problem(OSError(errno.EROFS, "Read-only file system")) == "read-only file system"
    assert io.disk_problem(OSError(errno.ENOENT, "gone")) is None  # not the user's to fix: a traceback


# ---- what used to be refused or silently wrong ---------------------------------------------------------

def test_allow_non_integer_reaches_every_step_of_run(inp, tmp_path):
    result = invoke("run", "-i", inp / "halves.h5ad", "-o", tmp_path / "out", "--allow-non-integer", *FAST)
    assert result.exit_code == 0, result.output
    out = ad.read_h5ad(tmp_path / "out" / "impute" / "halves.none.h5ad")
    imputed = out.layers["imputed"]  # `none` returns the observed counts (impute files hold no X)
    assert np.any(imputed != np.round(imputed))  # the halves survived as given
    assert "--allow-non-integer was given" in (tmp_path / "out" / "pipeline_info" / "graphimpute.log").read_text()


def test_nan_labels_are_unlabelled_cells_not_a_class(inp, tmp_path, bundled_path):
    raw = ad.read_h5ad(bundled_path)
    labels = raw.obs["cell_type"].astype(object)
    labels.iloc[:30] = np.nan
    raw.obs["cell_type"] = labels
    raw.write_h5ad(tmp_path / "some_nan.h5ad")
    out = tmp_path / "q.h5ad"
    result = invoke("qc", tmp_path / "some_nan.h5ad", "-o", out, "--label-key", "cell_type")
    assert result.exit_code == 0, result.output
    got = ad.read_h5ad(out).obs["cell_type"]
    assert got.isna().sum() > 0 and "nan" not in set(map(str, got.dropna().unique()))
    assert "have no 'cell_type' label" in (tmp_path / "q.log").read_text()


def test_duplicated_table_columns_are_warned_about_in_the_log(inp, tmp_path):
    out = tmp_path / "q.h5ad"
    result = invoke("qc", inp / "dup_columns.csv", "-o", out, "--min-genes", "1", "--min-cells", "1")
    assert result.exit_code == 0, result.output
    assert "duplicated gene names" in (tmp_path / "q.log").read_text()
    names = ad.read_h5ad(out).var_names
    assert "DUPGENE" in names and "DUPGENE-1" in names


def _write_10x(folder: Path, raw: ad.AnnData) -> None:
    """A Cell Ranger folder of ``raw``'s counts plus three antibody rows."""
    folder.mkdir(parents=True)
    antibodies = sp.csr_matrix(np.full((raw.n_obs, 3), 7.0))
    matrix = sp.hstack([raw.X, antibodies]).T.tocoo().astype(np.int64)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, matrix)
    rows = [f"ENSG{i}\t{g}\tGene Expression" for i, g in enumerate(raw.var_names)]
    rows += [f"AB{i}\tCD{i}-1\tAntibody Capture" for i in range(3)]
    with gzip.open(folder / "features.tsv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as f:
        f.write("\n".join(raw.obs_names) + "\n")


def test_10x_folder_keeps_gene_expression_only(tmp_path, bundled_path):
    raw = ad.read_h5ad(bundled_path)[:, :100]
    folder = tmp_path / "sample1" / "outs" / "filtered_feature_bc_matrix"
    _write_10x(folder, raw)
    got = io.read(folder)
    assert got.n_vars == 100 and list(got.var_names) == list(raw.var_names)
    np.testing.assert_array_equal(got.X.toarray(), raw.X.toarray())
    assert pipeline.sample_name(folder) == "sample1"


def test_an_output_inside_a_10x_input_folder_is_refused(tmp_path, bundled_path):
    folder = tmp_path / "filtered_feature_bc_matrix"
    _write_10x(folder, ad.read_h5ad(bundled_path)[:, :100])
    refused([folder], ["qc", folder, "-o", folder / "qc.h5ad"], "inside the input folder")


@pytest.mark.parametrize("path, name", [
    ("runs/sample1/outs/filtered_feature_bc_matrix", "sample1"),
    ("runs/sample1/outs/filtered_feature_bc_matrix.h5", "sample1"),
    ("runs/sample2/outs/filtered_gene_bc_matrices/GRCh38", "sample2"),
    ("multi/outs/per_sample_outs/donor3/count/sample_filtered_feature_bc_matrix", "donor3"),
    ("data/count/pbmc.h5ad", "pbmc"),
    ("data/pbmc.csv.gz", "pbmc"),
])
def test_sample_name_of_cell_ranger_outputs(path, name):
    assert pipeline.sample_name(path) == name


def test_outputs_follow_the_umask(inp, tmp_path):
    old = os.umask(0o027)
    try:
        out = tmp_path / "q.h5ad"
        assert invoke("normalise", inp / "qc.h5ad", "-o", out, "--n-top-genes", "300").exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
        os.umask(0o022)
        io.write_text("x\n", tmp_path / "t.txt")
        assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_reuse_is_decided_by_the_input_content(inp, tmp_path):
    """The issue's reproduction: the same path, other content, the same command: every step redone,
    and the output holds the new cells; the same content again (a fresh copy, new mtime) is kept."""
    given = tmp_path / "in.h5ad"
    shutil.copy(inp / "raw.h5ad", given)
    outdir = tmp_path / "out"
    assert invoke("run", "-i", given, "-o", outdir, *FAST).exit_code == 0
    first = ad.read_h5ad(outdir / "impute" / "in.none.h5ad").n_obs
    shutil.copy(inp / "other.h5ad", given)
    assert invoke("run", "-i", given, "-o", outdir, *FAST).exit_code == 0
    log = (outdir / "pipeline_info" / "graphimpute.log").read_text()
    assert "made from other inputs or options; redoing it" in log
    second = ad.read_h5ad(outdir / "impute" / "in.none.h5ad")
    assert second.n_obs != first and second.n_obs <= 200
    stamps = {p: p.stat().st_mtime_ns for p in outdir.rglob("*.h5ad")}
    shutil.copy(inp / "other.h5ad", given)  # same bytes, new modification time
    assert invoke("run", "-i", given, "-o", outdir, *FAST).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in outdir.rglob("*.h5ad")} == stamps
    record = json.loads(second.uns["graphimpute"]["steps"]["qc"])
    assert record["inputs"][0]["bytes"] == given.stat().st_size and len(record["inputs"][0]["blake2b"]) == 32
