"""The pipeline on the real Nextflow engine (`make nextflow` installs it at .venv/bin/nextflow).

Skipped only where the engine is not installed (no Java or mvn); GRAPHIMPUTE_REQUIRE_NEXTFLOW=1 (set by
.ci/run) turns that skip into a failure. Every run is `-profile test,local`: this checkout's .venv, no
container. The one real run of the test profile (module fixture `killed_then_resumed`, ~3 min on 2 cores)
is shared by the tests below it."""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
NEXTFLOW = ROOT / ".venv" / "bin" / "nextflow"
PINNED = re.search(r"<nextflow.version>(.+)</nextflow.version>", (ROOT / "scripts/nextflow/pom.xml").read_text()).group(1)
OLDEST = re.search(r"nextflowVersion\s*=\s*'!>=([\d.]+)'", (ROOT / "nextflow.config").read_text()).group(1)
OLDEST_ENGINE = ROOT / ".nextflow-dist" / OLDEST / "nextflow"  # `make nextflow` installs it too
SAMPLES = ("pbmc3k_small", "dropseq_3cl_small")
TEST_METHODS = re.search(r"methods\s*=\s*'([^']+)'", (ROOT / "conf/test.config").read_text()).group(1).split(",")


def _engine(launcher: Path = NEXTFLOW) -> Path:
    if launcher.exists() and shutil.which("java"):
        return launcher
    if os.environ.get("GRAPHIMPUTE_REQUIRE_NEXTFLOW") == "1":
        pytest.fail(f"{launcher} is missing: run `make nextflow` (needs Java 17 and mvn)")
    pytest.skip(f"the Nextflow engine {launcher} is not installed (`make nextflow` needs Java 17 and mvn)")


def _env(cwd: Path, **extra) -> dict:
    return dict(os.environ, NXF_ANSI_LOG="false", NXF_OFFLINE="true", NXF_HOME=str(cwd / "nxf_home"), **extra)


def _run(cwd: Path, *args, engine: Path = NEXTFLOW, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(_engine(engine)), "run", str(ROOT), *args], cwd=cwd, env=env or _env(cwd),
                          capture_output=True, text=True, timeout=1200)


def _output(result) -> str:
    return result.stdout + result.stderr


def _tasks(result) -> list[str]:
    """'PROCESS (tag)' of every task a run started (Submitted) or took from the cache (Cached)."""
    return re.findall(r"(?m)^\[[0-9a-f]{2}/[0-9a-f]{6}\] (Submitted|Cached) process > (.+)$", result.stdout)


def _published(outdir: Path) -> list[str]:
    """Files under outdir other than Nextflow's own execution reports (written after every handler)."""
    if not outdir.exists():
        return []
    return sorted(str(p.relative_to(outdir)) for p in outdir.rglob("*") if p.is_file()
                  and not re.match(r"pipeline_info/(execution_(trace|report|timeline)|pipeline_dag)_", str(p.relative_to(outdir))))


def _assert_refused(result, message: str, outdir: Path) -> None:
    output = _output(result)
    assert result.returncode != 0, output
    assert message in output, output
    assert "Exception" not in output and not re.search(r"^\s+at \w", output, re.M), output  # no stack trace
    assert _published(outdir) == [], _published(outdir)


def _trace_steps(outdir: Path) -> list[str]:
    trace = next((outdir / "pipeline_info").glob("execution_trace_*.txt")).read_text().splitlines()
    name = trace[0].split("\t").index("name")
    return [row.split("\t")[name].split(" ")[0] for row in trace[1:]]


