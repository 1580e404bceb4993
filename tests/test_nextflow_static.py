"""The Nextflow layer, checked without Nextflow: commands, params, selectors, includes, DAG, syntax.

Each check runs on the repository (no problem expected) and on a temporary copy with one planted
mistake (that mistake must be reported), so a check that silently stops checking fails here.
Nextflow's strict parser runs as `nextflow lint` where Nextflow is installed, else as nflint (the same
parser built offline, ../shared/tools/nflint, needs Java); the Groovy 4 parse needs Java and the jars from
scripts/install_groovy_parser.sh. Each skips only when its tools are missing.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import nextflow_checks as checks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The pipeline's files (not the Python package) in a temporary folder."""
    for name in checks.NF_TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, symlinks=True)
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def plant(root: Path, relative: str, old: str, new: str, count: int = 1) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {relative}: the planted mistake needs updating"
    path.write_text(text.replace(old, new, count))


# ---- process commands -------------------------------------------------------------------------------

def test_processes_call_existing_subcommands_with_existing_options():
    problems, notes = checks.check_process_commands(ROOT)
    assert problems == []
    for note in notes:  # e.g. multiqc not installed here: its options could not be checked
        print("not checked:", note)


def test_the_checks_see_every_pipeline_file():
    """Guards against checks that pass because they read nothing (e.g. a path filter that drops all)."""
    found = {str(p.relative_to(ROOT)) for p in checks.nf_files(ROOT)}
    assert {"main.nf", "workflows/graphimpute.nf", "subworkflows/local/input_check/main.nf",
            "modules/local/impute/main.nf"} <= found
    assert len(found) == 14  # main, workflow, 3 subworkflows, 9 modules
    used = checks.used_params(ROOT)
    assert "conf/base.config" in used["container_gpu"] and "main.nf" in used["benchmark"]


def test_every_step_process_is_checked():
    found = checks.processes(ROOT)
    assert set(found) == {"SAMPLESHEET_CHECK", "QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "IMPUTE_TRAIN", "EVALUATE",
                          "MULTIQC"}
    for name, process in found.items():
        programs = [program for program, _, _ in checks.script_commands(process)]
        if name in checks.THIRD_PARTY:
            assert programs == ["graphimpute_report", checks.THIRD_PARTY[name][0]]
        else:
            assert programs and all(program.startswith("graphimpute_") for program in programs), (name, programs)


@pytest.mark.parametrize("relative, old, new, expected", [
    ("modules/local/qc/main.nf", "--output ${prefix}.h5ad", "--outptu ${prefix}.h5ad",
     "QC: graphimpute_qc is given --outptu"),
    ("modules/local/impute/main.nf", "graphimpute_impute \\", "graphimpute_imputer \\",
     "IMPUTE: graphimpute_imputer is not a bin/ wrapper"),
    ("conf/modules.config", '"--n-pcs ${params.n_pcs}', '"--npcs ${params.n_pcs}',
     "GRAPH: graphimpute_graph is given --npcs"),
    ("modules/local/normalise/main.nf", "graphimpute_normalise \\", "python -m graphimpute normalise \\",
     "NORMALISE: calls 'python'"),
    ("bin/graphimpute_mask", 'main(["mask"', 'main(["masking"',
     "MASK: graphimpute_mask forwards to `graphimpute masking`"),
    ("modules/local/impute/main.nf", '"--param \'${key}', '"--parameter \'${key}',
     "IMPUTE: graphimpute_impute is given --parameter"),
    ("modules/local/multiqc/main.nf", "--no-render", "--no-html", "MULTIQC: graphimpute_report is given --no-html"),
    ("modules/local/multiqc/main.nf", "--force", "--forced", "MULTIQC: multiqc is given --forced"),
    # one --label-key per truth file: graphimpute evaluate takes --label-key once (--truth: multiple=True)
    ("modules/local/evaluate/main.nf", '"--truth ${path}"', '"--label-key ${path}"',
     "EVALUATE: graphimpute_evaluate is given --label-key once per item of a list"),
])
def test_command_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    problems, _ = checks.check_process_commands(copy)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_bin_holds_only_thin_wrappers(copy):
    assert checks.check_bin_wrappers(ROOT) == []
    (copy / "bin" / "helper.py").write_text("print('hello')\n")
    plant(copy, "bin/graphimpute_qc", "import sys\n", "import sys\nimport os\nprint(os.getcwd())\n")
    problems = checks.check_bin_wrappers(copy)
    assert any(p.startswith("bin/helper.py: not executable") for p in problems)
    assert any(p.startswith("bin/graphimpute_qc: not a thin wrapper") for p in problems)


# ---- params -----------------------------------------------------------------------------------------

def test_params_are_defined_and_described_everywhere():
    assert checks.check_params(ROOT) == []


@pytest.mark.parametrize("relative, old, new, expected", [
    ("conf/modules.config", "${params.n_neighbors}", "${params.n_neighbours}",
     "params.n_neighbours (used in conf/modules.config) is not defined"),
    ("nextflow.config", "    seed                 = 0\n", "    seed                 = 0\n    epochs = 3\n",
     "params.epochs is defined in nextflow.config but not described"),
    ("nextflow.config", "    n_pcs                = 50\n", "", "--n_pcs is in nextflow_schema.json but not defined"),
    ("nextflow.config", "n_pcs                = 50", "n_pcs                = 30",
     "--n_pcs: default 30 in nextflow.config, 50 in nextflow_schema.json"),
    ("conf/test.config", "n_pcs         = 20", "n_pc          = 20",
     "conf/test.config sets params.n_pc, which nextflow.config does not define"),
])
def test_params_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    assert any(problem.startswith(expected) for problem in checks.check_params(copy)), checks.check_params(copy)


