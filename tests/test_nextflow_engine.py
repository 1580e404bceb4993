"""The pipeline on the real Nextflow engine (`make nextflow` installs it at .venv/bin/nextflow).

Skipped only where the engine is not installed (no Java or mvn); GRAPHIMPUTE_REQUIRE_NEXTFLOW=1 turns that
skip into a failure."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEXTFLOW = ROOT / ".venv" / "bin" / "nextflow"
PINNED = re.search(r"<nextflow.version>(.+)</nextflow.version>", (ROOT / "scripts/nextflow/pom.xml").read_text()).group(1)


def _engine():
    if NEXTFLOW.exists() and shutil.which("java"):
        return NEXTFLOW
    if os.environ.get("GRAPHIMPUTE_REQUIRE_NEXTFLOW") == "1":
        pytest.fail(f"{NEXTFLOW} is missing: run `make nextflow` (needs Java 17 and mvn)")
    pytest.skip("the Nextflow engine is not installed (`make nextflow` needs Java 17 and mvn)")


def _run(tmp_path, *args):
    env = dict(os.environ, NXF_ANSI_LOG="false", NXF_OFFLINE="true", NXF_HOME=str(tmp_path / "nxf_home"))
    return subprocess.run([str(_engine()), "run", str(ROOT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_pinned_engine_is_admitted_by_the_manifest_and_named_in_the_readme():
    minimum = re.search(r"nextflowVersion\s*=\s*'!>=([\d.]+)'", (ROOT / "nextflow.config").read_text()).group(1)
    as_tuple = lambda version: tuple(int(part) for part in version.split("."))  # noqa: E731
    assert as_tuple(PINNED) >= as_tuple(minimum)
    assert PINNED in (ROOT / "README.md").read_text()


def test_stub_run_wires_the_whole_workflow_for_both_test_samples(tmp_path):
    result = _run(tmp_path, "-profile", "test,local", "-stub-run", "--outdir", "out", "--methods", "none,gene_mean")
    assert result.returncode == 0, result.stdout + result.stderr
    for sample in ("pbmc3k_small", "dropseq_3cl_small"):
        for seed in ("seed0", "seed1"):
            for method in ("none", "gene_mean"):
                assert (tmp_path / f"out/impute/{sample}.{seed}.{method}.h5ad").exists()
        assert (tmp_path / f"out/evaluate/{sample}.metrics.tsv").exists()
    assert (tmp_path / "out/multiqc/multiqc_report.html").exists()


def test_methods_auto_is_refused_at_start_in_plain_words(tmp_path):
    result = _run(tmp_path, "-profile", "test,local", "--outdir", "out", "--methods", "auto")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "--methods auto is not supported by the Nextflow pipeline" in output
    assert "Exception" not in output and not re.search(r"^\s+at \w", output, re.M)  # no stack trace
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())  # refused before any task