def _bundled_copies(folder: Path) -> Path:
    """Both test samples copied into ``folder`` with a samplesheet beside them (relative inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES:
        shutil.copy(ROOT / "src/graphimpute/data" / f"{sample}.h5ad", folder / f"{sample}.h5ad")
    sheet = folder / "samplesheet.csv"
    sheet.write_text("sample,input,label_key\n" + "".join(f"{s},{s}.h5ad,cell_type\n" for s in SAMPLES))
    return sheet


# ---- the engine itself -----------------------------------------------------------------------------------

def test_the_pinned_engine_is_admitted_by_the_manifest_and_named_in_the_readme():
    as_tuple = lambda version: tuple(int(part) for part in version.split("."))  # noqa: E731
    assert as_tuple(PINNED) >= as_tuple(OLDEST)
    assert PINNED in (ROOT / "README.md").read_text()
    assert f"Nextflow ≥ {OLDEST.rsplit('.', 1)[0]}" in (ROOT / "README.md").read_text()


def test_help_lists_the_schema_parameters(tmp_path):
    result = _run(tmp_path, "--help")
    assert result.returncode == 0, _output(result)
    for option in ("--input", "--methods", "--mask_seeds", "--use_gpu", "--container_registry"):
        assert option in result.stdout


# ---- wiring: -stub-run (every process's stub block, seconds) ---------------------------------------------

def test_stub_run_wires_the_whole_workflow_for_both_samples_and_casts_text_parameters(tmp_path):
    # --seed and --mask_seeds arrive as text from the command line: three masks, seeds 4, 5, 6
    result = _run(tmp_path, "-profile", "test,local", "-stub-run", "--outdir", "out", "--methods", "none,gene_mean",
                  "--seed", "4", "--mask_seeds", "3")
    assert result.returncode == 0, _output(result)
    out = tmp_path / "out"
    for sample in SAMPLES:
        for seed in ("seed4", "seed5", "seed6"):
            assert (out / f"mask/{sample}.{seed}.truth.h5ad").exists()
            for method in ("none", "gene_mean"):
                assert (out / f"impute/{sample}.{seed}.{method}.h5ad").exists()
        assert (out / f"evaluate/{sample}.metrics.tsv").exists()
    steps = _trace_steps(out)
    assert steps.count("GRAPHIMPUTE:MASK") == 6 and steps.count("GRAPHIMPUTE:GRAPH") == 6
    assert steps.count("GRAPHIMPUTE:IMPUTE") == 12 and steps.count("GRAPHIMPUTE:EVALUATE") == 2
    assert "GRAPHIMPUTE:IMPUTE_TRAIN" not in steps  # neither method trains
    assert (out / "multiqc/multiqc_report.html").exists()


def test_stub_run_without_benchmark_has_no_mask_and_no_evaluation(tmp_path):
    result = _run(tmp_path, "-profile", "test,local", "-stub-run", "--outdir", "out", "--methods", "none",
                  "--benchmark", "false")  # the text 'false' is a flag's false
    assert result.returncode == 0, _output(result)
    out = tmp_path / "out"
    assert not (out / "mask").exists() and not (out / "evaluate").exists()
    assert (out / "impute/pbmc3k_small.none.h5ad").exists() and (out / "graph/pbmc3k_small.h5ad").exists()
    assert sorted(set(_trace_steps(out))) == [
        "GRAPHIMPUTE:GRAPH", "GRAPHIMPUTE:IMPUTE", "GRAPHIMPUTE:INPUT_CHECK:SAMPLESHEET_CHECK",
        "GRAPHIMPUTE:MULTIQC", "GRAPHIMPUTE:NORMALISE", "GRAPHIMPUTE:QC"]


def test_the_oldest_engine_the_manifest_admits_runs_the_workflow(tmp_path):
    result = _run(tmp_path, "-profile", "test,local", "-stub-run", "--outdir", "out", "--methods", "none,scvgae",
                  engine=OLDEST_ENGINE)
    assert result.returncode == 0, _output(result)
    assert f"version {OLDEST}" in result.stdout
    assert (tmp_path / "out/impute/dropseq_3cl_small.seed1.scvgae.h5ad").exists()


FAKE_ENGINE = r"""#!/bin/bash
# Stands in for a container engine: logs its arguments, then runs the task's command on this machine
# (with the variables Singularity would pass in: SINGULARITYENV_X as X).
echo "$*" >> LOG
case "$1" in run|exec) ;; *) exit 0 ;; esac
for name in $(env | sed -n 's/^SINGULARITYENV_\([A-Za-z_]*\)=.*/\1/p'); do
    value="SINGULARITYENV_$name"; export "$name=${!value}"
done
shift
while [ $# -gt 0 ]; do
    case "$1" in
        -w) cd "$2"; shift 2 ;;
        graphimpute:*|*.sif) shift; break ;;
        *) shift ;;
    esac