def test_schema_change_without_description_is_caught(copy):
    schema = json.loads((copy / "nextflow_schema.json").read_text())
    del schema["$defs"]["graph_options"]["properties"]["n_pcs"]["description"]
    (copy / "nextflow_schema.json").write_text(json.dumps(schema))
    assert "--n_pcs has no description in nextflow_schema.json" in checks.check_params(copy)


def test_schema_is_draft_2020_12_and_lists_every_group():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert [ref["$ref"] for ref in schema["allOf"]] == [f"#/$defs/{name}" for name in schema["$defs"]]
    defaults = {name: spec["default"] for name, spec in checks.schema_params(ROOT).items() if "default" in spec}
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors({**defaults, "input": "a.csv", "outdir": "out"})) == []
    assert list(validator.iter_errors({**defaults, "input": "a.csv", "outdir": "out", "mask_fraction": 1.5}))
    assert list(validator.iter_errors({**defaults, "outdir": "out"}))  # --input is required


# ---- selectors, includes, emits ---------------------------------------------------------------------

def test_selectors_match_processes_and_labels_have_resources():
    assert checks.check_selectors(ROOT) == []


def test_selector_check_catches_planted_mistakes(copy):
    plant(copy, "conf/modules.config", "withName: 'NORMALISE'", "withName: 'NORMALIZE'")
    plant(copy, "modules/local/graph/main.nf", "label 'process_medium'", "label 'process_medum'")
    problems = checks.check_selectors(copy)
    assert "conf/modules.config: withName 'NORMALIZE' matches no process" in problems
    assert "GRAPH: label 'process_medum' is not configured in conf/base.config" in problems


def test_includes_resolve_and_emits_exist():
    assert checks.check_includes_and_emits(ROOT) == []


def test_include_and_emit_check_catches_planted_mistakes(copy):
    plant(copy, "workflows/graphimpute.nf", "NORMALISE(QC.out.h5ad)", "NORMALISE(QC.out.anndata)")
    plant(copy, "workflows/graphimpute.nf", "include { MASK         } from '../modules/local/mask'",
          "include { MASK         } from '../modules/local/masking'")
    plant(copy, "main.nf", "include { GRAPHIMPUTE             }", "include { GRAPH_IMPUTE            }")
    problems = checks.check_includes_and_emits(copy)
    assert any("QC.out.anndata: QC emits" in p for p in problems)
    assert "workflows/graphimpute.nf: include from '../modules/local/masking': no such module" in problems
    assert "main.nf: 'GRAPH_IMPUTE' is not defined in ./workflows/graphimpute" in problems


def test_calls_pass_every_declared_input():
    assert checks.check_call_arity(ROOT) == []


def test_arity_check_catches_planted_mistakes(copy):
    plant(copy, "main.nf", "PIPELINE_COMPLETION()", "PIPELINE_COMPLETION(GRAPHIMPUTE.out.multiqc_report)")
    plant(copy, "workflows/graphimpute.nf", "GRAPH(ch_graph_input)", "GRAPH(ch_graph_input, ch_methods)")
    plant(copy, "modules/local/evaluate/main.nf", "    input:\n", "    input:\n    val labels\n")
    problems = [re.sub(r":\d+:", ":", problem) for problem in checks.check_call_arity(copy)]  # lines vary
    assert problems == ["main.nf: PIPELINE_COMPLETION is called with 1 argument(s), it takes 0",
                        "workflows/graphimpute.nf: GRAPH is called with 2 argument(s), it takes 1",
                        "workflows/graphimpute.nf: EVALUATE is called with 1 argument(s), it takes 2"], problems


# ---- the DAG ----------------------------------------------------------------------------------------

def test_dag_is_qc_normalise_mask_graph_impute_evaluate_multiqc():
    assert checks.check_dag(ROOT) == []
    sources, conditions = checks.workflow_dag(ROOT)
    assert sources["GRAPH"] >= {"NORMALISE", "MASK"} and "QC" not in sources["GRAPH"]
    assert sources["EVALUATE"] == {"IMPUTE", "IMPUTE_TRAIN", "MASK", "INPUT_CHECK"}  # INPUT_CHECK: how many methods
    assert sources["IMPUTE"] == sources["IMPUTE_TRAIN"] == {"GRAPH", "INPUT_CHECK", "TAKE"}
    assert conditions["MASK"] == conditions["EVALUATE"] == ("benchmark",)


@pytest.mark.parametrize("old, new, expected", [
    ("GRAPH(ch_graph_input)", "GRAPH(QC.out.h5ad)", "GRAPH takes input from QC"),
    ("IMPUTE(ch_impute_input.other)", "IMPUTE(ch_impute_input.other.mix(EVALUATE.out.tsv))",
     "IMPUTE takes input from EVALUATE"),
    ("        MASK(ch_mask_input)\n", "", "MASK is not called"),
    ("    if (benchmark) {\n        ch_mask_input", "    if (true) {\n        ch_mask_input", "MASK must run only under"),
    ("GRAPH(ch_graph_input)", "GRAPH(ch_graph_input.combine(ch_methods_spec).map { meta, h5ad, _m -> [meta, h5ad] })",
     "GRAPH takes input from TAKE"),
    ("        ch_graph_input   = MASK.out.h5ad\n", "", "GRAPH does not take input from MASK"),
])
def test_dag_check_catches_planted_mistakes(copy, old, new, expected):
    plant(copy, "workflows/graphimpute.nf", old, new)
    problems = checks.check_dag(copy)
    assert any(problem.startswith(expected) for problem in problems), problems


# ---- the GPU label: only the methods that train, one GPU each -------------------------------------------