done
exec "$@"
"""


@pytest.mark.parametrize("engine", ["docker", "podman", "singularity"])
def test_gpu_options_reach_only_the_training_tasks(tmp_path, engine):
    """-profile <engine>,gpu on a stand-in engine: the GPU option (--gpus all, --device nvidia.com/gpu=all,
    --nv) and the CUDA image are given to IMPUTE_TRAIN's tasks and to no other."""
    fake = tmp_path / "fake_bin" / engine
    fake.parent.mkdir()
    log = tmp_path / f"{engine}.log"
    fake.write_text(FAKE_ENGINE.replace("LOG", str(log)))
    fake.chmod(0o755)
    images = []
    if engine == "singularity":  # local image files: no pull
        for name in ("cpu.sif", "cuda.sif"):
            (tmp_path / name).touch()
        images = ["--container", str(tmp_path / "cpu.sif"), "--container_gpu", str(tmp_path / "cuda.sif")]
    # the stand-in runs each task here: on this checkout's Python, as -profile local would
    env = _env(tmp_path, PATH=f"{fake.parent}:{ROOT / '.venv/bin'}:{os.environ['PATH']}")
    result = _run(tmp_path, "-profile", f"test,{engine},gpu", "-stub-run", "--outdir", "out",
                  "--methods", "none,scvgae", "--mask_seeds", "1", *images, env=env)
    assert result.returncode == 0, _output(result)
    gpu_option, cuda_image = {"docker": ("--gpus all", "graphimpute:0.1.0-cuda"),
                              "podman": ("--device nvidia.com/gpu=all", "graphimpute:0.1.0-cuda"),
                              "singularity": ("--nv", str(tmp_path / "cuda.sif"))}[engine]
    runs = [line for line in log.read_text().splitlines() if line.split(" ")[0] in ("run", "exec")]
    assert len(runs) == len(_tasks(result)) > 0
    work = {}
    for task_run in (tmp_path / "work").glob("*/*/.command.run"):
        name = re.search(r"(?m)^### name: '(.+)'$", task_run.read_text()).group(1)
        work[str(task_run.parent)] = name
    for line in runs:
        task = next(name for folder, name in work.items() if folder in line)
        trains = task.startswith("GRAPHIMPUTE:IMPUTE_TRAIN")
        assert (f" {gpu_option} " in line) == trains, (task, line)
        assert (cuda_image in line) == trains, (task, line)
    assert any(name.startswith("GRAPHIMPUTE:IMPUTE_TRAIN") for name in work.values())


VERSION = re.search(r'(?m)^version = "(.+)"', (ROOT / "pyproject.toml").read_text()).group(1)
PODMAN_IMAGE = f"localhost/graphimpute:{VERSION}-cuda"  # scripts/build_podman_image.sh


def _podman_image_missing() -> str | None:
    if not shutil.which("podman"):
        return "podman is not installed"
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / "containers/podman.conf"))
    if subprocess.run(["podman", "image", "exists", PODMAN_IMAGE], env=env).returncode != 0:
        return f"no podman image {PODMAN_IMAGE}: build it with `sudo bash scripts/build_podman_image.sh` (~8 GB)"
    return None


def test_the_test_profile_runs_in_a_real_podman_container(tmp_path):
    """The image this project's containers/Dockerfile.cuda builds, run by podman: every step of the test
    profile (one mask seed) inside it. Skipped without the image: building it takes minutes and ~8 GB."""
    missing = _podman_image_missing()
    if missing:
        pytest.skip(missing)
    env = _env(tmp_path, CONTAINERS_CONF=str(ROOT / "containers/podman.conf"))
    result = _run(tmp_path, "-profile", "test,podman", "--container", PODMAN_IMAGE, "--outdir", "out",
                  "--mask_seeds", "1", env=env)
    assert result.returncode == 0, _output(result)
    assert "container           : podman" in result.stdout
    steps = set(_trace_steps(tmp_path / "out"))
    assert {"GRAPHIMPUTE:QC", "GRAPHIMPUTE:IMPUTE", "GRAPHIMPUTE:IMPUTE_TRAIN", "GRAPHIMPUTE:EVALUATE",
            "GRAPHIMPUTE:MULTIQC"} <= steps
    assert (tmp_path / "out/impute/dropseq_3cl_small.seed0.scvgae.h5ad").exists()
    assert (tmp_path / "out/multiqc/multiqc_report.html").exists()


# ---- refusals: one plain message, a non-zero exit, nothing published --------------------------------------

def _missing_input_sheet(folder: Path) -> Path:
    sheet = folder / "missing.csv"
    sheet.write_text("sample,input\npbmc,nowhere/pbmc.h5ad\n")
    return sheet


REFUSALS = {
    "methods auto": (["--methods", "auto"], "--methods auto is not supported by the Nextflow pipeline", True),
    "missing input file": (["--input", _missing_input_sheet], "input 'nowhere/pbmc.h5ad' of sample 'pbmc' does not exist",
                           True),
    "invalid parameter": (["--mask_seeds", "0"], "Invalid parameters", True),
    "unknown method": (["--methods", "none,not_a_method"], "unknown method 'not_a_method'", False),
    "samplesheet without input column": (["--input", ROOT / "tests/nextflow/data/samplesheet_missing_column.csv"],
                                         "missing required column(s): input", False),
    "mistyped method in --method_params": (["--method_params", ROOT / "tests/nextflow/data/method_params_typo.json"],
                                           "scgn", False),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_mistakes_stop_the_run_with_one_plain_message_and_publish_nothing(tmp_path, case):
    """at_start: found before any task (no work folder is used); the others by the samplesheet check, the
    first task, whose message stops the run before any other task starts."""
    args, message, at_start = REFUSALS[case]
    args = [str(arg(tmp_path)) if callable(arg) else str(arg) for arg in args]
    result = _run(tmp_path, "-profile", "test,local", "--outdir", "out", *args)
    _assert_refused(result, message, tmp_path / "out")
    started = [task for _, task in _tasks(result)]
    if at_start:
        assert started == [] and not any((tmp_path / "work").glob("*/*"))
    else:
        assert [task.split(" ")[0] for task in started] == ["GRAPHIMPUTE:INPUT_CHECK:SAMPLESHEET_CHECK"]


# ---- one real run of the test profile, killed mid-IMPUTE and resumed ---------------------------------------

@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """The test profile on copies of its two samples: SIGTERM while the first training task runs, then
    -resume to the end. Returns (folder, killed run's output, resumed run)."""
    folder = tmp_path_factory.mktemp("engine_run")
    sheet = _bundled_copies(folder / "inputs")
    args = ["run", str(ROOT), "-profile", "test,local", "--input", str(sheet), "--outdir", "out"]
    process = subprocess.Popen([str(_engine()), *args], cwd=folder, env=_env(folder), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    killed = []
    for line in process.stdout:
        killed.append(line)
        if "Submitted process > GRAPHIMPUTE:IMPUTE_TRAIN" in line:
            time.sleep(3)  # inside the task's Python
            process.send_signal(signal.SIGTERM)
            break
    killed.extend(process.stdout)
    process.wait(timeout=300)
    resumed = subprocess.run([str(_engine()), *args, "-resume"], cwd=folder, env=_env(folder),
                             capture_output=True, text=True, timeout=1200)
    return folder, process.returncode, "".join(killed), resumed


def test_a_killed_run_resumes_from_its_finished_tasks(killed_then_resumed):
    _, killed_status, killed, resumed = killed_then_resumed
    assert killed_status != 0 and "IMPUTE_TRAIN" in killed
    assert resumed.returncode == 0, _output(resumed)
    kinds = [kind for kind, _ in _tasks(resumed)]
    assert "Cached" in kinds and "Submitted" in kinds  # the finished tasks were kept, the rest ran


def test_the_test_profile_runs_every_step_on_both_samples(killed_then_resumed):
    folder, *_ = killed_then_resumed
    out = folder / "out"
    seeds = ("seed0", "seed1")  # --seed 0, --mask_seeds 2 (conf/test.config)
    for sample in SAMPLES:
        assert (out / f"qc/{sample}.h5ad").exists() and (out / f"normalise/{sample}.h5ad").exists()
        assert not (out / f"mask/{sample}.h5ad").exists() and not (out / f"graph/{sample}.h5ad").exists()
        for seed in seeds:
            for step in (f"mask/{sample}.{seed}.h5ad", f"mask/{sample}.{seed}.truth.h5ad", f"graph/{sample}.{seed}.h5ad"):
                assert (out / step).exists(), step
        imputed = sorted(p.name for p in (out / "impute").glob(f"{sample}.*.h5ad"))
        assert imputed == sorted(f"{sample}.{seed}.{method}.h5ad" for seed in seeds for method in TEST_METHODS)
        for name in ("summary.json", "summary.tsv", "ranking.tsv"):
            assert (out / f"evaluate/{sample}.{name}").exists(), name
        metrics = (out / f"evaluate/{sample}.metrics.tsv").read_text().splitlines()
        seed_column = metrics[0].split("\t").index("seed")
        assert {row.split("\t")[seed_column] for row in metrics[1:]} == {"0", "1"}
    report = out / "multiqc"
    assert (report / "multiqc_report.html").exists()
    for table in ("qc", "normalise", "graph", "impute", "ranking"):
        assert (report / f"multiqc_report_data/multiqc_graphimpute_{table}_table.txt").exists(), table
    # each masked copy drawn with its own seed (MultiQC's table of the mask step: Sample, ..., seed)
    masks = [row.split("\t") for row in (report / "multiqc_report_data/multiqc_graphimpute_mask_table.txt")
             .read_text().splitlines()]
    seed = masks[0].index("seed")
    assert sorted((row[0], row[seed]) for row in masks[1:]) == sorted(
        (f"{sample}.seed{k}", str(k)) for sample in SAMPLES for k in (0, 1))
    versions = (out / "pipeline_info/graphimpute_software_mqc_versions.yml").read_text()
    assert "graphimpute" in versions and "multiqc:" in versions and "torch:" in versions


def _imputed(path: Path) -> np.ndarray:
    layer = ad.read_h5ad(path).layers["imputed"]
    return layer.toarray() if sp.issparse(layer) else np.asarray(layer)


def test_imputed_layers_equal_graphimpute_run_bitwise(killed_then_resumed, tmp_path):
    """The same steps, options and seeds in one `graphimpute run` per sample give the same bytes."""
    folder, *_ = killed_then_resumed
    methods = ",".join(TEST_METHODS)
    runs = []
    for sample in SAMPLES:  # both at once: each is one thread, as each task is
        command = [str(ROOT / ".venv/bin/graphimpute"), "run", "--input", str(ROOT / f"src/graphimpute/data/{sample}.h5ad"),
                   "--sample", sample, "--outdir", str(tmp_path / sample), "--methods", methods, "--benchmark",
                   "--mask-seeds", "2", "--label-key", "cell_type", "--params-file",
                   str(ROOT / "assets/test_method_params.json"), "--n-top-genes", "500", "--n-pcs", "20",
                   "--threads", "1", "--device", "cpu", "--seed", "0", "--quiet"]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for done in runs:
        output = done.communicate(timeout=1200)[0]
        assert done.returncode == 0, output
    for mine in sorted((folder / "out/impute").glob("*.h5ad")):
        theirs = tmp_path / mine.name.split(".")[0] / "impute" / mine.name
        a, b = _imputed(mine), _imputed(theirs)
        assert a.dtype == b.dtype and np.array_equal(a, b), mine.name


def test_resume_reruns_nothing_then_only_the_changed_sample(killed_then_resumed):
    folder, *_ = killed_then_resumed
    args = ["-profile", "test,local", "--input", str(folder / "inputs/samplesheet.csv"), "--outdir", "out", "-resume"]
    again = _run(folder, *args)
    assert again.returncode == 0, _output(again)
    assert {kind for kind, _ in _tasks(again)} == {"Cached"}
    # one count of one sample changes: that sample's tasks and the report rerun, the other's are cached
    changed = folder / "inputs/dropseq_3cl_small.h5ad"
    data = ad.read_h5ad(changed)
    data.X = data.X.tocsr() if sp.issparse(data.X) else sp.csr_matrix(data.X)
    data.X.data[0] += 1
    data.write_h5ad(changed)
    rerun = _run(folder, *args)
    assert rerun.returncode == 0, _output(rerun)
    submitted = [task for kind, task in _tasks(rerun) if kind == "Submitted"]
    assert submitted and all("dropseq_3cl_small" in task or task.startswith("GRAPHIMPUTE:MULTIQC")
                             for task in submitted), submitted
    cached = [task for kind, task in _tasks(rerun) if kind == "Cached"]
    assert any("pbmc3k_small" in task for task in cached) and not any("dropseq_3cl_small" in t for t in cached)


# ---- each module alone (what the nf-test files did: nf-test itself cannot be had here) ----------------------

MODULES_WORKFLOW = """
include { SAMPLESHEET_CHECK } from 'ROOT/modules/local/samplesheet_check'
include { QC                } from 'ROOT/modules/local/qc'
include { NORMALISE         } from 'ROOT/modules/local/normalise'
include { MASK              } from 'ROOT/modules/local/mask'
include { GRAPH             } from 'ROOT/modules/local/graph'
include { IMPUTE            } from 'ROOT/modules/local/impute'
include { IMPUTE_TRAIN      } from 'ROOT/modules/local/impute_train'
include { EVALUATE          } from 'ROOT/modules/local/evaluate'
include { MULTIQC           } from 'ROOT/modules/local/multiqc'

workflow {
    def counts = file('ROOT/src/graphimpute/data/pbmc3k_small.h5ad', checkIfExists: true)
    def meta = [id: 'pbmc', format: 'h5ad', label_key: 'cell_type']
    def stub = 'ROOT/tests/nextflow/data/evaluate_stub'
    SAMPLESHEET_CHECK(file('ROOT/assets/samplesheet_test.csv'), 'none,scvgae', [], 'ROOT/assets')
    QC(channel.of([meta, counts]))
    NORMALISE(channel.of([meta, counts]))
    MASK(channel.of([meta + [id: 'pbmc.seed1', sample: 'pbmc', mask_seed: 1], counts]))
    GRAPH(channel.of([meta, counts]))
    IMPUTE(channel.of([meta + [method: 'none', trains: false, params: [:]], counts]))
    IMPUTE_TRAIN(channel.of([meta + [method: 'scgnn', trains: true, params: [max_epochs: 2]], counts]))
    EVALUATE(channel.of(
        [meta + [sample: 'pbmc'], ['seed0.none', 'seed0.gene_mean', 'seed1.none', 'seed1.gene_mean'].collect { name -> file("${stub}/pbmc.${name}.h5ad") },
         ['seed0', 'seed1'].collect { name -> file("${stub}/pbmc.${name}.truth.h5ad") }],
        [[id: 'one', sample: 'one', format: 'h5ad', label_key: ''], [file("${stub}/pbmc.seed0.none.h5ad")], file("${stub}/pbmc.seed0.truth.h5ad")]))
    MULTIQC([file('ROOT/assets/samplesheet_test.csv')], [], file('ROOT/assets/multiqc_config.yml'))

    def named = { step, meta_key -> { m, f -> "${step}\\t${m[meta_key]}\\t${f instanceof List ? f*.name.sort().join(',') : f.name}" } }
    channel.empty().mix(
        SAMPLESHEET_CHECK.out.csv.map { f -> "SAMPLESHEET_CHECK.csv\\t-\\t${f.name}" },
        SAMPLESHEET_CHECK.out.methods.map { f -> "SAMPLESHEET_CHECK.methods\\t-\\t${f.readLines().join('|')}" },
        QC.out.h5ad.map(named('QC.h5ad', 'id')), QC.out.mqc.map { f -> "QC.mqc\\t-\\t${f.name}" },
        NORMALISE.out.h5ad.map(named('NORMALISE.h5ad', 'id')), NORMALISE.out.mqc.map { f -> "NORMALISE.mqc\\t-\\t${f.name}" },
        MASK.out.h5ad.map(named('MASK.h5ad', 'id')), MASK.out.truth.map(named('MASK.truth', 'mask_seed')),
        MASK.out.mqc.map { f -> "MASK.mqc\\t-\\t${f.name}" },
        GRAPH.out.h5ad.map(named('GRAPH.h5ad', 'id')),
        IMPUTE.out.h5ad.map(named('IMPUTE.h5ad', 'method')), IMPUTE.out.mqc.map { f -> "IMPUTE.mqc\\t-\\t${f.name}" },
        IMPUTE_TRAIN.out.h5ad.map(named('IMPUTE_TRAIN.h5ad', 'method')),
        IMPUTE_TRAIN.out.mqc.map { f -> "IMPUTE_TRAIN.mqc\\t-\\t${f.name}" },
        EVALUATE.out.metrics.map(named('EVALUATE.metrics', 'id')),
        EVALUATE.out.results.map { m, tables, summaries -> "EVALUATE.results\\t${m.id}\\t${tables*.name.sort().join(',')};${summaries.size()}" },
        MULTIQC.out.report.map { f -> "MULTIQC.report\\t-\\t${f.name}" },
        SAMPLESHEET_CHECK.out.versions.mix(QC.out.versions, NORMALISE.out.versions, MASK.out.versions, GRAPH.out.versions,
            IMPUTE.out.versions, IMPUTE_TRAIN.out.versions, EVALUATE.out.versions, MULTIQC.out.versions)
            .map { f -> "versions\\t-\\t${f.readLines()[0].replaceAll(/[":]/, '')}" }
    ).collectFile(name: 'emitted.tsv', storeDir: params.outdir, newLine: true, sort: true)
}
"""


def test_each_module_alone_emits_what_it_declares(tmp_path):
    """Every module run on its own (-stub-run, the inputs its meta.yml documents): each output channel
    carries the file named as it is published and the meta it was given."""
    script = tmp_path / "modules.nf"
    script.write_text(MODULES_WORKFLOW.replace("ROOT", str(ROOT)))
    env = _env(tmp_path, PATH=f"{ROOT / 'bin'}:{ROOT / '.venv/bin'}:{os.environ['PATH']}")
    result = subprocess.run([str(_engine()), "run", str(script), "-c", str(ROOT / "nextflow.config"), "-profile", "test", "-stub-run",
                             "--outdir", str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, _output(result)
    emitted = {}
    for line in (tmp_path / "out/emitted.tsv").read_text().splitlines():
        channel, key, value = line.split("\t", 2)
        emitted.setdefault(channel, []).append((key, value))
    assert emitted.pop("SAMPLESHEET_CHECK.methods") == [("-", "method\ttrains|none\tfalse|scvgae\ttrue")]
    assert emitted.pop("versions") == [("-", process) for process in sorted(
        ["EVALUATE"] * 2 + ["GRAPH", "IMPUTE", "IMPUTE_TRAIN", "MASK", "MULTIQC", "NORMALISE", "QC", "SAMPLESHEET_CHECK"])]
    tables = "{0}.embeddings.tsv,{0}.histories.tsv,{0}.metrics.tsv,{0}.ranking.tsv,{0}.runs.tsv,{0}.summary.tsv"
    assert {channel: sorted(values) for channel, values in emitted.items()} == {
        "SAMPLESHEET_CHECK.csv": [("-", "samplesheet.valid.csv")],
        "QC.h5ad": [("pbmc", "pbmc.h5ad")], "QC.mqc": [("-", "pbmc.qc_mqc.tsv")],
        "NORMALISE.h5ad": [("pbmc", "pbmc.h5ad")], "NORMALISE.mqc": [("-", "pbmc.normalise_mqc.tsv")],
        "MASK.h5ad": [("pbmc.seed1", "pbmc.seed1.h5ad")], "MASK.truth": [("1", "pbmc.seed1.truth.h5ad")],
        "MASK.mqc": [("-", "pbmc.seed1.mask_mqc.tsv")],
        "GRAPH.h5ad": [("pbmc", "pbmc.h5ad")],
        "IMPUTE.h5ad": [("none", "pbmc.none.h5ad")], "IMPUTE.mqc": [("-", "pbmc.none.impute_mqc.tsv")],
        "IMPUTE_TRAIN.h5ad": [("scgnn", "pbmc.scgnn.h5ad")], "IMPUTE_TRAIN.mqc": [("-", "pbmc.scgnn.impute_mqc.tsv")],
        "EVALUATE.metrics": [("one", "one.metrics.tsv"), ("pbmc", "pbmc.metrics.tsv")],
        "EVALUATE.results": [("one", tables.format("one") + ";2"), ("pbmc", tables.format("pbmc") + ";2")],
        "MULTIQC.report": [("-", "multiqc_report.html")],
    }