def test_gpu_options_are_scoped_to_the_gpu_label():
    assert checks.check_gpu_scoping(ROOT) == []


@pytest.mark.parametrize("relative, old, new, expected", [
    ("conf/base.config", "accelerator      = { params.use_gpu.toString().toBoolean() ? 1 : null }",
     "accelerator      = 1", "process_gpu: accelerator must be"),
    ("nextflow.config", "docker.runOptions       = '-u $(id -u):$(id -g)'",
     "docker.runOptions       = '-u $(id -u):$(id -g) --gpus all'", "nextflow.config:"),
    ("conf/base.config", "    maxErrors     = '-1'\n", "    maxErrors     = '-1'\n    accelerator   = 1\n",
     "conf/base.config:"),
    ("conf/modules.config", ': params.seed}" }\n        publishDir = [\n            [path: { "${params.outdir}/impute" }',
     ': params.seed} --device cuda" }\n        publishDir = [\n            [path: { "${params.outdir}/impute" }',
     "conf/modules.config:"),
    ("conf/base.config", "return '--nv'", "return ''", "process_gpu: containerOptions must give"),
    ("conf/base.config", "def gpu = task.accelerator != null", "def gpu = params.use_gpu",
     "conf/base.config: process.container must pick the CUDA image"),
    ("modules/local/impute/main.nf", "def device = 'cpu'", "def device = 'cuda'",
     "IMPUTE (modules/local/impute/main.nf): asks for CUDA without the process_gpu label"),
    ("modules/local/impute_train/main.nf", "def device = task.accelerator ? 'cuda' : 'cpu'", "def device = 'cuda'",
     "IMPUTE_TRAIN (modules/local/impute_train/main.nf): must train on cuda exactly when"),
    ("modules/local/graph/main.nf", "    label 'process_medium'\n", "    label 'process_medium'\n    accelerator 1\n",
     "GRAPH (modules/local/graph/main.nf): sets accelerator or containerOptions itself"),
])
def test_gpu_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    assert any(p.startswith(expected) for p in checks.check_gpu_scoping(copy)), checks.check_gpu_scoping(copy)


def test_only_methods_that_train_reach_the_gpu_label():
    """The workflow sends meta.trains items to IMPUTE_TRAIN (the only process_gpu process) and the rest to
    IMPUTE; meta.trains is the `trains` column check-samplesheet writes from the registry (whose values
    tests/test_samplesheet.py holds against Method.trains)."""
    from graphimpute import methods

    assert checks.check_gpu_routing(ROOT) == []
    assert checks.check_impute_twins(ROOT) == []
    assert {name for name, m in methods.available().items() if m.trains}  # some train, some do not
    assert {name for name, m in methods.available().items() if not m.trains}


@pytest.mark.parametrize("relative, old, new, expected", [
    ("workflows/graphimpute.nf", "train: meta.trains", "train: true", "workflows/graphimpute.nf: the GPU branch is chosen by"),
    ("workflows/graphimpute.nf", "IMPUTE_TRAIN(ch_impute_input.train)", "IMPUTE_TRAIN(ch_impute_input.other)",
     "workflows/graphimpute.nf: IMPUTE_TRAIN is not called with the 'train' branch"),
    ("modules/local/impute/main.nf", "    label 'process_medium'\n", "    label 'process_medium'\n    label 'process_gpu'\n",
     "process_gpu is carried by IMPUTE, IMPUTE_TRAIN"),
    ("subworkflows/local/input_check/main.nf", "trains: row.trains == 'true'", "trains: true",
     "subworkflows/local/input_check/main.nf: trains is not read"),
])
def test_gpu_routing_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    assert any(p.startswith(expected) for p in checks.check_gpu_routing(copy)), checks.check_gpu_routing(copy)


def test_impute_twins_check_catches_a_drifted_script(copy):
    plant(copy, "modules/local/impute_train/main.nf", "        --quiet \\\\\n", "        --verbose \\\\\n")
    assert checks.check_impute_twins(copy) == ["IMPUTE and IMPUTE_TRAIN differ in their script: keep the two "
                                               "modules the same but for the device"]


# ---- module conventions and layout ------------------------------------------------------------------

def test_modules_follow_nf_core_conventions():
    assert checks.check_module_conventions(ROOT) == []


def test_module_convention_check_catches_planted_mistakes(copy):
    plant(copy, "modules/local/qc/main.nf", "    stub:\n", "    // no stub\n")
    plant(copy, "modules/local/graph/main.nf", "task.ext.when == null || task.ext.when", "true")
    plant(copy, "modules/local/qc/main.nf", "label 'process_medium'", "label 'process_medium'\n    label 'process_gpu'")
    plant(copy, "modules/local/mask/meta.yml", "- truth:", "- truths:")
    plant(copy, "modules/local/normalise/main.nf", "        --threads ${task.cpus} \\\\\n        --log-file", "        --log-file")
    plant(copy, "modules/local/evaluate/main.nf", "    label 'process_medium'\n",
          "    label 'process_medium'\n    container 'graphimpute:latest'\n")
    problems = checks.check_module_conventions(copy)
    assert any(p.startswith("QC (modules/local/qc/main.nf): no stub") for p in problems)
    assert any(p.startswith("GRAPH (modules/local/graph/main.nf): no `when:") for p in problems)
    assert any("only IMPUTE_TRAIN carries the process_gpu label" in p for p in problems)
    assert "modules/local/mask/meta.yml: output 'truth' is not documented" in problems
    assert "NORMALISE (modules/local/normalise/main.nf): graphimpute_normalise is not given --threads ${task.cpus}" \
        in problems
    assert any(p.startswith("EVALUATE (modules/local/evaluate/main.nf): declares a container") for p in problems)


def test_steps_publish_where_graphimpute_run_writes():
    assert checks.check_publish_layout(ROOT) == []
    # file names as `graphimpute run` writes them: <step>/<sample>.h5ad, impute/<sample>.<method>.h5ad,
    # mask/<sample>.truth.h5ad
    for name, process in checks.processes(ROOT).items():
        if name in {"QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "IMPUTE_TRAIN"}:
            default = '"${meta.id}.${meta.method}"' if name in checks.IMPUTE_STEPS else '"${meta.id}"'
            assert f"prefix = task.ext.prefix ?: {default}" in process.parts["script"], name
            assert re.search(r'path\("\$\{prefix\}\.h5ad"\)\s*,\s*emit: h5ad', process.parts["output"]), name
    mask_outputs = checks.processes(ROOT)["MASK"].parts["output"]
    assert re.search(r'path\("\$\{prefix\}\.truth\.h5ad"\)\s*,\s*emit: truth', mask_outputs)


def test_publish_check_catches_a_moved_folder(copy):
    plant(copy, "conf/modules.config", '"${params.outdir}/graph"', '"${params.outdir}/graphs"')
    assert checks.check_publish_layout(copy) == ["conf/modules.config: GRAPH does not publish to ${params.outdir}/graph"]


# ---- inputs of the test profile and the samplesheet schema ------------------------------------------

def test_samplesheet_schema_matches_the_python_check():
    from graphimpute import io, samplesheet

    schema = json.loads((ROOT / "assets" / "schema_input.json").read_text())
    items = schema["items"]
    assert tuple(items["properties"]) == samplesheet.COLUMNS
    assert tuple(items["required"]) == samplesheet.REQUIRED
    assert set(items["properties"]["format"]["enum"]) == set(io.FORMATS) | {""}
    assert items["properties"]["sample"]["pattern"] == samplesheet.SAMPLE_NAME.pattern


def test_method_params_examples_in_the_docs_fit_the_registry():
    """docs/usage.md's --method_params examples would pass the first task's check."""
    from graphimpute import methods

    blocks_ = re.findall(r"```json\s*\n(.*?)```", (ROOT / "docs" / "usage.md").read_text(), re.S)
    assert blocks_
    for block in blocks_:
        for name, params in json.loads(block).items():
            methods.resolve_params(methods.get(name), params)


def test_test_profile_method_params_fit_the_registry():
    from graphimpute import methods

    overrides = json.loads((ROOT / "assets" / "test_method_params.json").read_text())
    for name, params in overrides.items():
        methods.resolve_params(methods.get(name), params)  # unknown method or parameter: GraphImputeError
    for name, method in methods.available().items():
        assert not method.trains or name in overrides, (
            f"{name} trains: give it a few-epoch override in assets/test_method_params.json for -profile test")


# ---- Groovy 4 syntax --------------------------------------------------------------------------------

groovy = pytest.mark.skipif(checks.groovy_unavailable() is not None, reason=str(checks.groovy_unavailable()))


@groovy
def test_every_nf_and_config_file_parses_as_groovy(copy):
    # One parse of a copy with two planted syntax errors: exactly those two files fail, every other
    # .nf and .config file (the same as the repository's) parses.
    plant(copy, "modules/local/graph/main.nf", "    output:\n", "    output: {\n")
    plant(copy, "conf/base.config", "maxRetries    = 2", "maxRetries    = (2")
    problems = checks.check_groovy_syntax(copy)
    failed = sorted({p.split(":")[0].removeprefix("ERROR ") for p in problems})
    assert failed == [str(copy / "conf/base.config"), str(copy / "modules/local/graph/main.nf")], problems
    assert all(p.split(":")[1].isdigit() for p in problems), problems  # each with its line number


@groovy
def test_help_and_parameter_checks_run_as_written():
    """The initialisation subworkflow's own Groovy (help, parameter checks, summary), run with stand-ins
    for Nextflow's file(), error(), log and workflow."""
    schema = ROOT / "nextflow_schema.json"
    method_params = ROOT / "assets" / "test_method_params.json"
    driver = f"""
def schema = readSchema('{schema}')
out.help = helpMessage(schema, true)
out.help_one = helpMessage(schema, 'use_gpu')
out.help_unknown = helpMessage(schema, 'gpus')
def good = [input: '{ROOT / "assets" / "samplesheet_test.csv"}', outdir: 'results', methods: 'none,scvgae',
            seed: 3, mask_fraction: 0.2, n_top_genes: 500, benchmark: true, help: false, nTopGenes: 500,
            trace_report_suffix: '2026-12-03_10-00-00']
validateParameters(schema, good)
out.good = 'passed'
def bad = good + [input: null, seed: 'three', mask_fraction: 1.5, n_top_genes: 'lots', benchmark: 'yes',
                  publish_dir_mode: 'teleport', methods: 'a b', unknown_option: 1]
try {{ validateParameters(schema, bad) }} catch (IllegalStateException err) {{ out.bad = err.message }}
out.method_params = readMethodParams('{method_params}')
out.summary = summaryLog(schema, good)
out.summary_mqc = summaryMultiqc(schema, good + [multiqc_title: '<b>&</b>'])
"""
    out = checks.run_groovy_functions(ROOT, "subworkflows/local/pipeline_initialisation/main.nf", driver)
    assert "Methods and benchmark mode:" in out["help"] and "--methods" in out["help"]
    assert "--publish_dir_mode" not in out["help"]  # hidden
    assert out["help_one"].startswith("  --use_gpu") and "process_gpu label" in out["help_one"]
    assert out["help_unknown"].startswith("No parameter --gpus")
    assert out["good"] == "passed"
    bad = out["bad"].splitlines()
    assert bad[0] == "Invalid parameters:"
    for expected in ("--input is required", "--seed must be a whole number, got 'three'",
                     "--mask_fraction must be less than 1, got 1.5", "--n_top_genes 'lots' does not match",
                     "--benchmark is a flag (true or false), got 'yes'",
                     "--publish_dir_mode must be one of symlink, rellink, link, copy, copyNoFollow, move",
                     "--methods 'a b' does not match"):
        assert any(expected in line for line in bad), (expected, bad)
    assert len(bad) == 8
    assert out["warnings"] == ["--unknown_option is not a parameter of this pipeline (see --help); it is ignored"]
    assert out["method_params"] == json.loads(method_params.read_text())  # read as the file says
    assert "methods             : none,scvgae" in out["summary"] and "seed                : 3" in out["summary"]
    assert "outdir" in out["summary"] and "n_pcs" not in out["summary"]  # only what differs from the defaults
    assert "trace_report_suffix" not in out["summary"]  # the start time, set on every run
    assert "<dd><samp>&lt;b&gt;&amp;&lt;/b&gt;</samp></dd>" in out["summary_mqc"]


# ---- Nextflow's strict parser ---------------------------------------------------------------------------

strict_parser = pytest.mark.skipif(checks.lint_unavailable() is not None, reason=str(checks.lint_unavailable()))


@strict_parser
def test_the_strict_parser_finds_no_error_and_no_unexplained_warning():
    """`nextflow lint` (or nflint, the same parser built offline): what Nextflow >= 26.04 runs by default."""
    messages = checks.lint(ROOT)
    errors = [str(m) for m in messages if not m.warning]
    warnings = [str(m) for m in messages if m.warning and m.message not in checks.LINT_WARNINGS_KEPT]
    assert errors == [], "\n".join(errors)
    assert warnings == [], "warnings without a reason in nextflow_checks.LINT_WARNINGS_KEPT:\n" + "\n".join(warnings)


@strict_parser
@pytest.mark.parametrize("relative, old, new, line_of", [
    # a top-level variable in a config file: the legacy parser ran it, the strict parser refuses the file
    ("nextflow.config", "\nmanifest {", "\ndef started = new java.util.Date()\nmanifest {", "def started"),
    # a missing comma between the parts of a tuple input
    ("modules/local/graph/main.nf", "tuple val(meta), path(h5ad, stageAs: 'input/*')",
     "tuple val(meta) path(h5ad, stageAs: 'input/*')", "tuple val(meta) path("),
])
def test_the_strict_parser_reports_planted_errors(copy, relative, old, new, line_of):
    plant(copy, relative, old, new)
    line = next(k for k, text in enumerate((copy / relative).read_text().splitlines(), 1) if line_of in text)
    errors = [m for m in checks.lint(copy) if not m.warning]
    assert any(m.file == relative and m.line == line for m in errors), [str(m) for m in errors]


# ---- emits, keys, and what -resume reruns ---------------------------------------------------------------

def test_every_emit_is_used():
    assert checks.check_emits_are_used(ROOT) == []


@pytest.mark.parametrize("relative, old, new, expected", [
    # MultiQC's version collected nowhere (the hole the issue found)
    ("workflows/graphimpute.nf", "        .mix(MULTIQC.out.versions.map { path -> path.text.trim() })\n", "",
     "MULTIQC.out.versions: emitted, but nothing consumes it"),
    ("workflows/graphimpute.nf", "    ch_versions      = ch_versions.mix(EVALUATE.out.versions)\n", "",
     "EVALUATE.out.versions: emitted, but nothing consumes it"),
    ("conf/modules.config", "pattern: '*.{tsv,json}'", "pattern: '*.json'",
     "EVALUATE.out.metrics: emitted, but nothing consumes it and nothing publishes it"),
    ("subworkflows/local/input_check/main.nf", "    ch_samples = SAMPLESHEET_CHECK.out.csv\n",
     "    ch_samples = SAMPLESHEET_CHECK.out.csv\n    ch_unused = SAMPLESHEET_CHECK.out.methods\n", None),
])
def test_emit_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    problems = checks.check_emits_are_used(copy)
    if expected is None:  # a consumer added: still fine
        assert problems == []
    else:
        assert any(p.startswith(expected) for p in problems), problems


def test_every_group_and_join_is_keyed_by_the_sample():
    assert checks.check_join_keys(ROOT) == []


@pytest.mark.parametrize("old, new, expected", [
    ("groupKey(meta.sample, n_methods * mask_seeds.size())", "groupKey(meta, n_methods * mask_seeds.size())",
     "groupTuple is keyed by 'groupKey(meta, n_methods * mask_seeds.size())'"),
    # by the masked copy (meta.id = <sample>.seed<k>): one EVALUATE per mask seed, each with one truth
    ("groupKey(meta.sample, mask_seeds.size())", "groupKey(meta.id, mask_seeds.size())",
     "groupTuple is keyed by 'groupKey(meta.id, mask_seeds.size())'"),
    ("[key.getGroupTarget(), sampleMeta(metas[0]), truths]", "[sampleMeta(metas[0]), key, truths]",
     "a join of key 'meta.sample' with key 'sampleMeta(metas[0])'"),
    ("[key.getGroupTarget(), imputed]", "[imputed, key]", "a join of key 'imputed' with key 'meta.sample'"),
])
def test_key_check_catches_planted_mistakes(copy, old, new, expected):
    plant(copy, "workflows/graphimpute.nf", old, new)
    problems = checks.check_join_keys(copy)
    assert any(expected in p for p in problems), problems


# ---- benchmark mode: one MASK per sample and mask seed, one EVALUATE per sample ---------------------------

def test_benchmark_masks_each_sample_once_per_mask_seed():
    """MASK runs params.mask_seeds times per sample (NORMALISE.out.h5ad x the seed list built from
    params.mask_seeds), each with the seed in its meta; EVALUATE waits for methods x seeds imputations and
    passes every seed's truth with its own --truth."""
    assert checks.check_mask_seeds(ROOT) == []
    assert "--seed" not in checks.ext_args_options(ROOT, "MASK")
    assert "--truth" in checks.repeated_options(checks.processes(ROOT)["EVALUATE"])


@pytest.mark.parametrize("relative, old, new, expected", [
    ("workflows/graphimpute.nf", "maskSeeds(params.seed, params.mask_seeds)", "maskSeeds(params.seed, 1)",
     "workflows/graphimpute.nf: the mask seeds are not built from params.mask_seeds"),
    ("workflows/graphimpute.nf", "            .combine(channel.fromList(mask_seeds))\n", "",
     "workflows/graphimpute.nf: MASK's input is not NORMALISE.out.h5ad.combine(channel.fromList(mask_seeds))"),
    ("workflows/graphimpute.nf", "[maskedMeta(meta, mask_seed), h5ad]", "[meta, h5ad]",
     "workflows/graphimpute.nf: MASK's input is not mapped with"),
    ("modules/local/mask/main.nf", "--seed ${meta.mask_seed}", "--seed 0",
     "MASK (modules/local/mask/main.nf): graphimpute_mask is not given --seed ${meta.mask_seed}"),
    ("conf/modules.config", '--fraction ${params.mask_fraction}"', '--fraction ${params.mask_fraction} --seed ${params.seed}"',
     "conf/modules.config: MASK's ext.args passes --seed"),
    ("workflows/graphimpute.nf", "groupKey(meta.sample, n_methods * mask_seeds.size())", "groupKey(meta.sample, n_methods)",
     "workflows/graphimpute.nf: groupKey(..., n_methods) does not count the mask seeds"),
    ("modules/local/evaluate/main.nf", ", arity: '1..*')\n", ")\n",
     "EVALUATE (modules/local/evaluate/main.nf): the truth input is not declared with arity"),
    ("modules/local/evaluate/main.nf", "        ${truths} \\\\\n", "        --truth ${truth} \\\\\n",
     "EVALUATE (modules/local/evaluate/main.nf): the truth files are not passed one --truth each"),
])
def test_mask_seed_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    problems = checks.check_mask_seeds(copy)
    assert any(p.startswith(expected) for p in problems), problems


def test_changing_methods_does_not_change_graphs_inputs():
    """Under -resume a new --methods reruns only the new imputations and EVALUATE: GRAPH takes nothing
    derived from the method list (a method's own graphs are built by its IMPUTE task from its input)."""
    assert checks.check_graph_ignores_methods(ROOT) == []
    graph = checks.processes(ROOT)["GRAPH"]
    assert checks.script_commands(graph)[0][0] == "graphimpute_graph"
    assert "--methods" not in checks.script_commands(graph)[0][1] | checks.ext_args_options(ROOT, "GRAPH")


@pytest.mark.parametrize("relative, old, new, expected", [
    ("workflows/graphimpute.nf", "GRAPH(ch_graph_input)",
     "GRAPH(ch_graph_input.combine(ch_methods.count()).map { meta, h5ad, _n -> [meta, h5ad] })",
     "GRAPH takes input from INPUT_CHECK"),
    ("conf/modules.config", '"--n-pcs ${params.n_pcs}', '"--methods ${params.methods} --n-pcs ${params.n_pcs}',
     "GRAPH: conf/modules.config gives it the methods"),
])
def test_graph_methods_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    assert any(p.startswith(expected) for p in checks.check_graph_ignores_methods(copy))


def test_impute_builds_a_methods_own_graph_from_its_input(tmp_path, bundled_path):
    """What makes GRAPH independent of --methods: IMPUTE builds the graphs its method declares when the
    GRAPH output lacks them (graphimpute graph without --methods builds only PCA and the kNN graph)."""
    import anndata as ad

    from graphimpute import methods, pipeline

    pipeline.qc_step(bundled_path, tmp_path / "qc.h5ad")
    pipeline.normalise_step(tmp_path / "qc.h5ad", tmp_path / "norm.h5ad", n_top_genes=200)
    pipeline.graph_step(tmp_path / "norm.h5ad", tmp_path / "graph.h5ad", n_pcs=10)
    own = methods.get("knn_average").graphs[0].key
    assert own not in ad.read_h5ad(tmp_path / "graph.h5ad").obsp
    pipeline.impute_step(tmp_path / "graph.h5ad", tmp_path / "out.h5ad", method="knn_average")
    assert own in ad.read_h5ad(tmp_path / "out.h5ad").obsp


# ---- software: every registered method in both images and the conda environment ---------------------------

def test_every_method_is_installed_in_both_images_and_the_conda_environment():
    """Derived from the registry: a method added with a new package fails here until the images and the
    conda environment install it."""
    assert checks.check_environments(ROOT) == []


def test_environment_check_catches_planted_mistakes(copy):
    for name in ("containers/environment.yml", "containers/Dockerfile", "containers/Dockerfile.cuda",
                 "pyproject.toml", "requirements.txt", "requirements-baselines.txt"):
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    plant(copy, "containers/environment.yml", "      - halra==0.1.0\n", "")
    plant(copy, "containers/Dockerfile.cuda", "pip install --no-deps -r", "pip install -r")
    problems = checks.check_environments(copy)
    assert "containers/environment.yml: does not install halra (halra), which method alra needs" in problems
    assert "containers/Dockerfile: does not install halra (halra), which method alra needs" in problems  # built from it
    assert "containers/Dockerfile.cuda: requirements-baselines.txt must be installed with --no-deps" in problems


# conda-forge's names for packages that PyPI names otherwise
CONDA_NAMES = {"pytorch-cpu": "torch", "pytorch-geometric": "torch-geometric", "python-igraph": "igraph",
               "matplotlib-base": "matplotlib"}


def _pip_pins(*names: str) -> dict[str, str]:
    pins = {}
    for name in names:
        for line in (ROOT / name).read_text().splitlines():
            found = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
            if found:
                pins[found.group(1).lower().replace("_", "-")] = found.group(2)
    return pins


def test_the_conda_environment_pins_every_package_at_the_pip_pins():
    """-profile conda and the CPU image get the versions CI tests: each package pinned, and a package
    pinned for pip too at the same version."""
    yaml = pytest.importorskip("yaml")
    pins = _pip_pins("requirements.txt", "requirements-baselines.txt")
    dependencies = yaml.safe_load((ROOT / "containers/environment.yml").read_text())["dependencies"]
    problems = []
    for item in dependencies:
        if isinstance(item, dict):  # the pip: list
            problems += [f"pip: {spec} is not pinned with ==" for spec in item["pip"] if "==" not in spec]
            continue
        name, _, version = str(item).partition("=")
        if not version:
            problems.append(f"{name} is not pinned")
            continue
        pip_name = CONDA_NAMES.get(name.replace("_", "-"), name.replace("_", "-"))
        if pip_name in pins and pins[pip_name] != version:
            problems.append(f"{name}={version}, but pip pins {pip_name}=={pins[pip_name]}")
    assert not problems, problems


def test_environment_check_follows_the_registry(copy):
    """A new method needing a package none of the environments installs is reported for all three."""
    from graphimpute import methods
    from graphimpute.methods import Method

    for name in ("containers/environment.yml", "containers/Dockerfile", "containers/Dockerfile.cuda",
                 "pyproject.toml", "requirements.txt", "requirements-baselines.txt"):
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    registry = dict(methods.available())
    registry["newcomer"] = Method(name="newcomer", impute=lambda *a: None, summary="", citation="",
                                  requires=("pyarrow",))
    problems = checks.check_environments(copy, registry)
    assert [p for p in problems if "newcomer" in p] == [
        f"{where}: does not install pyarrow (pyarrow), which method newcomer needs"
        for where in ("containers/environment.yml", "containers/Dockerfile", "containers/Dockerfile.cuda")]


@groovy
def test_command_line_text_is_cast_by_the_schema_types():
    """Under the strict syntax `--benchmark false --seed 3` reach params as the texts 'false' and '3':
    castParameters turns them into the schema's types before anything decides or validates on them."""
    schema = ROOT / "nextflow_schema.json"
    driver = f"""
def schema = readSchema('{schema}')
def text = [input: '{ROOT / "assets" / "samplesheet_test.csv"}', outdir: 'results', benchmark: 'false', use_gpu: 'true',
            seed: '3', mask_fraction: '0.25', n_top_genes: '500', help: 'true', methods: 'none', n_pcs: '1e3']
def cast = castParameters(schema, text)
out.cast = cast.collectEntries {{ name, value -> [name, [value.toString(), value.getClass().simpleName]] }}
validateParameters(schema, cast - [n_pcs: cast.n_pcs])
out.valid = 'passed'
try {{ validateParameters(schema, cast) }} catch (IllegalStateException err) {{ out.invalid = err.message }}
out.help_topic = castParameters(schema, [help: 'methods']).help
"""
    out = checks.run_groovy_functions(ROOT, "subworkflows/local/pipeline_initialisation/main.nf", driver)
    cast = out["cast"]
    assert cast["benchmark"] == ["false", "Boolean"] and cast["use_gpu"] == ["true", "Boolean"]
    assert cast["seed"] == ["3", "Integer"] and cast["mask_fraction"] == ["0.25", "BigDecimal"]
    assert cast["n_top_genes"] == ["500", "String"]  # a string in the schema ('all' is allowed)
    assert cast["help"] == ["true", "Boolean"] and out["help_topic"] == "methods"
    assert out["valid"] == "passed"
    assert "--n_pcs must be a whole number, got '1e3'" in out["invalid"]


@groovy
def test_software_settings_that_cannot_work_stop_the_run():
    driver = """
def base = [container_tag: '0.1.0', use_gpu: false]
def check = { options, engine, profile, work, version -> softwareProblems(base + options, engine, profile, work, version) }
out.local_docker = check([:], 'docker', 'docker', '/data/work', '26.10.0')
out.oras_docker = check([container_registry: 'oras://registry.example.org/lab'], 'docker', 'docker', '/w', '26.10.0')
out.bare_singularity = check([:], 'singularity', 'singularity', '/w', '26.10.0')
out.registry_singularity = check([container_registry: 'registry.example.org/lab'], 'singularity', 'singularity', '/w', '26.10.0')
out.sif_files = check([container: '/images/graphimpute.sif'], 'apptainer', 'apptainer', '/w', '26.10.0')
out.sif_no_gpu_image = check([container: '/images/graphimpute.sif', use_gpu: true], 'apptainer', 'apptainer', '/w', '26.10.0')
out.cloud = check([:], 'docker', 'docker', 's3://bucket/work', '26.10.0')
out.cloud_registry = check([container_registry: 'registry.example.org/lab'], 'docker', 'docker', 's3://bucket/work', '26.10.0')
out.conda_gpu = check([use_gpu: 'true'], null, 'conda', '/w', '26.10.0')
out.old_gpu = check([use_gpu: true, container_registry: 'registry.example.org/lab'], 'docker', 'docker,gpu', '/w', '25.10.2')
out.new_gpu = check([use_gpu: true, container_registry: 'registry.example.org/lab'], 'docker', 'docker,gpu', '/w', '26.10.1')
"""
    out = checks.run_groovy_functions(ROOT, "subworkflows/local/pipeline_initialisation/main.nf", driver)
    fine = {"errors": [], "warnings": []}
    assert out["local_docker"] == out["registry_singularity"] == out["sif_files"] == out["cloud_registry"] == fine
    assert out["new_gpu"] == fine
    assert "oras:// and https:// addresses hold Singularity/Apptainer images" in out["oras_docker"]["errors"][0]
    assert "singularity needs to know where the images are" in out["bare_singularity"]["errors"][0]
    assert "--container and --container_gpu" in out["sif_no_gpu_image"]["errors"][0]
    assert "pull images from a registry: give --container_registry" in out["cloud"]["errors"][0]
    assert "the conda environment has the CPU build of PyTorch" in out["conda_gpu"]["errors"][0]
    assert out["old_gpu"]["errors"] == [] and "Nextflow 25.10.2" in out["old_gpu"]["warnings"][0]


@groovy
def test_mask_seeds_and_file_names_are_those_of_graphimpute_run(tmp_path, monkeypatch):
    """The workflow's own maskSeeds, maskedMeta and sampleMeta (run as Groovy) give the seeds and the
    names `graphimpute run --benchmark` uses: one masked copy per seed --seed, --seed + 1, ... (text from the
    command line included), files <sample>.seed<k>[.<method>].h5ad, and one EVALUATE per sample."""
    from graphimpute import pipeline

    driver = """
out.seeds = maskSeeds('5', '3')
out.one = maskSeeds(0, 1)
def sample = [id: 'pbmc', format: 'h5ad', label_key: 'cell_type', layer: '']
def copies = out.seeds.collect { seed -> maskedMeta(sample, seed) }
out.copies = copies
out.sample_meta = sampleMeta(copies[1])
"""
    out = checks.run_groovy_functions(ROOT, "workflows/graphimpute.nf", driver)
    assert out["seeds"] == [5, 6, 7] and out["one"] == [0]
    assert [copy["id"] for copy in out["copies"]] == ["pbmc.seed5", "pbmc.seed6", "pbmc.seed7"]
    assert all(copy["sample"] == "pbmc" and copy["label_key"] == "cell_type" for copy in out["copies"])
    assert [copy["mask_seed"] for copy in out["copies"]] == out["seeds"]
    assert out["sample_meta"] == {"id": "pbmc", "format": "h5ad", "label_key": "cell_type", "layer": "", "sample": "pbmc"}

    # `graphimpute run --benchmark --seed 5 --mask-seeds 3`, its steps replaced by stand-ins that only record
    calls = []
    for name in ("qc_step", "normalise_step", "mask_step", "graph_step", "impute_step", "evaluate_step", "report_step"):
        monkeypatch.setattr(pipeline, name, lambda *args, _name=name, **kwargs: calls.append((_name, args, kwargs)))
    options = pipeline.RunOptions(methods=["none", "gene_mean"], sample="pbmc", benchmark=True, mask_seeds=3,
                                  ctx=pipeline.RunContext(seed=5))
    (tmp_path / "pbmc.h5ad").write_bytes(b"")  # run checks that its input exists before any step
    written = pipeline.run(tmp_path / "pbmc.h5ad", tmp_path, options)
    run_files = {str(path.relative_to(tmp_path)) for key, path in written.items()
                 if key.split(".")[0] in ("mask", "truth", "graph", "impute", "evaluate")}
    # the pipeline's names: MASK, GRAPH: ${meta.id}.h5ad (MASK also .truth.h5ad), IMPUTE: ${meta.id}.${meta.method}.h5ad
    # (test_steps_publish_where_graphimpute_run_writes holds those prefixes), EVALUATE: the sample's id
    pipeline_files = {f"evaluate/{out['sample_meta']['id']}.summary.json"}
    for copy in out["copies"]:
        pipeline_files |= {f"mask/{copy['id']}.h5ad", f"mask/{copy['id']}.truth.h5ad", f"graph/{copy['id']}.h5ad"}
        pipeline_files |= {f"impute/{copy['id']}.{method}.h5ad" for method in options.methods}
    assert pipeline_files == run_files
    assert [kwargs["seed"] for name, _, kwargs in calls if name == "mask_step"] == out["seeds"]
    assert [name for name, _, _ in calls].count("evaluate_step") == 1


@groovy
def test_methods_auto_is_refused_at_start():
    """--methods auto is `graphimpute run` only: the initialisation stops the run with one message that
    says so, whatever else the list holds; other lists pass."""
    driver = """
out.auto = methodsProblem('auto')
out.mixed = methodsProblem('none, auto')
out.named = methodsProblem('none,scvgae')
out.all = methodsProblem('all')
out.autoencoder = methodsProblem('autoencoder')
"""
    out = checks.run_groovy_functions(ROOT, "subworkflows/local/pipeline_initialisation/main.nf", driver)
    assert out["auto"] == out["mixed"]
    assert out["auto"].startswith("--methods auto is not supported by the Nextflow pipeline")
    assert "`graphimpute run --methods auto`" in out["auto"]
    assert out["named"] is None and out["all"] is None and out["autoencoder"] is None
    # called on every run before any task, at the top level of the start-up (not only with --validate_params)
    init = checks.blocks((ROOT / "subworkflows/local/pipeline_initialisation/main.nf").read_text(), "workflow")
    main = checks.sections(init["PIPELINE_INITIALISATION"])["main"]
    assert re.search(r"(?m)^    def (\w+) = methodsProblem\(options\.methods\)\n    if \(\1\) \{\n        refuse\(\1\)",
                     main), main

